"""``hsm:[KEYID][?label=TOKEN]`` — an ECDSA key on a PKCS#11 token (YubiKey PIV, SoftHSM2).

Signing goes through securesystemslib's ``HSMSigner`` (python-pkcs11). tufrepo adds what a
command line needs around it: the PKCS#11 module from ``PYKCS11LIB`` with a clear error when
it is missing, the PIN asked for once (secret name ``pin``: ``TUFREPO_HSM_PIN`` or a prompt,
see :func:`tufrepo.signers.password_handler`), the PIN and the token's key checked when the
signer is loaded (before any work is done), and PKCS#11 errors turned into ``SignerError``.

``KEYID`` is the PKCS#11 object id (``CKA_ID``) as an integer; the default 2 is a YubiKey's
PIV slot 9c (digital signature).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlsplit

from securesystemslib.signer import (
    SIGNER_FOR_URI_SCHEME,
    HSMSigner,
    Key,
    SecretsHandler,
    Signature,
    Signer,
    SSlibKey,
)

from tufrepo.errors import InputError, SignerError
from tufrepo.signers import add_importer, password_handler

if TYPE_CHECKING:
    from collections.abc import Callable

SCHEME = "hsm"
MODULE_ENV = "PYKCS11LIB"
PIN_SECRET = "pin"  # noqa: S105 - the name of the secret asked for, not a secret
DEFAULT_KEYID = 2  # YubiKey PIV slot 9c

T = TypeVar("T")


def parse_uri(uri: str) -> tuple[int, str | None]:
    """The PKCS#11 key id and the token label (if any) of an ``hsm:`` URI."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise InputError(f"not an hsm URI: {uri!r} (expected hsm:[KEYID][?label=TOKEN])")
    try:
        keyid = int(parts.path) if parts.path else DEFAULT_KEYID
    except ValueError as e:
        raise InputError(f"bad key id in {uri!r}: expected an integer") from e
    if keyid < 0:
        raise InputError(f"bad key id in {uri!r}: expected a non-negative integer")
    label = dict(parse_qsl(parts.query)).get("label")
    return keyid, label


def _module() -> str:
    """The PKCS#11 module to load, from ``PYKCS11LIB`` (and python-pkcs11 to load it)."""
    try:
        import pkcs11  # noqa: F401 - only checking that it is installed
    except ImportError as e:
        raise SignerError(
            "hsm: signers need python-pkcs11 (pip install 'securesystemslib[hsm]')"
        ) from e
    module = os.environ.get(MODULE_ENV)
    if not module:
        raise SignerError(
            f"set {MODULE_ENV} to the PKCS#11 module of your token "
            "(e.g. /usr/lib/x86_64-linux-gnu/libykcs11.so, /usr/lib/softhsm/libsofthsm2.so)"
        )
    if not Path(module).is_file():
        raise SignerError(f"PKCS#11 module {module} ({MODULE_ENV}) does not exist")
    return module


def _pkcs11_call(uri: str, action: str, call: Callable[[], T]) -> T:
    """Run ``call``; turn token errors (wrong PIN, no token, no key) into SignerError."""
    import pkcs11.exceptions as p11

    try:
        return call()
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange) as e:
        raise SignerError(f"wrong PIN for {uri}") from e
    except p11.PinLocked as e:
        raise SignerError(f"the PIN of {uri} is locked (too many wrong PINs)") from e
    except (ValueError, p11.PKCS11Error) as e:
        detail = str(e) or type(e).__name__
        raise SignerError(f"cannot {action} with {uri}: {detail}") from e


def _check_pin(uri: str, label: str | None, pin: str) -> None:
    """Log in to the token once, so a wrong PIN shows before anything is signed."""
    import pkcs11

    def login() -> None:
        token = pkcs11.lib(_module()).get_token(
            token_label=label, token_flags=pkcs11.TokenFlag.TOKEN_INITIALIZED
        )
        with token.open(user_pin=pin):
            pass

    _pkcs11_call(uri, "log in", login)


class PKCS11Signer(Signer):
    """Signs with a key on a PKCS#11 token through securesystemslib's HSMSigner."""

    SCHEME = SCHEME

    def __init__(self, uri: str, signer: HSMSigner) -> None:
        self._uri = uri
        self._signer = signer

    @property
    def public_key(self) -> SSlibKey:
        key: SSlibKey = self._signer.public_key
        return key

    def sign(self, payload: bytes) -> Signature:
        signature: Signature = _pkcs11_call(self._uri, "sign", lambda: self._signer.sign(payload))
        return signature

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> PKCS11Signer:
        """Load ``hsm:`` for ``public_key``: find the token and key, and check the PIN.

        Raises:
            InputError: malformed URI or a public key type the token cannot sign for.
            SignerError: no module, no token or key, the token holds another key, no PIN
                available, or a wrong or locked PIN.
        """
        keyid, label = parse_uri(priv_key_uri)
        if not isinstance(public_key, SSlibKey):
            raise InputError(f"{priv_key_uri} cannot sign for a {public_key.keytype} key")
        _module()
        if secrets_handler is None:
            raise SignerError(f"a PIN is needed to use {priv_key_uri}")
        pin = secrets_handler(PIN_SECRET)

        def once(_: str) -> str:
            return pin

        _, token_key = _pkcs11_call(
            priv_key_uri, "find the key", lambda: HSMSigner.import_(keyid, label, once)
        )
        if token_key.keyval != public_key.keyval:
            raise SignerError(f"the token at {priv_key_uri} does not hold key {public_key.keyid}")
        _check_pin(priv_key_uri, label, pin)
        try:
            signer = HSMSigner(keyid, public_key, once, label)
        except ValueError as e:
            raise InputError(f"{priv_key_uri}: {e}") from e
        return cls(priv_key_uri, signer)


def _import_hsm(uri: str) -> Key:
    """The public key of the token's key named by ``uri`` (PIN only if the token needs it)."""
    keyid, label = parse_uri(uri)
    _module()
    handler = password_handler(uri)
    _, key = _pkcs11_call(
        uri, "read the public key", lambda: HSMSigner.import_(keyid, label, handler)
    )
    result: Key = key
    return result


def register_hsm() -> None:
    """Make ``hsm:`` URIs load through :class:`PKCS11Signer` and importable by tufrepo."""
    SIGNER_FOR_URI_SCHEME[SCHEME] = PKCS11Signer
    add_importer(SCHEME, _import_hsm)
