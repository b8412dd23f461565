"""Signer URI schemes beyond securesystemslib's, registered in one explicit place.

Call :func:`register` once (the CLI does) before loading signers or verifying keys.
Optional backends are imported lazily by their own modules.
"""

from __future__ import annotations

_registered = False


def register() -> None:
    """Register tufrepo's signer URI schemes and key types with securesystemslib."""
    global _registered  # noqa: PLW0603 - registration happens exactly once per process
    if _registered:
        return
    _registered = True
    # Each backend adds its registration line below (keep this the only place).
