"""The HSM service's operations, independent of the RPC transport.

The service is *not trusted*: it keeps key blobs and replays what clients send into the
TPM, and the TPM decides. It never checks a quorum itself (so a bypassed client check still
meets the TPM's refusal); it only refuses requests it cannot even express to the TPM (an
unknown key id, a signer that is not in the chosen policy, a malformed value).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tufrepo.errors import InputError
from tufrepo.hsm import policy
from tufrepo.hsm.policy import load_pem_public
from tufrepo.hsm.state import KeyPolicy, KeyRecord, State
from tufrepo.hsm.tpm import (
    Approval,
    Blob,
    PolicyRun,
    PolicySignedAuth,
    SessionLostError,
    Tpm,
)

log = logging.getLogger(__name__)

TARGETS = ("key", "authority")


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as e:
        raise InputError(f"{what} is not valid hex") from e


def _policy_from_pems(signers: Any, threshold: Any) -> KeyPolicy:
    if not isinstance(signers, list) or not all(isinstance(s, str) for s in signers):
        raise InputError("signers must be a list of PEM public keys")
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise InputError("threshold must be an integer")
    templates = [policy.file_key_template(load_pem_public(p)) for p in signers]
    kp = KeyPolicy(signers=list(signers), templates=templates, threshold=threshold)
    kp.quorum  # noqa: B018 - validates N, M and duplicates
    return kp


@dataclass(frozen=True, kw_only=True)
class _Pending:
    key_id: str
    target: str
    context: bytes
    created: float


class HsmService:
    """Operations on one TPM and one state directory."""

    def __init__(
        self, tpm: Tpm, state: State, *, session_ttl: float = 300.0, max_pending: int = 32
    ) -> None:
        self.tpm = tpm
        self.state = state
        self.session_ttl = session_ttl
        self.max_pending = max_pending
        self._pending: dict[str, _Pending] = {}
        self._plock = threading.Lock()
        self._state_lock = threading.Lock()  # read-modify-write of key records
        self._storage_public = tpm.storage_public()
        state.check_storage_key(self._storage_public)

    # --- keys ----------------------------------------------------------------------------

    def storage_public(self) -> dict[str, Any]:
        return {"storage_public": self._storage_public.hex()}

    def _new_record(self, signers: Any, threshold: Any, *, imported: bool) -> KeyRecord:
        kp = _policy_from_pems(signers, threshold)
        authority = self.tpm.create_key(kp.quorum.digest())
        placeholder = Blob(public=b"", private=b"")
        return KeyRecord(
            key_id=secrets.token_hex(16),
            imported=imported,
            key=placeholder,
            authority=authority,
            policies=[kp],
        )

    def auth_policy(self, record: KeyRecord) -> bytes:
        return policy.key_auth_policy(
            record.policies[0].quorum, policy.name_of(record.authority.public[2:])
        )

    def create_key(self, req: dict[str, Any]) -> dict[str, Any]:
        record = self._new_record(req.get("signers"), req.get("threshold"), imported=False)
        record.key = self.tpm.create_key(self.auth_policy(record))
        self.state.save_key(record)
        return self.key_info({"key_id": record.key_id})

    def begin_import(self, req: dict[str, Any]) -> dict[str, Any]:
        """Create the authority of a key to import; the client then wraps its key with
        an authPolicy naming that authority (the wrapping binds the public area)."""
        record = self._new_record(req.get("signers"), req.get("threshold"), imported=True)
        self.state.save_key(record)
        info = self.key_info({"key_id": record.key_id})
        info["auth_policy"] = self.auth_policy(record).hex()
        return info

    def import_key(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._state_lock:
            return self._import_key(req)

    def _import_key(self, req: dict[str, Any]) -> dict[str, Any]:
        record = self.state.load_key(str(req.get("key_id")))
        if record.key.public:
            raise InputError(f"key {record.key_id} already holds a key")
        public = _hex(req.get("public"), "public")
        # The public area must be exactly an ECDSA P-256 signing key with the imported-key
        # attributes and this key's authPolicy (else the TPM would hold a key we do not gate).
        x, y = policy.point_of(public[2:])
        expected = policy.public_area(x, y, policy.IMPORTED_KEY_ATTRS, self.auth_policy(record))
        if public != policy.tpm2b(expected):
            raise InputError(
                "the wrapped key's public area is not a P-256 signing key with this key's policy"
            )
        record.key = self.tpm.import_key(
            public, _hex(req.get("duplicate"), "duplicate"), _hex(req.get("seed"), "seed")
        )
        self.state.save_key(record)
        return self.key_info({"key_id": record.key_id})

    def key_info(self, req: dict[str, Any]) -> dict[str, Any]:
        record = self.state.load_key(str(req.get("key_id")))
        return {
            "key_id": record.key_id,
            "imported": record.imported,
            "public": record.key.public.hex(),
            "authority_public": record.authority.public.hex(),
            "policies": [{"signers": p.signers, "threshold": p.threshold} for p in record.policies],
        }

    def list_keys(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {"keys": self.state.key_ids()}

    # --- signing -------------------------------------------------------------------------

    def prepare_sign(self, req: dict[str, Any]) -> dict[str, Any]:
        target = req.get("target", "key")
        if target not in TARGETS:
            raise InputError(f"target must be one of {', '.join(TARGETS)}")
        info = self.key_info(req)
        if not info["public"]:
            raise InputError(f"key {info['key_id']} holds no key yet (import not finished)")
        self._expire()
        context, nonce = self.tpm.start_session()
        session_id = secrets.token_hex(16)
        with self._plock:
            self._pending[session_id] = _Pending(
                key_id=info["key_id"], target=target, context=context, created=time.monotonic()
            )
        info.update({"session_id": session_id, "nonce": nonce.hex(), "target": target})
        return info

    def _expire(self) -> None:
        """Flush pending sessions past their TTL, and the oldest beyond max_pending - 1."""
        now = time.monotonic()
        with self._plock:
            items = sorted(self._pending.items(), key=lambda kv: kv[1].created)
            drop = [sid for sid, p in items if now - p.created > self.session_ttl]
            alive = [sid for sid, _ in items if sid not in drop]
            drop += alive[: max(0, len(alive) - (self.max_pending - 1))]
            contexts = [self._pending.pop(sid).context for sid in drop]
        for context in contexts:
            self.tpm.flush_session(context)

    def _take_session(self, session_id: Any, key_id: str, target: str) -> bytes:
        with self._plock:
            pending = self._pending.get(str(session_id))
            if pending is None:
                raise SessionLostError(
                    "unknown or expired signing session (the service restarted?): "
                    "run PrepareSign again"
                )
            if pending.key_id != key_id or pending.target != target:
                raise InputError("this session was prepared for another key")
            del self._pending[str(session_id)]
        return pending.context

    def _policy_run(
        self, record: KeyRecord, index: int, key_name: bytes, digest: bytes, auths: Any
    ) -> PolicyRun:
        if not 0 <= index < len(record.policies):
            raise InputError(f"key {record.key_id} has no policy {index}")
        kp = record.policies[index]
        if not isinstance(auths, list) or not auths:
            raise InputError("authorizations must be a non-empty list")
        cp_hash = policy.sign_cp_hash(key_name, digest)
        chosen: list[tuple[int, PolicySignedAuth]] = []
        for a in auths:
            if not isinstance(a, dict):
                raise InputError("each authorization must be an object")
            template = policy.file_key_template(load_pem_public(str(a.get("signer"))))
            if template not in kp.templates:
                raise InputError(f"file key is not a signer of policy {index} of this key")
            expiration = a.get("expiration")
            if not isinstance(expiration, int) or not -(2**31) <= expiration < 2**31:
                raise InputError("expiration must be a 32-bit integer")
            sig = _hex(a.get("signature"), "signature")
            try:
                r, s = decode_dss_signature(sig)
                r.to_bytes(32, "big")
                s.to_bytes(32, "big")
            except (ValueError, OverflowError) as e:
                raise InputError("malformed policy signature (DER ECDSA P-256 expected)") from e
            auth = PolicySignedAuth(
                template=template, signature=sig, expiration=expiration, cp_hash=cp_hash
            )
            chosen.append((kp.templates.index(template), auth))
        chosen.sort(key=lambda ia: ia[0])
        indexes = tuple(i for i, _ in chosen)
        if len(set(indexes)) != len(indexes):
            raise InputError("the same file key signed twice")
        initial = record.policies[0].quorum.digest()
        authority_name = policy.name_of(record.authority.public[2:])
        approval = None
        if index > 0:
            if kp.approval is None:
                raise InputError(f"policy {index} is not approved")
            approval = Approval(
                authority=record.authority,
                approved_policy=kp.quorum.digest(),
                signature=kp.approval,
            )
        return PolicyRun(
            auths=[a for _, a in chosen],
            or_path=kp.quorum.or_path(indexes),
            approval=approval,
            top_or=[initial, policy.policy_authorize(authority_name)],
        )

    def sign(self, req: dict[str, Any]) -> dict[str, Any]:
        record = self.state.load_key(str(req.get("key_id")))
        digest = _hex(req.get("digest"), "digest")
        if len(digest) != policy.DIGEST_LEN:
            raise InputError("digest must be a SHA-256 digest (32 bytes)")
        index = req.get("policy", 0)
        if not isinstance(index, int):
            raise InputError("policy must be an integer")
        context = self._take_session(req.get("session_id"), record.key_id, "key")
        try:
            run = self._policy_run(
                record, index, policy.name_of(record.key.public[2:]), digest, req.get("auths")
            )
        except BaseException:
            self.tpm.flush_session(context)
            raise
        signature = self.tpm.sign(context, record.key, run, digest)
        return {"signature": signature.hex()}

    def add_trusted(self, req: dict[str, Any]) -> dict[str, Any]:
        """Have the key's authority (gated by the initial quorum) approve a new quorum."""
        record = self.state.load_key(str(req.get("key_id")))
        new = _policy_from_pems(req.get("signers"), req.get("threshold"))
        digest = policy.approval_digest(new.quorum.digest())
        context = self._take_session(req.get("session_id"), record.key_id, "authority")
        try:
            run = self._policy_run(
                record, 0, policy.name_of(record.authority.public[2:]), digest, req.get("auths")
            )
            run = PolicyRun(auths=run.auths, or_path=run.or_path)  # the authority's own policy
        except BaseException:
            self.tpm.flush_session(context)
            raise
        new.approval = self.tpm.sign_raw(context, record.authority, run, digest)
        with self._state_lock:
            record = self.state.load_key(record.key_id)
            record.policies.append(new)
            self.state.save_key(record)
            return {"policy": len(record.policies) - 1}
