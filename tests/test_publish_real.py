"""A repository made by the real tufrepo commands (init, delegated role, app CI release event,
signatures, root rotation, merges on a bare remote, online-sign), published after each merge
and consumed by ngclient, check-site and tuf-js."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from tuf.api.metadata import Metadata

from tests.git_helpers import World, git
from tests.site_helpers import ngclient_download, run_tufjs, serve, tufjs_available
from tufrepo.client import inspect_site
from tufrepo.publish import PublishResult, publish

pytestmark = pytest.mark.git

ARTIFACT = "app/a/b/c/file.bin"


def ci_publish(world: World, site: Path) -> PublishResult:
    """What CI does on main after a merge: online-sign (commit + push), then publish."""
    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    return publish(ci, site)


def versions(site: Path, role: str) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in site.glob(f"metadata/*.{role}.json"))


def test_lifecycle_from_tufrepo_commands(tmp_path: Path) -> None:
    (tmp_path / "world").mkdir()
    world = World(tmp_path / "world")
    site = tmp_path / "site"
    world.init()
    world.tufrepo("alice", "delegate", "sign/app-role", "app", user="@alice")
    world.merge("app-role")
    ci_publish(world, site)

    artifact = world.root / "artifact.bin"
    artifact.write_bytes(b"release 1.0\n" * 100)
    world.tufrepo(
        "appci", "event", "open", "rel-1.0", "--remote", str(world.remote),
        "--target", f"{ARTIFACT}={artifact}",
    )  # fmt: skip
    world.tufrepo("alice", "sign", "sign/rel-1.0", user="@alice")
    world.merge("rel-1.0")
    ci_publish(world, site)

    # root rotation: @bob replaces @alice (signed by the old and the new root keys)
    world.tufrepo("alice", "delegate", "sign/rot", "root", "--signers", "@bob", user="@alice")
    world.tufrepo("bob", "sign", "sign/rot", user="@bob")
    world.tufrepo("alice", "sign", "sign/rot", user="@alice")
    world.merge("rot")
    result = ci_publish(world, site)
    assert result.hosted_elsewhere == []

    ci = world.clone("ci")
    snapshot_version = Metadata.from_file(str(ci / "metadata/snapshot.json")).signed.version
    app_version = Metadata.from_file(str(ci / "metadata/app.json")).signed.version
    assert versions(site, "root") == [1, 2]
    # every snapshot and app version of the three publishes is still there
    assert versions(site, "snapshot") == list(range(1, snapshot_version + 1))
    assert versions(site, "app") == list(range(1, app_version + 1))
    assert len(list(site.glob("targets/app/a/b/c/*.file.bin"))) == 1
    page = (site / "index.html").read_text()
    root_row = next(r for r in page.split("<tr ") if r.startswith('data-role="root"'))
    assert "@bob" in root_row
    assert "@alice" not in root_row

    with serve(site) as server:
        root1 = ci / "metadata" / "root_history" / "1.root.json"
        got = ngclient_download(server.url, root1, tmp_path / "c1", tmp_path / "o1", [ARTIFACT])
        assert got == 2
        assert (tmp_path / "o1" / "file.bin").read_bytes() == artifact.read_bytes()
        check = world.subprocess(
            tmp_path, "check-site", server.url, "--root", str(root1), "--download-all", "--json"
        )
        assert check.returncode == 0, check.stderr
        report = json.loads(check.stdout)
        assert report["downloaded"] == [ARTIFACT]
        assert {r["name"]: r["version"] for r in report["roles"]}["root"] == 2
        if tufjs_available():
            js = run_tufjs(server.url, root1, tmp_path / "c2", tmp_path / "o2", [ARTIFACT])
            assert js.returncode == 0, js.stderr
            assert js.json()["root_version"] == 2
            assert (tmp_path / "o2" / "file.bin").read_bytes() == artifact.read_bytes()


def test_scheduled_refresh_keeps_check_site_green(tmp_path: Path) -> None:
    """Flow 6: check-site fails once the timestamp is within the margin; the scheduled
    online-sign + publish refreshes it and check-site passes again."""
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    (tmp_path / "world").mkdir()
    world = World(tmp_path / "world")
    site = tmp_path / "site"
    with freeze_time(t0):
        world.init()
        ci_publish(world, site)
    root1 = (site / "metadata" / "1.root.json").read_bytes()
    later = t0 + timedelta(days=1, hours=2)  # the 2-day timestamp expires in 22h
    with serve(site) as server:
        with freeze_time(later):
            report = inspect_site(server.url, root1, now=later, valid_for=timedelta(days=1))
            assert [p.split(" expires")[0] for p in report.problems] == ["timestamp v1"]
            ci_publish(world, site)
            report = inspect_site(server.url, root1, now=later, valid_for=timedelta(days=1))
        assert report, report.problems
        assert {r.name: r.version for r in report.roles}["timestamp"] == 2
    assert versions(site, "snapshot") == [1]
