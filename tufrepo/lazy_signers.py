"""Start-up time: signer backends' client libraries load only for a signer that uses them.

``securesystemslib.signer`` (imported by ``tuf.api.metadata``, so by every command that reads
metadata) imports the Google, AWS and Azure KMS client libraries, python-pkcs11 and the
Tillitis TKey library (keylet, with pyserial) when they are installed - about a second for
the KMS clients, more than the rest of a small command, ~40 ms for PKCS#11, ~6 ms for the
TKey. :func:`install` (called once by the command line before anything
imports securesystemslib) makes those backend modules load without their client libraries,
as if they were not installed; :func:`load_backend` re-runs them with the libraries when a
``gcpkms:``, ``awskms:``, ``azurekms:``, ``hsm:`` or ``tkey:`` signer is used, so those
signers work as before. Nothing else is affected: the libraries are withheld only while
those backend modules run, never from other code (object-store publishing, tufrepo's own
PKCS#11 checks).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # importlib.abc imports importlib.resources, tempfile...: start-up time
    from collections.abc import Sequence
    from importlib.abc import Loader
    from types import ModuleType

BACKENDS = {
    "gcpkms": "securesystemslib.signer._gcp_signer",
    "awskms": "securesystemslib.signer._aws_signer",
    "azurekms": "securesystemslib.signer._azure_signer",
    "hsm": "securesystemslib.signer._hsm_signer",
    "tkey": "securesystemslib.signer._tkey_signer",
}
CLIENT_LIBRARIES = (
    "google.cloud.kms",
    "google.cloud.kms_v1",
    "boto3",
    "botocore",
    "azure.core",
    "azure.identity",
    "azure.keyvault",
    "pkcs11",
    "asn1crypto",
    "keylet",
)


class _State:
    withholding = False  # a backend module is running without its client libraries
    loaded = False  # load_backend() ran: backends run with their libraries


class _BackendLoader:
    """Runs a signer backend module without its client libraries until they are wanted."""

    def __init__(self, real: Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        _State.withholding = not _State.loaded
        try:
            self.real.exec_module(module)
        finally:
            _State.withholding = False


class _Finder:
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if _State.withholding and any(
            fullname == lib or fullname.startswith(f"{lib}.") for lib in CLIENT_LIBRARIES
        ):
            raise ModuleNotFoundError(f"{fullname} loads only for its signers", name=fullname)
        if fullname not in BACKENDS.values():
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = cast("Loader", _BackendLoader(spec.loader))
        return spec


_FINDER = _Finder()


def install() -> None:
    """Withhold the client libraries from securesystemslib's signer backends (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def load_backend(scheme: str) -> None:
    """Before using a signer of ``scheme``: re-run the signer backends with their libraries
    (the signer classes securesystemslib registered see the new module state)."""
    if scheme not in BACKENDS or _State.loaded:
        return
    _State.loaded = True
    for name in BACKENDS.values():
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module.__spec__, "loader", None),
                                             _BackendLoader):  # fmt: skip
            importlib.reload(module)
