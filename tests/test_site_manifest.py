"""The pure bookkeeping of a site: what is kept, what is pruned, headers, manifest formats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tufrepo.site_manifest import (
    IMMUTABLE,
    Manifest,
    RoleFacts,
    headers_for,
    is_versioned,
    parse_manifest,
    retention,
    upload_step,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Case:
    present: list[str]
    current: set[str]
    superseded: dict[str, str]
    kept: dict[str, str]
    pruned: list[str]


OLD = "2026-02-01T00:00:00Z"  # a month ago
RECENT = "2026-02-28T00:00:00Z"  # a day ago
NOW_ISO = "2026-03-01T00:00:00Z"

CASES = {
    "current files are neither kept nor pruned": Case(
        ["metadata/2.snapshot.json", "metadata/timestamp.json"],
        {"metadata/2.snapshot.json", "metadata/timestamp.json"}, {}, {}, [],
    ),
    "a file that just stopped being current is kept from now": Case(
        ["metadata/1.snapshot.json"], set(), {}, {"metadata/1.snapshot.json": NOW_ISO}, [],
    ),
    "recently superseded: kept with its time": Case(
        ["targets/a1.x"], set(), {"targets/a1.x": RECENT}, {"targets/a1.x": RECENT}, [],
    ),
    "superseded beyond the horizon: pruned": Case(
        ["targets/a1.x"], set(), {"targets/a1.x": OLD}, {}, ["targets/a1.x"],
    ),
    "roots are never pruned": Case(
        ["metadata/1.root.json"], set(), {"metadata/1.root.json": OLD},
        {"metadata/1.root.json": OLD}, [],
    ),
    "unversioned files are not bookkept": Case(
        ["index.html", "tufrepo-site.json"], set(), {}, {}, []
    ),
    "a bad time counts as now": Case(
        ["targets/a1.x"], set(), {"targets/a1.x": "yesterday"}, {"targets/a1.x": NOW_ISO}, [],
    ),
    "a current file again: dropped from the superseded files": Case(
        ["targets/a1.x"], {"targets/a1.x"}, {"targets/a1.x": OLD}, {}, [],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_retention(name: str) -> None:
    case = CASES[name]
    kept, pruned = retention(case.present, case.current, case.superseded, now=NOW, keep=7 * DAY)
    assert (kept, pruned) == (case.kept, case.pruned)


HEADERS = {
    "metadata/timestamp.json": ("application/json", "public, max-age=60"),
    "metadata/3.root.json": ("application/json", IMMUTABLE),
    "metadata/12.R%2Fx.json": ("application/json", IMMUTABLE),
    "index.html": ("text/html; charset=utf-8", "public, max-age=60"),
    "tufrepo-site.json": ("application/json", "public, max-age=60"),
    "targets/R/a/abc.app.tar.gz": ("application/gzip", IMMUTABLE),
    "targets/abc.readme.txt": ("text/plain", IMMUTABLE),
    "targets/abc.page.html": ("application/octet-stream", IMMUTABLE),  # never HTML
    "targets/abc.logo.svg": ("application/octet-stream", IMMUTABLE),  # never script
    "targets/abc.app.js": ("application/octet-stream", IMMUTABLE),
    "targets/abc.data.json": ("application/json", IMMUTABLE),
    "targets/abc.noext": ("application/octet-stream", IMMUTABLE),
}


@pytest.mark.parametrize("path", HEADERS, ids=list(HEADERS))
def test_headers(path: str) -> None:
    headers = headers_for(path, 60)
    assert (headers.content_type, headers.cache_control) == HEADERS[path]
    assert is_versioned(path) == (headers.cache_control == IMMUTABLE)


def test_manifest_round_trip_and_format_1() -> None:
    manifest = Manifest({"metadata/1.R.json": "ab"}, {"targets/x": RECENT}, ["big.iso"])
    again = parse_manifest(manifest.to_bytes(4))
    assert (again.metadata, again.superseded) == (manifest.metadata, manifest.superseded)
    format1 = {
        "format": 1,
        "publishes": [
            {"timestamp": 1, "superseded": OLD, "files": ["a", "b"]},
            {"timestamp": 2, "superseded": RECENT, "files": ["b", "c"]},
            {"timestamp": 3, "superseded": None, "files": ["c", "d"]},
        ],
    }
    old = parse_manifest(json.dumps(format1).encode())
    assert old.superseded == {"a": OLD, "b": RECENT}  # c and d were current
    for junk in (b"{", b"[]", b'{"format": 9}', b'{"format": 2, "metadata": 1}', None):
        assert parse_manifest(junk) == Manifest()


def test_manifest_format_3_records_the_commit_and_role_facts() -> None:
    facts = RoleFacts(3, NOW + timedelta(days=9), 1, ("@a [k1]", "@b [k2]"), ("@a [k1]",), 30,
                      targets=5, files=4)  # fmt: skip
    manifest = Manifest({"metadata/3.R.json": "ab"}, {"targets/x": RECENT}, ["big.iso"],
                        commit="c0ffee", timestamp=7, roles={"R": facts},
                        pending=["metadata/4.R.json"])  # fmt: skip
    again = parse_manifest(manifest.to_bytes(7))
    assert again == manifest
    obj = json.loads(manifest.to_bytes(7))
    # a malformed part of what only saves work: no commit (a full publish), nothing else lost
    for spoil in ({"roles": {"R": {"version": "x"}}}, {"commit": 5}, {"pending": None}):
        spoiled = parse_manifest(json.dumps({**obj, **spoil}).encode())
        assert spoiled.commit is None or not spoiled.roles
        assert (spoiled.superseded, spoiled.metadata) == (manifest.superseded, manifest.metadata)
    format2 = {k: v for k, v in obj.items() if k not in ("commit", "roles", "pending")}
    old = parse_manifest(json.dumps({**format2, "format": 2}).encode())
    assert (old.commit, old.roles, old.hosted_elsewhere) == (None, {}, ["big.iso"])


def test_upload_order() -> None:
    paths = [
        "metadata/timestamp.json", "metadata/3.root.json", "metadata/4.snapshot.json",
        "metadata/2.R.json", "metadata/5.targets.json", "targets/R/x/abc.app.tgz",
    ]  # fmt: skip
    assert sorted(paths, key=upload_step) == [
        "targets/R/x/abc.app.tgz", "metadata/2.R.json", "metadata/5.targets.json",
        "metadata/4.snapshot.json", "metadata/3.root.json", "metadata/timestamp.json",
    ]  # fmt: skip
