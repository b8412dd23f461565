"""KMS online keys (``awskms:``, ``gcpkms:``, ``azurekms:``) through securesystemslib's signers.

AWS is exercised end to end against a local stand-in at boto3's HTTP boundary
(tests/kms_standin.py): ``key show``, ``delegate --online-key`` and ``online-sign``. GCP and
Azure cannot be reached here: their one-line errors (no credentials, missing extra) are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from tests.git_helpers import World
from tests.kms_standin import aws_kms_standin
from tufrepo.roles import ONLINE_URI

pytestmark = pytest.mark.git

NO_CLOUD = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "NO_GCE_CHECK": "True",
    "CLOUDSDK_CONFIG": "/nonexistent/gcloud",
}
CLOUD_VARS = ("AWS_", "GOOGLE_", "AZURE_", "CLOUDSDK_")


def tufrepo(
    *args: str, env: dict[str, str], path: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLOUD_VARS)}
    if path is not None:
        base["PYTHONPATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "tufrepo", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_key_show_reads_the_aws_kms_public_key() -> None:
    with aws_kms_standin() as kms:
        kms.create_key("online-1")
        result = tufrepo("key", "show", "awskms:online-1", "--online", env=kms.env())
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert (shown["keytype"], shown["scheme"]) == ("ecdsa", "ecdsa-sha2-nistp256")
        assert shown[ONLINE_URI] == "awskms:online-1"
        assert kms.requests == ["GetPublicKey"]

        missing = tufrepo("key", "show", "awskms:nope", "--online", env=kms.env())
        assert missing.returncode == 2
        expected = (
            "Error: awskms: cannot use awskms:nope: An error occurred (NotFoundException) "
            "when calling the GetPublicKey operation: key not found"
        )
        assert missing.stderr.splitlines() == [expected]


def test_delegate_and_online_sign_with_an_aws_kms_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with aws_kms_standin() as kms:
        for name, value in kms.env().items():
            monkeypatch.setenv(name, value)
        kms.create_key("online-1")
        world = World(tmp_path)
        world.tufrepo(
            "alice", "delegate", "sign/init", "--online-key", "awskms:online-1", user="@alice"
        )
        world.merge("init")
        ci = world.ci()
        assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
        assert kms.requests.count("Sign") == 2  # snapshot and timestamp
        world.tufrepo("ci", "verify")

        root = Metadata.from_file(str(ci / "metadata" / "root.json")).signed
        (keyid,) = root.roles["timestamp"].keyids
        assert root.keys[keyid].unrecognized_fields[ONLINE_URI] == "awskms:online-1"
        timestamp = Metadata.from_file(str(ci / "metadata" / "timestamp.json"))
        root.verify_delegate("timestamp", timestamp.signed_bytes, timestamp.signatures)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("awskms:online-1", "Error: awskms: no usable credentials for awskms:online-1: "),
        (
            "gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "Error: gcpkms: no usable credentials for gcpkms:projects/p/",
        ),
    ],
)
def test_no_credentials_is_one_line(uri: str, message: str) -> None:
    result = tufrepo("key", "show", uri, "--online", env=NO_CLOUD)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


@pytest.mark.parametrize(
    ("uri", "module", "package"),
    [
        ("awskms:online-1", "boto3", "boto3"),
        ("gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
         "google.cloud.kms", "google-cloud-kms"),
        ("azurekms://vault.vault.azure.net/keys/online", "azure.identity", "azure-identity"),
    ],
)  # fmt: skip
def test_missing_extra_is_named(tmp_path: Path, uri: str, module: str, package: str) -> None:
    """Without the SDK (an installation without ``tufrepo[kms]``): one line naming the extra."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r} or name.startswith({module + '.'!r}):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    result = tufrepo("key", "show", uri, "--online", env=NO_CLOUD, path=str(tmp_path))
    assert result.returncode == 2, result.stderr
    scheme = uri.split(":", 1)[0]
    assert result.stderr.splitlines() == [
        f"Error: {scheme}: keys need {package}: install it with pip install 'tufrepo[kms]'"
    ]
