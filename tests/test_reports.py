"""Reports that fit where they go: markdown under the comment limit whatever the event's size,
JSON complete, every format printed on every exit, and words that read right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.git_helpers import World, git
from tests.terminal_helpers import on_terminal
from tufrepo.report import MARKDOWN_LIMIT

pytestmark = pytest.mark.git


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.init()
    return w


def _checkout(world: World, clone: str, event: str) -> Path:
    path = world.clone(clone)
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", f"sign/{event}", f"origin/sign/{event}")
    return path


def test_5000_artifacts_markdown_fits_json_complete(world: World) -> None:
    world.tufrepo("alice", "delegate", "sign/app", "app", "--signers", "@alice", user="@alice")
    world.merge("app")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/big", "origin/main")
    for d in range(50):
        folder = ci / "targets" / "app" / f"dir{d:02d}"
        folder.mkdir(parents=True)
        for i in range(100):
            (folder / f"artifact-{i:04d}.bin").write_bytes(b"%d/%d" % (d, i))
    git(ci, "add", "targets")
    git(ci, "commit", "--quiet", "-m", "5,000 artifacts")
    head = git(ci, "rev-parse", "HEAD")

    # before update-targets: 5,000 validation errors, and the comment still fits
    md = world.tufrepo("ci", "status", "--no-fetch", "--format", "markdown", code=1).stdout
    assert len(md) <= MARKDOWN_LIMIT
    assert "more (see `tufrepo status --format json`)" in md

    world.tufrepo("ci", "update-targets", "--no-push")
    md = world.tufrepo("ci", "status", "--no-fetch", "--format", "markdown", code=1).stdout
    assert len(md) <= MARKDOWN_LIMIT, len(md)
    assert git(ci, "rev-parse", "HEAD") in md  # the event's commit is named
    assert head != git(ci, "rev-parse", "HEAD")
    assert "| app | app/dir07 | 100 | 0 | 0 |" in md  # the summary per directory
    assert "<details><summary>All 5000 artifact changes</summary>" in md
    assert "more not shown" in md
    assert md.rstrip().endswith("</details>")

    data = json.loads(
        world.tufrepo("ci", "status", "--no-fetch", "--format", "json", code=1).stdout
    )
    (app,) = data["roles"]
    assert len(app["artifacts"]) == 5000
    assert len(data["directories"]) == 50
    assert data["commit"] == git(ci, "rev-parse", "HEAD")

    text = world.tufrepo("ci", "status", "--no-fetch", code=1).stdout
    assert "5000 artifact changes: 5000 added" in text
    assert "app/dir49/: 100 added" in text
    assert len(text.splitlines()) < 100
    details = world.tufrepo("ci", "status", "--no-fetch", "--details", code=1).stdout
    assert "app/dir49/artifact-0099.bin" in details


@pytest.mark.parametrize("fmt", ["markdown", "json", "text"])
def test_corrupt_metadata_still_reports(world: World, fmt: str) -> None:
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/broken", "origin/main")
    targets = ci / "metadata" / "targets.json"
    targets.write_bytes(targets.read_bytes()[: len(targets.read_bytes()) // 2])
    git(ci, "commit", "--quiet", "-am", "truncated targets.json")
    result = world.tufrepo("ci", "status", "--no-fetch", "--format", fmt, code=2)
    assert "targets.json" in result.stdout
    assert "targets.json" in result.stderr
    if fmt == "json":
        data = json.loads(result.stdout)
        assert data["ready"] is False
        assert "targets.json" in data["error"]
    if fmt == "markdown":
        assert result.stdout.startswith("### Signing event `sign/broken`: cannot be checked")


def test_verify_json_on_bad_input(world: World) -> None:
    result = world.tufrepo("ci", "verify", "--json", "--at", "no-such-ref", code=2)
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert "no-such-ref" in data["error"]


def test_status_on_main_names_the_open_events(world: World) -> None:
    world.tufrepo("alice", "delegate", "sign/rotate", "targets", "--signers", "@alice,@bob",
                  user="@alice")  # fmt: skip
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    result = world.tufrepo("ci", "status", code=1)
    assert "main is not a signing event" in result.stdout
    assert "sign/rotate" in result.stdout
    assert "changes no role" not in result.stdout
    data = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    assert data["open_events"] == ["sign/rotate"]


def test_threshold_met_with_a_missing_signer_is_not_a_plain_tick(world: World) -> None:
    """targets signed by 1 of its 2 signers (threshold 1): ready, but not shown as complete."""
    world.tufrepo(
        "alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
        "--threshold", "1", "--expiry-period", "2", "--signing-period", "1", user="@alice",
    )  # fmt: skip
    world.tufrepo("bob", "sign", "sign/two", user="@bob")
    _checkout(world, "ci", "two")
    md = world.tufrepo("ci", "status", "--no-fetch", "--format", "markdown", code=1).stdout
    row = next(line for line in md.splitlines() if line.startswith("|") and " targets " in line)
    assert "@alice" in row
    assert "✅" not in row
    assert "☑️" in row
    assert "1 days" not in md
    assert "signing period: 60 -> 1 day\n" in md


def test_status_fetch_updates_the_event(world: World) -> None:
    world.tufrepo("alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
                  "--threshold", "2", user="@alice")  # fmt: skip
    ci = _checkout(world, "ci", "two")
    before = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    assert before["invites"] == {"@bob": ["targets"]}
    world.tufrepo("bob", "sign", "sign/two", user="@bob")
    after = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    assert after["invites"] == {}
    assert "@bob" in json.dumps(after["roles"])
    assert git(ci, "rev-parse", "HEAD") == git(ci, "rev-parse", "origin/sign/two")


def test_verify_progress_only_on_a_terminal(world: World) -> None:
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    (ci / "targets").mkdir(exist_ok=True)
    (ci / "targets" / "notes.txt").write_text("notes\n")  # an unlisted file: exit 1
    code, screen = on_terminal("verify", answers=[], cwd=ci)
    assert code == 1, screen
    assert "hashing artifacts" in screen
    assert "notes.txt" in screen
    result = world.tufrepo("ci", "verify", code=1)
    assert "hashing" not in result.stderr
