"""``tpmhsm://HOST:PORT/KEYID?filekey=PATH[&filekey=PATH2…][&ca=PEM]`` — a TPM HSM key.

The TPM key signs only when the file keys (``filekey:`` files, passwords from
``TUFREPO_KEY_PASSWORD`` or a prompt) authorise that exact signature over the TPM's fresh
nonce (see :mod:`tufrepo.hsm`). In TUF metadata it is a plain ``ecdsa-sha2-nistp256`` key:
verifiers never need to know about the TPM. grpcio is imported only when a signer or the
importer connects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import (
    SIGNER_FOR_URI_SCHEME,
    Key,
    SecretsHandler,
    Signature,
    Signer,
    SSlibKey,
)

from tufrepo.errors import InputError, SignerError
from tufrepo.signers import add_importer
from tufrepo.signers.filekey import PASSWORD_SECRET, unlock_filekey

SCHEME = "tpmhsm"
KEY_TYPE = "ecdsa"
SIGNING_SCHEME = "ecdsa-sha2-nistp256"


@dataclass(frozen=True, kw_only=True)
class TpmHsmUri:
    """A parsed ``tpmhsm:`` URI."""

    address: str
    key_id: str
    filekeys: list[Path]
    timeout: float
    ca: Path | None = None

    @classmethod
    def parse(cls, uri: str, *, need_filekeys: bool = True) -> TpmHsmUri:
        parts = urlsplit(uri)
        usage = "expected tpmhsm://HOST:PORT/KEYID?filekey=PATH"
        if parts.scheme != SCHEME or not parts.hostname:
            raise InputError(f"not a tpmhsm URI: {uri!r} ({usage})")
        try:
            port = parts.port
        except ValueError as e:
            raise InputError(f"bad port in {uri!r}") from e
        if port is None:
            raise InputError(f"no port in {uri!r} ({usage})")
        key_id = parts.path.strip("/")
        if not key_id or "/" in key_id:
            raise InputError(f"no key id in {uri!r} ({usage})")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - {"filekey", "timeout", "ca"}
        if unknown:
            raise InputError(f"unknown parameter(s) in {uri!r}: {', '.join(sorted(unknown))}")
        filekeys = [Path(p) for p in query.get("filekey", []) if p]
        if need_filekeys and not filekeys:
            raise InputError(f"{uri!r} names no file key ({usage})")
        try:
            timeout = float(query.get("timeout", ["30"])[0])
        except ValueError as e:
            raise InputError(f"bad timeout in {uri!r}") from e
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        ca = Path(query["ca"][0]) if query.get("ca", [""])[0] else None
        return cls(
            address=f"{host}:{port}", key_id=key_id, filekeys=filekeys, timeout=timeout, ca=ca
        )


def _ssl_key(public: ec.EllipticCurvePublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(public, scheme=SIGNING_SCHEME)


class TpmHsmSigner(Signer):
    """Signs ecdsa-sha2-nistp256 through the TPM HSM service."""

    SCHEME = SCHEME

    def __init__(
        self,
        uri: TpmHsmUri,
        file_keys: list[ec.EllipticCurvePrivateKey],
        public_key: SSlibKey,
        expected: ec.EllipticCurvePublicKey,
    ) -> None:
        self._uri = uri
        self._file_keys = file_keys
        self._public_key = public_key
        self._expected = expected

    @property
    def public_key(self) -> SSlibKey:
        return self._public_key

    def sign(self, payload: bytes) -> Signature:
        """Sign ``payload`` (SHA-256, ECDSA P-256) in the TPM.

        Raises:
            SignerError: service unreachable, or the TPM refused.
        """
        digest = hashlib.sha256(payload).digest()
        from tufrepo.hsm.client import HsmClient

        with HsmClient(self._uri.address, self._uri.timeout, self._uri.ca) as client:
            der = client.sign_digest(self._uri.key_id, digest, self._file_keys, self._expected)
        return Signature(self._public_key.keyid, der.hex())

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> TpmHsmSigner:
        """Unlock the URI's file keys for the TPM key ``public_key``.

        Raises:
            InputError: bad URI or key type, unreadable file key.
            SignerError: no password available, wrong password.
        """
        uri = TpmHsmUri.parse(priv_key_uri)
        if not isinstance(public_key, SSlibKey) or (public_key.keytype, public_key.scheme) != (
            KEY_TYPE,
            SIGNING_SCHEME,
        ):
            raise InputError(f"{priv_key_uri} signs only {KEY_TYPE}/{SIGNING_SCHEME} keys")
        if secrets_handler is None:
            raise SignerError(f"passwords are needed to unlock the file keys of {priv_key_uri}")
        try:
            from tufrepo.hsm.policy import load_pem_public

            expected = load_pem_public(str(public_key.keyval.get("public")))
        except InputError as e:
            raise InputError(f"{priv_key_uri}: the public key is not a P-256 key") from e
        file_keys = [
            unlock_filekey(p, secrets_handler, f"{PASSWORD_SECRET} of file key {p}")
            for p in uri.filekeys
        ]
        return cls(uri, file_keys, public_key, expected)


def _import_tpmhsm(uri: str) -> Key:
    """The public key of a TPM HSM key, as the service reports it (checked against its
    policy and attributes, see KeyInfo.check)."""
    parsed = TpmHsmUri.parse(uri, need_filekeys=False)
    from tufrepo.hsm.client import HsmClient

    with HsmClient(parsed.address, parsed.timeout, parsed.ca) as client:
        info = client.key_info(parsed.key_id)
    info.check()
    return _ssl_key(info.public_key)


def register_tpmhsm() -> None:
    """Make ``tpmhsm:`` URIs loadable by securesystemslib and importable by tufrepo."""
    SIGNER_FOR_URI_SCHEME[SCHEME] = TpmHsmSigner
    add_importer(SCHEME, _import_tpmhsm)
