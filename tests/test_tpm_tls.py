"""The TPM HSM over TLS: a self-signed certificate for 127.0.0.1, trusted by the client."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tpm_helpers import Swtpm, swtpm_available, swtpm_running

from tufrepo.errors import InputError, SignerError
from tufrepo.hsm import HsmClient, start_service
from tufrepo.signers import PASSWORD_ENV, import_public_key, load_signer
from tufrepo.signers.filekey import generate_filekey, load_filekey

pytestmark = [
    pytest.mark.tpm,
    pytest.mark.skipif(not swtpm_available(), reason="needs swtpm, tpm2-pytss and grpcio"),
]


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    with swtpm_running(tmp_path / "swtpm") as tpm:
        yield tpm


def test_tls(swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path, "hsm")
    other_ca, _ = _self_signed(tmp_path, "other")
    running = start_service(
        tcti=swtpm.tcti, state_dir=tmp_path / "state", port=0, tls_cert=cert, tls_key=key
    )
    address = f"127.0.0.1:{running.port}"
    try:
        generate_filekey(tmp_path / "ci.key", "pw")
        file_key = load_filekey(tmp_path / "ci.key", "pw")
        with HsmClient(address, ca=cert) as client:
            info = client.create_key([file_key.public_key()], 1)
        digest = hashlib.sha256(b"payload").digest()
        with HsmClient(address, timeout=5) as plain, pytest.raises(SignerError):
            plain.sign_digest(info.key_id, digest, [file_key])  # plaintext to a TLS port
        with HsmClient(address, timeout=5, ca=other_ca) as wrong, pytest.raises(SignerError):
            wrong.sign_digest(info.key_id, digest, [file_key])  # an untrusted certificate

        monkeypatch.setenv(PASSWORD_ENV, "pw")
        uri = f"tpmhsm://{address}/{info.key_id}?filekey={tmp_path / 'ci.key'}&ca={cert}"
        public = import_public_key(uri)
        signature = load_signer(uri, public).sign(b"payload")
        public.verify_signature(signature, b"payload")

        base = [sys.executable, "-m", "tufrepo", "hsm", "info", "--server", address, info.key_id]
        out = subprocess.run(
            [*base, "--ca", str(cert)], capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr
        assert info.key_id in out.stdout
    finally:
        running.stop()


def test_tls_needs_key_and_certificate(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path, "hsm")
    with pytest.raises(InputError, match="both"):
        start_service(tcti="swtpm:host=127.0.0.1,port=1", state_dir=tmp_path / "s", tls_cert=cert)
    with pytest.raises(InputError, match="CA certificates"):
        HsmClient("127.0.0.1:1", ca=tmp_path / "missing.pem")
