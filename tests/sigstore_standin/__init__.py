"""A local Sigstore stand-in for tests: OIDC issuer, Fulcio and Rekor v1 on 127.0.0.1.

The real sigstore-python client signs and verifies against it through the ClientTrustConfig
that :meth:`SigstoreStandin.trust_config` describes. Use it as a context manager (or
``start()``/``stop()``); the HTTP server binds 127.0.0.1 on a free port and runs in a daemon
thread with a bounded shutdown.

Two token issuers are served:

* ``{url}/oidc`` for people: tokens with ``email`` (the certificate SAN is the email);
* ``{url}/gha`` for CI, shaped like GitHub Actions tokens: ``sub`` = ``repo:OWNER/REPO:ref:REF``
  and ``job_workflow_ref`` (the SAN is ``https://github.com/<job_workflow_ref>``, as
  Fulcio does for GitHub). :meth:`SigstoreStandin.github_actions_env` returns the
  environment variables that make ``sigstore.oidc.detect_credential()`` fetch such a token
  as an ambient credential.

The people's issuer also runs the OAuth authorization-code flow with PKCE that
sigstore-python's browser sign-in uses: set ``browser_user`` and a ``BROWSER`` command that
follows redirects (:meth:`SigstoreStandin.browser_command`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from ._fulcio import StandinFulcio, spki_sha256
from ._rekor import RekorError, StandinRekor

__all__ = ["SigstoreStandin"]

AUDIENCE = "sigstore"
_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
_MAX_BODY = 1 << 20


def _b64_der_spki(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


class SigstoreStandin:
    """OIDC issuer + Fulcio + Rekor v1, in memory, served on 127.0.0.1."""

    def __init__(self, name: str = "tufrepo-standin") -> None:
        self.name = name
        self.fulcio = StandinFulcio(name)
        self.rekor = StandinRekor()
        self._oidc_key = ec.generate_private_key(ec.SECP256R1())
        self._oidc_kid = secrets.token_hex(8)
        self._gha_requests: dict[str, dict[str, Any]] = {}
        self._auth_codes: dict[str, tuple[str, str]] = {}  # code -> (PKCE challenge, email)
        self.browser_user: str | None = None  # who "signs in" in the browser flow
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[str] = []  # "METHOD path" of every request served

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> SigstoreStandin:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SigstoreStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def issuer(self) -> str:
        """The OIDC issuer of people's tokens."""
        return f"{self.url}/oidc"

    @property
    def ci_issuer(self) -> str:
        """The OIDC issuer of CI (GitHub Actions shaped) tokens."""
        return f"{self.url}/gha"

    # --- tokens ----------------------------------------------------------------------
    def token(
        self,
        email: str | None = None,
        *,
        issuer: str | None = None,
        audience: str = AUDIENCE,
        lifetime: int = 600,
        **claims: Any,
    ) -> str:
        """A signed identity token; ``email`` makes it a person's token."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "sub": claims.pop("sub", email or "standin-subject"),
        }
        if email is not None:
            payload["email"] = email
            payload["email_verified"] = True
        payload.update(claims)
        return jwt.encode(
            payload, self._oidc_key, algorithm="ES256", headers={"kid": self._oidc_kid}
        )

    def ci_token(self, repo: str, workflow: str, ref: str = "refs/heads/main") -> str:
        """A GitHub Actions shaped token for ``repo``'s workflow file ``workflow``."""
        return self.token(
            issuer=self.ci_issuer,
            sub=f"repo:{repo}:ref:{ref}",
            job_workflow_ref=f"{repo}/.github/workflows/{workflow}@{ref}",
            repository=repo,
            ref=ref,
        )

    @staticmethod
    def ci_identity(repo: str, workflow: str, ref: str = "refs/heads/main") -> str:
        """The certificate identity (SAN) the stand-in's Fulcio gives a CI token."""
        return f"https://github.com/{repo}/.github/workflows/{workflow}@{ref}"

    def github_actions_env(
        self, repo: str, workflow: str, ref: str = "refs/heads/main"
    ) -> dict[str, str]:
        """Environment variables of a GitHub Actions job with ``id-token: write``."""
        request_token = secrets.token_urlsafe(16)
        self._gha_requests[request_token] = {"repo": repo, "workflow": workflow, "ref": ref}
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/gha/id-token",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": request_token,
        }

    @staticmethod
    def browser_command() -> str:
        """A ``BROWSER`` for :mod:`webbrowser`: fetches the URL, following redirects."""
        script = (
            "import sys, urllib.request as u; "
            "u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=30)"
        )
        return f"{sys.executable} -c '{script}' %s"

    # --- trust configuration ---------------------------------------------------------
    def trusted_root(self) -> dict[str, Any]:
        start = {"start": self.fulcio.valid_from.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(url: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64_der_spki(key),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": start,
                },
                "logId": {"keyId": base64.b64encode(spki_sha256(key)).decode()},
            }

        chain = [
            {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
            for c in self.fulcio.chain
        ]
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.url, self.rekor.key.public_key())],
            "certificateAuthorities": [
                {
                    "subject": {"organization": self.name, "commonName": self.name},
                    "uri": self.url,
                    "certChain": {"certificates": chain},
                    "validFor": start,
                }
            ],
            "ctlogs": [log(f"{self.url}/ct", self.fulcio.ct_key.public_key())],
            "timestampAuthorities": [],
        }

    def signing_config(self) -> dict[str, Any]:
        start = {"start": self.fulcio.valid_from.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def service(url: str) -> dict[str, Any]:
            return {"url": url, "majorApiVersion": 1, "validFor": start, "operator": self.name}

        return {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service(self.url)],
            "oidcUrls": [service(self.issuer)],
            "rekorTlogUrls": [service(self.url)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }

    def trust_config(self) -> dict[str, Any]:
        """The ClientTrustConfig (trusted root + signing config) describing this stand-in."""
        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": self.signing_config(),
        }

    def write_trust_config(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trust_config(), indent=1))
        return path

    # --- service logic (called by the handler) ----------------------------------------
    def _verify_token(self, raw: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            raw,
            self._oidc_key.public_key(),
            algorithms=["ES256"],
            audience=AUDIENCE,
            options={"require": ["iss", "sub", "aud", "iat", "exp"]},
        )
        if claims["iss"] not in (self.issuer, self.ci_issuer):
            raise jwt.InvalidIssuerError(f"unknown issuer {claims['iss']}")
        return claims

    def _signing_cert(self, body: dict[str, Any], authorization: str) -> dict[str, Any]:
        if not authorization.lower().startswith("bearer "):
            raise PermissionError("missing bearer token")
        claims = self._verify_token(authorization.split(" ", 1)[1])
        pem = base64.b64decode(body["certificateSigningRequest"])
        csr = x509.load_pem_x509_csr(pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature (proof of possession) does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise TypeError("only ECDSA keys are supported")
        san: x509.GeneralName
        if "job_workflow_ref" in claims:
            san = x509.UniformResourceIdentifier(f"https://github.com/{claims['job_workflow_ref']}")
        elif "ci_config_ref_uri" in claims:  # GitLab CI
            san = x509.UniformResourceIdentifier(f"https://{claims['ci_config_ref_uri']}")
        elif "email" in claims:
            san = x509.RFC822Name(claims["email"])
        else:
            sub = str(claims["sub"])
            san = (
                x509.UniformResourceIdentifier(sub)
                if urlsplit(sub).scheme in ("http", "https")
                else x509.OtherName(_OTHERNAME_OID, b"\x0c" + bytes([len(sub)]) + sub.encode())
            )
        cert = self.fulcio.issue(public_key, san, claims["iss"])
        chain = [cert, *self.fulcio.chain]
        return {
            "signedCertificateEmbeddedSct": {
                "chain": {
                    "certificates": [
                        c.public_bytes(serialization.Encoding.PEM).decode() for c in chain
                    ]
                }
            }
        }

    def _gha_token(self, request_token: str) -> dict[str, Any]:
        job = self._gha_requests.get(request_token)
        if job is None:
            raise PermissionError("unknown ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        return {"value": self.ci_token(job["repo"], job["workflow"], job["ref"])}

    def _authorize(self, query: dict[str, str]) -> str:
        """The browser's sign-in: redirect back with a code (the user is ``browser_user``)."""
        if self.browser_user is None:
            raise PermissionError("nobody is signed in to the stand-in's browser")
        if query.get("code_challenge_method") != "S256":
            raise ValueError("PKCE S256 required")
        code = secrets.token_urlsafe(16)
        self._auth_codes[code] = (query["code_challenge"], self.browser_user)
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def _exchange_code(self, form: dict[str, str]) -> dict[str, Any]:
        challenge, email = self._auth_codes.pop(form.get("code", ""), ("", ""))
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if not challenge or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
            raise PermissionError("invalid code or PKCE verifier")
        token = self.token(email)
        return {"access_token": token, "id_token": token, "token_type": "Bearer"}

    def _openid_configuration(self, issuer: str) -> dict[str, Any]:
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks",
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    def _jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._oidc_key.public_key()))
        jwk.update({"kid": self._oidc_kid, "use": "sig", "alg": "ES256"})
        return {"keys": [jwk]}


class _Handler(BaseHTTPRequestHandler):
    standin: SigstoreStandin
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # keep test output quiet

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0"))
        if length > _MAX_BODY:
            raise ValueError("request too large")
        data: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        return data

    def do_GET(self) -> None:
        s = self.standin
        path = urlsplit(self.path).path
        s.requests.append(f"GET {path}")
        for prefix in ("/oidc", "/gha"):
            if path == f"{prefix}/.well-known/openid-configuration":
                self._reply(200, s._openid_configuration(f"{s.url}{prefix}"))
                return
            if path == f"{prefix}/jwks":
                self._reply(200, s._jwks())
                return
        if path == "/oidc/authorize":
            try:
                location = s._authorize(dict(parse_qsl(urlsplit(self.path).query)))
            except (PermissionError, ValueError, KeyError) as e:
                self._reply(400, {"message": str(e)})
                return
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/gha/id-token":
            auth = self.headers.get("Authorization", "")
            try:
                self._reply(200, s._gha_token(auth.split(" ", 1)[-1]))
            except PermissionError as e:
                self._reply(403, {"message": str(e)})
            return
        self._reply(404, {"message": f"not found: {path}"})

    def do_POST(self) -> None:
        s = self.standin
        path = urlsplit(self.path).path
        s.requests.append(f"POST {path}")
        try:
            if path == "/oidc/token":
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(min(length, _MAX_BODY)).decode()))
                self._reply(200, s._exchange_code(form))
                return
            body = self._body()
            if path == "/api/v2/signingCert":
                self._reply(200, s._signing_cert(body, self.headers.get("Authorization", "")))
            elif path == "/api/v1/log/entries":
                self._reply(201, s.rekor.add(body))
            else:
                self._reply(404, {"message": f"not found: {path}"})
        except (PermissionError, jwt.InvalidTokenError) as e:
            self._reply(401, {"code": 401, "message": f"unauthorized: {e}"})
        except (RekorError, ValueError, TypeError, KeyError) as e:
            self._reply(400, {"code": 400, "message": str(e)})
