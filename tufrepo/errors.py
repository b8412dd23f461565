"""The one exception tree of tufrepo.

Library code raises these (wrapping lower-level errors with ``raise X(...) from e``);
the command line turns them into one line on stderr and an exit code, in one place
(``tufrepo.cli``). Exit codes follow DESIGN.md §3: 1 when a command ran and found a
problem, 2 for bad usage or bad input.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every tufrepo error. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def diagnostics(self) -> str:
        """One line for a person: what went wrong (and, where known, what to do)."""
        return str(self)


class InputError(Error):
    """Bad input from the user: a path, a name, a file, an option value."""

    exit_code = 2


class MetadataError(Error):
    """Metadata that is missing, malformed, or does not verify."""

    exit_code = 1


class CorruptMetadataError(MetadataError):
    """A metadata file that cannot be parsed at all (bad input on disk)."""

    exit_code = 2


class SignerError(Error):
    """A signer cannot be loaded or cannot sign (wrong password, missing token...)."""

    exit_code = 2


class WrongPasswordError(SignerError):
    """A password (or PIN) that does not unlock the key; a prompt may ask again."""


class GitError(Error):
    """A git operation failed (fetch, push rejected, missing branch...)."""

    exit_code = 1


class StaleBranchError(GitError):
    """A push was refused because the remote's branch moved on (fetch and redo)."""


class NotFoundError(InputError):
    """Something the user named does not exist (a role, a key id, a file)."""
