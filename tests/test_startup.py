"""Start-up: commands import only what they use (no wall-clock timing: the set of modules).

``tufrepo --help`` imports no TUF or signer code at all; ``status`` on a small repository
reads metadata (python-tuf, securesystemslib) but none of the signer backends' heavy
libraries: Sigstore, gRPC and the TPM stack, the cloud KMS clients, PKCS#11 clients.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.git_helpers import World

# Run the command in a fresh interpreter, then list what it imported.
PROBE = """
import json, sys
from tufrepo.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = [
    "sigstore",
    "grpc",
    "tpm2_pytss",
    "tufrepo.hsm.client",
    "boto3",
    "botocore",
    "google.cloud.kms",
    "azure.core",
    "azure.keyvault",
    "pkcs11",
    "asn1crypto",
    "rich",
    "tuf.ngclient",
]


def imported(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(f"{n}.") for m in modules)]


def test_help_imports_no_tuf_no_git_no_signers() -> None:
    modules = imported("--help")
    assert loaded(modules, [*HEAVY, "tuf", "securesystemslib", "git", "cryptography"]) == []


@pytest.mark.git
def test_status_imports_no_signer_backends(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.init()
    modules = imported("status", "--repo", str(world.clone("bob")))
    assert "tuf.api.metadata" in modules  # it did read metadata
    assert loaded(modules, HEAVY) == []


KMS_PROBE = """
import importlib.util, sys
from tufrepo import lazy_signers
lazy_signers.install()
import securesystemslib.signer as s
from securesystemslib.signer import _aws_signer, _azure_signer, _gcp_signer
errors = lambda: [_gcp_signer.GCP_IMPORT_ERROR, _aws_signer.AWS_IMPORT_ERROR,
                  _azure_signer.AZURE_IMPORT_ERROR]
before = errors()
lazy_signers.load_backend("gcpkms")
print([e is None for e in before], [e is None for e in errors()],
      s.SIGNER_FOR_URI_SCHEME["gcpkms"].__module__)
"""


def test_kms_signers_load_their_libraries_when_used() -> None:
    """The withheld client libraries come back for a KMS signer URI (when installed)."""
    for lib in ("google.cloud.kms", "boto3", "azure.keyvault.keys"):
        pytest.importorskip(lib)
    proc = subprocess.run(
        [sys.executable, "-c", KMS_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.strip() == (
        "[False, False, False] [True, True, True] securesystemslib.signer._gcp_signer"
    ), proc.stderr
