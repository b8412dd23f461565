"""The TPM HSM against swtpm: the seed's threat table, bad requests and the registry
(a store whose certificates clients check themselves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tpm_helpers import (
    DIGEST,
    client,
    fks,
    key_1of1,
    key_record,
    new_file_keys,
    password_sign,
    service,
    sign_raw,
    state_dir,
    swtpm,
    swtpm_available,
    swtpm_running,
    tpm,
    verify,
)

from tufrepo.errors import InputError, SignerError
from tufrepo.hsm import HsmClient, RunningService
from tufrepo.hsm import policy as pol
from tufrepo.hsm.client import KeyInfo, authorize
from tufrepo.hsm.registry import make_certificate, pem_of, verify_chain
from tufrepo.hsm.rpc import RpcError
from tufrepo.hsm.state import KeyRecord, State
from tufrepo.hsm.tpm import PolicyRun, PolicySignedAuth, Tpm, TpmError

__all__ = ["client", "fks", "key_1of1", "service", "state_dir", "swtpm", "tpm"]  # fixtures

pytestmark = [
    pytest.mark.tpm,
    pytest.mark.skipif(not swtpm_available(), reason="needs swtpm, tpm2-pytss and grpcio"),
]

RC: Any = pytest.importorskip("tpm2_pytss").TPM2_RC


# --- the seed's threat table ----------------------------------------------------------------


def test_threat_password_only(client: HsmClient, key_1of1: KeyInfo, tmp_path: Path) -> None:
    """The CI password leaks; the encrypted file key does not: no signature."""
    from tufrepo.signers.filekey import generate_filekey, load_filekey

    path = tmp_path / "attacker.key"
    generate_filekey(path, "the-ci-password")  # same password, different key
    with pytest.raises(RpcError, match="not a signer"):
        sign_raw(client, key_1of1, [load_filekey(path, "the-ci-password")])


def test_threat_server_state_and_tpm(
    tpm: Tpm, client: HsmClient, service: RunningService, key_1of1: KeyInfo, fks: Any
) -> None:
    """The server (state directory + TPM access) is compromised: no signature."""
    record = key_record(service, key_1of1.key_id)
    attacker = new_file_keys(1)[0]
    # (1) no authValue path
    with pytest.raises(TpmError) as e:
        password_sign(tpm, record.key, b"")
    assert e.value.rc == RC.AUTH_UNAVAILABLE
    # (2) rewrite the stored policy to the attacker's file key: the TPM's authPolicy wins
    tampered = json.loads(json.dumps(record.to_json()))
    tampered["policies"][0]["signers"] = [pem_of(attacker.public_key())]
    tampered["policies"][0]["templates"] = [pol.file_key_template(attacker.public_key()).hex()]
    state = State(service.service.state.root)

    state.save_key(KeyRecord.from_json(tampered))
    try:
        with pytest.raises(RpcError) as e2:
            sign_raw(client, key_1of1, [attacker])
        assert e2.value.tpm_rc in (RC.VALUE, RC.POLICY_FAIL)
    finally:
        state.save_key(record)
    verify(key_1of1, client.sign_digest(key_1of1.key_id, DIGEST, [fks[0]]))


def test_threat_state_in_another_tpm(
    tmp_path: Path, service: RunningService, key_1of1: KeyInfo
) -> None:
    """The state directory alone (copied to another TPM) cannot even be loaded."""
    record = key_record(service, key_1of1.key_id)
    with swtpm_running(tmp_path / "other") as other:
        t = Tpm(other.tcti)
        try:
            with pytest.raises(TpmError) as e:
                password_sign(t, record.key, b"")
            assert e.value.rc == RC.INTEGRITY
        finally:
            t.close()


def test_threat_password_and_server(
    tpm: Tpm, service: RunningService, key_1of1: KeyInfo, tmp_path: Path
) -> None:
    """Password + server state + TPM, but not the encrypted file key file: no signature."""
    from tufrepo.signers.filekey import generate_filekey, load_filekey

    record = key_record(service, key_1of1.key_id)
    with pytest.raises(TpmError) as e:  # the password as an authValue: no such path
        password_sign(tpm, record.key, b"the-ci-password")
    assert e.value.rc == RC.AUTH_UNAVAILABLE
    generate_filekey(tmp_path / "k", "the-ci-password")
    own = load_filekey(tmp_path / "k", "the-ci-password")
    context, nonce = tpm.start_session()
    (auth,) = authorize([own], nonce, key_1of1.name, DIGEST)
    run = PolicyRun(
        auths=[
            PolicySignedAuth(
                template=pol.file_key_template(own.public_key()),
                signature=bytes.fromhex(auth["signature"]),
                expiration=auth["expiration"],
                cp_hash=pol.sign_cp_hash(key_1of1.name, DIGEST),
            )
        ],
        or_path=[],
    )
    with pytest.raises(TpmError) as e2:
        tpm.sign(context, record.key, run, DIGEST)
    assert e2.value.rc == RC.POLICY_FAIL


# --- registry -------------------------------------------------------------------------------


def test_registry_chain_is_checked_client_side(client: HsmClient) -> None:
    root, mid, leaf, rogue = new_file_keys(4)
    for k in (root, mid, leaf, rogue):
        client.call("RegistryPut", {"pem": pem_of(k.public_key()), "label": "k"})
    client.call("RegistryCertify", make_certificate(root, mid.public_key()))
    client.call("RegistryCertify", make_certificate(mid, leaf.public_key()))
    reg = client.call("RegistryList", {})
    from tufrepo.hsm.registry import fingerprint

    fp = {k: fingerprint(k.public_key()) for k in (root, mid, leaf, rogue)}
    assert verify_chain(reg, fp[leaf], {fp[root]}) == [fp[leaf], fp[mid], fp[root]]
    # a certificate the "server" forged (rogue's name as issuer, bad signature) is ignored
    forged = make_certificate(rogue, leaf.public_key()) | {"issuer": fp[root]}
    forged["subject"] = fp[rogue]
    client.call("RegistryCertify", forged)
    with pytest.raises(SignerError, match="no valid vouching chain"):
        verify_chain(client.call("RegistryList", {}), fp[rogue], {fp[root]})
    with pytest.raises(RpcError) as e:
        client.call("RegistryPut", {"pem": "not a key"})
    assert e.value.code == "INVALID_ARGUMENT"


def test_bad_requests(client: HsmClient, fks: Any) -> None:
    begun = client.call("BeginImport", {"signers": [pem_of(fks[0].public_key())], "threshold": 1})
    with pytest.raises(RpcError, match="import not finished"):
        client.call("PrepareSign", {"key_id": begun["key_id"]})
    area = pol.ecc_public_area(fks[0].public_key(), pol.IMPORTED_KEY_ATTRS, b"\x00" * 32)
    with pytest.raises(RpcError, match="not a P-256 signing key with this key's policy"):
        client.call(
            "ImportKey",
            {
                "key_id": begun["key_id"],
                "public": pol.tpm2b(area).hex(),
                "duplicate": "",
                "seed": "",
            },
        )
    for method, req in [
        ("CreateKey", {"signers": ["x"], "threshold": 1}),
        ("CreateKey", {"signers": [], "threshold": 1}),
        ("PrepareSign", {"key_id": "0" * 32, "target": "other"}),
        ("Sign", {"key_id": "0" * 32}),
    ]:
        with pytest.raises(RpcError):
            client.call(method, req)
    with pytest.raises(InputError):
        pol.a_hash(b"", 0, b"\x00" * 32)


# --- a lying service: the client's own checks ---------------------------------------------


def test_client_refuses_a_policy_it_did_not_ask_for(client: HsmClient, fks: Any) -> None:
    real_call = client.call
    stranger = new_file_keys(1)[0]

    def lying(method: str, request: dict[str, Any]) -> dict[str, Any]:
        if method == "CreateKey":  # the service swaps in a signer of its own
            request = {**request, "signers": [pem_of(stranger.public_key())]}
        return real_call(method, request)

    client.call = lying  # type: ignore[method-assign]
    try:
        with pytest.raises(SignerError, match="other than the one asked for"):
            client.create_key([fks[0].public_key()], 1)
    finally:
        del client.call


def test_client_refuses_a_key_whose_authority_is_not_gated(
    client: HsmClient, service: RunningService, tpm: Tpm, fks: Any
) -> None:
    """A service that made the key's authority with a policy of its own (so that it could
    approve any signer later): the client sees it in the public areas and refuses."""
    from tufrepo.hsm.state import KeyPolicy

    honest = pol.Quorum(templates=(pol.file_key_template(fks[0].public_key()),), threshold=1)
    own = new_file_keys(1)[0]
    rogue = pol.Quorum(templates=(pol.file_key_template(own.public_key()),), threshold=1)
    authority = tpm.create_key(rogue.digest())
    key = tpm.create_key(pol.key_auth_policy(honest, pol.name_of(authority.public[2:])))
    policy0 = KeyPolicy(
        signers=[pem_of(fks[0].public_key())], templates=list(honest.templates), threshold=1
    )
    record = KeyRecord(
        key_id="ab" * 16, imported=False, key=key, authority=authority, policies=[policy0]
    )
    service.service.state.save_key(record)
    with pytest.raises(SignerError, match="authority is not gated"):
        client.sign_digest(record.key_id, DIGEST, [fks[0]])
