"""``filekey:PATH`` — an ECDSA P-256 key in a password-encrypted PKCS#8 file.

The file is a PEM ``ENCRYPTED PRIVATE KEY``: PKCS#8 EncryptedPrivateKeyInfo with PBES2
(RFC 8018), key derivation scrypt (RFC 7914; 16-byte salt, N=2^14, r=8, p=1, 32-byte key)
and AES-256-CBC with a random IV. It is the form ``openssl pkcs8 -topk8 -scrypt -v2
aes-256-cbc`` writes, and both OpenSSL and the ``cryptography`` library read it.
``cryptography`` cannot *write* it, so this module encodes the DER itself (``_der``) and
encrypts with scrypt + AES-256-CBC (PKCS#7 padding). PBES2 has no MAC: a wrong password
shows as a padding or structure failure while decrypting, and a signer also checks that
the decrypted key matches the public key it is loaded for.

Next to ``PATH`` lives ``PATH.pub``, the PEM public key, so the public key (and keyid) can
be read without the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from securesystemslib.signer import (
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Key,
    SecretsHandler,
    Signature,
    Signer,
    SSlibKey,
)

from tufrepo.errors import InputError, SignerError, WrongPasswordError
from tufrepo.files import atomic_write
from tufrepo.signers import _der, add_importer, password_handler, with_attempts

SCHEME = "filekey"
KEY_TYPE = "ecdsa"
SIGNING_SCHEME = "ecdsa-sha2-nistp256"
PASSWORD_SECRET = "password"  # noqa: S105 - the name of the secret asked for, not a secret

PEM_LABEL = "ENCRYPTED PRIVATE KEY"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_READABLE_KDFS = {OID_SCRYPT, OID_PBKDF2}
_READABLE_CIPHERS = {
    "2.16.840.1.101.3.4.1.2",  # aes-128-cbc
    "2.16.840.1.101.3.4.1.22",  # aes-192-cbc
    OID_AES256_CBC,
}

SCRYPT_N = 2**14  # openssl's CLI refuses scrypt parameters that need more than 32 MB
SCRYPT_R = 8
SCRYPT_P = 1
SALT_LEN = 16
AES_KEY_LEN = 32
IV_LEN = 16


def public_key_path(path: Path) -> Path:
    """Where the public key of the key file ``path`` is kept (``PATH.pub``)."""
    return path.with_suffix(path.suffix + ".pub")


def encode_filekey(private_key: ec.EllipticCurvePrivateKey, password: str) -> bytes:
    """``private_key`` as PEM PKCS#8 EncryptedPrivateKeyInfo (PBES2, scrypt, AES-256-CBC)."""
    plain = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(SALT_LEN)
    iv = os.urandom(IV_LEN)
    key = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=AES_KEY_LEN,
        maxmem=64 * 1024 * 1024,
    )
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()

    scrypt_params = _der.sequence(
        _der.octet_string(salt),
        _der.integer(SCRYPT_N),
        _der.integer(SCRYPT_R),
        _der.integer(SCRYPT_P),
        _der.integer(AES_KEY_LEN),
    )
    pbes2_params = _der.sequence(
        _der.sequence(_der.oid(OID_SCRYPT), scrypt_params),
        _der.sequence(_der.oid(OID_AES256_CBC), _der.octet_string(iv)),
    )
    info = _der.sequence(
        _der.sequence(_der.oid(OID_PBES2), pbes2_params),
        _der.octet_string(encrypted),
    )
    return _pem(PEM_LABEL, info)


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _unpem(label: str, data: bytes) -> bytes:
    """The DER inside a PEM block with ``label``; ValueError if there is none."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise ValueError("not a PEM file") from e
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != f"-----BEGIN {label}-----":
        raise ValueError(f"not a PEM {label}")
    if lines[-1] != f"-----END {label}-----":
        raise ValueError(f"PEM {label} without its END line")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error as e:
        raise ValueError("bad base64 in PEM") from e


def _check_structure(der: bytes) -> None:
    """Check that ``der`` is an EncryptedPrivateKeyInfo we can decrypt (ValueError if not)."""
    top = _der.read_single(der).children()
    if len(top) != 2:
        raise ValueError("EncryptedPrivateKeyInfo must have 2 fields")
    algorithm = top[0].children()
    if len(algorithm) != 2 or algorithm[0].as_oid() != OID_PBES2:
        raise ValueError("not encrypted with PBES2")
    params = algorithm[1].children()
    if len(params) != 2:
        raise ValueError("malformed PBES2 parameters")
    kdf = params[0].children()
    if not kdf or kdf[0].as_oid() not in _READABLE_KDFS:
        raise ValueError("unsupported key derivation (expected scrypt or PBKDF2)")
    cipher = params[1].children()
    if len(cipher) != 2 or cipher[0].as_oid() not in _READABLE_CIPHERS:
        raise ValueError("unsupported cipher (expected AES-CBC)")
    if len(cipher[1].as_bytes()) != IV_LEN:
        raise ValueError("bad AES-CBC IV length")
    encrypted = top[1].as_bytes()
    if not encrypted or len(encrypted) % 16:
        raise ValueError("encrypted data is not whole AES blocks")


def unlock_filekey(
    path: Path, handler: Callable[[str], str], secret: str
) -> ec.EllipticCurvePrivateKey:
    """:func:`load_filekey` with the password from ``handler`` (three tries at a prompt)."""
    return with_attempts(secret, handler, lambda password: load_filekey(path, password))


def load_filekey(path: Path, password: str) -> ec.EllipticCurvePrivateKey:
    """Decrypt the ECDSA P-256 key in the key file ``path``.

    Raises:
        InputError: the file cannot be read or is not an encrypted ECDSA P-256 key file.
        SignerError: wrong password.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read key file {path}: {e.strerror}") from e
    try:
        der = _unpem(PEM_LABEL, data)
        _check_structure(der)
    except ValueError as e:
        raise InputError(f"{path} is not an encrypted PKCS#8 key file: {e}") from e
    try:
        private = serialization.load_der_private_key(der, password.encode())
    except ValueError as e:
        raise WrongPasswordError(f"wrong password for key file {path}") from e
    except (TypeError, UnsupportedAlgorithm) as e:
        raise InputError(f"{path} is not a readable key file: {e}") from e
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        private.curve, ec.SECP256R1
    ):
        raise InputError(f"{path} does not hold an ECDSA P-256 key")
    return private


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to the new file ``path`` atomically; never replace an existing file."""
    try:
        atomic_write(path, data, mode=mode, exclusive=True)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from e


def check_new_key_path(path: Path, *, with_public: bool) -> None:
    """Raise InputError unless a new key file (and ``PATH.pub``) can be created at ``path``."""
    for p in (path, public_key_path(path)) if with_public else (path,):
        if p.exists() or p.is_symlink():
            raise InputError(f"{p} exists: refusing to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"directory {path.parent} does not exist")


def generate_filekey(path: Path, password: str) -> SSlibKey:
    """Create a new ECDSA P-256 key file at ``path`` (and ``PATH.pub``); return its public key.

    Raises:
        InputError: ``path`` or ``PATH.pub`` exists, the directory is not writable,
            or the password is empty.
    """
    if not password:
        raise InputError("refusing to encrypt a key file with an empty password")
    check_new_key_path(path, with_public=True)
    pub_path = public_key_path(path)
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_new_file(path, encode_filekey(private, password), 0o600)
    try:
        write_new_file(pub_path, public_pem, 0o644)
    except InputError:
        path.unlink()
        raise
    return SSlibKey.from_crypto(private.public_key(), scheme=SIGNING_SCHEME)


def generate_file2(path: Path) -> SSlibKey:
    """Create an *unencrypted* ed25519 PEM key at ``path`` for ``file2:PATH`` (tests, CI).

    Raises:
        InputError: ``path`` exists or its directory is not writable.
    """
    check_new_key_path(path, with_public=False)
    signer = CryptoSigner.generate_ed25519()
    write_new_file(path, signer.private_bytes, 0o600)
    key: SSlibKey = signer.public_key
    return key


def path_of_uri(uri: str) -> Path:
    """The key file path of a ``filekey:PATH`` URI."""
    scheme, _, rest = uri.partition(":")
    if scheme != SCHEME or not rest:
        raise InputError(f"not a filekey URI: {uri!r} (expected filekey:PATH)")
    return Path(rest)


def _ssl_key(public: ec.EllipticCurvePublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(public, scheme=SIGNING_SCHEME)


class FileKeySigner(Signer):
    """Signs ecdsa-sha2-nistp256 with the key in a ``filekey:PATH`` file."""

    SCHEME = SCHEME

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, public_key: SSlibKey) -> None:
        self._signer = CryptoSigner(private_key, public_key)

    @property
    def public_key(self) -> SSlibKey:
        key: SSlibKey = self._signer.public_key
        return key

    def sign(self, payload: bytes) -> Signature:
        signature: Signature = self._signer.sign(payload)
        return signature

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> FileKeySigner:
        """Load ``filekey:PATH`` for ``public_key``; the password comes from ``secrets_handler``.

        Raises:
            InputError: bad URI, unreadable or malformed key file, unsupported public key.
            SignerError: no password available, wrong password, or the key file holds a
                different key than ``public_key``.
        """
        path = path_of_uri(priv_key_uri)
        if not isinstance(public_key, SSlibKey) or (public_key.keytype, public_key.scheme) != (
            KEY_TYPE,
            SIGNING_SCHEME,
        ):
            raise InputError(f"{priv_key_uri} signs only {KEY_TYPE}/{SIGNING_SCHEME} keys")
        if secrets_handler is None:
            raise SignerError(f"a password is needed to load {priv_key_uri}")
        private = unlock_filekey(path, secrets_handler, PASSWORD_SECRET)
        if _ssl_key(private.public_key()).keyval != public_key.keyval:
            raise SignerError(f"key file {path} does not hold the key {public_key.keyid}")
        return cls(private, public_key)


def _import_filekey(uri: str) -> Key:
    """The public key of ``filekey:PATH``: from ``PATH.pub``, else by decrypting ``PATH``."""
    path = path_of_uri(uri)
    pub_path = public_key_path(path)
    if pub_path.exists():
        try:
            public = serialization.load_pem_public_key(pub_path.read_bytes())
        except OSError as e:
            raise InputError(f"cannot read public key file {pub_path}: {e.strerror}") from e
        except ValueError as e:
            raise InputError(f"{pub_path} is not a PEM public key") from e
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
            public.curve, ec.SECP256R1
        ):
            raise InputError(f"{pub_path} is not an ECDSA P-256 public key")
        return _ssl_key(public)
    if not path.exists():
        raise InputError(f"key file {path} not found")
    return _ssl_key(unlock_filekey(path, password_handler(uri), PASSWORD_SECRET).public_key())


def register_filekey() -> None:
    """Make ``filekey:`` URIs loadable by securesystemslib and importable by tufrepo."""
    SIGNER_FOR_URI_SCHEME[SCHEME] = FileKeySigner
    add_importer(SCHEME, _import_filekey)
