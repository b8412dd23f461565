"""App CI's clone fetches the trees it reads, not every tree: counted in git's own objects.

``event open --remote`` clones commits alone (``bare_clone_for_partial``) and asks for
the root trees and the directories it reads level by level (``GitRepo.fetch_trees``);
git's on-demand fetch would bring every tree below a missing one (all of ``targets/``).
Which trees are in the clone is read with ``git rev-list --missing=print`` (fetches nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.git_helpers import git
from tufrepo.git import GitRepo, bare_clone_for_partial


def _upstream(tmp_path: Path, directories: int) -> Path:
    """A bare repository of ``metadata/`` (with root_history/) and ``directories``
    directories of artifacts under ``targets/``; ``targets/a`` holds a copy of
    ``targets/b`` (a tree inside a tree asked for in the same request)."""
    work = tmp_path / f"work{directories}"
    (work / "metadata/root_history").mkdir(parents=True)
    (work / "metadata/root.json").write_text("{}")
    (work / "metadata/root_history/1.root.json").write_text("{}")  # the same blob
    for i in range(directories):
        (work / f"targets/d{i}").mkdir(parents=True)
        (work / f"targets/d{i}/x{i}.bin").write_text(f"{i}")
    (work / "targets/b").mkdir()
    (work / "targets/b/z.bin").write_text("z")
    (work / "targets/a/b").mkdir(parents=True)
    (work / "targets/a/b/z.bin").write_text("z")
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "state")
    bare = tmp_path / f"upstream{directories}.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    git(bare, "config", "uploadpack.allowFilter", "true")
    git(bare, "config", "uploadpack.allowAnySHA1InWant", "true")
    return bare


def _present_trees(repo: GitRepo, upstream: Path) -> set[str]:
    """Paths of the trees of main the clone holds. The listing is the upstream's (ls-tree in
    the clone would fetch what it lacks); ``rev-list --missing=print`` fetches nothing."""
    raw = git(repo.path, "rev-list", "--objects", "--missing=print", "HEAD")
    held = {line.split()[0] for line in raw.splitlines() if not line.startswith("?")}
    listed = git(upstream, "ls-tree", "-r", "-t", "-d", "--format=%(objectname) %(path)", "main")
    trees = [(git(upstream, "rev-parse", "main^{tree}"), "")]
    trees += [(oid, path) for oid, path in (line.split(" ", 1) for line in listed.splitlines())]
    return {path for oid, path in trees if oid in held}


def _fetches(trace: Path) -> int:
    """Requests for objects (``git fetch --stdin``) in the trace."""
    if not trace.exists():
        return 0
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    starts = [e["argv"] for e in events if e["event"] == "start"]
    return sum(1 for argv in starts if "fetch" in argv and "--stdin" in argv)


@pytest.mark.parametrize("directories", [3, 40])
def test_only_the_trees_read_are_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, directories: int
) -> None:
    upstream = _upstream(tmp_path, directories)
    repo = bare_clone_for_partial(upstream.as_uri(), tmp_path / "clone")
    assert _present_trees(repo, upstream) == set()  # commits alone
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    head = repo.resolve("HEAD") or ""
    repo.fetch_trees(
        [head],
        paths=("targets/d1/new.bin", "targets/a/z/new.bin", "targets/b/new.bin"),
        expand=("", "metadata"),
    )
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    read = {"", "metadata", "metadata/root_history", "targets", "targets/d1", "targets/a",
            "targets/b"}  # fmt: skip
    # targets/a/b, the same tree as targets/b: when git's filter drops it with targets/a
    # the request is made again with the trees below (never the other directories)
    assert read <= _present_trees(repo, upstream) <= read | {"targets/a/b"}
    assert _fetches(trace) <= 5  # a request per level (and one retry), whatever the size
    # what the command then reads needs no more fetches
    trace.unlink(missing_ok=True)
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    assert repo.list_dir(head, "targets/d1") == ["x1.bin"]
    assert repo.list_dir(head, "metadata") == ["root.json"]
    git(repo.path, "ls-tree", "-r", head, "--", "metadata", "targets/d1")
    assert _fetches(trace) == 0


def test_a_complete_clone_asks_for_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server without partial clones sends everything; asking it for a tree by id would
    send every object below it again."""
    upstream = _upstream(tmp_path, 3)
    git(upstream, "config", "uploadpack.allowFilter", "false")
    repo = bare_clone_for_partial(upstream.as_uri(), tmp_path / "clone")
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    repo.fetch_trees([repo.resolve("HEAD") or ""], paths=("targets/d1/x",), expand=("",))
    assert _fetches(trace) == 0
    assert repo.list_dir(repo.resolve("HEAD"), "targets/d2") == ["x2.bin"]
