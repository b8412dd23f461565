"""Comparing two targets listings of a large role: which artifacts an event added, removed or
modified, and where metadata and files disagree (pure, per artifact: the flat role of
100,000 artifacts is compared on every status)."""

from __future__ import annotations

from tuf.api.metadata import TargetFile

from tufrepo.targets import diff_artifacts, mismatches


def _tf(path: str, length: int, custom: object = None, **hashes: str) -> TargetFile:
    extra = {} if custom is None else {"custom": custom}
    return TargetFile(length, hashes or {"sha256": "aa"}, path, extra)


OLD = {
    "b.bin": _tf("b.bin", 1),
    "a.bin": _tf("a.bin", 2),
    "gone.bin": _tf("gone.bin", 3),
    "custom.bin": _tf("custom.bin", 4, custom={"v": 1}),
    "same.bin": _tf("same.bin", 5),
}
NEW = {
    "same.bin": _tf("same.bin", 5),  # equal, another object
    "custom.bin": _tf("custom.bin", 4, custom={"v": 2}),  # only its custom field changed
    "b.bin": _tf("b.bin", 1, sha256="bb"),
    "a.bin": OLD["a.bin"],  # the same object
    "0-new.bin": _tf("0-new.bin", 6),
}


def test_diff_artifacts_names_each_change_once_sorted_by_path() -> None:
    changes = [(c.path, c.kind) for c in diff_artifacts("targets", OLD, NEW)]
    assert changes == [
        ("0-new.bin", "added"), ("b.bin", "modified"), ("custom.bin", "modified"),
        ("gone.bin", "removed"),
    ]  # fmt: skip
    change = diff_artifacts("targets", OLD, NEW)[1]
    assert (change.old, change.new, change.role) == (OLD["b.bin"], NEW["b.bin"], "targets")
    assert diff_artifacts("targets", NEW, NEW) == []


def test_mismatches_compare_length_and_common_hashes_sorted_by_path() -> None:
    files = {
        "a.bin": _tf("a.bin", 2),
        "b.bin": _tf("b.bin", 1, sha256="aa", sha512="cc"),  # a hash the metadata lacks
        "c.bin": _tf("c.bin", 7, sha256="aa"),  # length differs
        "d.bin": _tf("d.bin", 1, sha512="dd"),  # no hash in common
        "new.bin": _tf("new.bin", 1),
    }
    listed = {
        "a.bin": _tf("a.bin", 2, custom={"ignored": True}),
        "b.bin": _tf("b.bin", 1),
        "c.bin": _tf("c.bin", 8),
        "d.bin": _tf("d.bin", 1),
        "extra.bin": _tf("extra.bin", 1),
    }
    assert mismatches(files, listed) == [
        "c.bin: metadata length/hash differ from targets/c.bin",
        "d.bin: metadata length/hash differ from targets/d.bin",
        "extra.bin is in the metadata but not under targets/ or descriptors/",
        "targets/new.bin is not in the metadata",
    ]
    assert mismatches(listed, listed) == []
