"""Table tests of merging main into an event: the three-way merge that rebuilds a role both
changed, and whose version of each kind of file the merge keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tufrepo.threeway import Override, merge_signed
from tufrepo.workspace import Side, merge_side, role_of


@dataclass(frozen=True)
class Case:
    base: dict[str, Any]
    main: dict[str, Any]
    event: dict[str, Any]
    want: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    main_only: frozenset[str] = frozenset()


def role(keyids: list[str], threshold: int = 1) -> dict[str, Any]:
    return {"keyids": keyids, "threshold": threshold}


CASES = {
    "only main changed": Case(
        {"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 1, "y": 1}, {"x": 2, "y": 1}
    ),
    "only the event changed": Case({"x": 1}, {"x": 1}, {"x": 3}, {"x": 3}),
    "different fields": Case(
        {"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 1, "y": 3}, {"x": 2, "y": 3}
    ),
    "same change on both sides": Case({"x": 1}, {"x": 2}, {"x": 2}, {"x": 2}),
    "both changed a value: the event's kept and reported": Case(
        {"t": 1}, {"t": 2}, {"t": 3}, {"t": 3}, ["t: main has 2, kept the event's 3"]
    ),
    "signers added on both sides: both kept": Case(
        {"roles": {"targets": role(["a"])}},
        {"roles": {"targets": role(["a", "b"])}},
        {"roles": {"targets": role(["a", "c"])}},
        {"roles": {"targets": role(["a", "b", "c"])}},
    ),
    "a signer main removed stays removed": Case(
        {"roles": {"targets": role(["a", "m"])}},
        {"roles": {"targets": role(["a"])}},
        {"roles": {"targets": role(["a", "m"], threshold=2)}},
        {"roles": {"targets": role(["a"], threshold=2)}},
    ),
    "a signer the event removed is removed": Case(
        {"keyids": ["a", "b"]}, {"keyids": ["a", "b", "c"]}, {"keyids": ["a"]},
        {"keyids": ["a", "c"]},
    ),
    "keys added and removed in a dict": Case(
        {"keys": {"a": 1, "m": 2}}, {"keys": {"a": 1, "b": 3}}, {"keys": {"a": 1, "m": 2, "c": 4}},
        {"keys": {"a": 1, "b": 3, "c": 4}},
    ),
    "delegated roles merged by name, main's order first": Case(
        {"roles": [{"name": "A", "keyids": ["a"]}]},
        {"roles": [{"name": "A", "keyids": ["a", "b"]}, {"name": "B", "keyids": ["b"]}]},
        {"roles": [{"name": "C", "keyids": ["c"]}, {"name": "A", "keyids": ["a"]}]},
        {"roles": [
            {"name": "A", "keyids": ["a", "b"]},
            {"name": "B", "keyids": ["b"]},
            {"name": "C", "keyids": ["c"]},
        ]},
    ),
    "main_only fields are main's": Case(
        {"targets": {"a": 1}, "x": 1},
        {"targets": {"a": 1, "b": 2}, "x": 1},
        {"targets": {"a": 1, "c": 3}, "x": 2},
        {"targets": {"a": 1, "b": 2}, "x": 2},
        main_only=frozenset({"targets"}),
    ),
    "a field the event added": Case({}, {"v": 1}, {"w": 2}, {"v": 1, "w": 2}),
    "a field main removed while the event kept it": Case({"v": 1}, {}, {"v": 1}, {}),
    "lists of other things conflict as a whole": Case(
        {"l": [1]}, {"l": [1, 2]}, {"l": [1, 3]}, {"l": [1, 3]},
        ["l: main has [1, 2], kept the event's [1, 3]"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_merge_signed(case: Case) -> None:
    merged, overrides = merge_signed(case.base, case.main, case.event, main_only=case.main_only)
    assert merged == case.want
    assert [o.describe() for o in overrides] == case.overrides


def test_override_records_both_sides() -> None:
    _, overrides = merge_signed({"a": {"b": 1}}, {"a": {"b": 2}}, {"a": {}})
    assert overrides == [Override("a.b", 2, overrides[0].event)]
    assert overrides[0].describe() == "a.b: main has 2, kept the event's nothing"


SIDES = {
    "metadata/targets.json": Side.REBUILD,
    "metadata/root.json": Side.REBUILD,
    "metadata/my.role.json": Side.REBUILD,
    "metadata/snapshot.json": Side.MAIN,
    "metadata/timestamp.json": Side.MAIN,
    "metadata/root_history/3.root.json": Side.MAIN,
    "metadata/.signing-event-state": Side.EVENT,
    "targets/app/1.0/app.tar.gz": Side.EVENT,
    "descriptors/image.json": Side.EVENT,
    "README.md": Side.GIT,
    ".github/workflows/tufrepo-online-sign.yml": Side.GIT,
    "targetsX/file": Side.GIT,
}


@pytest.mark.parametrize(("path", "side"), SIDES.items(), ids=list(SIDES))
def test_merge_side(path: str, side: Side) -> None:
    assert merge_side(path) is side


@pytest.mark.parametrize(
    ("path", "role"),
    [("metadata/targets.json", "targets"), ("metadata/a.b.json", "a.b"),
     ("metadata/root_history/1.root.json", None), ("metadata/.signing-event-state", None),
     ("targets/x.json", None), ("metadata/notes.txt", None)],
)  # fmt: skip
def test_role_of(path: str, role: str | None) -> None:
    assert role_of(path) == role
