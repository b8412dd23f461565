"""Snapshot entries without hashes: which roles online-sign may take as verified before
(``online.proven_roles``, pure), and what strict reading on main compares with the records
(``validate.verify_recorded``): version and length always, hashes where a snapshot (an older
tufrepo's, tuf-on-ci's) still has them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets

from tufrepo.online import proven_roles
from tufrepo.repository import memory_view, serialize
from tufrepo.validate import verify_recorded

# bins of targets, and a named role "apps" with bins of its own
DELEGATORS = {
    "targets": "root",
    "targets-bins-0": "targets",
    "targets-bins-1": "targets",
    "apps": "targets",
    "apps-bins-0": "apps",
}
RECORDS = {f"{role}.json": MetaFile(1, 100) for role in DELEGATORS}

CASES: dict[str, tuple[set[str], dict[str, MetaFile], set[str]]] = {
    # case: (changed since the anchor, snapshot records then, proven)
    "nothing changed": (set(), RECORDS,
                        {"targets-bins-0", "targets-bins-1", "apps", "apps-bins-0"}),
    "one bin changed": ({"targets-bins-1"}, RECORDS,
                        {"targets-bins-0", "apps", "apps-bins-0"}),
    "targets changed: everything it delegates, directly or not": ({"targets"}, RECORDS, set()),
    "a binned role changed: its bins too": ({"apps"}, RECORDS,
                                           {"targets-bins-0", "targets-bins-1"}),
    "not in the snapshot signed then": (
        set(), {k: v for k, v in RECORDS.items() if k != "apps-bins-0.json"},
        {"targets-bins-0", "targets-bins-1", "apps"},
    ),
    "no snapshot signed then": (set(), {}, set()),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_proven_roles(case: str) -> None:
    changed, records, proven = CASES[case]
    assert proven_roles(DELEGATORS, changed, records) == proven


def test_a_delegation_cycle_is_never_proven() -> None:
    assert proven_roles({"a": "b", "b": "a"}, set(), {"a.json": MetaFile(1, 1)}) == set()


def _files(role_bytes: bytes, entry: MetaFile) -> dict[str, bytes]:
    snapshot: Metadata[Any] = Metadata(Snapshot())
    snapshot.signed.meta = {"apps.json": entry}
    return {"apps.json": role_bytes, "snapshot.json": serialize(snapshot)}


APPS = serialize(Metadata(Targets(version=1)))


def test_records_without_hashes_compare_length() -> None:
    assert not verify_recorded(memory_view(_files(APPS, MetaFile(1, len(APPS))))).problems
    longer = APPS + b" "
    problems = verify_recorded(memory_view(_files(longer, MetaFile(1, len(APPS))))).problems
    assert len(problems) == 1
    assert "apps: metadata/apps.json is not the file snapshot records for v1" in problems[0]


def test_records_with_hashes_still_compare_them() -> None:
    """An older snapshot's sha256: a file of the same length and version but other bytes is
    still reported (and one that matches still verifies)."""
    digest = {"sha256": hashlib.sha256(APPS).hexdigest()}
    assert not verify_recorded(memory_view(_files(APPS, MetaFile(1, len(APPS), digest)))).problems
    changed = APPS.replace(b'"expires": "', b'"expires":"', 1) + b" "
    assert len(changed) == len(APPS)
    problems = verify_recorded(memory_view(_files(changed, MetaFile(1, len(APPS), digest))))
    assert [p for p in problems.problems if "is not the file snapshot records" in p]
    assert "hash" in problems.problems[0].lower()
