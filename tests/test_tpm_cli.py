"""`tufrepo hsm …` and the `tpmhsm:` signer, end to end: a real `hsm serve` process in front
of swtpm, file keys made by `hsm keygen`, TUF metadata signed through the TPM and verified
by python-tuf with a plain ecdsa-sha2-nistp256 key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tpm_helpers import Swtpm, free_port, swtpm_available, swtpm_running, wait_for_port
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Targets

from tufrepo.errors import InputError, SignerError
from tufrepo.signers import PASSWORD_ENV, import_public_key, load_signer

pytestmark = [
    pytest.mark.tpm,
    pytest.mark.skipif(not swtpm_available(), reason="needs swtpm, tpm2-pytss and grpcio"),
]

PASSWORD = "correct horse"


def tufrepo(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    if password is not None:
        env[PASSWORD_ENV] = password
    return subprocess.run(
        [sys.executable, "-m", "tufrepo", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@dataclass
class Server:
    address: str
    proc: subprocess.Popen[bytes]
    stderr: Path


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    with swtpm_running(tmp_path_factory.mktemp("swtpm")) as tpm:
        yield tpm


@pytest.fixture(scope="module")
def server(swtpm: Swtpm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hsm")
    port = free_port()
    log = tmp / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tufrepo", "hsm", "serve", "--tcti", swtpm.tcti),
                *("--state", str(tmp / "state"), "--port", str(port)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for_port(port, proc)
        yield Server(address=f"127.0.0.1:{port}", proc=proc, stderr=log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, log.read_text()


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    for name in ("ci", "alice", "bob", "carol"):
        r = tufrepo("hsm", "keygen", str(d / f"{name}.key"))
        assert r.returncode == 0, r.stderr
    return d


def create_key(server: Server, keydir: Path, names: list[str], threshold: int) -> str:
    args = ["hsm", "create-key", "--server", server.address, "--json"]
    for n in names:
        args += ["--signer", str(keydir / f"{n}.key.pub")]
    r = tufrepo(*args, "--threshold", str(threshold))
    assert r.returncode == 0, r.stderr
    key_id: str = json.loads(r.stdout)["key_id"]
    return key_id


def uri(server: Server, key_id: str, keydir: Path, *names: str) -> str:
    query = "&".join(f"filekey={keydir / n}.key" for n in names)
    return f"tpmhsm://{server.address}/{key_id}?{query}"


def _targets() -> Metadata[Targets]:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    return Metadata(Targets(expires=expires))


def _root_trusting(key: object, threshold: int = 1) -> Root:
    root = Root()
    root.add_key(key, "targets")  # type: ignore[arg-type]
    root.roles["targets"].threshold = threshold
    return root


@pytest.mark.parametrize(
    ("names", "threshold", "using"),
    [(["ci"], 1, ["ci"]), (["alice", "bob", "carol"], 2, ["carol", "alice"])],
)
def test_tuf_metadata_signed_through_the_hsm_verifies(  # noqa: PLR0917 - fixtures + cases
    server: Server,
    keydir: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: list[str],
    threshold: int,
    using: list[str],
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    key_id = create_key(server, keydir, names, threshold)
    signer_uri = uri(server, key_id, keydir, *using)
    key = import_public_key(signer_uri)
    assert (key.keytype, key.scheme) == ("ecdsa", "ecdsa-sha2-nistp256")
    md = _targets()
    md.sign(load_signer(signer_uri, key))
    # python-tuf, with a plain SSlibKey, after a JSON round trip
    reloaded = Metadata.from_bytes(md.to_bytes())
    _root_trusting(key).verify_delegate("targets", reloaded.signed_bytes, reloaded.signatures)
    reloaded.signed.version += 1  # and the signature covers the payload
    with pytest.raises(UnsignedMetadataError):
        _root_trusting(key).verify_delegate("targets", reloaded.signed_bytes, reloaded.signatures)


def test_add_trusted_and_info_cli(
    server: Server, keydir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = create_key(server, keydir, ["alice"], 1)
    r = tufrepo(
        "hsm", "add-trusted", "--server", server.address, key_id,
        str(keydir / "bob.key.pub"), "--filekey", str(keydir / "alice.key"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(tufrepo("hsm", "info", "--server", server.address, key_id, "--json").stdout)
    assert [p["threshold"] for p in info["policies"]] == [1, 1]
    assert len(info["policies"][1]["signers"]) == 2
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    signer_uri = uri(server, key_id, keydir, "bob")
    key = import_public_key(signer_uri)
    md = _targets()
    md.sign(load_signer(signer_uri, key))
    _root_trusting(key).verify_delegate("targets", md.signed_bytes, md.signatures)
    # bob (added later) cannot approve further signers: only the initial quorum can
    r = tufrepo(
        "hsm", "add-trusted", "--server", server.address, key_id,
        str(keydir / "carol.key.pub"), "--filekey", str(keydir / "bob.key"),
    )  # fmt: skip
    assert r.returncode != 0
    assert "cannot meet" in r.stderr


def test_import_cli(server: Server, keydir: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "release.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    import re

    pin = re.search(r"storage key sha256 ([0-9a-f]{64})", server.stderr.read_text())
    assert pin is not None
    args = ["hsm", "import", "--server", server.address, str(pem), "--json"]
    args += ["--signer", str(keydir / "ci.key.pub")]
    r = tufrepo(*args, "--storage-key-sha256", "0" * 64)
    assert r.returncode != 0
    assert "not the pinned one" in r.stderr
    r = tufrepo(*args, "--storage-key-sha256", pin.group(1))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    expected = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert out["public_key"] == expected.decode()


def test_registry_cli(server: Server, keydir: Path) -> None:
    def reg(*args: str) -> subprocess.CompletedProcess[str]:
        return tufrepo("hsm", "registry", *args[:1], "--server", server.address, *args[1:])

    r = reg("vouch", "--filekey", str(keydir / "alice.key"), str(keydir / "bob.key.pub"))
    assert r.returncode == 0, r.stderr
    r = reg("vouch", "--filekey", str(keydir / "bob.key"), str(keydir / "carol.key.pub"))
    assert r.returncode == 0, r.stderr
    r = reg("verify", str(keydir / "carol.key.pub"), "--trust", str(keydir / "alice.key.pub"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("<-") == 2
    r = reg("verify", str(keydir / "alice.key.pub"), "--trust", str(keydir / "carol.key.pub"))
    assert r.returncode != 0
    assert "no valid vouching chain" in r.stderr
    assert "vouches for" in reg("list").stdout


# --- bad input ------------------------------------------------------------------------------


def _one_line_error(r: subprocess.CompletedProcess[str], text: str) -> None:
    assert r.returncode != 0
    assert text in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_bad_inputs(server: Server, keydir: Path) -> None:
    _one_line_error(tufrepo("hsm", "info", "--server", server.address, "0" * 32), "unknown key id")
    _one_line_error(tufrepo("hsm", "info", "--server", "127.0.0.1:1", "0" * 32), "unreachable")
    _one_line_error(
        tufrepo(
            "hsm", "create-key", "--server", server.address,
            "--signer", str(keydir / "ci.key.pub"), "--threshold", "2",
        ),
        "threshold",
    )  # fmt: skip
    _one_line_error(
        tufrepo(
            "hsm", "add-trusted", "--server", server.address, "0" * 32,
            str(keydir / "bob.key.pub"), "--filekey", str(keydir / "alice.key"),
        ),
        "unknown key id",
    )  # fmt: skip
    _one_line_error(
        tufrepo(
            "hsm", "registry", "vouch", "--server", server.address,
            "--filekey", str(keydir / "alice.key"), str(keydir / "bob.key.pub"),
            password="wrong",
        ),
        "wrong password",
    )  # fmt: skip
    _one_line_error(tufrepo("hsm", "keygen", str(keydir / "ci.key")), "exists")
    dead_tpm = ("hsm", "serve", "--tcti", "swtpm:host=127.0.0.1,port=1", "--port", "0")
    _one_line_error(tufrepo(*dead_tpm, "--state", str(keydir / "s")), "cannot reach the TPM")
    not_a_dir = keydir / "ci.key.pub"
    _one_line_error(
        tufrepo(*dead_tpm, "--state", str(not_a_dir / "s")), "cannot use state directory"
    )


def test_signer_bad_inputs(server: Server, keydir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_id = create_key(server, keydir, ["ci"], 1)
    good = uri(server, key_id, keydir, "ci")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    key = import_public_key(good)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(SignerError, match="wrong password"):
        load_signer(good, key)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with pytest.raises(SignerError, match="unreachable"):
        load_signer(good.replace(server.address, "127.0.0.1:1"), key).sign(b"x")
    with pytest.raises(SignerError, match="unknown key id"):
        load_signer(good.replace(key_id, "f" * 32), key).sign(b"x")
    for bad in (
        f"tpmhsm://{server.address}/{key_id}",  # no file key
        f"tpmhsm://{server.address}/?filekey=x",  # no key id
        f"tpmhsm://127.0.0.1/{key_id}?filekey=x",  # no port
        f"{good}&color=blue",
    ):
        with pytest.raises(InputError):
            load_signer(bad, key)
    # the alice file key cannot authorise the ci key: the client says so before the TPM does
    with pytest.raises(SignerError, match="cannot meet"):
        load_signer(uri(server, key_id, keydir, "alice"), key).sign(b"x")
    # a signer URI for another key than the metadata's
    other = create_key(server, keydir, ["ci"], 1)
    with pytest.raises(SignerError, match="not the expected public key"):
        load_signer(uri(server, other, keydir, "ci"), key).sign(b"x")


def test_key_show_reads_the_tpm_key(server: Server, keydir: Path) -> None:
    key_id = create_key(server, keydir, ["ci"], 1)
    r = tufrepo("key", "show", f"tpmhsm://{server.address}/{key_id}", password=None)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["scheme"] == "ecdsa-sha2-nistp256"
    info = json.loads(tufrepo("hsm", "info", "--server", server.address, key_id, "--json").stdout)
    assert shown["keyval"]["public"] == info["public_key"]
