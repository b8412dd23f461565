"""The stand-in itself: strict like the real services, and its proofs are RFC 6962 proofs."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.merkle import (
    _chain_border_right,
    _chain_inner,
    _decomp_inclusion_proof,
)
from sigstore_helpers import clean_sigstore, no_network, standin
from sigstore_standin import SigstoreStandin
from sigstore_standin._rekor import inclusion_path, leaf_hash, tree_hash

__all__ = ["clean_sigstore", "no_network", "standin"]  # fixtures used here

pytestmark = [pytest.mark.sigstore, pytest.mark.usefixtures("clean_sigstore", "no_network")]


def _request(
    url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("size", range(1, 18))
def test_inclusion_proofs_verify_with_sigstores_algorithm(size: int) -> None:
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(size)]
    root = tree_hash(leaves)
    for index in range(size):
        proof = inclusion_path(index, leaves)
        inner, border = _decomp_inclusion_proof(index, size)
        assert len(proof) == inner + border
        node = _chain_inner(leaves[index], proof[:inner], index)
        assert _chain_border_right(node, proof[inner:]) == root


def test_published_jwks_verifies_issued_tokens(standin: SigstoreStandin) -> None:
    status, config = _request(f"{standin.issuer}/.well-known/openid-configuration")
    assert status == 200
    assert config["issuer"] == standin.issuer
    status, jwks = _request(config["jwks_uri"])
    assert status == 200
    token = standin.token("alice@example.com")
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="sigstore")
    assert claims["iss"] == standin.issuer
    assert claims["email"] == "alice@example.com"
    assert claims["exp"] > claims["iat"]


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


@pytest.mark.parametrize(
    ("token_of", "status"),
    [
        (lambda s: None, 401),
        (lambda s: s.token("a@example.com", audience="not-sigstore"), 401),
        (lambda s: s.token("a@example.com", lifetime=-60), 401),
        (lambda s: SigstoreStandin("forger").token("a@example.com", issuer=s.issuer), 401),
        (lambda s: s.token("a@example.com"), 200),
    ],
    ids=["no token", "wrong audience", "expired", "forged", "good"],
)
def test_fulcio_checks_the_token(standin: SigstoreStandin, token_of: Any, status: int) -> None:
    token = token_of(standin)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    code, body = _request(
        f"{standin.url}/api/v2/signingCert", {"certificateSigningRequest": _csr()}, headers
    )
    assert code == status, body
    if status == 200:
        chain = body["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        assert len(chain) >= 2
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.RFC822Name) == ["a@example.com"]
        leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)


def test_rekor_refuses_an_entry_whose_signature_does_not_verify(
    standin: SigstoreStandin,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = standin.fulcio.issue(key.public_key(), x509.RFC822Name("a@example.com"), standin.issuer)
    digest = hashlib.sha256(b"payload").digest()
    signature = key.sign(b"something else", ec.ECDSA(hashes.SHA256()))
    entry = {
        "kind": "hashedrekord",
        "apiVersion": "0.0.1",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {
                    "content": base64.b64encode(
                        cert.public_bytes(serialization.Encoding.PEM)
                    ).decode()
                },
            },
        },
    }
    code, body = _request(f"{standin.url}/api/v1/log/entries", entry)
    assert code == 400
    assert "does not verify" in body["message"]
