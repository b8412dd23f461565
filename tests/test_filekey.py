"""filekey: encrypted PKCS#8 key files, their openssl interoperability, and the signer."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.signer import SSlibKey
from tuf.api.metadata import Metadata, Root, Targets

from tufrepo.errors import InputError, SignerError
from tufrepo.signers import _der, import_public_key, load_signer
from tufrepo.signers.filekey import (
    OID_AES256_CBC,
    OID_PBES2,
    OID_SCRYPT,
    FileKeySigner,
    encode_filekey,
    generate_filekey,
    load_filekey,
    public_key_path,
)

PASSWORD = "correct horse battery staple"


def _openssl(*args: str, password: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "FK_TEST_PW": password}
    return subprocess.run(
        ["openssl", *args], input=stdin, env=env, capture_output=True, timeout=60, check=False
    )


def _pem_of(b64: str) -> bytes:
    label = "ENCRYPTED PRIVATE KEY"
    return f"-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n".encode()


def _pem_der(pem: bytes) -> bytes:
    lines = pem.decode().strip().splitlines()
    return base64.b64decode("".join(lines[1:-1]))


def _pub_raw(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


@pytest.fixture
def keyfile(tmp_path: Path) -> tuple[Path, SSlibKey]:
    path = tmp_path / "alice.key"
    return path, generate_filekey(path, PASSWORD)


# --- the file format ------------------------------------------------------------------


def test_generate_writes_private_0600_and_public_sidecar(keyfile: tuple[Path, SSlibKey]) -> None:
    path, key = keyfile
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    pub = public_key_path(path)
    assert pub.name == "alice.key.pub"
    assert key.keytype == "ecdsa"
    assert key.scheme == "ecdsa-sha2-nistp256"
    assert import_public_key(f"filekey:{path}") == key
    # no temporary files are left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["alice.key", "alice.key.pub"]


def test_der_structure_is_pbes2_scrypt_aes256cbc(keyfile: tuple[Path, SSlibKey]) -> None:
    path, _ = keyfile
    info = _der.read_single(_pem_der(path.read_bytes())).children()
    alg = info[0].children()
    assert alg[0].as_oid() == OID_PBES2
    kdf, cipher = alg[1].children()
    kdf_oid, params = kdf.children()
    assert kdf_oid.as_oid() == OID_SCRYPT
    salt, n, r, p, key_len = params.children()
    assert (len(salt.as_bytes()), n.as_int(), r.as_int(), p.as_int(), key_len.as_int()) == (
        16,
        2**14,
        8,
        1,
        32,
    )
    cipher_oid, iv = cipher.children()
    assert cipher_oid.as_oid() == OID_AES256_CBC
    assert len(iv.as_bytes()) == 16
    assert len(info[1].as_bytes()) % 16 == 0


def test_two_files_of_the_same_key_differ_in_salt_and_iv() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    assert encode_filekey(private, PASSWORD) != encode_filekey(private, PASSWORD)


@pytest.mark.parametrize("password", [PASSWORD, "pässwörd €"])
def test_openssl_reads_what_we_write(tmp_path: Path, password: str) -> None:
    path = tmp_path / "k.pem"
    key = generate_filekey(path, password)
    out = _openssl("pkcs8", "-in", str(path), "-passin", "env:FK_TEST_PW", password=password)
    assert out.returncode == 0, out.stderr.decode()
    private = serialization.load_pem_private_key(out.stdout, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert SSlibKey.from_crypto(private.public_key()).keyval == key.keyval
    wrong = _openssl("pkcs8", "-in", str(path), "-passin", "env:FK_TEST_PW", password="nope")
    assert wrong.returncode != 0


def test_cryptography_reads_what_we_write(keyfile: tuple[Path, SSlibKey]) -> None:
    path, key = keyfile
    private = serialization.load_pem_private_key(path.read_bytes(), PASSWORD.encode())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert SSlibKey.from_crypto(private.public_key()).keyval == key.keyval


@pytest.mark.parametrize("kdf", [["-scrypt"], ["-v2prf", "hmacWithSHA256"]])
def test_we_read_what_openssl_writes(tmp_path: Path, kdf: list[str]) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    plain = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    out = _openssl(
        "pkcs8", "-topk8", *kdf, "-v2", "aes-256-cbc", "-passout", "env:FK_TEST_PW",
        password=PASSWORD, stdin=plain,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    path = tmp_path / "openssl.key"
    path.write_bytes(out.stdout)
    loaded = load_filekey(path, PASSWORD)
    assert _pub_raw(loaded.public_key()) == _pub_raw(private.public_key())


# --- bad input --------------------------------------------------------------------------


def test_wrong_password_is_a_signer_error(keyfile: tuple[Path, SSlibKey]) -> None:
    path, _ = keyfile
    with pytest.raises(SignerError, match=f"^wrong password for key file {re.escape(str(path))}$"):
        load_filekey(path, "not the password")


def _encrypted_ed25519() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    )


def _unencrypted_p256() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _wrong_oid() -> bytes:
    der = _pem_der(encode_filekey(ec.generate_private_key(ec.SECP256R1()), PASSWORD))
    pbes2 = _der.oid(OID_PBES2)
    other = _der.oid("1.2.840.113549.1.5.3")  # pbeWithMD5AndDES-CBC, same encoded length
    assert len(pbes2) == len(other)
    der = der.replace(pbes2, other, 1)
    b64 = base64.b64encode(der).decode()
    return _pem_of(b64)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty", lambda: b"", "not an encrypted PKCS#8 key file"),
        ("garbage", lambda: b"\x00\xffnot pem", "not an encrypted PKCS#8 key file"),
        ("unencrypted", _unencrypted_p256, "not an encrypted PKCS#8 key file"),
        (
            "bad-base64",
            lambda: _pem_of("@@@@"),
            "bad base64",
        ),
        (
            "truncated",
            lambda: _pem_of("MIIB"),
            "truncated DER",
        ),
        ("not-pbes2", _wrong_oid, "not encrypted with PBES2"),
        ("ed25519", _encrypted_ed25519, "does not hold an ECDSA P-256 key"),
    ],
)
def test_malformed_key_file_is_an_input_error_naming_it(
    tmp_path: Path, name: str, content: object, message: str
) -> None:
    path = tmp_path / f"{name}.key"
    assert callable(content)
    path.write_bytes(content())
    with pytest.raises(InputError, match=message) as e:
        load_filekey(path, PASSWORD)
    assert str(path) in str(e.value)


def test_missing_key_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read key file .*nope\.key"):
        load_filekey(tmp_path / "nope.key", PASSWORD)


@pytest.mark.parametrize("existing", ["alice.key", "alice.key.pub"])
def test_generate_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    with pytest.raises(InputError, match="exists: refusing to overwrite"):
        generate_filekey(tmp_path / "alice.key", PASSWORD)
    assert [p.name for p in tmp_path.iterdir()] == [existing]
    assert (tmp_path / existing).read_text() == "precious"


def test_generate_refuses_empty_password_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty password"):
        generate_filekey(tmp_path / "k", "")
    with pytest.raises(InputError, match="does not exist"):
        generate_filekey(tmp_path / "no" / "k", PASSWORD)
    assert list(tmp_path.iterdir()) == []


# --- the signer ---------------------------------------------------------------------------


def _signed_targets(uri: str, key: SSlibKey) -> Metadata[Targets]:
    md = Metadata(Targets(expires=datetime(2030, 1, 1, tzinfo=UTC)))
    md.sign(load_signer(uri, key))
    return md


def test_signer_signs_metadata_that_python_tuf_verifies(
    keyfile: tuple[Path, SSlibKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, key = keyfile
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", PASSWORD)
    uri = f"filekey:{path}"
    # as in tuf-on-ci metadata: a custom field on the key (the key material is the same)
    key = SSlibKey(
        key.keyid, key.keytype, key.scheme, key.keyval, {"x-tuf-on-ci-keyowner": "@alice"}
    )
    md = _signed_targets(uri, key)
    root = Root(expires=datetime(2030, 1, 1, tzinfo=UTC))
    root.add_key(key, "targets")
    root.verify_delegate("targets", md.signed_bytes, md.signatures)
    assert isinstance(load_signer(uri, key), FileKeySigner)


def test_signer_wrong_password(
    keyfile: tuple[Path, SSlibKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, key = keyfile
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", "wrong")
    with pytest.raises(SignerError, match="wrong password for key file"):
        load_signer(f"filekey:{path}", key)


def test_signer_refuses_a_key_file_of_another_key(
    tmp_path: Path, keyfile: tuple[Path, SSlibKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = keyfile
    other = tmp_path / "bob.key"
    generate_filekey(other, PASSWORD)
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", PASSWORD)
    with pytest.raises(SignerError, match=f"does not hold the key {key.keyid}"):
        load_signer(f"filekey:{other}", key)


def test_signer_without_password_and_terminal(
    keyfile: tuple[Path, SSlibKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, key = keyfile
    monkeypatch.delenv("TUFREPO_KEY_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(SignerError, match="TUFREPO_KEY_PASSWORD"):
        load_signer(f"filekey:{path}", key)


def test_import_without_sidecar_decrypts(
    keyfile: tuple[Path, SSlibKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, key = keyfile
    public_key_path(path).unlink()
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", PASSWORD)
    assert import_public_key(f"filekey:{path}") == key
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", "wrong")
    with pytest.raises(SignerError, match="wrong password"):
        import_public_key(f"filekey:{path}")


def test_import_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        import_public_key(f"filekey:{tmp_path / 'none.key'}")


# --- the DER encoder ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dotted", [OID_PBES2, OID_SCRYPT, OID_AES256_CBC, "2.999.3", "1.2.840.10045.3.1.7"]
)
def test_oid_round_trip(dotted: str) -> None:
    assert _der.read_single(_der.oid(dotted)).as_oid() == dotted


def test_oid_known_encoding() -> None:
    # 1.2.840.113549.1.5.13 (PBES2), as every PKCS#8 file carries it
    assert _der.oid(OID_PBES2).hex() == "06092a864886f70d01050d"


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 2**14, 2**64])
def test_integer_round_trip(value: int) -> None:
    encoded = _der.integer(value)
    assert _der.read_single(encoded).as_int() == value
    assert encoded[2] & 0x80 == 0  # non-negative in two's complement


@pytest.mark.parametrize("size", [0, 127, 128, 255, 256, 70000])
def test_lengths_round_trip(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    assert _der.read_single(_der.octet_string(data[:size])).as_bytes() == data[:size]
