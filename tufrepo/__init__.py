"""tufrepo: a TUF repository kept in git and run from CI.

The on-disk format is tuf-on-ci's (see docs and DESIGN.md §1). The public API is
re-exported here; everything else lives in private-by-convention modules.
"""

from tufrepo.errors import (
    Error,
    GitError,
    InputError,
    MetadataError,
    SignerError,
)

__all__ = ["Error", "GitError", "InputError", "MetadataError", "SignerError"]
__version__ = "0.1.0"
