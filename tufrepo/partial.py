"""App CI's own clone for ``event open --remote``: no checkout and no git index at all.

:class:`PartialWorkspace` is a :class:`tufrepo.workspace.Workspace` whose metadata is read
from git objects until the command writes it, whose changed artifacts are the files it
writes, and whose commit is built from those files (:meth:`tufrepo.git.GitRepo.partial_commit`):
no git command reads or writes an index of every artifact (see docs/performance.md).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tuf.api.metadata import TargetFile

from tufrepo.errors import GitError, InputError
from tufrepo.git import Change, GitRepo
from tufrepo.repository import METADATA_DIR, MetadataView, dir_view
from tufrepo.roles import STATE_FILE
from tufrepo.targets import DESCRIPTOR_SUFFIX, DESCRIPTORS_DIR, TARGETS_DIR
from tufrepo.workspace import Workspace, start_point

log = logging.getLogger(__name__)


@dataclass
class PartialWorkspace(Workspace):
    """A clone of this command's own with nothing checked out and no git index
    (:meth:`GitRepo.start_partial`): app CI's ``event open --remote``. Metadata is read from
    the event's commit (or the working tree, once this command wrote it); artifacts it
    changes are written to the working tree; the commit is built from the files written
    (:meth:`GitRepo.partial_commit`). No git command reads or writes an index of every
    artifact, nor does this command fetch metadata it does not read."""

    touched: dict[str, bool] = field(default_factory=dict)  # path: written? (else removed)
    _blobs: tuple[str | None, dict[str, str]] | None = field(default=None, init=False, repr=False)

    def metadata_blobs(self) -> dict[str, str]:
        """{path: blob id} of the event commit's metadata."""
        head = self.git.head()
        if self._blobs is None or self._blobs[0] != head:
            self._blobs = (head, self.git.tree_blobs(head, METADATA_DIR) if head else {})
        return self._blobs[1]

    def prefetch_metadata(self, names: list[str], targets: list[str]) -> None:
        """Fetch, a request per level of directories, the trees this command reads (its clone
        has the root trees alone): main's and the event's top directories and metadata/,
        the directories on the way to ``targets`` (artifact paths) and where the event
        differs from main; and the blobs of ``metadata/<name>`` files with them."""
        commits = [c for c in (self.main, self.git.head()) if c is not None]
        paths = [f"{TARGETS_DIR}/{t}" for t in targets]
        paths += [f"{DESCRIPTORS_DIR}/{t}{DESCRIPTOR_SUFFIX}" for t in targets]
        self.git.fetch_trees(
            commits,
            paths=tuple(paths),
            expand=("", METADATA_DIR),
            files=tuple(f"{METADATA_DIR}/{n}" for n in names),
        )

    def prefetch_changed(self) -> None:
        """Fetch, in one request, the blobs of the files the event changed since where it
        left main (metadata, artifacts, descriptors) and of root, targets and the event
        state: what the command reads of the event (a partial clone would fetch them one by
        one, and the artifacts in a request of their own). Blobs the clone has already
        cost no request."""
        head = self.git.head()
        if head is None or self.fork() is None:
            return
        changed = [c.path for c in self.changes() if c.status != "D"]
        meta = {p for p in changed if p.startswith(f"{METADATA_DIR}/")}
        meta |= {f"{METADATA_DIR}/{n}" for n in ("root.json", "targets.json", STATE_FILE)}
        blobs = {b for p in meta if (b := self.metadata_blobs().get(p))}
        content = [p for p in changed if p.split("/", 1)[0] in (TARGETS_DIR, DESCRIPTORS_DIR)]
        blobs |= set(self.git.blobs_at(head, content).values())
        self.git.prefetch(sorted(blobs))

    def event(self) -> MetadataView:
        """The event's metadata: the working tree's files over the event commit's."""
        head, work = self.git.head(), dir_view(self.checkout)

        def read(name: str) -> bytes | None:
            data = work.raw(name)
            return data if data is not None else self.git.read_blob(head, f"{METADATA_DIR}/{name}")

        def lister(sub: str) -> list[str]:
            folder = f"{METADATA_DIR}/{sub}".rstrip("/")
            here = self.checkout / folder
            names = {p.name for p in here.iterdir() if p.is_file()} if here.is_dir() else set()
            return sorted(names | set(self.git.list_dir(head, folder)))

        return MetadataView(read, lister, "working tree")

    def uncommitted(self) -> list[Change]:
        """What this command wrote: metadata files that differ from the event commit's, and
        the artifact files recorded."""
        blobs = self.metadata_blobs()
        meta = []
        folder = self.checkout / METADATA_DIR
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file():
                rel = path.relative_to(self.checkout).as_posix()
                if blobs.get(rel) != blob_id(path.read_bytes()):
                    meta.append(Change("M" if rel in blobs else "A", rel))
        return meta + [Change("M" if w else "D", p) for p, w in sorted(self.touched.items())]

    def changes(self) -> list[Change]:
        """The event's changes against where it left main: its commits' (trees compared)
        and this command's."""
        head = self.git.head()
        if self._changes is None or self._changes[0] != head:
            fork = self.fork()
            committed = self.git.tree_changes(fork, head) if fork and head and head != fork else []
            mine = self.uncommitted()
            own = {c.path for c in mine}
            self._changes = (head, [c for c in committed if c.path not in own] + mine)
        return self._changes[1]

    def record(self, written: list[str], removed: list[str]) -> None:
        """Artifact files (paths in the checkout) this command wrote or removed."""
        self.touched.update(dict.fromkeys(written, True))
        self.touched.update(dict.fromkeys(removed, False))
        self.forget_changes()

    def flushed(self, paths: list[str]) -> None:
        """Metadata files this command wrote or removed: those of the event commit that are
        no longer in the work tree were removed (the others it never wrote: they are read
        from git objects)."""
        blobs = self.metadata_blobs()
        gone = [p for p in paths if p in blobs and not (self.checkout / p).exists()]
        self.touched.update(dict.fromkeys(gone, False))
        self.forget_changes()

    def materialize(self, targets: list[str], *, around: bool = False) -> None:
        """Write the files of ``targets`` (and around them) that the event's commit has into
        the work tree, from git objects (fetched on demand), outside git's index; and those
        of the artifacts the event's earlier commits changed, which the targets metadata is
        compared with (:meth:`expected_targets`), so that they come in the same requests."""
        paths = set(targets)
        if around:
            parts = [t.split("/") for t in targets]
            paths |= {"/".join(p[:i]) for p in parts for i in range(1, len(p))}
        earlier = [t for t in self.changed_artifacts() if t not in paths]
        paths |= set(earlier)
        files = [f"{TARGETS_DIR}/{t}" for t in paths]
        files += [f"{DESCRIPTORS_DIR}/{t}{DESCRIPTOR_SUFFIX}" for t in paths]
        if around:
            files += [f"{d}/{t}/" for t in targets for d in (TARGETS_DIR, DESCRIPTORS_DIR)]
        owners = self._owner_blobs(sorted(set(targets) | set(earlier)))  # in the same request
        self.git.export_files(
            self.git.head(), [f for f in files if f not in self.touched], also=tuple(owners)
        )

    def expected_targets(
        self, base: MetadataView, event: MetadataView, roles: list[str]
    ) -> dict[str, dict[str, TargetFile]]:
        self.materialize(self.changed_artifacts())  # the event's earlier commits' too
        return super().expected_targets(base, event, roles)

    def _owner_blobs(self, targets: list[str]) -> list[str]:
        """The blobs of the metadata of the roles (hash bins) that own ``targets`` on main
        and in the event, to fetch in one request (reading them would fetch them one by
        one)."""
        roles = set()
        for view in (self.base(), self.event()):
            rmap = view.role_map()
            for target in targets:
                try:
                    roles.add(rmap.owner(target))
                except InputError:  # refused later, with the whole story
                    continue
        paths = [f"{METADATA_DIR}/{r}.json" for r in sorted(roles)]
        blobs = [b for p in paths if (b := self.metadata_blobs().get(p))]
        if self.main is not None and self.main != self.git.head():
            on_main = self.git.tree_blobs(self.main, METADATA_DIR)
            blobs += [b for p in paths if (b := on_main.get(p))]
        return sorted(set(blobs))

    def commit(self, message: str, paths: list[str]) -> str:
        changed = {c.path: c.status for c in self.uncommitted()}
        files = {p: (None if s == "D" else self.checkout / p) for p, s in changed.items()}
        return self.git.partial_commit(message, files)


def worktree_start(ws: Workspace, branch: str) -> str | None:
    """The commit of event ``branch`` to work on in a worktree of the command's own
    (:func:`event_worktree`), or None when the event needs this checkout: it does not exist,
    it is the branch checked out here (its files must follow), or main moved on since it
    started (bringing it up to date is a git merge, which needs an index).

    Raises:
        GitError: the local branch and the remote's have diverged.
    """
    repo = ws.git
    if ws.main is None or repo.current_branch() == branch:
        return None
    local, remote = repo.resolve(f"refs/heads/{branch}"), repo.remote_branch(branch)
    start = start_point(repo, branch, local, remote)
    if start is None or not repo.is_ancestor(ws.main, start):
        return None
    return start


@contextmanager
def event_worktree(ws: Workspace, branch: str, start: str) -> Iterator[PartialWorkspace]:
    """Event ``branch`` at ``start`` (see :func:`worktree_start`) in a linked worktree of the
    command's own with nothing checked out and no index (:meth:`GitRepo.add_worktree`): the
    event is read from git objects, what the command writes is committed from objects onto
    the local ``branch``, and ``ws``'s checkout (files, index, checked-out branch) is left
    alone: no git command compares or rewrites its files. The worktree is removed when the
    command ends; on any exception the local branch is put back where it was (or removed
    when this created it)."""
    repo = ws.git
    for left in repo.abandoned_worktrees():  # by a command that was killed: it holds branch
        log.info("removing the worktree a killed tufrepo command left: %s", left)
        _remove_worktree(repo, left.parent)
    local = repo.resolve(f"refs/heads/{branch}")
    tmp = Path(tempfile.mkdtemp(prefix=_PREFIX))
    try:
        partial = PartialWorkspace(repo.add_worktree(tmp / "event", branch, start), ws.main)
        partial.prefetch_changed()
        yield partial
    except BaseException:
        _remove_worktree(repo, tmp)
        try:
            repo.set_branch(branch, local)
        except GitError as e:
            log.warning("rollback of %s incomplete: %s", branch, e.diagnostics())
        raise
    _remove_worktree(repo, tmp)


def _remove_worktree(repo: GitRepo, tmp: Path) -> None:
    try:
        repo.remove_worktree(tmp / "event")
    except GitError as e:
        log.warning("could not remove the worktree %s: %s", tmp / "event", e.diagnostics())
    if tmp.name.startswith(_PREFIX):  # the temporary directory event_worktree made
        shutil.rmtree(tmp, ignore_errors=True)


_PREFIX = "tufrepo-event-"


def blob_id(data: bytes) -> str:
    """git's id of a blob of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
