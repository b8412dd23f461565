"""Sigstore (keyless OIDC) keys and signers that verify offline against a pinned trust root.

On disk the key and the signature are exactly securesystemslib's (and so tuf-on-ci's): key
type ``sigstore-oidc``, scheme ``Fulcio``, ``keyval`` = ``{"identity", "issuer"}``, and each
signature carries the Sigstore bundle in its ``bundle`` field. What differs is where trust
comes from: stock ``SigstoreKey`` refreshes Sigstore's production trust root over the network
on every verification and its signer only talks to production; these classes use the trust
configuration resolved by :mod:`tufrepo.sigstore_trust` (pinned production root by default,
overridable per repository or per invocation) and never touch the network to verify.

Signer URIs (all of them accepted when loading a signer):

* ``sigstore:?identity=ID&issuer=URL`` — tufrepo's form, also used as the
  ``x-tuf-on-ci-online-uri`` of a CI workflow's online key; identity and issuer must
  match the key;
* ``sigstore:`` and ``sigstore:?ambient=false`` — tuf-on-ci's forms (ambient credentials
  allowed / interactive only).

The identity token comes from, in order: :func:`set_identity_token` (``--identity-token``),
the ``TUFREPO_SIGSTORE_TOKEN`` environment variable, ambient CI credentials (unless
``ambient=false``), and finally the interactive browser flow when stdin is a terminal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import (
    KEY_FOR_TYPE_AND_SCHEME,
    SIGNER_FOR_URI_SCHEME,
    Key,
    SecretsHandler,
    Signature,
    Signer,
    SigstoreKey,
)

from tufrepo import sigstore_trust
from tufrepo.errors import InputError, SignerError

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer as SigstoreSigningSession

__all__ = [
    "GITHUB_ISSUER",
    "TOKEN_ENV",
    "TufrepoSigstoreKey",
    "TufrepoSigstoreSigner",
    "github_workflow_key",
    "register_sigstore",
    "set_identity_token",
    "signer_uri",
    "sigstore_key",
]

log = logging.getLogger(__name__)

SCHEME = "sigstore"
KEYTYPE = "sigstore-oidc"
KEY_SCHEME = "Fulcio"
TOKEN_ENV = "TUFREPO_SIGSTORE_TOKEN"  # noqa: S105 - the name of a variable, not a secret
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

_explicit_token: str | None = None
_interactive: IdentityToken | None = None


def set_identity_token(token: str | None) -> None:
    """Sign with this OIDC identity token (the CLI's ``--identity-token``); None resets."""
    global _explicit_token  # noqa: PLW0603 - process-wide setting made by the CLI once
    _explicit_token = token


def _who(key: Key) -> str:
    """A Sigstore key in error messages: ``identity (issuer)`` (summaries use
    ``tufrepo.validate.describe_key``, which shows the same plus the key owner)."""
    return f"{key.keyval.get('identity')} ({key.keyval.get('issuer')})"


def sigstore_key(identity: str, issuer: str) -> TufrepoSigstoreKey:
    """The public key of a Sigstore identity (default keyid, no custom fields)."""
    keyval = {"identity": identity, "issuer": issuer}
    canonical = encode_canonical({"keytype": KEYTYPE, "scheme": KEY_SCHEME, "keyval": keyval})
    keyid = hashlib.sha256(str(canonical).encode()).hexdigest()
    return TufrepoSigstoreKey(keyid, KEYTYPE, KEY_SCHEME, keyval)


def signer_uri(identity: str, issuer: str) -> str:
    """tufrepo's signer URI for a Sigstore identity."""
    return f"{SCHEME}:?{urlencode({'identity': identity, 'issuer': issuer})}"


def github_workflow_key(
    repository: str, workflow: str = "tufrepo-online-sign.yml", ref: str = "refs/heads/main"
) -> tuple[str, TufrepoSigstoreKey]:
    """URI and key of a GitHub Actions workflow identity (for an online key).

    The default is the online-sign workflow that ``tufrepo workflows install`` writes;
    tuf-on-ci's is ``online-sign.yml``.
    """
    identity = f"https://github.com/{repository}/.github/workflows/{workflow}@{ref}"
    return signer_uri(identity, GITHUB_ISSUER), sigstore_key(identity, GITHUB_ISSUER)


@dataclass(frozen=True)
class _UriParams:
    identity: str | None
    issuer: str | None
    ambient: bool


def _parse_uri(uri: str) -> _UriParams:
    parts = urlsplit(uri)
    if parts.scheme != SCHEME or parts.netloc or parts.path:
        raise InputError(f"not a Sigstore signer URI: {uri!r}")
    params = dict(parse_qsl(parts.query))
    unknown = set(params) - {"identity", "issuer", "ambient"}
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(sorted(unknown))} in {uri!r}")
    if ("identity" in params) != ("issuer" in params):
        raise InputError(f"Sigstore signer URI needs both identity and issuer: {uri!r}")
    ambient = params.get("ambient", "true")
    if ambient not in ("true", "false"):
        raise InputError(f"ambient must be true or false in {uri!r}")
    return _UriParams(params.get("identity"), params.get("issuer"), ambient == "true")


def _claims(raw: str) -> dict[str, Any]:
    import jwt

    claims: dict[str, Any] = jwt.decode(raw, options={"verify_signature": False})
    return claims


def token_identities(token: IdentityToken) -> list[str]:
    """The identities Fulcio may certify for ``token``, the most specific first.

    GitHub Actions tokens are certified as ``https://github.com/<job_workflow_ref>``,
    GitLab CI tokens as ``https://<ci_config_ref_uri>``, tokens with an ``email`` claim as the
    email, others as sigstore-python's identity (usually ``sub``).
    """
    claims = _claims(str(token))
    found: list[str] = []
    if isinstance(claims.get("job_workflow_ref"), str):
        found.append(f"https://github.com/{claims['job_workflow_ref']}")
    if isinstance(claims.get("ci_config_ref_uri"), str):
        found.append(f"https://{claims['ci_config_ref_uri']}")
    if isinstance(claims.get("email"), str):
        found.append(claims["email"])
    found.append(token.identity)
    return found


def token_identity(token: IdentityToken) -> tuple[str, str]:
    """The (identity, issuer) that Fulcio certifies for ``token``."""
    return token_identities(token)[0], token.federated_issuer


def _parse_token(raw: str, origin: str) -> IdentityToken:
    from sigstore.oidc import IdentityError, IdentityToken

    try:
        return IdentityToken(raw.strip())
    except IdentityError as e:
        raise SignerError(f"Sigstore identity token from {origin}: {e}") from e


def identity_token(*, ambient: bool = True) -> IdentityToken:
    """An OIDC identity token for signing (see the module documentation for the order).

    Raises:
        SignerError: no token is available or the one found is malformed or expired.
        InputError: the trust configuration (for the interactive flow) cannot be loaded.
    """
    if _explicit_token:
        return _parse_token(_explicit_token, "--identity-token")
    env = os.environ.get(TOKEN_ENV)
    if env:
        return _parse_token(env, TOKEN_ENV)
    if ambient:
        from sigstore.oidc import IdentityError, detect_credential

        try:
            credential = detect_credential()
        except IdentityError as e:
            raise SignerError(f"ambient Sigstore credential detection failed: {e}") from e
        if credential:
            return _parse_token(credential, "ambient CI credentials")
    if sys.stdin.isatty():
        return _interactive_token()
    raise SignerError(
        f"no Sigstore identity token: set {TOKEN_ENV}, pass --identity-token, run in CI "
        "with OIDC credentials, or run on a terminal to sign in with a browser"
    )


def _interactive_token() -> IdentityToken:
    """Sign in with a browser, once per process (importing a key and signing share it)."""
    global _interactive  # noqa: PLW0603 - one browser sign-in per command
    if _interactive is not None and _interactive.in_validity_period():
        return _interactive
    from sigstore.oidc import Issuer

    config = sigstore_trust.load_trust_config()
    try:
        _interactive = Issuer(config.signing_config.get_oidc_url()).identity_token()
    except Exception as e:  # network and OAuth failures of many types
        raise SignerError(f"Sigstore browser sign-in failed: {e}") from e
    return _interactive


def import_sigstore_key(uri: str) -> Key:
    """The key for ``sigstore:?identity=..&issuer=..``; without them, of the signed-in user."""
    params = _parse_uri(uri)
    if params.identity is not None and params.issuer is not None:
        return sigstore_key(params.identity, params.issuer)
    identity, issuer = token_identity(identity_token(ambient=params.ambient))
    return sigstore_key(identity, issuer)


class TufrepoSigstoreKey(SigstoreKey):
    """A ``sigstore-oidc``/``Fulcio`` key verified with tufrepo's trust configuration."""

    @classmethod
    def from_dict(cls, keyid: str, key_dict: dict[str, Any]) -> TufrepoSigstoreKey:
        keytype, scheme, keyval = cls._from_dict(key_dict)
        return cls(keyid, keytype, scheme, keyval, key_dict)

    def verify_signature(self, signature: Signature, data: bytes) -> None:
        """Verify the bundle in ``signature`` over ``data`` for exactly this identity and issuer.

        Raises:
            UnverifiedSignatureError: with the reason, whenever the signature does not verify.
            InputError: the trust configuration cannot be loaded (a setup problem).
        """
        who = _who(self)
        bundle_data = signature.unrecognized_fields.get("bundle")
        if not isinstance(bundle_data, dict):
            raise UnverifiedSignatureError(f"signature by {who} has no Sigstore bundle")

        from sigstore.models import Bundle
        from sigstore.verify.policy import Identity

        verifier = sigstore_trust.verifier()
        try:
            bundle = Bundle.from_json(json.dumps(bundle_data))
            policy = Identity(identity=self.keyval["identity"], issuer=self.keyval["issuer"])
            verifier.verify_artifact(data, bundle, policy)
        except Exception as e:  # sigstore, pydantic and cryptography errors alike
            log.info("Sigstore signature by %s does not verify: %s", who, e)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnverifiedSignatureError(
                f"Sigstore signature by {who} does not verify: {reason}"
            ) from e


class TufrepoSigstoreSigner(Signer):
    """Signs with a short-lived Fulcio certificate for an OIDC identity, logged in Rekor."""

    SCHEME = SCHEME

    def __init__(
        self, token: IdentityToken, public_key: SigstoreKey, config: ClientTrustConfig
    ) -> None:
        self._token = token
        self._public_key = public_key
        self._config = config
        self._session: SigstoreSigningSession | None = None

    @property
    def public_key(self) -> Key:
        return self._public_key

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> TufrepoSigstoreSigner:
        """Load a signer: find an identity token and check that it is the key's identity.

        Raises:
            InputError: bad URI, a key that is not a Sigstore key, or URI/key mismatch.
            SignerError: no token, or a token for another identity or issuer.
        """
        params = _parse_uri(priv_key_uri)
        if not isinstance(public_key, SigstoreKey):
            raise InputError(f"{priv_key_uri} needs a sigstore-oidc key, not {public_key.keytype}")
        want = (public_key.keyval["identity"], public_key.keyval["issuer"])
        if params.identity is not None and (params.identity, params.issuer) != want:
            raise InputError(f"{priv_key_uri} is not the identity of key {_who(public_key)}")
        config = sigstore_trust.load_trust_config()
        token = identity_token(ambient=params.ambient)
        if want[0] not in token_identities(token) or want[1] != token.federated_issuer:
            got = token_identity(token)
            raise SignerError(
                f"the Sigstore identity token is for {got[0]} ({got[1]}), "
                f"but the key is {_who(public_key)}"
            )
        return cls(token, public_key, config)

    def sign(self, payload: bytes) -> Signature:
        """Sign ``payload``; the signature carries the Sigstore bundle (as securesystemslib's).

        Raises:
            SignerError: Fulcio or Rekor refused or could not be reached, or the token expired.
        """
        from sigstore.sign import Signer as SigningSession
        from sigstore.sign import SigningContext

        # One Fulcio certificate serves every role signed in this command; if it has expired
        # meanwhile (it lives 10 minutes), get a fresh one once.
        for reused in (self._session is not None, False):
            try:
                if self._session is None:
                    context = SigningContext.from_trust_config(self._config)
                    self._session = SigningSession(self._token, context, cache=True)
                bundle = self._session.sign_artifact(payload)
                break
            except Exception as e:  # requests, sigstore and certificate errors alike
                self._session = None
                if not reused:
                    raise SignerError(
                        f"Sigstore signing as {_who(self._public_key)} failed: {e}"
                    ) from e
                log.info("Sigstore signing failed with a reused certificate, retrying: %s", e)
        bundle_json = json.loads(bundle.to_json())
        return Signature(
            self._public_key.keyid,
            bundle_json["messageSignature"]["signature"],
            {"bundle": bundle_json},
        )


def register_sigstore() -> None:
    """Make ``sigstore-oidc``/``Fulcio`` keys and ``sigstore:`` URIs use tufrepo's classes."""
    from tufrepo.signers import add_importer

    KEY_FOR_TYPE_AND_SCHEME[(KEYTYPE, KEY_SCHEME)] = TufrepoSigstoreKey
    SIGNER_FOR_URI_SCHEME[SCHEME] = TufrepoSigstoreSigner
    add_importer(SCHEME, import_sigstore_key)
