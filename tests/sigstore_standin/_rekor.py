"""Rekor v1 of the stand-in: an in-memory RFC 6962 Merkle log of hashedrekord entries.

``add`` checks the proposed entry (the signature must verify with the certificate's key over
the stated digest, as Rekor does), appends it, and returns the v1 API response: the entry with
a signed entry timestamp over the RFC 8785 JSON of body, integratedTime, logID and logIndex,
and an inclusion proof with a signed checkpoint whose key hint is the first 4 bytes of the
log ID.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ._fulcio import spki_sha256


class RekorError(ValueError):
    """A proposed entry that the log refuses (HTTP 400)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_hash(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (RFC 6962 §2.1)."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 6962 §2.1.1), from the leaf's sibling upwards."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), tree_hash(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), tree_hash(leaves[:k])]


class StandinRekor:
    """A transparency log with one P-256 key (log ID = sha256 of its SubjectPublicKeyInfo)."""

    origin = "rekor.standin.local - 1"

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = spki_sha256(self.key.public_key())
        self._leaves: list[bytes] = []
        self._lock = threading.Lock()

    def add(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """Integrate a proposed hashedrekord entry; return the v1 ``{uuid: entry}`` response."""
        self._check(proposed)
        body = rfc8785.dumps(proposed)
        with self._lock:
            index = len(self._leaves)
            self._leaves.append(leaf_hash(body))
            leaves = list(self._leaves)
        integrated = int(time.time())
        body_b64 = base64.b64encode(body).decode()
        set_payload = rfc8785.dumps(
            {
                "body": body_b64,
                "integratedTime": integrated,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        root = tree_hash(leaves)
        entry = {
            "body": body_b64,
            "integratedTime": integrated,
            "logID": self.log_id.hex(),
            "logIndex": index,
            "verification": {
                "signedEntryTimestamp": base64.b64encode(self._sign(set_payload)).decode(),
                "inclusionProof": {
                    "logIndex": index,
                    "treeSize": len(leaves),
                    "rootHash": root.hex(),
                    "hashes": [h.hex() for h in inclusion_path(index, leaves)],
                    "checkpoint": self._checkpoint(len(leaves), root),
                },
            },
        }
        uuid = leaves[index].hex()
        return {uuid: entry}

    def _sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def _checkpoint(self, size: int, root: bytes) -> str:
        note = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        sig = base64.b64encode(self.log_id[:4] + self._sign(note.encode())).decode()
        return f"{note}\n\u2014 rekor.standin.local {sig}\n"

    @staticmethod
    def _check(proposed: dict[str, Any]) -> None:
        try:
            if (proposed["kind"], proposed["apiVersion"]) != ("hashedrekord", "0.0.1"):
                raise RekorError("only hashedrekord 0.0.1 entries are supported")
            spec = proposed["spec"]
            algorithm = spec["data"]["hash"]["algorithm"]
            digest = bytes.fromhex(spec["data"]["hash"]["value"])
            signature = base64.b64decode(spec["signature"]["content"])
            pem = base64.b64decode(spec["signature"]["publicKey"]["content"])
        except (KeyError, TypeError, ValueError) as e:
            raise RekorError(f"malformed entry: {e!r}") from e
        if algorithm != "sha256":
            raise RekorError(f"unsupported hash algorithm {algorithm}")
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError as e:
            raise RekorError(f"malformed certificate: {e!r}") from e
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise RekorError("only ECDSA signing certificates are supported")
        try:
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except Exception as e:
            raise RekorError(f"signature does not verify: {e!r}") from e
