"""Work that does not grow with the repository in git either: what git's own trace says.

App CI's ``event open --remote`` runs in a clone with no git index at all; CI and signers in a
sparse clone (``tufrepo.git.sparse_clone``: cone mode, sparse index) keep git's index at the
size of the metadata, command after command. Read from git's trace2 events (every index a git
process reads, with its number of entries, and every expansion of a sparse index), so
counting, not timing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import tufrepo.git
from tests.git_helpers import World, git

ARTIFACTS = 120  # in 6 directories
FETCHES = 5  # requests for objects of a partial clone: metadata, owning roles, artifacts


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.init()
    world.tufrepo("alice", "delegate", "sign/bins", "targets", "--bins", "8", user="@alice")
    world.merge("bins")
    git(world.remote, "config", "uploadpack.allowFilter", "true")
    args = world.target_args(ARTIFACTS, lambda i: f"d{i % 6}/a{i}.bin")
    world.tufrepo("appci", "event", "open", "fill", "--remote", str(world.remote), *args)
    world.tufrepo("alice", "sign", "sign/fill", user="@alice")
    world.merge("fill")
    return world


class Trace:
    """git's trace2 events of the git processes run while it is on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def commands(self) -> list[str]:
        """The git command of every git process (options before it skipped)."""
        return [_command(e) for e in self.events() if e["event"] == "start"]

    def index_sizes(self) -> list[int]:
        """Entries of every index read."""
        return [
            int(str(e["value"]))
            for e in self.events()
            if e.get("category") == "index" and e.get("key") == "read/cache_nr"
        ]

    def index_reads(self) -> list[tuple[str, int]]:
        """(git command, entries) of every index read."""
        commands = {e["sid"]: _command(e) for e in self.events() if e["event"] == "start"}
        return [
            (commands.get(e["sid"], ""), int(str(e["value"])))
            for e in self.events()
            if e.get("category") == "index" and e.get("key") == "read/cache_nr"
        ]

    def expansions(self) -> int:
        """Sparse indexes expanded to every file."""
        return sum(
            1
            for e in self.events()
            if e["event"] == "region_enter" and e.get("label") == "ensure_full_index"
        )

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _command(start: dict[str, object]) -> str:
    """The git command of a trace2 ``start`` event (options before it skipped)."""
    argv = [a for a in start["argv"][1:] if isinstance(a, str)]  # type: ignore[index]
    while argv and argv[0].startswith("-"):  # git -c name=value --option ...
        argv = argv[2:] if argv[0] == "-c" else argv[1:]
    return argv[0] if argv else ""


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Trace:
    path = tmp_path / "trace2.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(path))
    return Trace(path)


def _listed(world: World, event: str) -> set[str]:
    """Every artifact the hash bins of ``sign/<event>`` list."""
    ref = f"origin/sign/{event}"
    clone = world.clone("reader")
    git(clone, "fetch", "--quiet", "origin")
    out: set[str] = set()
    for name in git(clone, "ls-tree", "--name-only", f"{ref}:metadata").split():
        if name.startswith("targets-bins-"):
            out |= set(
                json.loads(git(clone, "show", f"{ref}:metadata/{name}"))["signed"]["targets"]
            )
    return out


def test_event_open_remote_reads_no_git_index(world: World, trace: Trace) -> None:
    """App CI's clone has no index: artifacts are committed by grafting git trees, so no git
    process reads an index (let alone one of every artifact) and the number of git commands
    does not depend on the number of artifacts (blobs come in a few requests, not one by
    one)."""
    url = world.remote.as_uri()
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    trace.clear()
    world.tufrepo(
        "appci", "event", "open", "rel", "--remote", url,
        "--target", f"d1/new.bin={new}", "--target", "d2/a2.bin=" + str(new),
        "--remove", "d3/a3.bin",
    )  # fmt: skip
    assert not [n for n in trace.index_sizes() if n > 0]
    assert not {"checkout", "status", "add", "read-tree", "update-index"} & set(trace.commands())
    assert trace.commands().count("fetch") <= FETCHES
    assert _listed(world, "rel") == (
        {f"d{i % 6}/a{i}.bin" for i in range(ARTIFACTS)} - {"d3/a3.bin"} | {"d1/new.bin"}
    )
    clone = world.clone("check")
    git(clone, "fetch", "--quiet", "origin")
    git(clone, "checkout", "--quiet", "origin/sign/rel")
    assert (clone / "targets/d1/new.bin").read_bytes() == b"new release"
    assert (clone / "targets/d2/a2.bin").read_bytes() == b"new release"
    assert not (clone / "targets/d3/a3.bin").exists()
    assert (clone / "targets/d3/a9.bin").read_bytes() == b"9"  # a neighbour is kept

    # the same event again, ten artifacts more (in more hash bins): as many requests, and
    # the event's earlier changes (on its branch, not on main) are kept
    args = []
    for i in range(10):
        args += ["--target", f"d4/more{i}.bin={new}"]
    trace.clear()
    world.tufrepo("appci", "event", "open", "rel", "--remote", url, *args)
    assert trace.commands().count("fetch") <= FETCHES
    assert not [n for n in trace.index_sizes() if n > 0]
    listed = _listed(world, "rel")
    assert {"d1/new.bin", *(f"d4/more{i}.bin" for i in range(10))} <= listed
    assert "d3/a3.bin" not in listed


def test_a_sparse_clone_keeps_a_sparse_index(world: World, trace: Trace) -> None:
    """CI's update-targets and status and a signer's sign in a sparse clone: git's index
    stays the metadata's size (each artifact directory one entry), never expanded to every
    artifact, and artifacts are read without being checked out."""
    url = world.remote.as_uri()
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    world.tufrepo("appci", "event", "open", "rel", "--remote", url, "--target", f"d5/n.bin={new}")
    ci = tufrepo.git.sparse_clone(url, world.root / "sparse-ci").path
    assert git(ci, "config", "index.sparse") == "true"
    assert "targets/" in git(ci, "ls-files", "--sparse").splitlines()
    git(ci, "checkout", "--quiet", "-B", "sign/rel", "origin/sign/rel")
    alice = tufrepo.git.sparse_clone(url, world.root / "sparse-alice").path

    trace.clear()
    assert "up to date" in world.tufrepo("ci", "update-targets", "--repo", str(ci)).stderr
    world.tufrepo("ci", "status", "--repo", str(ci), code=1)
    signed = world.tufrepo("alice", "sign", "sign/rel", "--repo", str(alice), user="@alice")
    assert "signed targets" in signed.stdout + signed.stderr
    sizes = trace.index_sizes()
    assert sizes
    assert max(sizes) < ARTIFACTS / 2
    assert trace.expansions() == 0
    for clone in (ci, alice):
        assert not (clone / "targets").exists()
        assert "targets/" in git(clone, "ls-files", "--sparse").splitlines()


def test_sign_leaves_the_signers_checkout_alone(world: World, trace: Trace) -> None:
    """A signer's ``sign`` of an event that contains main, in a sparse clone on main: the
    event is read and committed as git objects in a worktree of the command's own, so no
    git process reads, refreshes or writes an index (its first refresh after a checkout
    hashes every racily clean metadata file: ~500 hash bins at a million artifacts), nor
    checks anything out; the checkout stays on main, unchanged, and the local event branch
    is the pushed, signed commit."""
    url = world.remote.as_uri()
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    world.tufrepo("appci", "event", "open", "rel", "--remote", url, "--target", f"d5/n.bin={new}")
    alice = tufrepo.git.sparse_clone(url, world.root / "sparse-alice").path
    (alice / "notes.txt").write_text("the signer's own, uncommitted")
    before = _files(alice / "metadata")

    trace.clear()
    signed = world.tufrepo("alice", "sign", "sign/rel", "--repo", str(alice), user="@alice")
    assert "signed targets-bins-" in signed.stdout + signed.stderr
    commands = trace.commands()
    # git fetch reads the index (looking for submodules), never refreshing it
    assert {c for c, n in trace.index_reads() if n > 0} == {"fetch"}
    assert not {"checkout", "status", "add", "commit", "read-tree", "update-index"} & set(commands)
    assert commands.count("fetch") <= 3  # the branches; the event's changed files; none

    assert git(alice, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(alice, "status", "--porcelain") == "?? notes.txt"
    assert _files(alice / "metadata") == before
    assert len(git(alice, "worktree", "list").splitlines()) == 1
    git(alice, "fetch", "--quiet", "origin")
    head = git(alice, "rev-parse", "origin/sign/rel")
    assert git(alice, "rev-parse", "sign/rel") == head
    assert git(alice, "log", "-1", "--format=%s", head) == "Signature from @alice"
    assert "d5/n.bin" in _listed(world, "rel")
    again = world.tufrepo("alice", "sign", "sign/rel", "--repo", str(alice), user="@alice")
    assert "nothing to sign" in again.stdout + again.stderr
    assert len(git(alice, "worktree", "list").splitlines()) == 1


def test_sign_after_a_killed_sign_removes_only_the_abandoned_worktree(world: World) -> None:
    """A ``sign`` killed (SIGKILL) before it removed its worktree leaves the event's branch
    checked out there, which git refuses to check out again: the next ``sign`` removes a
    worktree whose process is gone, never one of a running command or the user's own."""
    url = world.remote.as_uri()
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    world.tufrepo("appci", "event", "open", "rel", "--remote", url, "--target", f"d5/n.bin={new}")
    alice = tufrepo.git.sparse_clone(url, world.root / "sparse-alice").path
    git(alice, "fetch", "--quiet", "origin")
    gone = world.root / "tufrepo-event-killed" / "event"
    gone.parent.mkdir()
    git(alice, "worktree", "add", "--quiet", "--no-checkout", "--lock", "--reason",
        f"tufrepo pid {_exited_pid()}", "-B", "sign/rel", str(gone), "origin/sign/rel")  # fmt: skip
    mine = world.root / "users-own"
    git(alice, "worktree", "add", "--quiet", "--lock", "--reason", "mine", "--detach",
        str(mine), "main")  # fmt: skip
    live = world.root / "tufrepo-event-running" / "event"
    git(alice, "worktree", "add", "--quiet", "--no-checkout", "--lock", "--reason",
        f"tufrepo pid {os.getpid()}", "-b", "sign/other", str(live), "main")  # fmt: skip

    signed = world.tufrepo("alice", "sign", "sign/rel", "--repo", str(alice), user="@alice")
    assert "signed targets-bins-" in signed.stdout + signed.stderr
    listed = git(alice, "worktree", "list", "--porcelain")
    assert f"worktree {gone}" not in listed
    assert not gone.parent.exists()
    assert f"worktree {mine}" in listed
    assert f"worktree {live}" in listed
    assert git(alice, "log", "-1", "--format=%s", "sign/rel") == "Signature from @alice"


def _exited_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_sign_on_the_event_branch_updates_the_checkout(world: World) -> None:
    """A signer whose checkout is on the event branch gets the signed files there: that
    event is signed in the checkout itself (not in a worktree of the command's own)."""
    url = world.remote.as_uri()
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    world.tufrepo("appci", "event", "open", "rel", "--remote", url, "--target", f"d5/n.bin={new}")
    alice = tufrepo.git.sparse_clone(url, world.root / "sparse-alice").path
    git(alice, "checkout", "--quiet", "-B", "sign/rel", "origin/sign/rel")
    world.tufrepo("alice", "sign", "sign/rel", "--repo", str(alice), user="@alice")
    assert git(alice, "symbolic-ref", "--short", "HEAD") == "sign/rel"
    assert git(alice, "log", "-1", "--format=%s") == "Signature from @alice"
    assert git(alice, "rev-parse", "HEAD") == git(alice, "rev-parse", "origin/sign/rel")
    assert git(alice, "status", "--porcelain") == ""
    changed = git(alice, "diff", "--name-only", "HEAD~1", "HEAD", "--", "metadata").split()
    assert changed
    for path in changed:
        assert (alice / path).read_bytes() == git_bytes(alice, f"HEAD:{path}")


def git_bytes(cwd: Path, spec: str) -> bytes:
    return subprocess.run(["git", "show", spec], cwd=cwd, check=True, capture_output=True).stdout


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tree(cwd: Path, entries: list[tuple[str, str, str]]) -> str:
    """A tree object written as is (git's own tools refuse names such as '..')."""
    data = b"".join(
        f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries
    )
    proc = subprocess.run(
        ["git", "hash-object", "-w", "-t", "tree", "--literally", "--stdin"],
        cwd=cwd, input=data, capture_output=True, check=True,
    )  # fmt: skip
    return proc.stdout.decode().strip()


def test_event_open_remote_refuses_tree_paths_that_climb_out(world: World) -> None:
    """An event branch whose tree holds a '..' entry under an artifact's path: app CI's
    clone writes files from git objects itself (not through git's checkout, which refuses
    such paths), so it refuses them too rather than write outside the clone."""
    evil = world.clone("evil")
    git(evil, "checkout", "--quiet", "-B", "sign/evil", "origin/main")
    blob = git(evil, "hash-object", "-w", "--stdin")  # empty content
    climb = _tree(evil, [("100644", "pwned", blob)])
    for _ in range(6):
        climb = _tree(evil, [("40000", "..", climb)])
    targets = git(evil, "rev-parse", "HEAD:targets")
    listing = [line.split(None, 3) for line in git(evil, "ls-tree", targets).splitlines()]
    entries = [(m.lstrip("0") or m, n, o) for m, _, o, n in listing] + [("40000", "x.bin", climb)]
    entries.sort(key=lambda e: e[1] + ("/" if e[0] == "40000" else ""))
    root = [
        (m.lstrip("0") or m, n, _tree(evil, entries) if n == "targets" else o)
        for m, _, o, n in (
            line.split(None, 3) for line in git(evil, "ls-tree", "HEAD").splitlines()
        )
    ]
    commit = git(evil, "commit-tree", _tree(evil, root), "-p", "HEAD", "-m", "climb")
    git(evil, "push", "--quiet", "origin", f"{commit}:refs/heads/sign/evil")
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    out = world.tufrepo(
        "appci", "event", "open", "evil", "--remote", world.remote.as_uri(),
        "--target", f"x.bin={new}", code=1,
    )  # fmt: skip
    assert "not a plain path" in out.stderr
    assert not list(world.root.parent.rglob("pwned"))


def test_event_open_remote_on_an_event_main_moved_on_from(world: World, trace: Trace) -> None:
    """An event behind main needs a git merge: app CI then clones sparsely (an index of the
    metadata) and brings the event up to date before adding to it."""
    url = world.remote.as_uri()
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    world.tufrepo("appci", "event", "open", "late", "--remote", url, "--target", f"d1/x.bin={new}")
    world.release("other", "d2/other.bin", b"other", "@alice")  # main moves on
    trace.clear()
    out = world.tufrepo(
        "appci", "event", "open", "late", "--remote", url, "--target", f"d3/y.bin={new}"
    )
    assert "checkout" in trace.commands()  # the sparse clone's
    assert "Merge main into sign/late" in git(world.remote, "log", "--format=%s", "sign/late")
    assert {"d1/x.bin", "d3/y.bin", "d2/other.bin"} <= _listed(world, "late"), out.stderr
