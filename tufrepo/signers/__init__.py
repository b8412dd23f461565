"""Signer URI schemes beyond securesystemslib's, registered in one explicit place.

Two things make a signer usable by tufrepo:

* securesystemslib can load it: ``Signer.from_priv_key_uri(uri, public_key, secrets_handler)``
  (the scheme is in ``SIGNER_FOR_URI_SCHEME``; its key type in ``KEY_FOR_TYPE_AND_SCHEME``);
* tufrepo can find its public key from the URI alone (``import_public_key``), which
  ``tufrepo delegate`` / ``tufrepo sign`` need when a person first adds their key.

:func:`register` does both for every scheme, once; backends with optional dependencies
import them lazily inside their own modules.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from securesystemslib.signer import CryptoSigner, Key, SecretsHandler, Signer

from tufrepo.errors import InputError, SignerError, WrongPasswordError
from tufrepo.lazy_signers import load_backend
from tufrepo.signers.kms import SCHEMES as KMS_SCHEMES
from tufrepo.signers.kms import kms_error

PASSWORD_ENV = "TUFREPO_KEY_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
PIN_ENV = "TUFREPO_HSM_PIN"  # the "pin" secret (PKCS#11 tokens)

KeyImporter = Callable[[str], Key]
"""Given a signer URI, return the public key it signs for (no custom fields)."""

_IMPORTERS: dict[str, KeyImporter] = {}
_registered = False


def add_importer(scheme: str, importer: KeyImporter) -> None:
    """Make ``import_public_key`` understand URIs of ``scheme`` (call from register())."""
    _IMPORTERS[scheme] = importer


def _import_file2(uri: str) -> Key:
    path = uri.split(":", 1)[1]
    try:
        pem = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read key file {path}: {e.strerror}") from e
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        private = load_pem_private_key(pem, None)
    except (ValueError, TypeError) as e:
        raise InputError(f"{path} is not an unencrypted PEM private key") from e
    return CryptoSigner(private).public_key


def register() -> None:
    """Register tufrepo's signer URI schemes and key types with securesystemslib."""
    global _registered  # noqa: PLW0603 - registration happens exactly once per process
    if _registered:
        return
    _registered = True
    # every backend, in this one place (their optional dependencies load lazily)
    from tufrepo.signers.filekey import register_filekey
    from tufrepo.signers.hsm import register_hsm
    from tufrepo.signers.kms import register_kms
    from tufrepo.signers.sigstore import register_sigstore
    from tufrepo.signers.tpmhsm import register_tpmhsm

    add_importer("file2", _import_file2)
    register_filekey()
    register_hsm()
    register_kms()
    register_sigstore()
    register_tpmhsm()


def scheme_of(uri: str) -> str:
    """The scheme of a signer URI (``file2``, ``filekey``, ``hsm``, ``sigstore``, ...)."""
    scheme = urlsplit(uri).scheme
    if not scheme:
        raise InputError(f"not a signer URI (no scheme): {uri!r}")
    return scheme


def import_public_key(uri: str) -> Key:
    """The public key that the signer at ``uri`` signs for.

    Raises:
        InputError: unknown scheme or unreadable key material.
        SignerError: the backend could not be reached or unlocked.
    """
    register()
    scheme = scheme_of(uri)
    load_backend(scheme)
    importer = _IMPORTERS.get(scheme)
    if importer is None:
        known = ", ".join(sorted(_IMPORTERS))
        raise InputError(f"unknown signer scheme {scheme!r} (known: {known})")
    return importer(uri)


def password_handler(prompt_name: str = "key") -> SecretsHandler:
    """A secrets handler: ``TUFREPO_KEY_PASSWORD`` (``TUFREPO_HSM_PIN`` for a "pin") if set,
    else a prompt on a terminal.

    Never takes a secret from argv. Raises SignerError when neither is available.
    """

    def handler(secret: str) -> str:
        env = PIN_ENV if secret.lower() == "pin" else PASSWORD_ENV
        value = os.environ.get(env)
        if value is not None:
            return value
        if sys.stdin.isatty():
            return getpass.getpass(f"Enter {secret} for {prompt_name}: ")
        raise SignerError(f"{secret} needed for {prompt_name}: set {env} (no terminal to prompt)")

    return handler


PROMPT_ATTEMPTS = 3
T = TypeVar("T")


def with_attempts(secret: str, handler: SecretsHandler, use: Callable[[str], T]) -> T:
    """``use(handler(secret))``, asking again after a wrong password when it came from a
    prompt (up to PROMPT_ATTEMPTS times); a variable's value is tried once.

    Raises:
        WrongPasswordError: the last answer was wrong too.
    """
    env = PIN_ENV if secret.lower() == "pin" else PASSWORD_ENV
    tries = PROMPT_ATTEMPTS if os.environ.get(env) is None and sys.stdin.isatty() else 1
    left = tries
    while True:
        try:
            return use(handler(secret))
        except WrongPasswordError:
            left -= 1
            if not left:
                raise
            sys.stderr.write(f"Wrong {secret}, try again ({left} left).\n")


def load_signer(uri: str, public_key: Key) -> Signer:
    """Load the signer at ``uri`` for ``public_key``.

    Raises:
        SignerError: the signer cannot be loaded (wrong password, backend unreachable...).
        InputError: the URI is malformed or of an unknown scheme.
    """
    register()
    scheme = scheme_of(uri)
    load_backend(scheme)
    if scheme in ("file2", "filekey"):
        path = Path(uri.split(":", 1)[1])
        if not path.is_file():
            raise SignerError(f"key file {path} of signer {uri} does not exist")
    try:
        return Signer.from_priv_key_uri(uri, public_key, password_handler(uri))
    except (SignerError, InputError):
        raise
    except Exception as e:  # backends raise anything; wrap at the boundary
        if scheme in KMS_SCHEMES:  # a missing extra or credentials, in one line
            raise kms_error(uri, e) from e
        if isinstance(e, ValueError):
            raise InputError(f"cannot load signer {uri}: {e}") from e
        raise SignerError(f"cannot load signer {uri}: {e}") from e
