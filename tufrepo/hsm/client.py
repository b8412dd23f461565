"""The client side of the TPM HSM: everything that must not be left to the service.

The client computes cpHashA itself from the digest it means to sign, checks the nonce,
signs aHash with its file keys, and checks that the TPM key it authorises is the key it
expects (same point, same attributes, same authPolicy over the same file keys).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tufrepo.errors import InputError, SignerError
from tufrepo.hsm import policy
from tufrepo.hsm.policy import load_pem_public
from tufrepo.hsm.registry import fingerprint, pem_of
from tufrepo.hsm.rpc import Channel, RpcError

log = logging.getLogger(__name__)

DEFAULT_EXPIRATION = -120
"""Seconds after nonceTPM during which an authorisation is valid (negative: no ticket)."""


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """What the service says about a key (checked by :meth:`check`, never just trusted)."""

    key_id: str
    imported: bool
    public: bytes  # TPM2B_PUBLIC
    authority_public: bytes
    policies: list[tuple[list[str], int]]

    @classmethod
    def from_response(cls, r: dict[str, Any]) -> KeyInfo:
        try:
            return cls(
                key_id=str(r["key_id"]),
                imported=bool(r["imported"]),
                public=bytes.fromhex(r["public"]),
                authority_public=bytes.fromhex(r["authority_public"]),
                policies=[(list(p["signers"]), int(p["threshold"])) for p in r["policies"]],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SignerError(f"malformed answer from the TPM HSM service: {e}") from e

    @property
    def name(self) -> bytes:
        return policy.name_of(self.public[2:])

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        x, y = policy.point_of(self.public[2:])
        nums = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        )
        return nums.public_key()

    def quorum(self, index: int) -> policy.Quorum:
        signers, threshold = self.policies[index]
        templates = tuple(policy.file_key_template(load_pem_public(p)) for p in signers)
        return policy.Quorum(templates=templates, threshold=threshold)

    def check(self, expected: ec.EllipticCurvePublicKey | None = None) -> None:
        """Refuse a key whose public area is not what its policies say (or not ``expected``)."""
        if not self.public:
            raise SignerError(f"key {self.key_id} holds no key yet (import not finished)")
        initial = self.quorum(0)
        # the authority (which approves new quorums) must itself be gated by policy 0
        authority_area = self.authority_public[2:]
        x, y = policy.point_of(authority_area)
        expected_authority = policy.public_area(x, y, policy.CREATED_KEY_ATTRS, initial.digest())
        if policy.tpm2b(expected_authority) != self.authority_public:
            raise SignerError(
                f"key {self.key_id}: its authority is not gated by the key's initial "
                "signers; refusing to authorise it"
            )
        attrs = policy.IMPORTED_KEY_ATTRS if self.imported else policy.CREATED_KEY_ATTRS
        auth_policy = policy.key_auth_policy(initial, policy.name_of(authority_area))
        key = self.public_key
        if policy.tpm2b(policy.ecc_public_area(key, attrs, auth_policy)) != self.public:
            raise SignerError(
                f"key {self.key_id}: the TPM key's attributes or policy are not what the "
                "service reports; refusing to authorise it"
            )
        if expected is not None and spki_of(expected) != spki_of(key):
            raise SignerError(f"key {self.key_id} is not the expected public key")


def _check_initial_policy(
    info: KeyInfo, signers: list[ec.EllipticCurvePublicKey], threshold: int
) -> policy.Quorum:
    """Refuse a key whose policy 0 is not the quorum that was asked for."""
    asked = policy.Quorum(
        templates=tuple(policy.file_key_template(s) for s in signers), threshold=threshold
    )
    if not info.policies or info.quorum(0) != asked:
        raise SignerError(
            f"key {info.key_id}: the service made a policy other than the one asked for"
        )
    return asked


def spki_of(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def authorize(
    file_keys: list[ec.EllipticCurvePrivateKey],
    nonce: bytes,
    key_name: bytes,
    digest: bytes,
    expiration: int = DEFAULT_EXPIRATION,
) -> list[dict[str, Any]]:
    """PolicySigned authorisations of TPM2_Sign(key, digest) in the session of ``nonce``."""
    cp_hash = policy.sign_cp_hash(key_name, digest)
    a_hash = policy.a_hash(nonce, expiration, cp_hash)  # refuses an empty/short nonce
    return [
        {
            "signer": pem_of(k.public_key()),
            "signature": k.sign(a_hash, ec.ECDSA(Prehashed(hashes.SHA256()))).hex(),
            "expiration": expiration,
        }
        for k in file_keys
    ]


def choose_policy(
    info: KeyInfo, file_keys: list[ec.EllipticCurvePrivateKey]
) -> tuple[int, list[ec.EllipticCurvePrivateKey]]:
    """The first policy of the key that ``file_keys`` can satisfy, and the keys to use."""
    for index in range(len(info.policies)):
        q = info.quorum(index)
        usable = sorted(
            (
                (q.templates.index(t), k)
                for k in file_keys
                if (t := policy.file_key_template(k.public_key())) in q.templates
            ),
            key=lambda ik: ik[0],
        )
        if len(usable) >= q.threshold:
            return index, [k for _, k in usable[: q.threshold]]
    needs = "; ".join(f"{t} of {len(s)}" for s, t in info.policies)
    raise SignerError(
        f"key {info.key_id}: these {len(file_keys)} file key(s) cannot meet its policy ({needs})"
    )


class HsmClient:
    """A connection to ``tufrepo hsm serve`` at ``address`` (``HOST:PORT``); over TLS when
    ``ca`` names a PEM file of the root certificates to trust."""

    def __init__(self, address: str, timeout: float = 30.0, ca: Path | None = None) -> None:
        """Raises: InputError when ``ca`` cannot be read."""
        roots = None
        if ca is not None:
            try:
                roots = ca.read_bytes()
            except OSError as e:
                raise InputError(f"cannot read CA certificates {ca}: {e.strerror}") from e
        self.channel = Channel(address, timeout, roots)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> HsmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        return self.channel.call(method, request)

    def key_info(self, key_id: str) -> KeyInfo:
        """What the service says about ``key_id`` (unchecked: call ``KeyInfo.check``).

        Raises:
            RpcError (a SignerError): service unreachable, unknown or malformed key id.
        """
        return KeyInfo.from_response(self.call("KeyInfo", {"key_id": key_id}))

    def create_key(self, signers: list[ec.EllipticCurvePublicKey], threshold: int) -> KeyInfo:
        """Have the TPM create a key for ``threshold`` of ``signers``; checked on return.

        Raises:
            RpcError (a SignerError): the service or the TPM refused (e.g. bad threshold).
            SignerError: the key the service reports does not carry the requested policy.
        """
        r = self.call(
            "CreateKey", {"signers": [pem_of(s) for s in signers], "threshold": threshold}
        )
        info = KeyInfo.from_response(r)
        _check_initial_policy(info, signers, threshold)
        info.check()
        return info

    def import_key(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        signers: list[ec.EllipticCurvePublicKey],
        threshold: int,
        storage_key_sha256: str | None = None,
    ) -> KeyInfo:
        """Wrap ``private_key`` here, to the TPM's storage key, and import it.

        Raises:
            SignerError: tpm2-pytss missing, the storage key is not the pinned one, the
                service or the TPM refused, or the imported key is not the one sent.
        """
        from tufrepo.hsm.tpm import load_tpm2_pytss

        t = load_tpm2_pytss()
        from tpm2_pytss.utils import wrap

        storage = bytes.fromhex(self.call("StoragePublic", {})["storage_public"])
        if storage_key_sha256 is not None and policy.sha256(storage).hex() != storage_key_sha256:
            raise SignerError(
                "the service's storage key is not the pinned one: refusing to wrap a key to it"
            )
        begun = self.call(
            "BeginImport", {"signers": [pem_of(s) for s in signers], "threshold": threshold}
        )
        # the authPolicy is computed here, from the quorum asked for and the authority
        # the service created, never taken from the service's word
        begun_info = KeyInfo.from_response(begun)
        quorum = _check_initial_policy(begun_info, signers, threshold)
        auth_policy = policy.key_auth_policy(
            quorum, policy.name_of(begun_info.authority_public[2:])
        )
        area = policy.ecc_public_area(
            private_key.public_key(), policy.IMPORTED_KEY_ATTRS, auth_policy
        )
        public = t.TPM2B_PUBLIC(publicArea=t.TPMT_PUBLIC.unmarshal(area)[0])
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        sensitive = t.TPM2B_SENSITIVE.from_pem(pem)
        _, duplicate, seed = wrap(t.TPMT_PUBLIC.unmarshal(storage)[0], public, sensitive)
        r = self.call(
            "ImportKey",
            {
                "key_id": begun["key_id"],
                "public": public.marshal().hex(),
                "duplicate": duplicate.marshal().hex(),
                "seed": seed.marshal().hex(),
            },
        )
        info = KeyInfo.from_response(r)
        _check_initial_policy(info, signers, threshold)
        info.check(private_key.public_key())
        return info

    def sign_digest(
        self,
        key_id: str,
        digest: bytes,
        file_keys: list[ec.EllipticCurvePrivateKey],
        expected: ec.EllipticCurvePublicKey | None = None,
        attempts: int = 2,
    ) -> bytes:
        """A DER ECDSA signature of ``digest`` by the TPM key (retrying a lost session).

        Raises:
            InputError: the service returned an empty or short nonce.
            SignerError: unreachable service, unknown key, ``file_keys`` cannot meet any
                policy, the key is not ``expected``, or the TPM refused (``RpcError.tpm_rc``).
        """
        for attempt in range(1, attempts + 1):
            prep = self.call("PrepareSign", {"key_id": key_id})
            info = KeyInfo.from_response(prep)
            info.check(expected)
            index, keys = choose_policy(info, file_keys)
            auths = authorize(keys, bytes.fromhex(prep["nonce"]), info.name, digest)
            try:
                r = self.call(
                    "Sign",
                    {
                        "key_id": key_id,
                        "session_id": prep["session_id"],
                        "digest": digest.hex(),
                        "policy": index,
                        "auths": auths,
                    },
                )
            except RpcError as e:
                if e.session_lost and attempt < attempts:
                    log.warning("signing session lost (%s); preparing a new one", e)
                    continue
                raise
            return bytes.fromhex(r["signature"])
        raise AssertionError("unreachable")  # pragma: no cover

    def add_trusted(
        self,
        key_id: str,
        signers: list[ec.EllipticCurvePublicKey],
        threshold: int,
        file_keys: list[ec.EllipticCurvePrivateKey],
    ) -> int:
        """Approve a new quorum ``threshold``-of-``signers`` for the key (needs a quorum of
        the key's initial signers, enforced by the TPM through the key's authority).

        Raises:
            SignerError: as for :meth:`sign_digest`; InputError for a bad new quorum.
        """
        prep = self.call("PrepareSign", {"key_id": key_id, "target": "authority"})
        info = KeyInfo.from_response(prep)
        info.check()
        new = policy.Quorum(
            templates=tuple(policy.file_key_template(s) for s in signers), threshold=threshold
        )
        digest = policy.approval_digest(new.digest())
        index, keys = choose_policy(
            KeyInfo(
                key_id=info.key_id,
                imported=info.imported,
                public=info.public,
                authority_public=info.authority_public,
                policies=info.policies[:1],
            ),
            file_keys,
        )
        if index != 0:
            raise InputError("only the key's initial signers can approve a new policy")
        name = policy.name_of(info.authority_public[2:])
        auths = authorize(keys, bytes.fromhex(prep["nonce"]), name, digest)
        r = self.call(
            "AddTrusted",
            {
                "key_id": key_id,
                "session_id": prep["session_id"],
                "signers": [pem_of(s) for s in signers],
                "threshold": threshold,
                "auths": auths,
            },
        )
        return int(r["policy"])


__all__ = ["HsmClient", "KeyInfo", "authorize", "choose_policy", "fingerprint"]
