"""Policy digests, names, cpHashA and aHash: plain Python checked against tpm2-pytss's own
marshalling (no TPM needed) and against the TPM 2.0 formulas."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tufrepo.errors import InputError
from tufrepo.hsm import policy
from tufrepo.hsm.policy import Quorum

tpm2_pytss = pytest.importorskip("tpm2_pytss")


def _keys(n: int) -> list[ec.EllipticCurvePublicKey]:
    return [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(n)]


def test_file_key_template_and_name_match_tpm2_pytss() -> None:
    key = _keys(1)[0]
    area = policy.file_key_template(key)
    t = tpm2_pytss.TPMT_PUBLIC.unmarshal(area)[0]
    assert t.marshal() == area
    assert bytes(t.get_name()) == policy.name_of(area)
    nums = key.public_numbers()
    assert int.from_bytes(bytes(t.unique.ecc.x), "big") == nums.x
    assert t.parameters.eccDetail.curveID == tpm2_pytss.TPM2_ECC.NIST_P256
    assert not t.objectAttributes & tpm2_pytss.TPMA_OBJECT.USERWITHAUTH


def test_point_of_roundtrip_and_garbage() -> None:
    key = _keys(1)[0]
    area = policy.ecc_public_area(key, policy.CREATED_KEY_ATTRS, b"\x01" * 32)
    x, y = policy.point_of(area)
    assert policy.public_area(x, y, policy.CREATED_KEY_ATTRS, b"\x01" * 32) == area
    with pytest.raises(InputError):
        policy.point_of(b"\x00" * 10)


@pytest.mark.parametrize(("n", "m", "levels"), [(1, 1, 1), (3, 2, 2), (5, 2, 3), (9, 1, 3)])
def test_or_tree_shape(n: int, m: int, levels: int) -> None:
    q = Quorum(templates=tuple(policy.file_key_template(k) for k in _keys(n)), threshold=m)
    tree = q.or_levels()
    assert len(tree) == levels
    assert all(len(level) <= 8 or i == 0 for i, level in enumerate(tree))
    assert len(tree[-1]) == 1
    for combo in q.combinations:
        d = q.branch_digest(combo)
        for group in q.or_path(combo):
            assert d in group
            assert 2 <= len(group) <= 8
            d = policy.policy_or(group)
        assert policy.policy_command_code(d) == q.digest()


def test_or_path_for_a_non_branch_does_not_reach_the_root() -> None:
    q = Quorum(templates=tuple(policy.file_key_template(k) for k in _keys(3)), threshold=2)
    d = q.branch_digest((0,))  # one signature on a 2-of-3 key
    assert all(d not in group for group in q.or_path((0,)))


def test_quorum_rejects_bad_thresholds_and_duplicates() -> None:
    t = policy.file_key_template(_keys(1)[0])
    with pytest.raises(InputError):
        Quorum(templates=(t,), threshold=2)
    with pytest.raises(InputError):
        Quorum(templates=(t,), threshold=0)
    with pytest.raises(InputError):
        Quorum(templates=(t, t), threshold=1)
    with pytest.raises(InputError):
        Quorum(templates=(), threshold=1)
    many = tuple(policy.file_key_template(k) for k in _keys(14))
    with pytest.raises(InputError, match="combinations"):
        Quorum(templates=many, threshold=7)  # 3432 branches
    Quorum(templates=many[:10], threshold=5)  # 252: fine


def test_cp_hash_layout() -> None:
    name = b"\x00\x0b" + b"\x11" * 32
    digest = b"\x22" * 32
    expected = policy.sha256(
        struct.pack(">I", 0x15D),
        name,
        b"\x00\x20" + digest,
        bytes.fromhex("0018000b"),
        bytes.fromhex("8024400000070000"),
    )
    assert policy.sign_cp_hash(name, digest) == expected
    assert policy.sign_cp_hash(name, b"\x23" * 32) != expected


@pytest.mark.parametrize("nonce", [b"", b"\x01" * 8, b"\x01" * 15])
def test_a_hash_refuses_empty_or_short_nonce(nonce: bytes) -> None:
    with pytest.raises(InputError, match="nonceTPM"):
        policy.a_hash(nonce, -60, b"\x00" * 32)


def test_a_hash_binds_every_field() -> None:
    nonce, cp = b"\x05" * 32, b"\x06" * 32
    base = policy.a_hash(nonce, -60, cp)
    assert base == policy.sha256(nonce, struct.pack(">i", -60), cp)
    assert base != policy.a_hash(b"\x07" * 32, -60, cp)
    assert base != policy.a_hash(nonce, -61, cp)
    assert base != policy.a_hash(nonce, -60, b"\x08" * 32)
    assert base != policy.a_hash(nonce, -60, cp, b"ref")


def test_optional_dependencies_are_imported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, securesystemslib.signer\n"  # (its KMS signers may load grpc themselves)
        "sys.modules['grpc'] = None; sys.modules['tpm2_pytss'] = None\n"
        "import tufrepo.signers as s; s.register()\n"
        "import tufrepo.cli.hsm, tufrepo.hsm, tufrepo.signers.tpmhsm\n"
        "print('imported without grpc and tpm2_pytss')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "imported without" in out.stdout


def test_missing_optional_dependencies_give_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from tufrepo.errors import SignerError
    from tufrepo.hsm.rpc import load_grpc
    from tufrepo.hsm.tpm import load_tpm2_pytss

    monkeypatch.setitem(sys.modules, "grpc", None)
    monkeypatch.setitem(sys.modules, "tpm2_pytss", None)
    with pytest.raises(SignerError, match=r"tufrepo\[tpm\]"):
        load_grpc()
    with pytest.raises(SignerError, match=r"tufrepo\[tpm\]"):
        load_tpm2_pytss()
