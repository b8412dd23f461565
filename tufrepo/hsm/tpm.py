"""The TPM side of the HSM: every ESAPI call the service makes, behind one lock.

Resource hygiene for a raw TPM (no resource manager: 3 object slots, 3 loaded sessions):
at most two objects are loaded at any time (the storage primary while loading a child, then
the child; or a file key's public part for PolicySigned) and each is flushed as soon as it
has served. Pending policy sessions (between PrepareSign and Sign) are context-saved, so they
hold no loaded-session slot; only the session being used is loaded. All TPM access is
serialised by ``Tpm.lock``: an ESAPI context is not thread-safe and the slots are shared.

The storage primary is recreated from a fixed template for every operation: it is
deterministic (same seed, same template → same key), so key blobs stay loadable across
restarts of the service and of the TPM, and nothing needs to persist in the TPM.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from tufrepo.errors import SignerError
from tufrepo.hsm import policy

if TYPE_CHECKING:
    from tpm2_pytss import ESAPI

log = logging.getLogger(__name__)
T = TypeVar("T")

STORAGE_KEY_ID = b"tufrepo-hsm storage key v1"


class TpmError(SignerError):
    """The TPM (or the way to it) refused or failed; ``rc`` is the TPM's response code
    with handle/parameter/session numbers stripped (``TPM2_RC``), when there is one."""

    def __init__(self, message: str, rc: int | None = None) -> None:
        super().__init__(message)
        self.rc = rc


class SessionLostError(TpmError):
    """A pending policy session is gone (TPM restarted, expired, evicted): PrepareSign again."""


def load_tpm2_pytss() -> Any:
    """Import tpm2_pytss, or say clearly what is missing.

    The TSS's own stderr logging is silenced (unless TSS2_LOG is set): refusals are
    reported once, by us, with the TPM's response code.
    """
    os.environ.setdefault("TSS2_LOG", "all+NONE")
    try:
        import tpm2_pytss
    except ImportError as e:
        raise SignerError(
            "the TPM HSM service needs tpm2-pytss: pip install 'tufrepo[tpm]' "
            "(it builds against libtss2-dev)"
        ) from e
    return tpm2_pytss


@dataclass(frozen=True, kw_only=True)
class Blob:
    """A key as the TPM stores it outside itself: public area and encrypted private part."""

    public: bytes  # TPM2B_PUBLIC
    private: bytes  # TPM2B_PRIVATE


@dataclass(frozen=True, kw_only=True)
class PolicySignedAuth:
    """One file key's PolicySigned authorisation."""

    template: bytes  # the pinned TPMT_PUBLIC of the file key (from the service's state)
    signature: bytes  # DER ECDSA over aHash
    expiration: int
    cp_hash: bytes
    policy_ref: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Approval:
    """A policy approved by the key's authority (for PolicyAuthorize)."""

    authority: Blob
    approved_policy: bytes
    signature: bytes  # TPMT_SIGNATURE made by the authority key over approval_digest


@dataclass(frozen=True, kw_only=True)
class PolicyRun:
    """What to replay in a policy session before TPM2_Sign."""

    auths: list[PolicySignedAuth]
    or_path: list[list[bytes]]
    approval: Approval | None = None
    top_or: list[bytes] | None = None


class Tpm:
    """One TPM reached through a TCTI string (``swtpm:host=…,port=…``, ``device:/dev/tpmrm0``).

    Every public method raises TpmError when the TPM refuses (``rc`` = its TPM2_RC) or
    cannot be reached, and ``sign`` raises SessionLostError for a session that is gone.
    """

    def __init__(self, tcti: str) -> None:
        self.tcti = tcti
        self.lock = threading.RLock()
        self._ectx: ESAPI | None = None
        self._primary_saved: tuple[Any, bytes] | None = None
        self._reconnected = False  # the connection dropped: objects may be left loaded
        self._t = load_tpm2_pytss()

    # --- connection ----------------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            if self._ectx is not None:
                try:
                    self._ectx.close()
                finally:
                    self._ectx = None

    def _connect(self) -> ESAPI:
        if self._ectx is None:
            t = self._t
            try:
                self._ectx = t.ESAPI(self.tcti)
            except Exception as e:  # TCTILdr raises several types for a bad or dead TCTI
                raise TpmError(f"cannot reach the TPM at {self.tcti}: {e}") from e
            try:
                self._ectx.startup(t.TPM2_SU.CLEAR)
            except t.TSS2_Exception as e:
                # TPM_RC_INITIALIZE (already started) is the normal case; a resource
                # manager may refuse Startup outright. A TPM that is really not started
                # fails the next command, with its own error.
                log.debug("TPM2_Startup: %s", e)
            if self._reconnected:
                # A dropped connection may have left objects and a session loaded (if the
                # TPM itself did not restart): free the slots. Saved sessions stay valid.
                self._reconnected = False
                kinds = [t.TPM2_HT.TRANSIENT, t.TPM2_HT.LOADED_SESSION]
                try:
                    self._flush_handles(self._ectx, kinds)
                except t.TSS2_Exception as e:
                    log.debug("flushing after a reconnect: %s", e)
        return self._ectx

    def run(self, op: Callable[[ESAPI], T], what: str) -> T:
        """Run ``op`` under the lock, turning TSS errors into TpmError (reconnecting
        after a transport error, e.g. when the TPM restarted)."""
        t = self._t
        with self.lock:
            for attempt in (1, 2):
                ectx = self._connect()
                try:
                    return op(ectx)
                except t.TSS2_Exception as e:
                    layer = int(e.rc) & 0xFF0000
                    if layer == t.TSS2_RC.TCTI_RC_LAYER:
                        self.close()
                        self._reconnected = True
                        if attempt == 1:  # reconnect once (a lost session then says so)
                            continue
                        raise TpmError(f"{what}: TPM connection lost: {e}") from e
                    rc = int(e.error) if layer == 0 else None
                    raise TpmError(f"{what}: refused by the TPM: {e}", rc) from e
        raise AssertionError("unreachable")  # pragma: no cover

    # --- objects -------------------------------------------------------------------------

    def _primary_template(self) -> Any:
        t = self._t
        attrs = (
            t.TPMA_OBJECT.RESTRICTED
            | t.TPMA_OBJECT.DECRYPT
            | t.TPMA_OBJECT.FIXEDTPM
            | t.TPMA_OBJECT.FIXEDPARENT
            | t.TPMA_OBJECT.SENSITIVEDATAORIGIN
            | t.TPMA_OBJECT.USERWITHAUTH
            | t.TPMA_OBJECT.NODA
        )
        pub = t.TPMT_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=attrs)
        pub.unique.ecc.x = STORAGE_KEY_ID
        return t.TPM2B_PUBLIC(publicArea=pub)

    def _primary(self, ectx: ESAPI) -> tuple[Any, bytes]:
        """Load the storage primary (the caller flushes it). Its context is saved after the
        first creation and reloaded afterwards — one cheap command instead of a key
        derivation; after a TPM reset the saved context is refused and it is recreated."""
        t = self._t
        if self._primary_saved is not None:
            saved, known_area = self._primary_saved
            try:
                return ectx.context_load(saved), known_area
            except t.TSS2_Exception as e:
                if int(e.rc) & 0xFF0000 == t.TSS2_RC.TCTI_RC_LAYER:
                    raise
                log.info("recreating the storage primary (%s)", e)
                self._primary_saved = None
        handle, public, _, _, _ = ectx.create_primary(
            t.TPM2B_SENSITIVE_CREATE(), self._primary_template(), t.ESYS_TR.OWNER
        )
        public_area: bytes = public.publicArea.marshal()
        try:
            self._primary_saved = (ectx.context_save(handle), public_area)
        except t.TSS2_Exception:
            ectx.flush_context(handle)
            raise
        return handle, public_area

    @contextmanager
    def loaded(self, ectx: ESAPI, blob: Blob) -> Iterator[Any]:
        """Load ``blob`` under the storage primary (flushed at once), flush it on exit."""
        t = self._t
        parent, _ = self._primary(ectx)
        try:
            handle = ectx.load(
                parent,
                t.TPM2B_PRIVATE.unmarshal(blob.private)[0],
                t.TPM2B_PUBLIC.unmarshal(blob.public)[0],
            )
        finally:
            ectx.flush_context(parent)
        try:
            yield handle
        finally:
            ectx.flush_context(handle)

    def storage_public(self) -> bytes:
        """The storage primary's TPMT_PUBLIC (clients wrap imported keys to it)."""

        def op(ectx: ESAPI) -> bytes:
            handle, public = self._primary(ectx)
            ectx.flush_context(handle)
            return public

        return self.run(op, "storage key")

    def create_key(self, auth_policy: bytes) -> Blob:
        """Create a P-256 signing key in the TPM: FIXEDTPM|FIXEDPARENT, USERWITHAUTH clear."""
        t = self._t
        template = policy.public_area(b"", b"", policy.CREATED_KEY_ATTRS, auth_policy)

        def op(ectx: ESAPI) -> Blob:
            parent, _ = self._primary(ectx)
            try:
                in_public = t.TPM2B_PUBLIC(publicArea=t.TPMT_PUBLIC.unmarshal(template)[0])
                private, public, _, _, _ = ectx.create(
                    parent, t.TPM2B_SENSITIVE_CREATE(), in_public
                )
            finally:
                ectx.flush_context(parent)
            return Blob(public=public.marshal(), private=private.marshal())

        return self.run(op, "create key")

    def import_key(self, public: bytes, duplicate: bytes, seed: bytes) -> Blob:
        """TPM2_Import a key wrapped (outer wrapper only) to the storage primary."""
        t = self._t

        def op(ectx: ESAPI) -> Blob:
            parent, _ = self._primary(ectx)
            try:
                private = ectx.import_(
                    parent,
                    t.TPM2B_DATA(),
                    t.TPM2B_PUBLIC.unmarshal(public)[0],
                    t.TPM2B_PRIVATE.unmarshal(duplicate)[0],
                    t.TPM2B_ENCRYPTED_SECRET.unmarshal(seed)[0],
                    t.TPMT_SYM_DEF_OBJECT(algorithm=t.TPM2_ALG.NULL),
                )
            finally:
                ectx.flush_context(parent)
            return Blob(public=public, private=private.marshal())

        return self.run(op, "import key")

    # --- sessions ------------------------------------------------------------------------

    def start_session(self) -> tuple[bytes, bytes]:
        """Start a policy session; return (saved context, nonceTPM). The session is
        context-saved at once so that it holds no loaded-session slot."""
        t = self._t

        def op(ectx: ESAPI) -> tuple[bytes, bytes]:
            sess = ectx.start_auth_session(
                t.ESYS_TR.NONE,
                t.ESYS_TR.NONE,
                t.TPM2_SE.POLICY,
                t.TPMT_SYM_DEF(algorithm=t.TPM2_ALG.NULL),
                t.TPM2_ALG.SHA256,
                nonce_caller=secrets.token_bytes(32),
            )
            try:
                nonce = bytes(ectx.trsess_get_nonce_tpm(sess))
                saved = ectx.context_save(sess)
            except BaseException:
                ectx.flush_context(sess)
                raise
            return saved.marshal(), nonce

        return self.run(op, "start session")

    def _load_session(self, ectx: ESAPI, context: bytes) -> Any:
        t = self._t
        try:
            return ectx.context_load(t.TPMS_CONTEXT.unmarshal(context)[0])
        except t.TSS2_Exception as e:
            if int(e.rc) & 0xFF0000 == t.TSS2_RC.TCTI_RC_LAYER:
                raise
            raise SessionLostError(
                "the signing session is gone (the TPM restarted or the session expired): "
                "run PrepareSign again",
                int(e.error),
            ) from e

    def flush_session(self, context: bytes) -> None:
        """Forget a pending session (best effort: it may already be gone)."""

        def op(ectx: ESAPI) -> None:
            ectx.flush_context(self._load_session(ectx, context))

        try:
            self.run(op, "flush session")
        except TpmError as e:
            log.debug("flushing a pending session: %s", e)

    def sign(self, session: bytes, key: Blob, run: PolicyRun, digest: bytes) -> bytes:
        """Replay ``run`` in the saved policy session, then TPM2_Sign ``digest`` with
        ``key``; return the DER ECDSA signature. The session is flushed in any case."""
        t = self._t

        def op(ectx: ESAPI) -> bytes:
            sess = self._load_session(ectx, session)
            try:
                self._replay(ectx, sess, run)
                with self.loaded(ectx, key) as handle:
                    sig = ectx.sign(
                        handle,
                        t.TPM2B_DIGEST(digest),
                        t.TPMT_SIG_SCHEME(
                            scheme=t.TPM2_ALG.ECDSA,
                            details=t.TPMU_SIG_SCHEME(
                                any=t.TPMS_SCHEME_HASH(hashAlg=t.TPM2_ALG.SHA256)
                            ),
                        ),
                        None,
                        session1=sess,
                    )
            finally:
                try:
                    ectx.flush_context(sess)
                except t.TSS2_Exception:
                    log.debug("session already flushed by the TPM")
            ecc = sig.signature.ecdsa
            r = int.from_bytes(bytes(ecc.signatureR), "big")
            s = int.from_bytes(bytes(ecc.signatureS), "big")
            return encode_dss_signature(r, s)

        return self.run(op, "sign")

    def sign_raw(self, session: bytes, key: Blob, run: PolicyRun, digest: bytes) -> bytes:
        """Like :meth:`sign` but return the marshalled TPMT_SIGNATURE (for approvals)."""
        der = self.sign(session, key, run, digest)
        r, s = decode_dss_signature(der)
        marshalled: bytes = self._ecdsa_signature(
            r.to_bytes(32, "big"), s.to_bytes(32, "big")
        ).marshal()
        return marshalled

    def _ecdsa_signature(self, r: bytes, s: bytes) -> Any:
        t = self._t
        return t.TPMT_SIGNATURE(
            sigAlg=t.TPM2_ALG.ECDSA,
            signature=t.TPMU_SIGNATURE(
                ecdsa=t.TPMS_SIGNATURE_ECC(
                    hash=t.TPM2_ALG.SHA256,
                    signatureR=t.TPM2B_ECC_PARAMETER(r),
                    signatureS=t.TPM2B_ECC_PARAMETER(s),
                )
            ),
        )

    def _replay(self, ectx: ESAPI, sess: Any, run: PolicyRun) -> None:
        t = self._t
        nonce = ectx.trsess_get_nonce_tpm(sess)
        for auth in run.auths:
            try:
                r, s = decode_dss_signature(auth.signature)
                r_b, s_b = r.to_bytes(32, "big"), s.to_bytes(32, "big")
            except (ValueError, OverflowError) as e:
                raise TpmError("malformed policy signature (expected DER ECDSA P-256)") from e
            signer = ectx.load_external(
                t.TPM2B_PUBLIC(publicArea=t.TPMT_PUBLIC.unmarshal(auth.template)[0]),
                None,
                t.ESYS_TR.NULL,
            )
            try:
                ectx.policy_signed(
                    signer,
                    sess,
                    self._ecdsa_signature(r_b, s_b),
                    nonce_tpm=nonce,
                    cp_hash_a=auth.cp_hash,
                    policy_ref=auth.policy_ref,
                    expiration=auth.expiration,
                )
            finally:
                ectx.flush_context(signer)
        for digests in run.or_path:
            ectx.policy_or(sess, t.TPML_DIGEST(digests))
        ectx.policy_command_code(sess, t.TPM2_CC.Sign)
        if run.approval is not None:
            a = run.approval
            with self.loaded(ectx, a.authority) as handle:
                ticket = ectx.verify_signature(
                    handle,
                    t.TPM2B_DIGEST(policy.approval_digest(a.approved_policy)),
                    t.TPMT_SIGNATURE.unmarshal(a.signature)[0],
                )
                name = bytes(ectx.tr_get_name(handle))
            ectx.policy_authorize(sess, a.approved_policy, name, ticket)
        if run.top_or is not None:
            ectx.policy_or(sess, t.TPML_DIGEST(run.top_or))

    def _flush_handles(self, ectx: ESAPI, handle_types: list[Any]) -> int:
        t = self._t
        flushed = 0
        for ht in handle_types:
            _, data = ectx.get_capability(t.TPM2_CAP.HANDLES, int(ht) << 24, 64)
            for handle in list(data.data.handles):
                try:
                    ectx.flush_context(ectx.tr_from_tpmpublic(handle))
                    flushed += 1
                except t.TSS2_Exception as e:
                    log.debug("cannot flush stale handle %#x: %s", handle, e)
        return flushed

    def flush_stale_sessions(self) -> int:
        """Flush sessions and transient objects left in the TPM by an earlier run of the
        service (their saved contexts died with it). Assumes the service owns the TPM (or a
        resource manager that only shows this connection's). Returns how many were flushed."""
        t = self._t
        kinds = [t.TPM2_HT.TRANSIENT, t.TPM2_HT.LOADED_SESSION, t.TPM2_HT.SAVED_SESSION]
        n = self.run(lambda ectx: self._flush_handles(ectx, kinds), "flush stale sessions")
        if n:
            log.warning("flushed %d stale session(s)/object(s) left by an earlier run", n)
        return n
