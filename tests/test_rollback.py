"""Rollback on main: online-sign never signs (and verify reports) versions lower than the
newest state online-sign already signed in main's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests.git_helpers import World, git
from tests.site_helpers import serve
from tufrepo.online import OnlineState, rollbacks
from tufrepo.publish import publish

pytestmark = pytest.mark.git

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=1, hours=2)  # the timestamp is inside its signing period


def state(ts: int, snap: int, **roles: int) -> OnlineState:
    return OnlineState("commit c0ffee", ts, snap, roles)


@pytest.mark.parametrize(
    ("current", "newest", "expected"),
    [
        (state(1, 1, targets=1), None, []),
        (state(2, 2, targets=2), state(2, 2, targets=2), []),
        (state(5, 3, targets=4, R=2), state(4, 3, targets=3, R=1), []),
        (state(1, 2, targets=2), state(2, 2, targets=2), ["timestamp: v1 is older than v2"]),
        (state(3, 1, targets=2), state(2, 2, targets=2), ["snapshot: v1 is older than v2"]),
        (state(0, 0), state(2, 2), ["timestamp: v0 is older than v2", "snapshot: v0"]),
        (state(3, 3, targets=1, R=1), state(2, 2, targets=2, R=2),
         ["R: v1 is older than v2", "targets: v1 is older than v2"]),
        (state(3, 3, targets=2), state(2, 2, targets=2, gone=7), []),  # delegation removed
    ],
)  # fmt: skip
def test_rollbacks(current: OnlineState, newest: OnlineState | None, expected: list[str]) -> None:
    problems = rollbacks(current, newest)
    assert len(problems) == len(expected)
    for line, needle in zip(problems, expected, strict=True):
        assert needle in line
        assert "online-signed in commit c0ffee (rollback)" in line


# --- on real git ------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Main with two online-signed states: targets v1 (snapshot/timestamp v1), then a
    release, targets v2 (snapshot/timestamp v2)."""
    with freeze_time(T0):
        w = World(tmp_path)
        w.init()
        ci = w.clone("ci")
        git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
        w.tufrepo("ci", "online-sign")
        artifact = tmp_path / "readme.txt"
        artifact.write_text("release 1\n")
        w.tufrepo("appci", "event", "open", "rel", "--repo", str(w.clone("appci")),
                  "--target", f"readme.txt={artifact}")  # fmt: skip
        w.tufrepo("alice", "sign", "sign/rel", user="@alice")
        w.merge("rel")
        git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    with freeze_time(T0 + timedelta(hours=1)):
        w.tufrepo("ci", "online-sign")
    return w


def commits(world: World) -> list[str]:
    """Main's first-parent history, newest first (4: online-sign v2, merge, online-sign v1,
    init)."""
    return git(world.clone("ci"), "rev-list", "--first-parent", "origin/main").split()


def mallory_pushes(world: World, *commands: list[str]) -> str:
    """Someone who can push to main (no key) runs git ``commands`` on main and pushes."""
    path = world.clone("mallory")
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", "main", "origin/main")
    for command in commands:
        git(path, *command)
    git(path, "push", "--quiet", "--force", "origin", "main")
    return git(path, "rev-parse", "HEAD")


def refused(world: World, *needles: str) -> None:
    """online-sign refuses (exit 1) naming each needle, signs and pushes nothing; verify
    reports the same."""
    ci = world.clone("ci")
    remote_main = world.remote_refs()["refs/heads/main"]
    with freeze_time(LATER):
        result = world.tufrepo("ci", "online-sign", code=1)
        verify = world.tufrepo("ci", "verify", code=1)
    assert "refusing to sign online" in result.stderr
    for needle in needles:
        assert needle in result.stderr
        assert needle in verify.stdout
    assert world.remote_refs()["refs/heads/main"] == remote_main
    assert git(ci, "rev-parse", "HEAD") == remote_main
    assert git(ci, "status", "--porcelain") == ""


def test_an_older_snapshot_put_back_on_main(world: World) -> None:
    signed_v2, _, signed_v1, _ = commits(world)
    mallory_pushes(
        world,
        ["checkout", signed_v1, "--", "metadata/snapshot.json"],
        ["commit", "--quiet", "-m", "older snapshot"],
    )
    refused(world, f"snapshot: v1 is older than v2, online-signed in commit {signed_v2[:12]}")


def test_all_metadata_reverted_with_history_kept(world: World) -> None:
    signed_v2, merge, _, _ = commits(world)
    mallory_pushes(
        world,
        ["revert", "--no-edit", signed_v2],
        ["revert", "--no-edit", "-m", "1", merge],
    )
    assert (world.clone("mallory") / "targets/readme.txt").exists() is False
    refused(
        world,
        f"timestamp: v1 is older than v2, online-signed in commit {signed_v2[:12]}",
        "snapshot: v1 is older than v2",
        "targets: v1 is older than v2",
    )


def test_a_forced_push_of_older_history(world: World) -> None:
    signed_v2, _, signed_v1, _ = commits(world)
    path = world.clone("mallory")
    git(path, "fetch", "--quiet", "origin")
    git(path, "push", "--quiet", "--force", "origin", f"{signed_v1}:refs/heads/main")
    ci = world.clone("ci")  # a CI checkout that follows the remote's main
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    refused(
        world,
        f"timestamp: v1 is older than v2, online-signed in commit {signed_v2[:12]}, which the "
        "remote's main no longer contains",
        "targets: v1 is older than v2",
    )


def test_history_that_only_moves_forward_is_signed(world: World) -> None:
    with freeze_time(LATER):
        assert "signed timestamp" in world.tufrepo("ci", "online-sign").stderr
        world.tufrepo("ci", "verify")


def test_a_forced_push_seen_by_a_fresh_clone_needs_the_published_site(
    world: World, tmp_path: Path
) -> None:
    """A fresh clone has no memory of the remote's old main: only the published site (or
    a checkout that saw it) shows the rollback."""
    site = tmp_path / "site"
    with freeze_time(T0 + timedelta(hours=1)):
        publish(world.clone("ci"), site)
    _, _, signed_v1, _ = commits(world)
    git(world.clone("mallory"), "fetch", "--quiet", "origin")
    git(world.clone("mallory"), "push", "--quiet", "--force", "origin",
        f"{signed_v1}:refs/heads/main")  # fmt: skip
    fresh = world.clone("fresh")
    with freeze_time(LATER):
        world.tufrepo("fresh", "verify")  # not detected without evidence (docs/ci.md)
        with serve(site) as server:
            result = world.tufrepo("fresh", "online-sign", "--previous", server.url, code=1)
            verify = world.tufrepo("fresh", "verify", "--previous", server.url, code=1)
        world.tufrepo("fresh", "verify", "--previous", str(tmp_path / "no-site-yet"))
    expected = (
        f"timestamp: v1 is older than v2, online-signed in the site published at {server.url}"
    )
    assert expected in result.stderr
    assert expected in verify.stdout
    assert "targets: v1 is older than v2" in result.stderr
    assert world.remote_refs()["refs/heads/main"] == signed_v1
    assert git(fresh, "status", "--porcelain") == ""
