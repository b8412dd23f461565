"""Hash-bin delegations (TAP 15): turning a role into bins, re-binning, keeping bins' signers.

A binned role R (top-level targets or a delegated role) holds ``succinct_roles`` in its
delegations: 2**k bins named ``R-bins-<hex>`` that share R's signers and threshold (their
keys are copied into R's delegations) and R's periods. R lists no artifacts itself; each
artifact is listed by the bin its path hashes to. Operates on an :class:`EventRepository`.
"""

from __future__ import annotations

import copy
from typing import cast

from tuf.api.metadata import Delegations, SuccinctRoles, TargetFile, Targets

from tufrepo.errors import InputError
from tufrepo.repository import EventRepository
from tufrepo.roles import (
    EXPIRY_PERIOD,
    SIGNING_PERIOD,
    TOP_LEVEL,
    bin_prefix,
    bins_for,
    bit_length_for,
    keys_of,
    threshold_of,
)


def _pool(repo: EventRepository, role: str) -> dict[str, TargetFile]:
    """Every artifact ``role`` and its current bins list in the event."""
    pool = dict(cast(Targets, repo.open(role).signed).targets)
    for name in repo.role_map().bin_names(role):
        if repo.exists(name):
            pool.update(cast(Targets, repo.open(name).signed).targets)
    return pool


def _check_binnable(repo: EventRepository, role: str) -> None:
    rmap = repo.role_map()
    if role in TOP_LEVEL and role != "targets":
        raise InputError(f"{role} holds no artifacts: only targets or a delegated role has bins")
    if rmap.bin_owner(role) is not None:
        raise InputError(f"{role} is a hash bin: give --bins to {rmap.bin_owner(role)}")
    if role not in rmap:
        raise InputError(f"{role} is not a delegated role: create it first")
    if any(n.startswith(f"{bin_prefix(role)}-") for n in rmap.named):
        raise InputError(f"a delegated role is named like a bin of {role} ({bin_prefix(role)}-*)")
    if role == "targets" and rmap.named:
        raise InputError(
            "targets delegates to named roles, so it cannot also delegate to hash bins "
            "(TAP 15): give --bins to a delegated role"
        )


def make_bins(repo: EventRepository, role: str, bins: int | None) -> list[str]:
    """Make ``role`` delegate to ``bins`` hash bins (None: chosen from its artifact count),
    moving its artifacts into their bins; an earlier set of bins is retired (its files are
    removed, snapshot keeps their last versions). Returns the roles to close.

    Raises:
        InputError: the role cannot have bins, ``bins`` is not a power of two, or the role
            already has that many.
    """
    if bins is not None:
        bit_length_for(bins)  # a bad N is refused first
    _check_binnable(repo, role)
    pool = _pool(repo, role)
    bit_length = bit_length_for(bins if bins is not None else bins_for(len(pool)))
    old_bins = repo.role_map().bin_names(role)
    md = repo.open(role)
    signed = cast(Targets, md.signed)
    current = signed.delegations.succinct_roles if signed.delegations else None
    if current is not None and current.bit_length == bit_length:
        raise InputError(f"{role} already has {2**bit_length} hash bins")
    succinct = SuccinctRoles([], 1, bit_length, bin_prefix(role))
    signed.delegations = Delegations(keys={}, succinct_roles=succinct)
    signed.targets = {}
    sync_bins(repo, role)
    rmap = repo.role_map()
    new_bins = rmap.bin_names(role)
    contents: dict[str, dict[str, TargetFile]] = {name: {} for name in new_bins}
    for path, tf in pool.items():
        contents[rmap.owner(path)][path] = tf
    periods = {
        k: v for k, v in signed.unrecognized_fields.items() if k in (EXPIRY_PERIOD, SIGNING_PERIOD)
    }
    for name in new_bins:
        bin_md = repo.open(name)
        bin_signed = cast(Targets, bin_md.signed)
        bin_signed.targets = contents[name]
        bin_signed.delegations = None
        bin_signed.unrecognized_fields.update(periods)
    for name in set(old_bins) - set(new_bins):
        repo.retire(name)
    return [role, *new_bins]


def sync_bins(repo: EventRepository, role: str) -> list[str]:
    """Give ``role``'s bins ``role``'s signers and threshold; returns the bins when that
    changed them (they must be signed again), else []."""
    if role not in repo.role_map():
        return []
    signed = cast(Targets, repo.open(role).signed)
    succinct = signed.delegations.succinct_roles if signed.delegations else None
    if signed.delegations is None or succinct is None:
        return []
    delegator = repo.delegator(role)
    keys = {k.keyid: copy.deepcopy(k) for k in keys_of(delegator, role)}
    threshold = max(threshold_of(delegator, role), 1)
    if set(succinct.keyids) == set(keys) and succinct.threshold == threshold:
        return []
    signed.delegations.keys = keys
    succinct.keyids = sorted(keys)
    succinct.threshold = threshold
    return repo.role_map().bin_names(role)
