"""online-sign and expiry-events over time (freezegun), on real git."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests.git_helpers import World, git
from tufrepo.git import GitRepo
from tufrepo.publish import publish

pytestmark = pytest.mark.git

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def load(path: Path) -> dict:
    return json.loads(path.read_text())["signed"]


@pytest.fixture
def world(tmp_path: Path) -> World:
    with freeze_time(T0):
        w = World(tmp_path)
        w.init()
    ci = w.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    return w


def online_sign(world: World, at: datetime, code: int = 0) -> str:
    with freeze_time(at):
        return world.tufrepo("ci", "online-sign", code=code).stderr


def test_online_sign_then_noop_then_signing_periods(world: World) -> None:
    ci = world.clone("ci")
    assert "signed snapshot" in online_sign(world, T0)
    head = git(ci, "rev-parse", "HEAD")
    assert "up to date" in online_sign(world, T0 + timedelta(hours=1))
    assert git(ci, "rev-parse", "HEAD") == head
    assert git(ci, "rev-parse", "origin/main") == head

    snap, ts = load(ci / "metadata/snapshot.json"), load(ci / "metadata/timestamp.json")
    assert snap["version"] == ts["version"] == 1
    assert snap["meta"]["targets.json"]["length"] > 0
    assert "sha256" in ts["meta"]["snapshot.json"]["hashes"]
    assert ts["expires"] == "2026-01-03T12:00:00Z"

    # a day later the timestamp is inside its 1-day signing period: it alone is refreshed
    msg = online_sign(world, T0 + timedelta(days=1, hours=1))
    assert "signed timestamp" in msg
    assert "signed snapshot" not in msg
    assert load(ci / "metadata/timestamp.json")["version"] == 2
    assert load(ci / "metadata/snapshot.json")["version"] == 1

    site = world.root / "site"
    with freeze_time(T0 + timedelta(days=1, hours=1)):
        publish(ci, site)
    assert sorted(p.name for p in (site / "metadata").iterdir()) == [
        "1.root.json", "1.snapshot.json", "1.targets.json", "timestamp.json",
    ]  # fmt: skip
    assert load(site / "metadata/timestamp.json")["version"] == 2

    # ~10 months later the snapshot (365 days, signing period 60) is refreshed too
    later = T0 + timedelta(days=310)
    msg = online_sign(world, later)
    assert "signed snapshot" in msg
    assert load(ci / "metadata/snapshot.json")["version"] == 2
    assert load(ci / "metadata/timestamp.json")["meta"]["snapshot.json"]["version"] == 2
    with freeze_time(later):
        assert world.tufrepo("ci", "verify", "--json").exit_code == 0
    with freeze_time(later):
        publish(ci, site)
    published = load(site / "metadata/2.snapshot.json")
    assert published["expires"] == "2027-11-07T12:00:00Z"  # later + 365 days
    assert (site / "metadata/1.snapshot.json").exists()  # kept for clients mid-update
    root = load(site / "metadata/1.root.json")
    sig = json.loads((site / "metadata/timestamp.json").read_text())["signatures"][0]
    assert sig["keyid"] in root["roles"]["timestamp"]["keyids"]


def test_online_sign_refuses_unsigned_targets_on_main(world: World) -> None:
    online_sign(world, T0)
    ci = world.clone("ci")
    targets = json.loads((ci / "metadata/targets.json").read_text())
    targets["signed"]["version"] += 1
    targets["signed"]["targets"] = {}
    (ci / "metadata/targets.json").write_text(json.dumps(targets, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "sneak an unsigned targets change onto main")
    git(ci, "push", "--quiet", "origin", "main")
    head = git(ci, "rev-parse", "HEAD")
    with freeze_time(T0 + timedelta(hours=1)):
        result = world.tufrepo("ci", "online-sign", code=1)
    assert "refusing to sign online" in result.stderr
    assert "targets: signed by 0/1" in result.stderr
    assert git(ci, "rev-parse", "HEAD") == head
    assert world.remote_refs()["refs/heads/main"] == head


def test_online_sign_redoes_work_when_main_moved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = world.clone("other")
    real_push = GitRepo.push
    calls = []

    def push_after_someone_else(self: GitRepo, branch: str) -> None:
        if not calls:  # someone else pushes to main first: our push is rejected
            git(other, "checkout", "--quiet", "-B", "main", "origin/main")
            (other / "README.md").write_text("concurrent change\n")
            git(other, "add", "README.md")
            git(other, "commit", "--quiet", "-m", "concurrent change")
            git(other, "push", "--quiet", "origin", "main")
        calls.append(branch)
        real_push(self, branch)

    monkeypatch.setattr(GitRepo, "push", push_after_someone_else)
    online_sign(world, T0)
    assert len(calls) == 2
    log = git(world.clone("ci"), "log", "--format=%s", "origin/main").splitlines()
    assert log[:2] == ["Online sign (snapshot, timestamp)", "concurrent change"]
    assert sum("Online sign" in line for line in log) == 1


def test_expiry_events_open_once_and_complete(world: World) -> None:
    online_sign(world, T0)
    later = T0 + timedelta(days=310)
    with freeze_time(later):
        out = world.tufrepo("ci", "expiry-events").stdout
        assert "sign/root-v2" in out
        assert "sign/targets-v2" in out
        again = world.tufrepo("ci", "expiry-events").stdout
        assert again.count("already open") == 2
        refs = [r for r in world.remote_refs() if r.startswith("refs/heads/sign/")]
        assert sorted(refs) == ["refs/heads/sign/root-v2", "refs/heads/sign/targets-v2"]
        world.tufrepo("alice", "sign", "sign/root-v2", user="@alice")
        world.tufrepo("alice", "sign", "sign/targets-v2", user="@alice")
    world.merge("root-v2")
    world.merge("targets-v2")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    online_sign(world, later)
    assert load(ci / "metadata/root.json")["version"] == 2
    assert load(ci / "metadata/root.json")["expires"] == "2027-11-07T12:00:00Z"
    assert load(ci / "metadata/targets.json")["version"] == 2
    with freeze_time(later):
        assert world.tufrepo("ci", "verify", "--json").exit_code == 0
        assert "already open" not in world.tufrepo("ci", "expiry-events").stdout
    site = world.root / "site"
    with freeze_time(later):
        publish(ci, site)
    assert load(site / "metadata/2.root.json")["expires"] == "2027-11-07T12:00:00Z"
    assert load(site / "metadata/1.root.json")["version"] == 1
    assert load(site / "metadata/2.targets.json")["expires"] == "2027-11-07T12:00:00Z"


def test_expiry_single_event_json(world: World) -> None:
    with freeze_time(T0 + timedelta(days=310)):
        out = world.tufrepo("ci", "expiry-events", "--single-event", "yearly", "--json").stdout
        again = world.tufrepo("ci", "expiry-events", "--single-event", "yearly", "--json").stdout
    assert json.loads(out) == {
        "events": [
            {"branch": "sign/yearly", "roles": ["root", "targets"], "opened": True, "pushed": True}
        ]
    }
    assert json.loads(again)["events"][0]["opened"] is False
    assert "refs/heads/sign/yearly" in world.remote_refs()
    with freeze_time(T0 + timedelta(days=10)):
        assert json.loads(world.tufrepo("ci", "expiry-events", "--json").stdout) == {"events": []}


@pytest.mark.parametrize("damage", ["missing", "wrong key"])
def test_online_sign_with_a_missing_or_wrong_online_key(world: World, damage: str) -> None:
    ci = world.clone("ci")
    online = Path(world.online_uri.removeprefix("file2:"))
    if damage == "missing":
        online.unlink()
    else:
        from tests.git_helpers import write_ed25519

        write_ed25519(online)  # another key at the same place
    head = git(ci, "rev-parse", "HEAD")
    with freeze_time(T0):
        result = world.tufrepo("ci", "online-sign", code=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    expected = "does not exist" if damage == "missing" else "does not match"
    assert expected in lines[0]
    assert str(online) in lines[0]
    assert not (ci / "metadata/snapshot.json").exists()
    assert not (ci / "metadata/timestamp.json").exists()
    assert git(ci, "status", "--porcelain") == ""
    assert git(ci, "rev-parse", "HEAD") == head
    assert world.remote_refs()["refs/heads/main"] == head


def test_online_sign_leaves_nothing_behind_when_the_commit_fails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tufrepo.errors import GitError

    def failing_commit(self: GitRepo, message: str, paths: list[str]) -> str:
        raise GitError("git commit: disk full")

    monkeypatch.setattr(GitRepo, "commit", failing_commit)
    ci = world.clone("ci")
    head = git(ci, "rev-parse", "HEAD")
    with freeze_time(T0):
        result = world.tufrepo("ci", "online-sign", code=1)
    assert "disk full" in result.stderr
    assert git(ci, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(ci, "rev-parse", "HEAD") == head
