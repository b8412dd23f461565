"""Start-up: commands import only what they use (no wall-clock timing: the set of modules).

``tufrepo --help`` imports no TUF or signer code at all; ``status`` on a small repository
reads metadata (python-tuf, securesystemslib) but none of the signer backends' heavy
libraries: Sigstore, gRPC and the TPM stack, the cloud KMS clients, PKCS#11 clients, the
TKey. The commands CI runs for every release (``update-targets``, ``status``,
``online-sign``, ``publish``) import no GitPython (plain git processes), no multiprocessing,
and but for ``publish`` (which verifies the change with python-tuf's client) no HTTP client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.git_helpers import GIT_ENV, World, git

# Run the command in a fresh interpreter, then list what it imported (and its exit status).
PROBE = """
import json, sys
from tufrepo.cli import main
try:
    code = main(sys.argv[1:], standalone_mode=False) or 0
except SystemExit as e:
    code = e.code
print(json.dumps([code, sorted(sys.modules)]))
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
    "keylet",
    "serial",
]
# what none of the commands CI runs on every release needs
NOT_PER_RELEASE = [
    "git",  # GitPython: git commands and objects are plain git processes
    "multiprocessing",  # hashing on every core: verify only
    "importlib.resources",  # workflow templates
    "tomllib",  # the user's config file (CI has none)
    "tufrepo.workflows",
]


def imported(*args: str, cwd: Path | None = None, code: int = 0) -> set[str]:
    """The modules ``tufrepo ARGS`` imported (run in ``cwd``; it must exit with ``code``)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **GIT_ENV},  # no user's config file (conftest)
    )
    status, modules = json.loads(proc.stdout.splitlines()[-1])
    assert status == code, proc.stderr
    return set(modules)


def loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(f"{n}.") for m in modules)]


def test_help_imports_no_tuf_no_git_no_signers() -> None:
    modules = imported("--help")
    assert loaded(modules, [*HEAVY, *NOT_PER_RELEASE, "tuf", "securesystemslib", "cryptography",
                            "tufrepo.git"]) == []  # fmt: skip


@pytest.mark.git
def test_status_imports_no_signer_backends(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.init()
    modules = imported("status", "--repo", str(world.clone("bob")), code=1)  # main: no event
    assert "tuf.api.metadata" in modules  # it did read metadata
    assert loaded(modules, HEAVY) == []


@pytest.mark.git
def test_release_commands_import_no_gitpython_and_no_http_client(tmp_path: Path) -> None:
    """update-targets and status on the event branch, online-sign and publish (into the
    existing site) on main: the commands of every release, each in its own process."""
    world = World(tmp_path)
    world.init()
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"release")
    world.tufrepo("appci", "event", "open", "rel", "--target", f"a.bin={artifact}",
                  "--remote", str(world.remote))  # fmt: skip
    ci = world.ci()
    git(ci, "checkout", "--quiet", "-B", "sign/rel", "origin/sign/rel")
    ran = {
        "update-targets": imported("update-targets", cwd=ci),
        "status": imported("status", cwd=ci, code=1),  # not signed yet
    }
    world.tufrepo("alice", "sign", "sign/rel", user="@alice")
    world.merge("rel")
    ci = world.ci()
    ran["online-sign"] = imported("online-sign", cwd=ci)
    world.subprocess(ci, "publish", str(tmp_path / "site"))  # the site's first publish
    git(ci, "commit", "--quiet", "--allow-empty", "-m", "next")
    ran["publish"] = imported("publish", str(tmp_path / "site"), cwd=ci)
    for command, modules in ran.items():
        assert "tuf.api.metadata" in modules, command  # it did read metadata
        # publish: python-tuf's client verifies the change (urllib3 reads importlib.metadata)
        client = ["tuf.ngclient", "importlib.resources"] if command == "publish" else []
        assert loaded(modules, [*HEAVY, *NOT_PER_RELEASE]) == client, command
    assert "urllib3" not in ran["online-sign"]


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
