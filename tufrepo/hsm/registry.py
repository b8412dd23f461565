"""The key registry: public keys and verification certificates (one key vouching for another).

The service is only a store (:class:`RegistryService`): it checks that what it stores
parses, never that a certificate is true. Clients check certificates themselves
(:func:`verify_chain`), from keys they already trust, so a compromised service can hide
certificates but cannot forge one.

A certificate is the issuer's ECDSA-SHA256 signature over ``VOUCH_CONTEXT ‖ subject's
DER SubjectPublicKeyInfo``; keys are named by the SHA-256 of that DER (``fingerprint``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tufrepo.errors import InputError, NotFoundError, SignerError
from tufrepo.hsm.policy import load_pem_public, sha256
from tufrepo.hsm.state import State

VOUCH_CONTEXT = b"tufrepo-hsm vouch v1\x00"


def spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """The registry name of a key: hex SHA-256 of its DER SubjectPublicKeyInfo."""
    return sha256(spki(public_key)).hex()


def pem_of(public_key: ec.EllipticCurvePublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def make_certificate(
    issuer: ec.EllipticCurvePrivateKey, subject: ec.EllipticCurvePublicKey
) -> dict[str, str]:
    """``issuer`` vouches for ``subject``."""
    signature = issuer.sign(VOUCH_CONTEXT + spki(subject), ec.ECDSA(hashes.SHA256()))
    return {
        "issuer": fingerprint(issuer.public_key()),
        "subject": fingerprint(subject),
        "signature": signature.hex(),
    }


def _check_certificate(keys: dict[str, Any], cert: dict[str, Any]) -> bool:
    try:
        issuer = load_pem_public(keys[cert["issuer"]]["pem"])
        subject = load_pem_public(keys[cert["subject"]]["pem"])
        if fingerprint(issuer) != cert["issuer"] or fingerprint(subject) != cert["subject"]:
            return False
        issuer.verify(
            bytes.fromhex(cert["signature"]),
            VOUCH_CONTEXT + spki(subject),
            ec.ECDSA(hashes.SHA256()),
        )
    except (KeyError, TypeError, ValueError, InputError, InvalidSignature):
        return False
    return True


def verify_chain(registry: dict[str, Any], subject: str, trusted: set[str]) -> list[str]:
    """The shortest vouching chain ``[subject, …, trusted key]`` whose every certificate
    verifies; raise SignerError when there is none. Checked here, never by the service."""
    keys = registry.get("keys", {})
    if subject in trusted:
        return [subject]
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for cert in registry.get("certificates", []):
        by_subject.setdefault(str(cert.get("subject")), []).append(cert)
    queue: deque[list[str]] = deque([[subject]])
    seen = {subject}
    while queue:
        path = queue.popleft()
        for cert in by_subject.get(path[-1], []):
            issuer = str(cert.get("issuer"))
            if issuer in seen or not _check_certificate(keys, cert):
                continue
            if issuer in trusted:
                return [*path, issuer]
            seen.add(issuer)
            queue.append([*path, issuer])
    raise SignerError(f"no valid vouching chain from {subject[:16]}… to a trusted key")


class RegistryService:
    """Server side: store keys and certificates (format checks only)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._lock = threading.Lock()

    def put(self, req: dict[str, Any]) -> dict[str, Any]:
        key = load_pem_public(str(req.get("pem")))
        label = req.get("label", "")
        if not isinstance(label, str) or len(label) > 200:
            raise InputError("label must be a short string")
        fp = fingerprint(key)
        with self._lock:
            registry = self.state.load_registry()
            registry["keys"][fp] = {"pem": pem_of(key), "label": label}
            self.state.save_registry(registry)
        return {"fingerprint": fp}

    def certify(self, req: dict[str, Any]) -> dict[str, Any]:
        cert = {k: req.get(k) for k in ("issuer", "subject", "signature")}
        if not all(isinstance(v, str) for v in cert.values()):
            raise InputError("a certificate has issuer, subject and signature strings")
        try:
            bytes.fromhex(str(cert["signature"]))
        except ValueError as e:
            raise InputError("certificate signature is not hex") from e
        with self._lock:
            registry = self.state.load_registry()
            for fp in (cert["issuer"], cert["subject"]):
                if fp not in registry["keys"]:
                    raise NotFoundError(f"key {fp} is not in the registry")
            if cert not in registry["certificates"]:
                registry["certificates"].append(cert)
                self.state.save_registry(registry)
        return {"stored": True}

    def get(self, req: dict[str, Any]) -> dict[str, Any]:
        fp = str(req.get("fingerprint"))
        registry = self.state.load_registry()
        if fp not in registry["keys"]:
            raise NotFoundError(f"key {fp} is not in the registry")
        certs = [c for c in registry["certificates"] if fp in (c["issuer"], c["subject"])]
        return {"fingerprint": fp, **registry["keys"][fp], "certificates": certs}

    def list(self, _req: dict[str, Any]) -> dict[str, Any]:
        return self.state.load_registry()
