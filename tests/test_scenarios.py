"""Scenarios over time that end in the published site: file names, versions, expiry dates and
which keys signed, as a client sees them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests.git_helpers import World, git
from tests.site_helpers import serve
from tufrepo.client import inspect_site
from tufrepo.publish import publish
from tufrepo.roles import KEYOWNER

pytestmark = pytest.mark.git

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def signed(path: Path) -> dict:
    return json.loads(path.read_text())["signed"]


def signers(path: Path, root: dict) -> set[str]:
    """Owners (or 'online') of the keys with a non-empty signature in ``path``."""
    doc = json.loads(path.read_text())
    keys = dict(root["keys"])
    for name in ("targets",):
        meta = path.parent / f"{name}.json"
        if meta.exists() and name != path.stem:
            keys.update((signed(meta).get("delegations") or {}).get("keys", {}))
    owners = set()
    for sig in doc["signatures"]:
        if sig["sig"]:
            key = keys.get(sig["keyid"], {})
            owners.add(key.get(KEYOWNER, "online"))
    return owners


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_one_event_several_commits_threshold_two_published(tmp_path: Path) -> None:
    with freeze_time(T0):
        world = World(tmp_path)
        world.init()
        world.tufrepo("alice", "delegate", "sign/two", "targets", "--signers",
                      "@alice,@bob", "--threshold", "2", user="@alice")  # fmt: skip
        world.tufrepo("bob", "sign", "sign/two", user="@bob")
        world.tufrepo("alice", "sign", "sign/two", user="@alice")
        world.merge("two")
        ci = world.clone("ci")
        git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
        world.tufrepo("ci", "online-sign")
        site = tmp_path / "site"
        publish(ci, site, now=T0)

    a1, a2, b = b"a version 1\n", b"a version 2\n", b"b\n"
    files = tmp_path / "files"
    files.mkdir()
    for name, data in (("a1", a1), ("a2", a2), ("b", b)):
        (files / name).write_bytes(data)
    appci = world.clone("appci")
    later = T0 + timedelta(days=3)
    with freeze_time(later):
        # three commits in one event: add a and b, modify a, remove b
        for args in (
            ["--target", f"a.txt={files / 'a1'}", "--target", f"b.txt={files / 'b'}"],
            ["--target", f"a.txt={files / 'a2'}"],
            ["--remove", "b.txt"],
        ):
            world.tufrepo("appci", "event", "open", "rel", "--repo", str(appci), *args)
        git(ci, "fetch", "--quiet", "origin")
        log = git(ci, "log", "--format=%s", "origin/sign/rel").splitlines()
        assert [line.startswith("Artifact changes") for line in log[:3]] == [True] * 3
        world.tufrepo("alice", "sign", "sign/rel", user="@alice")
        git(ci, "fetch", "--quiet", "origin")
        git(ci, "checkout", "--quiet", "-B", "sign/rel", "origin/sign/rel")
        status = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
        assert status["roles"][0]["missing"] == ["@bob"]
        assert [(a["path"], a["change"]) for a in status["roles"][0]["artifacts"]] == [
            ("a.txt", "added")
        ]
        git(ci, "checkout", "--quiet", "--detach")
        world.tufrepo("bob", "sign", "sign/rel", user="@bob")
        world.merge("rel")
        git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
        world.tufrepo("ci", "online-sign")
        result = publish(ci, site, now=later)

    meta = site / "metadata"
    # root v2: the event that made targets a 2-of-2 role changed root's targets keys
    assert sorted(p.name for p in meta.iterdir() if p.name.endswith(".root.json")) == [
        "1.root.json", "2.root.json",
    ]  # fmt: skip
    root = signed(meta / "2.root.json")
    assert root["roles"]["targets"]["threshold"] == 2
    # targets v2 (first published) is kept next to v3 (the release) for clients mid-update
    assert {p.name for p in meta.glob("*.targets.json")} == {"2.targets.json", "3.targets.json"}
    targets = signed(meta / "3.targets.json")
    assert set(targets["targets"]) == {"a.txt"}
    assert targets["targets"]["a.txt"]["hashes"]["sha256"] == sha(a2)
    assert targets["expires"] == "2027-03-04T09:00:00Z"
    assert signers(meta / "3.targets.json", root) == {"@alice", "@bob"}
    # the artifact by its hash; the intermediate a1 and the removed b never reach the site
    assert (site / "targets" / f"{sha(a2)}.a.txt").read_bytes() == a2
    assert not (site / "targets" / f"{sha(a1)}.a.txt").exists()
    assert not (site / "targets" / f"{sha(b)}.b.txt").exists()
    timestamp = signed(meta / "timestamp.json")
    snapshot_version = timestamp["meta"]["snapshot.json"]["version"]
    snapshot = signed(meta / f"{snapshot_version}.snapshot.json")
    assert snapshot["meta"]["targets.json"]["version"] == 3
    assert timestamp["expires"] == "2026-03-06T09:00:00Z"
    assert signers(meta / "timestamp.json", root) == {"online"}
    assert "metadata/3.targets.json" in result.written
    assert result.kept == ["metadata/1.snapshot.json", "metadata/2.targets.json"]

    with serve(site) as server, freeze_time(later + timedelta(hours=1)):
        report = inspect_site(
            server.url, (meta / "1.root.json").read_bytes(), now=later, download_all=True
        )
    assert report, report.problems
