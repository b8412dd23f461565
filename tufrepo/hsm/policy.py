"""TPM 2.0 structures and policy digests, computed in plain Python (no TPM, no I/O).

Both sides use this module: the service to know which PolicyOR lists to replay, the client
to compute cpHashA and aHash itself and to check that the key it is about to authorise is
the key it expects (same public point, same attributes, same authPolicy).

Everything here follows TPM 2.0 Library Part 2 (marshalling) and Part 3 (policy commands):

* PolicySigned: ``d = H(d ‖ CC_PolicySigned ‖ authObject.name)``, then ``d = H(d ‖ policyRef)``
* PolicyOR: ``d = H(0…0 ‖ CC_PolicyOR ‖ digest_1 ‖ … ‖ digest_n)`` with 2 ≤ n ≤ 8
* PolicyCommandCode: ``d = H(d ‖ CC_PolicyCommandCode ‖ code)``
* PolicyAuthorize: ``d = H(0…0 ‖ CC_PolicyAuthorize ‖ keySign.name)``, then ``H(d ‖ policyRef)``
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tufrepo.errors import InputError

# TPM constants (Part 2)
ALG_ECC = 0x0023
ALG_SHA256 = 0x000B
ALG_NULL = 0x0010
ALG_ECDSA = 0x0018
ECC_NIST_P256 = 0x0003
CC_SIGN = 0x0000015D
CC_POLICY_SIGNED = 0x00000160
CC_POLICY_OR = 0x00000171
CC_POLICY_COMMAND_CODE = 0x0000016C
CC_POLICY_AUTHORIZE = 0x0000016A
ST_HASHCHECK = 0x8024
RH_NULL = 0x40000007

# TPMA_OBJECT bits
FIXEDTPM = 0x00000002
FIXEDPARENT = 0x00000010
SENSITIVEDATAORIGIN = 0x00000020
USERWITHAUTH = 0x00000040
SIGN_ENCRYPT = 0x00040000

CREATED_KEY_ATTRS = FIXEDTPM | FIXEDPARENT | SENSITIVEDATAORIGIN | SIGN_ENCRYPT
"""A key created in the TPM: cannot leave it, no authValue path (USERWITHAUTH clear)."""
IMPORTED_KEY_ATTRS = SIGN_ENCRYPT
"""TPM2_Import requires FIXEDTPM/FIXEDPARENT clear; the policy still only allows Sign."""
FILE_KEY_ATTRS = SIGN_ENCRYPT
"""The pinned template of a file key loaded with LoadExternal (public part only)."""

MAX_OR_BRANCHES = 8
MAX_COMBINATIONS = 1024
"""Quorums with more M-of-N combinations than this are refused (each is a policy branch)."""
MIN_NONCE_LEN = 16
DIGEST_LEN = 32


def sha256(*parts: bytes) -> bytes:
    """SHA-256 over the concatenation of ``parts``."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def tpm2b(data: bytes) -> bytes:
    """Marshal a TPM2B: a 16-bit big-endian size and the bytes."""
    return struct.pack(">H", len(data)) + data


def ecc_point(public_key: ec.EllipticCurvePublicKey) -> tuple[bytes, bytes]:
    """The (x, y) coordinates of a P-256 public key as 32-byte big-endian strings."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise InputError(f"only P-256 keys are supported, not {public_key.curve.name}")
    nums = public_key.public_numbers()
    return nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")


def ecc_public_area(
    public_key: ec.EllipticCurvePublicKey, attributes: int, auth_policy: bytes = b""
) -> bytes:
    """Marshal a TPMT_PUBLIC for an ECDSA-SHA256 P-256 key (the bytes the name hashes)."""
    x, y = ecc_point(public_key)
    return public_area(x, y, attributes, auth_policy)


def public_area(x: bytes, y: bytes, attributes: int, auth_policy: bytes = b"") -> bytes:
    """Marshal a TPMT_PUBLIC for an ECDSA-SHA256 P-256 key from its coordinates
    (empty coordinates make a TPM2_Create template)."""
    return (
        struct.pack(">HHI", ALG_ECC, ALG_SHA256, attributes)
        + tpm2b(auth_policy)
        + struct.pack(">H", ALG_NULL)  # symmetric: none (a signing key)
        + struct.pack(">HH", ALG_ECDSA, ALG_SHA256)  # scheme
        + struct.pack(">HH", ECC_NIST_P256, ALG_NULL)  # curve, kdf
        + tpm2b(x)
        + tpm2b(y)
    )


def point_of(area: bytes) -> tuple[bytes, bytes]:
    """The (x, y) at the end of a P-256 TPMT_PUBLIC made by :func:`public_area`."""
    if len(area) < 68 or area[-68:-66] != b"\x00\x20" or area[-34:-32] != b"\x00\x20":
        raise InputError("not the public area of a P-256 key")
    return area[-66:-34], area[-32:]


def name_of(public_area: bytes) -> bytes:
    """The TPM name of an object: nameAlg ‖ SHA256(TPMT_PUBLIC)."""
    return struct.pack(">H", ALG_SHA256) + sha256(public_area)


def file_key_template(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The pinned TPMT_PUBLIC of a policy signer (file key)."""
    return ecc_public_area(public_key, FILE_KEY_ATTRS)


def load_pem_public(pem: str) -> ec.EllipticCurvePublicKey:
    """Parse a PEM P-256 public key, or raise InputError."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeError) as e:
        raise InputError("not a PEM public key") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError("file keys must be ECDSA P-256 public keys")
    return key


# --- policy digests ---------------------------------------------------------------------


def policy_signed(digest: bytes, signer_name: bytes, policy_ref: bytes = b"") -> bytes:
    """Extend ``digest`` with PolicySigned(signer)."""
    d = sha256(digest, struct.pack(">I", CC_POLICY_SIGNED), signer_name)
    return sha256(d, policy_ref)


def policy_or(digests: list[bytes]) -> bytes:
    """The digest after PolicyOR over ``digests`` (2..8 of them)."""
    if not 2 <= len(digests) <= MAX_OR_BRANCHES:
        raise ValueError(f"PolicyOR takes 2..8 digests, not {len(digests)}")
    return sha256(bytes(DIGEST_LEN), struct.pack(">I", CC_POLICY_OR), *digests)


def policy_command_code(digest: bytes, code: int = CC_SIGN) -> bytes:
    """Extend ``digest`` with PolicyCommandCode(code)."""
    return sha256(digest, struct.pack(">II", CC_POLICY_COMMAND_CODE, code))


def policy_authorize(authority_name: bytes, policy_ref: bytes = b"") -> bytes:
    """The digest after PolicyAuthorize(keySign=authority)."""
    d = sha256(bytes(DIGEST_LEN), struct.pack(">I", CC_POLICY_AUTHORIZE), authority_name)
    return sha256(d, policy_ref)


@dataclass(frozen=True, kw_only=True)
class Quorum:
    """M-of-N file keys, in a fixed order (the order of ``templates``)."""

    templates: tuple[bytes, ...]
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.templates)
        if n == 0:
            raise InputError("a quorum needs at least one file key")
        if len(set(self.templates)) != n:
            raise InputError("the same file key is listed twice")
        if not 1 <= self.threshold <= n:
            raise InputError(f"threshold {self.threshold} is not between 1 and {n}")
        if math.comb(n, self.threshold) > MAX_COMBINATIONS:
            raise InputError(
                f"{self.threshold} of {n} has {math.comb(n, self.threshold)} combinations "
                f"(at most {MAX_COMBINATIONS} policy branches)"
            )

    @property
    def combinations(self) -> list[tuple[int, ...]]:
        """Every set of ``threshold`` signer indexes, ascending: one policy branch each."""
        return list(itertools.combinations(range(len(self.templates)), self.threshold))

    def branch_digest(self, indexes: tuple[int, ...]) -> bytes:
        """The digest after PolicySigned by each signer of ``indexes``, in that order."""
        d = bytes(DIGEST_LEN)
        for i in indexes:
            d = policy_signed(d, name_of(self.templates[i]))
        return d

    def or_levels(self) -> list[list[bytes]]:
        """The OR tree, bottom-up: level 0 = branch digests, each next level = the digests
        of the ≤ 8-wide PolicyOR nodes over the level below; the last level has one digest."""
        levels = [[self.branch_digest(c) for c in self.combinations]]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append(
                [_or_node(below[i : i + MAX_OR_BRANCHES]) for i in range(0, len(below), 8)]
            )
        return levels

    def or_path(self, indexes: tuple[int, ...]) -> list[list[bytes]]:
        """The PolicyOR lists to replay, bottom-up, after the PolicySigned of ``indexes``.

        A set of signers that is not a branch gets the path of branch 0: the TPM then
        refuses it (its digest is in no list), which is the point.
        """
        combos = self.combinations
        pos = combos.index(indexes) if indexes in combos else 0
        path: list[list[bytes]] = []
        for level in self.or_levels()[:-1]:
            start = pos - pos % MAX_OR_BRANCHES
            group = level[start : start + MAX_OR_BRANCHES]
            if len(group) > 1:
                path.append(group)
            pos //= MAX_OR_BRANCHES
        return path

    def digest(self) -> bytes:
        """The quorum's digest followed by PolicyCommandCode(TPM2_CC_Sign)."""
        return policy_command_code(self.or_levels()[-1][0])


def _or_node(group: list[bytes]) -> bytes:
    """A ≤ 8-wide OR node; a group of one is passed through (PolicyOR needs two)."""
    return group[0] if len(group) == 1 else policy_or(group)


def key_auth_policy(initial: Quorum, authority_name: bytes | None) -> bytes:
    """A signing key's authPolicy: the initial quorum, OR a policy its authority approved."""
    if authority_name is None:
        return initial.digest()
    return policy_or([initial.digest(), policy_authorize(authority_name)])


# --- what the client signs --------------------------------------------------------------

SIG_SCHEME_ECDSA_SHA256 = struct.pack(">HH", ALG_ECDSA, ALG_SHA256)
NULL_HASHCHECK = struct.pack(">HIH", ST_HASHCHECK, RH_NULL, 0)


def sign_cp_hash(key_name: bytes, digest: bytes) -> bytes:
    """cpHashA of TPM2_Sign(key, digest, ECDSA-SHA256, null ticket)."""
    return sha256(
        struct.pack(">I", CC_SIGN),
        key_name,
        tpm2b(digest),
        SIG_SCHEME_ECDSA_SHA256,
        NULL_HASHCHECK,
    )


def a_hash(nonce_tpm: bytes, expiration: int, cp_hash: bytes, policy_ref: bytes = b"") -> bytes:
    """aHash = SHA256(nonceTPM ‖ expiration (INT32 BE) ‖ cpHashA ‖ policyRef).

    Refuses an empty or short nonce: the TPM accepts PolicySigned without a nonce, and an
    authorisation without one could be replayed on any later session.
    """
    if len(nonce_tpm) < MIN_NONCE_LEN:
        raise InputError(
            f"refusing to authorise: nonceTPM is {len(nonce_tpm)} bytes "
            f"(at least {MIN_NONCE_LEN} needed, or the authorisation could be replayed)"
        )
    if len(cp_hash) != DIGEST_LEN:
        raise InputError("refusing to authorise: cpHashA must be a SHA-256 digest")
    return sha256(nonce_tpm, struct.pack(">i", expiration), cp_hash, policy_ref)


def approval_digest(approved_policy: bytes, policy_ref: bytes = b"") -> bytes:
    """What an authority signs to approve a policy (PolicyAuthorize's aHash)."""
    return sha256(approved_policy, policy_ref)
