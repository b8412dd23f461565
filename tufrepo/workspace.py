"""A checkout seen as a signing event against main, and the transaction around changing it.

:class:`Workspace` joins git (what changed since main, main's files as git objects) with the
pure logic (event status, expected targets). :func:`event_session` checks an event branch out
and guarantees that a failure - a bad input, a signer error, a rejected push - leaves the
checkout, its branches and the remote as they were.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path

from tuf.api.metadata import TargetFile

from tufrepo.errors import GitError, InputError
from tufrepo.event import Behind, EventStatus, event_status, group_targets
from tufrepo.git import EVENT_PREFIX, Change, GitRepo
from tufrepo.repository import HISTORY_DIR, METADATA_DIR, MetadataView, dir_view, git_view
from tufrepo.roles import ONLINE_ROLES, STATE_FILE
from tufrepo.targets import (
    CONTENT_DIRS,
    DESCRIPTOR_SUFFIX,
    DESCRIPTORS_DIR,
    TARGETS_DIR,
    apply_changes,
    artifacts_around,
    check_clashes,
    check_no_symlink,
    descriptor_target,
    exists_artifact,
    is_artifact_path,
    target_changes_by_role,
)

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    """A checkout and the main commit it is compared with."""

    git: GitRepo
    main: str | None
    throwaway: bool = False  # a clone of this command's own, removed when it ends
    _changes: tuple[str | None, list[Change]] | None = field(
        default=None, init=False, repr=False
    )  # (HEAD, what changed), asked of git once per HEAD
    _bases: dict[tuple[str, str], str | None] = field(default_factory=dict, init=False, repr=False)
    refreshed: str | None = field(default=None, init=False, repr=False)
    """The commit whose targets metadata :func:`tufrepo.update.refresh_targets` brought up to
    date with its artifacts (then committed: nothing to do again at that commit)."""

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        fetch: bool = True,
        remote: str = "origin",
        push_remote: str | None = None,
    ) -> Workspace:
        """``path``'s checkout compared with ``remote``'s main; pushes go to ``push_remote``
        (default: ``remote``)."""
        repo = GitRepo(path, remote, push_remote)
        if push_remote is not None and not repo.has_remote(push_remote):
            raise InputError(f"no git remote named {push_remote!r} (add it: git remote add)")
        if fetch:
            repo.fetch()
        return cls(repo, repo.main_commit())

    @property
    def checkout(self) -> Path:
        return self.git.path

    def fork(self) -> str | None:
        """Where the checked-out event left main: ``merge-base HEAD main`` (main itself when
        there is no commit yet or no common history). An event's changes are against it."""
        return self.merge_base() or self.main

    def merge_base(self) -> str | None:
        """``merge-base HEAD main`` (None: no commit yet, or no common history), asked of git
        once per commit checked out."""
        head = self.git.head()
        if self.main is None or head is None:
            return None
        if (head, self.main) not in self._bases:
            self._bases[head, self.main] = self.git.merge_base(head, self.main)
        return self._bases[head, self.main]

    def on_main(self, commit: str) -> None:
        """``commit`` (just made) contains main: a merge of main, or a commit on top of one."""
        if self.main is not None:
            self._bases[commit, self.main] = self.main

    def view_at(self, commit: str | None, label: str) -> MetadataView:
        """The metadata of ``commit``, read from git objects."""
        return git_view(
            lambda p: self.git.read_blob(commit, p),
            lambda d: self.git.list_dir(commit, d),
            label,
        )

    def base(self) -> MetadataView:
        """Main's metadata, read from git objects: main's delegators decide who must sign."""
        return self.view_at(self.main, "main")

    def event(self) -> MetadataView:
        return dir_view(self.checkout)

    def changes(self) -> list[Change]:
        """Paths the event changes: against where it left main (:meth:`fork`), working tree
        included; asked of git once per commit checked out (:meth:`forget_changes` after
        writing files)."""
        head = self.git.head()
        if self._changes is None or self._changes[0] != head:
            self._changes = (head, self.git.changes(self.fork()))
        return self._changes[1]

    def uncommitted(self) -> list[Change]:
        """Paths that differ from the checked-out commit (working tree included)."""
        return self.git.changes(self.git.head())

    def commit(self, message: str, paths: list[str]) -> str:
        """Commit ``paths`` (and what is staged); returns the commit."""
        return self.git.commit(message, paths)

    def record(self, written: list[str], removed: list[str]) -> None:
        """Artifact files (paths in the checkout) this command wrote or removed: the removed
        ones leave git's index (a sparse checkout would take them for files not checked
        out)."""
        self.git.untrack(removed)
        self.forget_changes()

    def flushed(self, paths: list[str]) -> None:
        """Metadata files (paths in the checkout) this command wrote or removed: git sees
        them in the work tree."""

    def forget_changes(self) -> None:
        """Files were written or another branch checked out: ask git again next time."""
        self._changes = None

    def _changed_under(self, directory: str) -> list[str]:
        prefix = f"{directory}/"
        return [c.path.removeprefix(prefix) for c in self.changes() if c.path.startswith(prefix)]

    def changed_roles(self) -> list[str]:
        """Roles whose ``metadata/<role>.json`` the event changes (working tree included)."""
        roles = (role_of(f"{METADATA_DIR}/{name}") for name in self._changed_under(METADATA_DIR))
        return sorted(r for r in roles if r is not None)

    def changed_artifacts(self) -> list[str]:
        """Target paths (relative to targets/) the event changes (hidden names are not
        artifacts)."""
        paths = set(self._changed_under(TARGETS_DIR))
        paths.update(descriptor_target(p) for p in self._changed_under(DESCRIPTORS_DIR))
        return sorted(p for p in paths if is_artifact_path(p))

    def materialize(self, targets: list[str], *, around: bool = False) -> None:
        """Check out the files and descriptors of ``targets`` (a no-op unless the checkout
        is sparse: then their blobs are fetched on demand); ``around``: also what a new
        artifact there could clash with (artifacts at its parent paths, a directory at it)."""
        paths = set(targets)
        if around:
            parts = [t.split("/") for t in targets]
            paths |= {"/".join(p[:i]) for p in parts for i in range(1, len(p))}
        files = [f"{TARGETS_DIR}/{t}" for t in paths]
        files += [f"{DESCRIPTORS_DIR}/{t}{DESCRIPTOR_SUFFIX}" for t in paths]
        if around:
            files += [f"{d}/{t}/" for t in targets for d in (TARGETS_DIR, DESCRIPTORS_DIR)]
        self.git.materialize(sorted(files))

    def expected_targets(
        self, base: MetadataView, event: MetadataView, roles: list[str]
    ) -> dict[str, dict[str, TargetFile]]:
        """Targets of each changed targets-type role recomputed from main + the changed files.

        Work grows with the change: main's (verified) targets metadata is the starting point
        and only changed artifacts are hashed.

        Raises:
            InputError: a changed file that no role owns, a symlink, an unsafe path.
        """
        changed = self.changed_artifacts()
        with self.changed_tree(changed) as tree:
            return expected_targets(base, event, roles, tree, changed)

    @contextmanager
    def changed_tree(self, changed: list[str]) -> Iterator[Path]:
        """A directory that holds the ``changed`` artifacts as the event has them: the work
        tree when every file is in it, else (a sparse checkout) a temporary copy of just
        those (:meth:`copy_changed`), removed afterwards."""
        if not self.git.is_sparse():
            yield self.checkout
            return
        with tempfile.TemporaryDirectory(prefix="tufrepo-changed-") as tmp:
            self.copy_changed(changed, Path(tmp))
            yield Path(tmp)

    def copy_changed(self, targets: list[str], dest: Path) -> None:
        """The files and descriptors of ``targets`` as the event has them, into ``dest``:
        the work tree's where it has them, else (a sparse checkout: not checked out) the
        event commit's from git objects, fetched in one request. Nothing in the checkout
        changes: checking files out of a sparse index would make git expand it to every
        artifact, command after command."""
        deleted = {c.path for c in self.changes() if c.status == "D"}
        files = [f"{TARGETS_DIR}/{t}" for t in targets]
        files += [f"{DESCRIPTORS_DIR}/{t}{DESCRIPTOR_SUFFIX}" for t in targets]
        from_git = []
        for rel in files:
            top, _, rest = rel.partition("/")
            src, out = check_no_symlink(self.checkout / top, rest, top), dest / rel
            if src.is_dir():
                out.mkdir(parents=True, exist_ok=True)
            elif src.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out)
            elif rel not in deleted:
                from_git.append(rel)
        self.git.export_files(self.git.head(), from_git, dest)

    def status(self, name: str, now: datetime, event: MetadataView | None = None) -> EventStatus:
        """The event judged as merged with main: its own changes (against where it left
        main) over main's files, signed by whom main's delegators name. When main changed
        what the event changes too, the merge is not the event's state: it is shown as its
        pull request shows it (against where it left main), with the conflicts. ``event``:
        the working tree's view when the caller has one (its files parsed once)."""
        base, fork = self.base(), self.fork()
        event = event or self.event()
        behind = None
        head = self.git.head()
        if self.main is not None and head is not None and fork is not None and fork != self.main:
            committed = {c.path for c in self.git.tree_changes(fork, head)}
            changed = {
                c.path: c.status for c in self.changes() if c.path.startswith(f"{METADATA_DIR}/")
            }
            behind = self._behind(name, fork, committed | set(changed))
            if behind.conflicts or behind.outside:
                base = self.view_at(fork, "where the event left main")
            else:
                event = self._merged_view(changed)
        roles = self.changed_roles()
        expected = self.expected_targets(base, event, roles)
        result = event_status(
            name, base, event, changed_roles=roles, expected_targets=expected, now=now
        )
        if behind is not None:
            result.behind = behind
            since = "main changed it too since this event started"
            result.problems += [
                f"{c}: {since}: bring the event up to date with `{behind.command}`"
                for c in behind.conflicts
            ]
            result.problems += [
                f"{p}: {since}: merge main into the event with git (tufrepo merges only"
                f" {', '.join(f'{d}/' for d in CONTENT_DIRS)})"
                for p in behind.outside
            ]
        return result

    def _behind(self, name: str, fork: str, event_paths: set[str]) -> Behind:
        """How far main moved on since ``fork``, and what both changed (trees only: no walk
        of the work tree's artifacts)."""
        main = self.main or ""
        main_paths = {c.path for c in self.git.tree_changes(fork, main)}
        conflicts, outside = [], []
        for path in sorted(main_paths & event_paths):
            side = merge_side(path)
            if side is Side.REBUILD:
                conflicts.append(role_of(path) or path)
            elif side is Side.EVENT and not path.startswith(f"{METADATA_DIR}/"):
                conflicts.append(path)  # an artifact both changed: the event's is kept
            elif side is Side.GIT:
                outside.append(path)
        return Behind(
            commits=self.git.count_commits(fork, main),
            main_changed=sorted({r for r in map(role_of, main_paths) if r is not None}),
            conflicts=conflicts,
            command=f"tufrepo event update {name if name.startswith(EVENT_PREFIX) else 'EVENT'}",
            outside=outside,
        )

    def _merged_view(self, event_changes: dict[str, str]) -> MetadataView:
        """The metadata main will have once the event is merged: the event's changed files
        (working tree) over main's."""
        main, work = self.main, dir_view(self.checkout)

        def read(name: str) -> bytes | None:
            if f"{METADATA_DIR}/{name}" in event_changes:
                return work.raw(name)
            return self.git.read_blob(main, f"{METADATA_DIR}/{name}")

        def lister(sub: str) -> list[str]:
            folder = f"{METADATA_DIR}/{sub}".rstrip("/")
            names = set(self.git.list_dir(main, folder))
            for path, status in event_changes.items():
                parent, _, leaf = path.rpartition("/")
                if parent == folder:
                    (names.discard if status == "D" else names.add)(leaf)
            return sorted(names)

        return MetadataView(read, lister, "main with the event merged")


class Side(Enum):
    """Whose version of a file both main and an event changed the merge keeps."""

    MAIN = "main"  # snapshot, timestamp, root_history: main's to keep
    EVENT = "event"  # artifacts, descriptors, the event's invitations
    REBUILD = "rebuild"  # a role's metadata: the event's changes replayed on main's
    GIT = "git"  # a file outside metadata/, targets/, descriptors/: not tufrepo's to merge


def merge_side(path: str) -> Side:
    """Whose version of ``path`` (changed by main and by the event) the merge keeps (pure)."""
    role = role_of(path)
    if role is not None:
        return Side.MAIN if role in ONLINE_ROLES else Side.REBUILD
    if path.startswith(f"{METADATA_DIR}/{HISTORY_DIR}/"):
        return Side.MAIN
    return Side.EVENT if path.split("/", maxsplit=1)[0] in CONTENT_DIRS else Side.GIT


def role_of(path: str) -> str | None:
    """The role whose metadata file ``path`` is (``metadata/<role>.json``), or None."""
    name = path.removeprefix(f"{METADATA_DIR}/")
    if name in (path, STATE_FILE) or "/" in name or not name.endswith(".json"):
        return None
    return name.removesuffix(".json")


def expected_targets(
    base: MetadataView, event: MetadataView, roles: list[str], checkout: Path, changed: list[str]
) -> dict[str, dict[str, TargetFile]]:
    """Targets of each changed targets-type role (and each role owning a ``changed`` path),
    from main's targets plus the current state of the changed paths in ``checkout``.

    A role whose layout differs from main's (new hash bins, a re-binning) gets main's
    artifacts of its whole group re-distributed by the event's role map.

    Raises:
        InputError: a changed file that no role owns, a symlink, a path that breaks the
            artifact path rule (file/directory clashes with the checkout included).
    """
    bmap, emap = base.role_map(), event.role_map()
    present = [p for p in changed if exists_artifact(checkout, p)]
    by_role = target_changes_by_role(changed, emap, removed=set(changed) - set(present))
    check_clashes(present + [a for p in present for a in artifacts_around(checkout, p)])
    targets_roles = {r for r in roles if r in emap}
    pools: dict[str, dict[str, TargetFile]] = {}
    out = {}
    for role in sorted(targets_roles | set(by_role)):
        if bmap.layout(role) == emap.layout(role):
            old = base.targets(role).targets if base.get(role) is not None else {}
        else:
            group = emap.group(role)
            if group not in pools:
                pools[group] = group_targets(base, bmap, group)
            old = {p: tf for p, tf in pools[group].items() if emap.owner(p) == role}
        out[role] = apply_changes(old, checkout, by_role.get(role, []))
    return out


@contextmanager
def event_session(ws: Workspace, branch: str, *, create: bool) -> Iterator[None]:
    """Check out event ``branch`` (from the remote, or off main when ``create``).

    On any exception the local branch is put back where it was (or deleted if this created
    it), files written are removed, and the original branch is checked out again.
    """
    repo = ws.git
    if not repo.is_clean():
        raise InputError(f"{repo.path} has uncommitted changes: commit or stash them first")
    local = repo.resolve(f"refs/heads/{branch}")
    remote = repo.remote_branch(branch)
    start = start_point(repo, branch, local, remote)
    if start is None:
        if not create:
            raise InputError(f"signing event {branch} does not exist")
        if ws.main is None and repo.head() is not None:
            raise InputError("no main branch to start the signing event from")
        start = ws.main
    orig_branch, orig_head = repo.current_branch(), repo.head()
    ws.forget_changes()
    try:
        there = orig_branch == branch and orig_head == start  # checked out, clean: as is
        if start is None:  # an empty repository: the first commit starts the event
            repo.start_orphan(branch)
        elif not there:  # (a checkout walks git's index: seconds at 100,000 artifacts)
            repo.checkout(start, new_branch=branch)
        yield
    except BaseException:
        _rollback(repo, branch, local, orig_branch, orig_head)
        raise
    if orig_head is not None and not ws.throwaway and orig_branch != branch:
        repo.return_to(orig_branch, orig_head, *CONTENT_DIRS)  # (after `delegate` in an
        # empty clone: stay on the event; on the event already: its commits are committed)


def start_point(repo: GitRepo, branch: str, local: str | None, remote: str | None) -> str | None:
    """Where event ``branch`` continues: the newer of the local branch and the remote's
    (None: neither exists). Raises GitError when they have diverged."""
    if local is None or remote is None or local == remote:
        return remote or local
    if repo.is_ancestor(local, remote):
        return remote
    if repo.is_ancestor(remote, local):
        return local  # unpushed local commits (e.g. after --no-push)
    raise GitError(f"local {branch} and the remote's have diverged: resolve it with git first")


def _rollback(
    repo: GitRepo, branch: str, local: str | None, orig_branch: str | None, orig_head: str | None
) -> None:
    """Undo an event session: files, a merge in progress, the local event branch, and the
    checked-out branch."""
    try:
        repo.discard(None, *CONTENT_DIRS)
        if local is not None:
            repo.reset_to(local)
        repo.return_to(orig_branch, orig_head, *CONTENT_DIRS)
        if (
            local is None
            and repo.current_branch() != branch
            and repo.resolve(f"refs/heads/{branch}")
        ):
            repo.delete_branch(branch)
    except GitError as e:
        log.warning("rollback of %s incomplete: %s", branch, e.diagnostics())


def commit_and_push(ws: Workspace, branch: str, message: str, paths: list[str], push: bool) -> str:
    """Commit ``paths`` on the checked-out ``branch`` and push it (never forcing)."""
    sha = ws.commit(message, paths)
    if push:
        ws.git.push(branch)
    return sha
