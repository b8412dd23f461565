"""Signing events behind main, on real git with a bare remote: several events open at once,
merged in any order (each merge emulates a pull request: ``git merge --no-ff``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests.git_helpers import World, git
from tests.site_helpers import run_tufjs, serve, tufjs_available
from tufrepo.client import inspect_site
from tufrepo.publish import publish
from tufrepo.roles import KEYOWNER

pytestmark = pytest.mark.git

# real time at the end, so that tuf-js (which reads the real clock) accepts the site
LATER = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
T0 = LATER - timedelta(days=310)


def signed(path: Path) -> dict:
    return json.loads(path.read_text())["signed"]


def status(world: World, event: str, code: int) -> dict:
    """``tufrepo status --format json`` of ``sign/<event>`` in the reviewer's clone."""
    path = world.clone("reviewer")
    git(path, "fetch", "--quiet", "--prune", "origin")
    git(path, "checkout", "--quiet", "-B", f"sign/{event}", f"origin/sign/{event}")
    out = json.loads(world.tufrepo("reviewer", "status", "--format", "json", code=code).stdout)
    git(path, "checkout", "--quiet", "--detach")
    return out


def online_world(tmp_path: Path, *, online_sign: bool = True) -> World:
    """An initialised repository, CI's clone on main, signed online at T0."""
    with freeze_time(T0):
        world = World(tmp_path)
        world.init()
        git(world.clone("ci"), "checkout", "--quiet", "-B", "main", "origin/main")
        if online_sign:
            world.tufrepo("ci", "online-sign")
    return world


def clients_update(world: World, site: Path, targets: list[str], root_version: int) -> None:
    """python-tuf and tuf-js, trusting root 1, refresh from the site and download."""
    root1 = site / "metadata" / "1.root.json"
    with serve(site) as server:
        report = inspect_site(server.url, root1.read_bytes(), now=LATER, download_all=True)
        assert report, report.problems
        js = run_tufjs(server.url, root1, world.root / "js", world.root / "js-out", targets)
    assert js.returncode == 0, js.stderr
    assert js.json()["root_version"] == root_version


@pytest.mark.skipif(not tufjs_available(), reason="needs node and tests/tufjs/node_modules")
@pytest.mark.parametrize(
    ("first", "second", "sign_second_early"),
    [("root-v2", "targets-v2", True), ("targets-v2", "root-v2", False)],
)
def test_expiry_events_merge_in_either_order(
    tmp_path: Path, first: str, second: str, *, sign_second_early: bool
) -> None:
    world = online_world(tmp_path)
    ci = world.clone("ci")
    with freeze_time(LATER):
        out = world.tufrepo("ci", "expiry-events").stdout
        assert "sign/root-v2" in out
        assert "sign/targets-v2" in out
        world.tufrepo("alice", "sign", f"sign/{first}", user="@alice")
        if sign_second_early:
            world.tufrepo("alice", "sign", f"sign/{second}", user="@alice")
        assert status(world, first, code=0)["ready"]
        world.merge(first)
        world.tufrepo("ci", "online-sign")

        # the second event is behind main; that does not matter: nothing it changes moved
        behind = status(world, second, code=0 if sign_second_early else 1)
        assert behind["behind_main"]["conflicts"] == []
        assert behind["behind_main"]["main_changed"] == sorted(
            [first.removesuffix("-v2"), "snapshot", "timestamp"]
        )
        assert "does not matter" in behind["behind_main"]["summary"]
        assert behind["problems"] == []
        assert behind["roles"][0]["problems"] == []
        if not sign_second_early:
            assert behind["roles"][0]["missing"] == ["@alice"]
            signing = world.tufrepo("alice", "sign", f"sign/{second}", user="@alice").stderr
            assert "merged main into" in signing
            assert status(world, second, code=0)["behind_main"] is None
        world.merge(second)
        world.tufrepo("ci", "online-sign")
        world.tufrepo("ci", "verify")
        site = tmp_path / "site"
        publish(ci, site, now=LATER)
    assert signed(ci / "metadata/root.json")["version"] == 2
    assert signed(ci / "metadata/targets.json")["version"] == 2
    assert {p.name for p in (site / "metadata").glob("*.root.json")} == {
        "1.root.json",
        "2.root.json",
    }
    clients_update(world, site, [], 2)


def test_parallel_app_releases_all_complete(tmp_path: Path) -> None:
    """Four releases opened from their own app CI clones before any is merged: one merged
    first; the others are brought up to date by update-targets (CI), by `sign` and by
    re-running `event open`."""
    world = online_world(tmp_path)
    files = tmp_path / "files"
    files.mkdir()
    for name in "abcde":
        (files / name).write_bytes(f"{name} 1.0\n".encode())
    with freeze_time(T0 + timedelta(days=1)):
        for name in "abcd":
            clone = world.clone(f"app-{name}")
            target = f"--target=app-{name}.txt={files / name}"
            world.tufrepo(
                f"app-{name}", "event", "open", f"rel-{name}", "--repo", str(clone), target
            )
        world.tufrepo("alice", "sign", "sign/rel-a", user="@alice")
        world.merge("rel-a")
        world.tufrepo("ci", "online-sign")

        # rel-b: a real conflict (both change targets.json) that the CI step resolves
        stale = status(world, "rel-b", code=1)
        assert stale["behind_main"]["conflicts"] == ["targets"]
        assert (
            "targets: main changed it too since this event started: bring the event up to date"
            " with `tufrepo event update sign/rel-b`" in stale["problems"]
        )
        assert "snapshot" not in " ".join(stale["problems"])  # no noise about main's roles
        evci = world.clone("event-ci")
        git(evci, "checkout", "--quiet", "-B", "sign/rel-b", "origin/sign/rel-b")
        out = world.tufrepo("event-ci", "update-targets").stderr
        assert "targets: rebuilt on main's v2" in out
        fresh = status(world, "rel-b", code=1)
        assert fresh["behind_main"] is None
        assert fresh["problems"] == []
        role = fresh["roles"][0]
        assert (role["old_version"], role["version"], role["missing"]) == (2, 3, ["@alice"])
        assert [(a["path"], a["change"]) for a in role["artifacts"]] == [("app-b.txt", "added")]
        world.tufrepo("alice", "sign", "sign/rel-b", user="@alice")
        world.merge("rel-b")

        # rel-c: `sign` brings it up to date before it signs (never signs a stale state)
        out = world.tufrepo("alice", "sign", "sign/rel-c", user="@alice").stderr
        assert "merged main into sign/rel-c" in out
        assert "signed targets" in out
        assert status(world, "rel-c", code=0)["roles"][0]["version"] == 4
        world.merge("rel-c")

        # rel-d: app CI adds one more artifact to its stale event; `event open` merges main
        clone = world.clone("app-d")
        out = world.tufrepo("app-d", "event", "open", "rel-d", "--repo", str(clone),
                            f"--target=app-e.txt={files / 'e'}").stderr  # fmt: skip
        assert "merged main into sign/rel-d" in out
        role = status(world, "rel-d", code=1)["roles"][0]
        assert sorted(a["path"] for a in role["artifacts"]) == ["app-d.txt", "app-e.txt"]
        world.tufrepo("alice", "sign", "sign/rel-d", user="@alice")
        world.merge("rel-d")
        world.tufrepo("ci", "online-sign")
        world.tufrepo("ci", "verify")
    ci = world.clone("ci")
    listed = signed(ci / "metadata/targets.json")["targets"]
    assert sorted(listed) == [f"app-{n}.txt" for n in "abcde"]
    assert signed(ci / "metadata/targets.json")["version"] == 5


def test_same_role_signers_changed_by_two_events(tmp_path: Path) -> None:
    """Both events change the signers of targets: status names the roles and the command;
    `event update` keeps both changes (nothing lost); the result is signed and merged."""
    world = online_world(tmp_path)
    with freeze_time(T0 + timedelta(days=1)):
        world.tufrepo("alice", "delegate", "sign/add-bob", "targets", "--signers",
                      "@alice,@bob", user="@alice")  # fmt: skip
        world.tufrepo("alice", "delegate", "sign/add-carol", "targets", "--signers",
                      "@alice,@carol", user="@alice")  # fmt: skip
        world.tufrepo("bob", "sign", "sign/add-bob", user="@bob")
        world.tufrepo("alice", "sign", "sign/add-bob", user="@alice")
        status(world, "add-bob", code=0)
        world.tufrepo("carol", "sign", "sign/add-carol", user="@carol")
        carol_head = git(world.clone("carol"), "rev-parse", "sign/add-carol")
        world.merge("add-bob")
        world.tufrepo("ci", "online-sign")

        before = world.remote_refs()
        stale = status(world, "add-carol", code=1)
        assert world.remote_refs() == before
        assert stale["behind_main"]["conflicts"] == ["root", "targets"]
        command = "`tufrepo event update sign/add-carol`"
        for role in ("root", "targets"):
            assert any(p.startswith(f"{role}: main changed it too") and command in p
                       for p in stale["problems"])  # fmt: skip
        assert (
            stale["next"]
            == "Bring the event up to date with main: tufrepo event update sign/add-carol"
        )

        # a signer that fails after the update: the merge and the rebuild are undone too
        git(world.clone("alice"), "fetch", "--quiet", "origin")
        before = world.snapshot("alice")
        failed = world.tufrepo("alice", "sign", "sign/add-carol", "--signer",
                               f"file2:{tmp_path}/no.pem", user="@alice", code=2)  # fmt: skip
        assert "root v2 -> v3" in failed.stderr  # reviewed as rebuilt on main's root v2
        assert "no.pem" in failed.stderr.splitlines()[-1]
        assert world.snapshot("alice") == before
        out = world.tufrepo("alice", "event", "update", "sign/add-carol",
                            "--repo", str(world.clone("alice"))).stderr  # fmt: skip
        assert "root: rebuilt on main's v2" in out, out
        fresh = status(world, "add-carol", code=1)
        assert fresh["behind_main"] is None
        roles = {r["role"]: r for r in fresh["roles"]}
        assert [c.split(" [")[0] for c in roles["root"]["changes"]] == [
            "targets signer added: @carol"
        ]
        assert (roles["root"]["old_version"], roles["root"]["version"]) == (2, 3)
        assert "@alice" in roles["root"]["missing"]
        # nothing lost: carol's accepted key and the event's history stay
        remote_head = world.remote_refs()["refs/heads/sign/add-carol"]
        git(world.clone("carol"), "fetch", "--quiet", "origin")
        git(world.clone("carol"), "merge-base", "--is-ancestor", carol_head, remote_head)
        world.tufrepo("alice", "sign", "sign/add-carol", user="@alice")
        world.tufrepo("bob", "sign", "sign/add-carol", user="@bob")
        world.tufrepo("carol", "sign", "sign/add-carol", user="@carol")
        status(world, "add-carol", code=0)
        world.merge("add-carol")
        world.tufrepo("ci", "online-sign")
        world.tufrepo("ci", "verify")
    root = signed(world.clone("ci") / "metadata/root.json")
    owners = {root["keys"][k].get(KEYOWNER) for k in root["roles"]["targets"]["keyids"]}
    assert owners == {"@alice", "@bob", "@carol"}
    assert root["version"] == 3


def test_online_sign_push_refused_by_a_hook(tmp_path: Path) -> None:
    world = online_world(tmp_path, online_sign=False)
    with freeze_time(T0):
        hook = world.remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'main is protected: pushes need a review' >&2\nexit 1\n")
        hook.chmod(0o755)
        before = world.snapshot("ci")
        result = world.tufrepo("ci", "online-sign", code=1)
    assert "kept moving" not in result.stderr
    assert "refused the push to main: [remote rejected] (pre-receive hook declined)" in (
        result.stderr
    )
    assert "main is protected: pushes need a review" in result.stderr
    assert world.snapshot("ci") == before


@pytest.mark.parametrize("first", ["rotate", "release"])
def test_app_release_and_key_rotation_in_either_order(tmp_path: Path, first: str) -> None:
    """A release (targets.json) and a rotation of targets' signers (root.json, targets.json),
    open at once: whichever is merged second is brought up to date and completes."""
    world = online_world(tmp_path)
    artifact = tmp_path / "app.txt"
    artifact.write_bytes(b"app 1.0\n")
    with freeze_time(T0 + timedelta(days=1)):
        app = world.clone("app")
        world.tufrepo("app", "event", "open", "release", "--repo", str(app),
                      f"--target=app.txt={artifact}")  # fmt: skip
        world.tufrepo("alice", "delegate", "sign/rotate", "targets", "--signers", "@bob",
                      user="@alice")  # fmt: skip
        world.tufrepo("bob", "sign", "sign/rotate", user="@bob")
        world.tufrepo("alice", "sign", "sign/rotate", user="@alice")
        world.tufrepo("alice", "sign", "sign/release", user="@alice")
        second = "release" if first == "rotate" else "rotate"
        status(world, first, code=0)
        world.merge(first)
        world.tufrepo("ci", "online-sign")
        assert status(world, second, code=1)["behind_main"]["conflicts"] == ["targets"]
        # the second event's targets.json is rebuilt; targets' signer on main after both
        # merges is bob, who signs it
        for user in ("@alice", "@bob"):
            world.tufrepo(user.strip("@"), "sign", f"sign/{second}", user=user)
        status(world, second, code=0)
        world.merge(second)
        world.tufrepo("ci", "online-sign")
        world.tufrepo("ci", "verify")
    ci = world.clone("ci")
    assert list(signed(ci / "metadata/targets.json")["targets"]) == ["app.txt"]
    root = signed(ci / "metadata/root.json")
    owners = {root["keys"][k].get(KEYOWNER) for k in root["roles"]["targets"]["keyids"]}
    assert owners == {"@bob"}


def test_a_file_tufrepo_does_not_merge_stops_sign_and_changes_nothing(tmp_path: Path) -> None:
    world = online_world(tmp_path, online_sign=False)
    maint = world.clone("maintainer")
    with freeze_time(T0 + timedelta(days=1)):
        world.tufrepo("alice", "delegate", "sign/periods", "targets", "--expiry-period", "100",
                      user="@alice")  # fmt: skip
        for ref, text in (("origin/sign/periods", "event's\n"), ("origin/main", "main's\n")):
            git(maint, "fetch", "--quiet", "origin")
            git(maint, "checkout", "--quiet", "--detach", ref)
            (maint / "README.md").write_text(text)
            git(maint, "add", "README.md")
            git(maint, "commit", "--quiet", "-m", "readme")
            git(maint, "push", "--quiet", "origin", f"HEAD:{ref.removeprefix('origin/')}")
        stale = status(world, "periods", code=1)
        assert stale["behind_main"]["outside"] == ["README.md"]
        assert stale["next"] == "Merge main into the event with git, then run tufrepo status again."
        git(world.clone("alice"), "fetch", "--quiet", "origin")
        before = world.snapshot("alice")
        result = world.tufrepo("alice", "sign", "sign/periods", user="@alice", code=1)
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: cannot bring sign/periods up to date: README.md changed on main and in the"
        " event; merge main into it with git"
    )
    assert world.snapshot("alice") == before
