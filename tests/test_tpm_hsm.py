"""The TPM HSM against swtpm: signing, quorums, import, add-trusted, and every refusal the
issue lists, asserting the TPM's own response codes (threat table: test_tpm_threats.py).

One swtpm and one service per module (nothing here restarts them; see test_tpm_restart.py).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tpm_helpers import (
    DIGEST,
    authorize_digest,
    client,
    fks,
    key_1of1,
    key_2of3,
    key_record,
    new_file_keys,
    password_sign,
    service,
    sign_raw,
    state_dir,
    swtpm,
    swtpm_available,
    tpm,
    verify,
)

from tufrepo.errors import InputError, SignerError
from tufrepo.hsm import HsmClient, RunningService
from tufrepo.hsm import policy as pol
from tufrepo.hsm.client import KeyInfo, authorize
from tufrepo.hsm.registry import pem_of
from tufrepo.hsm.rpc import RpcError
from tufrepo.hsm.tpm import PolicyRun, PolicySignedAuth, Tpm, TpmError

__all__ = ["client", "fks", "key_1of1", "key_2of3", "service", "state_dir", "swtpm", "tpm"]

pytestmark = [
    pytest.mark.tpm,
    pytest.mark.skipif(not swtpm_available(), reason="needs swtpm, tpm2-pytss and grpcio"),
]

RC: Any = pytest.importorskip("tpm2_pytss").TPM2_RC


# --- signing ------------------------------------------------------------------------------


def test_sign_1_of_1(client: HsmClient, key_1of1: KeyInfo, fks: Any) -> None:
    der = client.sign_digest(key_1of1.key_id, DIGEST, [fks[0]], key_1of1.public_key)
    verify(key_1of1, der)


@pytest.mark.parametrize("pair", [(0, 1), (0, 2), (1, 2)])
def test_sign_2_of_3_any_pair(
    client: HsmClient, key_2of3: KeyInfo, fks: Any, pair: tuple[int, int]
) -> None:
    der = client.sign_digest(key_2of3.key_id, DIGEST, [fks[i] for i in pair])
    verify(key_2of3, der)


def test_created_key_attributes(key_2of3: KeyInfo) -> None:
    area = key_2of3.public[2:]
    attrs = int.from_bytes(area[4:8], "big")
    assert attrs & pol.FIXEDTPM
    assert attrs & pol.FIXEDPARENT
    assert not attrs & pol.USERWITHAUTH


def test_nested_or_quorum_2_of_6(client: HsmClient) -> None:
    keys = new_file_keys(6)  # 15 branches: two OR levels
    info = client.create_key([k.public_key() for k in keys], 2)
    verify(info, client.sign_digest(info.key_id, DIGEST, [keys[4], keys[5]]))


def test_import_wraps_client_side(client: HsmClient, fks: Any, state_dir: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    info = client.import_key(private, [fks[1].public_key()], 1)
    verify(info, client.sign_digest(info.key_id, DIGEST, [fks[1]], private.public_key()))
    # nothing in the service's state reveals the private scalar
    scalar = private.private_numbers().private_value.to_bytes(32, "big").hex()
    assert scalar not in (state_dir / "keys" / f"{info.key_id}.json").read_text()


def test_import_refuses_unpinned_storage_key(client: HsmClient, fks: Any) -> None:
    with pytest.raises(SignerError, match="pinned"):
        client.import_key(ec.generate_private_key(ec.SECP256R1()), [fks[0].public_key()], 1, "00")


def test_add_trusted_keeps_the_key(client: HsmClient, fks: Any) -> None:
    info = client.create_key([fks[0].public_key(), fks[1].public_key()], 2)
    newcomer = new_file_keys(1)[0]
    with pytest.raises(SignerError, match="cannot meet"):
        client.sign_digest(info.key_id, DIGEST, [newcomer, fks[0]])
    signers = [fks[0].public_key(), fks[1].public_key(), newcomer.public_key()]
    with pytest.raises(SignerError):  # one initial signer cannot approve a 2-of-2 change
        client.add_trusted(info.key_id, signers, 2, [fks[0]])
    index = client.add_trusted(info.key_id, signers, 2, [fks[0], fks[1]])
    assert index == 1
    after = client.key_info(info.key_id)
    assert after.public == info.public  # same TPM key, same name
    verify(info, client.sign_digest(info.key_id, DIGEST, [newcomer, fks[1]]))


def test_forged_approval_is_refused_by_the_tpm(
    client: HsmClient, service: RunningService, fks: Any
) -> None:
    info = client.create_key([fks[0].public_key()], 1)
    attacker = new_file_keys(1)[0]
    record = key_record(service, info.key_id)
    forged = pol.Quorum(templates=(pol.file_key_template(attacker.public_key()),), threshold=1)
    record.policies.append(
        type(record.policies[0])(
            signers=[pem_of(attacker.public_key())],
            templates=list(forged.templates),
            threshold=1,
            approval=record.policies[0].approval or _fake_tpm_signature(),
        )
    )
    service.service.state.save_key(record)
    with pytest.raises(RpcError) as e:
        client.sign_digest(info.key_id, DIGEST, [attacker])
    assert e.value.tpm_rc == RC.SIGNATURE  # TPM2_VerifySignature of the approval


def _fake_tpm_signature() -> bytes:
    import tpm2_pytss as t

    return t.TPMT_SIGNATURE(
        sigAlg=t.TPM2_ALG.ECDSA,
        signature=t.TPMU_SIGNATURE(
            ecdsa=t.TPMS_SIGNATURE_ECC(
                hash=t.TPM2_ALG.SHA256,
                signatureR=t.TPM2B_ECC_PARAMETER(b"\x01" * 32),
                signatureS=t.TPM2B_ECC_PARAMETER(b"\x02" * 32),
            )
        ),
    ).marshal()


# --- refusals by the TPM --------------------------------------------------------------------


@pytest.mark.parametrize("auth", [b"", b"the-ci-password"])
def test_password_or_auth_value_cannot_sign(
    tpm: Tpm, service: RunningService, key_1of1: KeyInfo, auth: bytes
) -> None:
    blob = key_record(service, key_1of1.key_id).key
    with pytest.raises(TpmError) as e:
        password_sign(tpm, blob, auth)
    assert e.value.rc == RC.AUTH_UNAVAILABLE


def test_session_without_policy_signed_is_refused(
    tpm: Tpm, service: RunningService, key_1of1: KeyInfo
) -> None:
    blob = key_record(service, key_1of1.key_id).key
    context, _ = tpm.start_session()
    with pytest.raises(TpmError) as e:
        tpm.sign(context, blob, PolicyRun(auths=[], or_path=[]), DIGEST)
    assert e.value.rc == RC.POLICY_FAIL


def test_replayed_authorization_on_a_new_session(
    client: HsmClient, key_1of1: KeyInfo, fks: Any
) -> None:
    old = client.call("PrepareSign", {"key_id": key_1of1.key_id})
    auths = authorize([fks[0]], bytes.fromhex(old["nonce"]), key_1of1.name, DIGEST)
    new = client.call("PrepareSign", {"key_id": key_1of1.key_id})
    request = {"key_id": key_1of1.key_id, "digest": DIGEST.hex(), "policy": 0, "auths": auths}
    with pytest.raises(RpcError) as e:
        client.call("Sign", {**request, "session_id": new["session_id"]})
    assert e.value.tpm_rc == RC.SIGNATURE
    client.call("Sign", {**request, "session_id": old["session_id"]})  # its own session: fine
    with pytest.raises(RpcError) as e2:  # and never twice
        client.call("Sign", {**request, "session_id": old["session_id"]})
    assert e2.value.session_lost


def test_client_refuses_an_empty_nonce_and_the_tpm_an_empty_nonce_authorization(
    client: HsmClient, key_1of1: KeyInfo, fks: Any
) -> None:
    real_call = client.call

    def lying_server(method: str, request: dict[str, Any]) -> dict[str, Any]:
        response = real_call(method, request)
        return {**response, "nonce": ""} if method == "PrepareSign" else response

    client.call = lying_server  # type: ignore[method-assign]
    try:
        with pytest.raises(InputError, match="nonceTPM is 0 bytes"):
            client.sign_digest(key_1of1.key_id, DIGEST, [fks[0]])
    finally:
        del client.call
    # an authorisation over an empty nonce (replayable forever if the TPM were given an
    # empty nonce): the service passes the session's nonce, so the TPM refuses it
    prep = client.call("PrepareSign", {"key_id": key_1of1.key_id})
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    a_hash = pol.sha256(
        b"", (-60).to_bytes(4, "big", signed=True), pol.sign_cp_hash(key_1of1.name, DIGEST)
    )
    sig = fks[0].sign(a_hash, ec.ECDSA(Prehashed(hashes.SHA256())))
    auth = {"signer": pem_of(fks[0].public_key()), "signature": sig.hex(), "expiration": -60}
    with pytest.raises(RpcError) as e:
        client.call(
            "Sign",
            {
                "key_id": key_1of1.key_id,
                "session_id": prep["session_id"],
                "digest": DIGEST.hex(),
                "auths": [auth],
            },
        )
    assert e.value.tpm_rc == RC.SIGNATURE


def test_authorization_for_digest_a_cannot_sign_b(
    client: HsmClient, key_1of1: KeyInfo, fks: Any
) -> None:
    other = hashlib.sha256(b"evil").digest()
    with pytest.raises(RpcError) as e:
        sign_raw(client, key_1of1, [fks[0]], digest=other, authorized_digest=DIGEST)
    assert e.value.tpm_rc == RC.SIGNATURE


def test_malicious_server_cannot_move_cphash(
    tpm: Tpm, service: RunningService, key_1of1: KeyInfo, fks: Any
) -> None:
    """A server passing the authorised cpHash (digest A) but signing B: TPM2_Sign refuses."""
    record = key_record(service, key_1of1.key_id)
    context, nonce = tpm.start_session()
    cp_a = pol.sign_cp_hash(key_1of1.name, DIGEST)
    (auth,) = authorize([fks[0]], nonce, key_1of1.name, DIGEST)
    run = PolicyRun(
        auths=[
            PolicySignedAuth(
                template=record.policies[0].templates[0],
                signature=bytes.fromhex(auth["signature"]),
                expiration=auth["expiration"],
                cp_hash=cp_a,
            )
        ],
        or_path=[],
        top_or=[record.policies[0].quorum.digest(), authorize_digest(record)],
    )
    with pytest.raises(TpmError) as e:
        tpm.sign(context, record.key, run, hashlib.sha256(b"evil").digest())
    assert e.value.rc == RC.POLICY_FAIL


def test_unregistered_file_key_is_refused(
    tpm: Tpm, client: HsmClient, service: RunningService, key_1of1: KeyInfo
) -> None:
    stranger = new_file_keys(1)[0]
    with pytest.raises(RpcError, match="not a signer") as e:
        sign_raw(client, key_1of1, [stranger])
    assert e.value.code == "INVALID_ARGUMENT"
    # the service's check bypassed: the TPM itself refuses the stranger's PolicySigned
    record = key_record(service, key_1of1.key_id)
    context, nonce = tpm.start_session()
    (auth,) = authorize([stranger], nonce, key_1of1.name, DIGEST)
    run = PolicyRun(
        auths=[
            PolicySignedAuth(
                template=pol.file_key_template(stranger.public_key()),
                signature=bytes.fromhex(auth["signature"]),
                expiration=auth["expiration"],
                cp_hash=pol.sign_cp_hash(key_1of1.name, DIGEST),
            )
        ],
        or_path=[],
        top_or=[record.policies[0].quorum.digest(), authorize_digest(record)],
    )
    with pytest.raises(TpmError) as e2:
        tpm.sign(context, record.key, run, DIGEST)
    assert e2.value.rc == RC.VALUE  # PolicyOR: the session's digest is in no branch


def test_expired_authorization_is_refused(client: HsmClient, key_1of1: KeyInfo, fks: Any) -> None:
    with pytest.raises(RpcError) as e:
        sign_raw(client, key_1of1, [fks[0]], expiration=-1, before_sign=lambda: time.sleep(1.5))
    assert e.value.tpm_rc == RC.EXPIRED


def test_one_signature_on_2_of_3_is_refused_by_the_tpm(
    client: HsmClient, key_2of3: KeyInfo, fks: Any
) -> None:
    with pytest.raises(SignerError, match="cannot meet"):  # the client's own check
        client.sign_digest(key_2of3.key_id, DIGEST, [fks[2]])
    with pytest.raises(RpcError) as e:  # bypassed: the TPM refuses
        sign_raw(client, key_2of3, [fks[2]])
    assert e.value.tpm_rc == RC.VALUE


def test_malformed_policy_signature(client: HsmClient, key_1of1: KeyInfo, fks: Any) -> None:
    prep = client.call("PrepareSign", {"key_id": key_1of1.key_id})
    (auth,) = authorize([fks[0]], bytes.fromhex(prep["nonce"]), key_1of1.name, DIGEST)
    for bad, code in (
        ("zz", "INVALID_ARGUMENT"),
        ("", "INVALID_ARGUMENT"),
        ("30020500", "INVALID_ARGUMENT"),
        ("3006020101020101", "PERMISSION_DENIED"),  # well-formed (r=s=1): the TPM refuses
    ):
        with pytest.raises(RpcError) as e:
            client.call(
                "Sign",
                {
                    "key_id": key_1of1.key_id,
                    "session_id": prep["session_id"],
                    "digest": DIGEST.hex(),
                    "auths": [{**auth, "signature": bad}],
                },
            )
        assert e.value.code == code
        if code == "PERMISSION_DENIED":
            assert e.value.tpm_rc == RC.SIGNATURE
        prep = client.call("PrepareSign", {"key_id": key_1of1.key_id})


def test_unknown_and_malformed_key_ids(client: HsmClient, fks: Any) -> None:
    with pytest.raises(RpcError, match="unknown key id") as e:
        client.sign_digest("0" * 32, DIGEST, [fks[0]])
    assert e.value.code == "NOT_FOUND"
    with pytest.raises(RpcError, match="malformed key id"):
        client.key_info("../../etc/passwd")


def test_client_refuses_a_key_that_is_not_the_expected_one(
    client: HsmClient, key_1of1: KeyInfo, fks: Any
) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(SignerError, match="not the expected public key"):
        client.sign_digest(key_1of1.key_id, DIGEST, [fks[0]], other)


def test_concurrent_prepare_sign_does_not_exhaust_the_tpm(
    client: HsmClient, key_1of1: KeyInfo, fks: Any
) -> None:
    """More pending sessions than a raw TPM can hold loaded (3): all still sign."""
    preps = [client.call("PrepareSign", {"key_id": key_1of1.key_id}) for _ in range(8)]
    for prep in reversed(preps):
        auths = authorize([fks[0]], bytes.fromhex(prep["nonce"]), key_1of1.name, DIGEST)
        r = client.call(
            "Sign",
            {
                "key_id": key_1of1.key_id,
                "session_id": prep["session_id"],
                "digest": DIGEST.hex(),
                "auths": auths,
            },
        )
        verify(key_1of1, bytes.fromhex(r["signature"]))


def test_concurrent_clients(service: RunningService, key_2of3: KeyInfo, fks: Any) -> None:
    """Several clients PrepareSign and Sign at once: every signature is made and valid."""
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> bytes:
        with HsmClient(f"127.0.0.1:{service.port}", timeout=30) as c:
            return c.sign_digest(key_2of3.key_id, DIGEST, [fks[i % 3], fks[(i + 1) % 3]])

    with ThreadPoolExecutor(6) as pool:
        signatures = list(pool.map(work, range(12)))
    for der in signatures:
        verify(key_2of3, der)


def test_many_pending_sessions_evict_the_oldest_cleanly(
    client: HsmClient, service: RunningService, key_1of1: KeyInfo, fks: Any
) -> None:
    """More PrepareSign calls than max_pending: the oldest sessions are flushed (a clear
    session-lost error for them), the TPM never runs out of session slots."""
    limit = service.service.max_pending
    preps = [client.call("PrepareSign", {"key_id": key_1of1.key_id}) for _ in range(limit + 8)]

    def sign(prep: dict[str, Any]) -> dict[str, Any]:
        auths = authorize([fks[0]], bytes.fromhex(prep["nonce"]), key_1of1.name, DIGEST)
        return client.call(
            "Sign",
            {
                "key_id": key_1of1.key_id,
                "session_id": prep["session_id"],
                "digest": DIGEST.hex(),
                "auths": auths,
            },
        )

    with pytest.raises(RpcError) as e:
        sign(preps[0])
    assert e.value.session_lost
    verify(key_1of1, bytes.fromhex(sign(preps[-1])["signature"]))
    verify(key_1of1, client.sign_digest(key_1of1.key_id, DIGEST, [fks[0]]))
