"""The work of CI's steps on a signing event, counted rather than timed: git commands (from
git's trace2 events) for ``update-targets`` on an event that main moved past, and garbage
collections while a large role is parsed."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api.metadata import Targets

from tests.git_helpers import World, git
from tests.test_partial_clones import Trace
from tufrepo import repository


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Trace:
    path = tmp_path / "trace2.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(path))
    return Trace(path)


def _tufrepos_commands(trace: Trace) -> list[str]:
    """The git commands tufrepo ran itself (not those git ran for them: the remote's side,
    automatic maintenance)."""
    return [
        " ".join(str(a) for a in e["argv"][1:3])  # type: ignore[index]
        for e in trace.events()
        if e["event"] == "start" and "/" not in str(e["sid"])
    ]


@pytest.mark.git
def test_update_targets_behind_main_runs_few_git_commands(tmp_path: Path, trace: Trace) -> None:
    """Main moved past the event (another release merged): update-targets merges main,
    rebuilds targets and commits with no checkout (the event is checked out already: each
    checkout walks git's index of every artifact), asks git where the event left main once
    per commit, and does not recompute the targets it has just rebuilt (38 git commands
    before, 4 of them checkouts, with GitPython's GitRepo; 30 after; 24 with tufrepo's own
    git processes and settings cache)."""
    world = World(tmp_path)
    world.init()
    files = tmp_path / "files"
    files.mkdir()
    for name in "ab":
        (files / name).write_bytes(f"{name} 1.0\n".encode())
        clone = world.clone(f"app-{name}")
        world.tufrepo(f"app-{name}", "event", "open", f"rel-{name}", "--repo", str(clone),
                      f"--target=app-{name}.txt={files / name}")  # fmt: skip
    world.tufrepo("alice", "sign", "sign/rel-a", user="@alice")
    world.merge("rel-a")
    ci = world.clone("event-ci")
    git(ci, "checkout", "--quiet", "-B", "sign/rel-b", "origin/sign/rel-b")
    trace.clear()
    assert "targets: rebuilt on main's v2" in world.tufrepo("event-ci", "update-targets").stderr
    commands = _tufrepos_commands(trace)
    assert len(commands) <= 24, commands
    assert [c for c in commands if c.startswith("checkout ")] == [
        "checkout --quiet"  # main's targets.json, taken for the rebuild
    ]
    assert sum(c.startswith("merge-base") for c in commands) == 1
    listed = json.loads((ci / "metadata/targets.json").read_text())["signed"]["targets"]
    assert sorted(listed) == ["app-a.txt", "app-b.txt"]
    git(ci, "fetch", "--quiet", "origin")
    assert git(ci, "rev-parse", "HEAD") == git(ci, "rev-parse", "origin/sign/rel-b")
    assert not git(ci, "status", "--porcelain")


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of the garbage collections that start from here on."""
    started: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(callback)
    yield started
    gc.callbacks.remove(callback)


def test_a_large_role_is_parsed_and_encoded_without_garbage_collections(
    collections: list[int],
) -> None:
    """Parsing a role of many artifacts makes five objects an artifact, none in a cycle:
    with the collector running, each batch of them started a collection that walked every
    object alive (half of a parse's time at 100,000 artifacts). Now at most one of the
    youngest objects after each parse or encoding, when the collector resumes."""
    sha = "a" * 64
    signed = Targets(version=1).to_dict()
    signed["targets"] = {
        f"{i}.bin": {"length": i, "hashes": {"sha256": sha}} for i in range(20_000)
    }
    data = json.dumps({"signatures": [], "signed": signed}, indent=1, sort_keys=True).encode()
    assert gc.isenabled()
    collections.clear()
    md = repository.parse("targets.json", data)
    again = repository.parse(
        "targets.json", data.replace(b'"version": 1', b'"version": 2'), like=md
    )
    assert repository.serialize(md) == data
    repository.signed_bytes(again)
    assert len(collections) <= 4, collections  # one after each, when the collector resumes
    assert 2 not in collections  # none of everything alive
    assert gc.isenabled()
    assert len(again.signed.targets) == 20_000
