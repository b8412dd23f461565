"""The only module that talks to git (git commands as argument lists, never a shell).

Everything is passed to git as separate arguments; branch names are validated before they
reach git; failures become :class:`tufrepo.errors.GitError`. Git commands run as plain
subprocesses and objects are read through one ``git cat-file --batch`` per checkout;
GitPython (~30 ms to import, every command paid it) only clones, creates bare
repositories and exports a tree (``verify --at``), and is imported when one of those runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from tufrepo.errors import GitError, InputError, StaleBranchError

if TYPE_CHECKING:
    import git

log = logging.getLogger(__name__)

EVENT_PREFIX = "sign/"
_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAIN = "main"
_SYMLINK_MODE = 0o120000
_TREE_MODE = 0o040000
_SUBMODULE_MODE = 0o160000
_NOT_BLOB = (_TREE_MODE, _SUBMODULE_MODE)


def event_branch(name: str) -> str:
    """``sign/<name>`` from ``name`` or ``sign/<name>``, validated.

    Raises:
        InputError: the name has characters other than letters, digits, ``.``, ``_``, ``-``.
    """
    short = name.removeprefix(EVENT_PREFIX)
    if not _EVENT_NAME.match(short) or ".." in short or short.endswith((".lock", ".")):
        raise InputError(
            f"invalid signing event name {name!r}: use letters, digits, '.', '_' and '-' only"
        )
    return EVENT_PREFIX + short


@dataclass(frozen=True)
class Change:
    """A path that differs between a base commit and the working tree."""

    status: str  # "A" added, "M" modified, "D" deleted
    path: str


_BLOBS_KEPT = 4
"""Blobs :meth:`GitRepo.read_blob` keeps: a command reads main's copy of a role from several
views (a flat role of 100,000 artifacts: 14.6 MB, ~0.1 s through git each time)."""


class GitRepo:
    """A git checkout. All git access of tufrepo goes through this class."""

    def __init__(self, path: Path, remote: str = "origin", push_remote: str | None = None) -> None:
        top = Path(path).absolute()
        if not (top / ".git").exists():  # the top of a checkout: .git, a directory or a file
            if (top / "HEAD").is_file() and (top / "objects").is_dir():
                raise InputError(f"{path} is a bare repository, not a checkout")
            raise InputError(f"{path} is not a git checkout")
        self.path = top
        self.remote = remote
        self.push_remote = push_remote or remote  # a fork, for signers who cannot push upstream
        self._trees: dict[bytes, dict[str, tuple[int, bytes]]] = {}  # see _tree
        self._fetched: set[str] = set()  # objects fetched by _fetch_objects
        self._settings: dict[str, str | None] | None = None  # see _setting
        self._batch: subprocess.Popen[bytes] | None = None  # see _object
        self._batch_lock = threading.Lock()
        self._blobs: dict[bytes, bytes] = {}  # the last blobs read_blob read, by id

    # -- running git ---------------------------------------------------------------------
    def run(self, *args: str) -> str:
        """Run ``git args...`` in the checkout; GitError (with git's own message) on failure."""
        if _subcommand(args) in _CHANGES_CONFIG:
            self._settings = None
        proc = self._git(list(args))
        if proc.returncode != 0:
            msg = _text(proc.stderr).strip().splitlines()
            detail = next((line.strip() for line in reversed(msg) if line.strip()), "failed")
            raise GitError(f"git {_subcommand(args)}: {detail}")
        return _text(proc.stdout).removesuffix("\n")

    def _git(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        """``git args`` in the checkout: no input, output captured, git's messages in
        English (they are parsed), whatever the exit status."""
        return subprocess.run(["git", *args], cwd=self.path, env=_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)  # fmt: skip

    def remote_url(self) -> str | None:
        """The URL of the remote, or None without one."""
        if not self.has_remote():
            return None
        return self.run("remote", "get-url", self.remote).strip() or None

    def has_remote(self, name: str | None = None) -> bool:
        prefix = f"remote.{name or self.remote}."
        return any(k.startswith(prefix) and "." not in k[len(prefix) :] for k in self._config())

    def _config(self) -> dict[str, str | None]:
        """The checkout's git settings (``section.subsection.key``, section and key in lower
        case; None: a key without a value, which is true), read with one ``git config``
        when first asked (commands ask often) and again after a command that changes them."""
        if self._settings is None:
            raw = self.run("config", "--list", "-z")
            self._settings = {}
            for item in filter(None, raw.split("\0")):
                key, newline, value = item.partition("\n")
                self._settings[key] = value if newline else None  # the last one counts
        return self._settings

    # -- refs ----------------------------------------------------------------------------
    def fetch(self) -> None:
        """Fetch all branches of the remote (no-op when there is no remote)."""
        if self.has_remote():
            self.run("fetch", "--quiet", "--prune", self.remote)

    def resolve(self, ref: str) -> str | None:
        """The commit id of ``ref``, or None when it does not exist (asked of the running
        ``cat-file``: commands ask often)."""
        found = self._object(f"{ref}^{{commit}}")
        return found[0] if found is not None else None

    def main_commit(self) -> str | None:
        """The trusted state: ``<remote>/main`` (after a fetch) or local ``main``."""
        if self.has_remote():
            sha = self.resolve(f"refs/remotes/{self.remote}/{MAIN}")
            if sha:
                return sha
        return self.resolve(f"refs/heads/{MAIN}")

    def remote_branch(self, branch: str) -> str | None:
        return self.resolve(f"refs/remotes/{self.remote}/{branch}") if self.has_remote() else None

    def event_branches(self) -> list[str]:
        """Signing event branches (``sign/*``) on the remote, or local ones without a remote."""
        prefix = f"refs/remotes/{self.remote}/" if self.has_remote() else "refs/heads/"
        raw = self.run("for-each-ref", "--format=%(refname)", f"{prefix}{EVENT_PREFIX}")
        return sorted(line.removeprefix(prefix) for line in raw.splitlines() if line)

    def follow_remote(self, branch: str) -> bool:
        """Move the checked-out ``branch`` to the remote's when it is only behind it and the
        checkout is clean (never merges, never drops a local commit); True when it moved."""
        remote, head = self.remote_branch(branch), self.head()
        if remote is None or head is None or remote == head:
            return False
        if self.current_branch() != branch or not self.is_ancestor(head, remote):
            return False
        if not self.is_clean():
            log.warning("%s has local changes: not updated to the remote's", branch)
            return False
        self.fast_forward(remote)
        return True

    def current_branch(self) -> str | None:
        try:
            return self.run("symbolic-ref", "--quiet", "--short", "HEAD").strip()
        except GitError:
            return None

    def head(self) -> str | None:
        """The checked-out commit (None: an unborn branch), asked of the running
        ``cat-file`` rather than a new git process (commands ask often)."""
        found = self._object("HEAD")
        return found[0] if found is not None else None

    def is_clean(self) -> bool:
        return not self.run("status", "--porcelain", "--untracked-files=all").strip()

    # -- reading objects (never a temporary clone) ----------------------------------------
    def _object(self, name: str) -> tuple[str, str, bytes] | None:
        """(id, type, content) of the object ``name`` (an id, or ``HEAD``, ``<commit>^{commit}``
        ...), or None when there is none: one ``git cat-file --batch`` per checkout answers
        every read of the command (a partial clone fetches what it lacks, as git does)."""
        if "\n" in name or not name:
            return None
        with self._batch_lock:  # one question and its answer at a time
            if self._batch is None or self._batch.poll() is not None:
                self._batch = subprocess.Popen(
                    ["git", "cat-file", "--batch"], cwd=self.path, env=_env(),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                weakref.finalize(self, _stop, self._batch)
            batch = self._batch
            stdin, stdout = cast("IO[bytes]", batch.stdin), cast("IO[bytes]", batch.stdout)
            try:
                stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
                stdin.flush()
                return _answer(stdout)
            except (OSError, ValueError) as e:
                self._batch = None  # out of step with its answers: the next read starts anew
                _stop(batch)
                raise GitError(f"git cat-file: cannot read {name}: {e}") from e

    def _root_tree(self, commit: str) -> bytes:
        """The id of ``commit``'s root tree, read from the commit object alone (in a clone
        without trees, reading the tree would fetch every tree below it)."""
        found = self._object(f"{commit}^{{commit}}")
        if found is None or not found[2].startswith(b"tree "):
            raise GitError(f"no such commit: {commit}")
        return bytes.fromhex(found[2][5:45].decode())

    def _tree(self, oid: bytes) -> dict[str, tuple[int, bytes]]:
        """{name: (mode, object id)} of tree ``oid``, parsed once per command (a tree's id
        is its content: the cache cannot go stale); ``metadata/`` holds a file per hash bin."""
        entries = self._trees.get(oid)
        if entries is None:
            found = self._object(oid.hex())
            if found is None or found[1] != "tree":
                raise GitError(f"no tree {oid.hex()[:12]}")
            try:
                entries = parse_tree(found[2])
            except ValueError as e:  # a name such as "..", which no checkout may hold
                raise GitError(f"tree {oid.hex()[:12]}: {e}") from e
            self._trees[oid] = entries
        return entries

    def _lookup(self, commit: str | None, path: str) -> tuple[int, bytes] | None:
        """(mode, object id) of ``path`` at ``commit`` (a directory: a tree), or None."""
        if commit is None:
            return None
        found: tuple[int, bytes] = (_TREE_MODE, self._root_tree(commit))
        for part in filter(None, path.split("/")):
            if found[0] != _TREE_MODE:
                return None
            entry = self._tree(found[1]).get(part)
            if entry is None:
                return None
            found = (entry[0], entry[1])
        return found

    def read_blob(self, commit: str | None, path: str) -> bytes | None:
        """The content of ``path`` at ``commit``, or None when absent or not a file (a
        symlink too: as the work tree's metadata is read, never the link's text)."""
        found = self._lookup(commit, path)
        if found is None or found[0] in (_TREE_MODE, _SUBMODULE_MODE, _SYMLINK_MODE):
            return None
        data = self._blobs.pop(found[1], None)
        if data is None:
            data = self.read_object(found[1].hex())
        self._blobs[found[1]] = data  # the most recent last
        while len(self._blobs) > _BLOBS_KEPT:
            del self._blobs[next(iter(self._blobs))]
        return data

    def exists(self, commit: str | None, path: str) -> bool:
        """``path`` (file or directory) exists at ``commit``."""
        return self._lookup(commit, path) is not None

    def list_dir(self, commit: str | None, path: str) -> list[str]:
        """Names of the blobs directly in directory ``path`` at ``commit``."""
        found = self._lookup(commit, path)
        if found is None or found[0] != _TREE_MODE:
            return []
        entries = self._tree(found[1])
        return sorted(n for n, (mode, _) in entries.items() if mode not in _NOT_BLOB)

    def changes(self, base: str | None, *only: str) -> list[Change]:
        """Every path that differs between ``base`` and the working tree (untracked files
        included): one ``git diff`` and one ``git ls-files`` for the whole checkout.

        Never with a pathspec in a full checkout: git answers ``diff <commit> -- <dir>`` by
        unpacking the whole tree against the work tree (seconds on 100,000 files), and
        ``diff <commit>`` from the index's stat cache (a fraction of a second). Callers filter
        the result. ``only`` (directories) is for a partial checkout, whose index holds
        nothing else (:meth:`start_partial`).
        """
        out: list[Change] = []
        spec = ["--", *only] if only else []
        if base is not None:
            raw = self.run("diff", "--no-renames", "--name-status", "-z", base, *spec)
            fields = raw.split("\0")
            for status, path in zip(fields[0::2], fields[1::2], strict=False):
                if status:
                    out.append(Change(status[0], path))
        else:
            raw = self.run("ls-files", "-z")
            out.extend(Change("A", p) for p in raw.split("\0") if p)
        untracked = self.run("ls-files", "-z", "--others", "--exclude-standard", *spec)
        out.extend(Change("A", p) for p in untracked.split("\0") if p)
        return out

    def history_changes(self, path: str, ref: str = "HEAD") -> list[str]:
        """Commits (short) on ``ref``'s first-parent line that modified or deleted files under
        ``path`` (an event's own commits, merged as one merge or squash commit, do not count)."""
        raw = self.run("log", "--first-parent", "--format=%h", "--diff-filter=MDR", ref, "--", path)
        return [line for line in raw.splitlines() if line]

    def last_change(self, path: str, ref: str = "HEAD") -> str | None:
        """The newest commit on ``ref``'s first-parent line that changed ``path`` (None: never).

        Walks commits only back to that one: the cost grows with the commits since, not with
        the size of the tree.
        """
        raw = self.run("log", "-1", "--first-parent", "--format=%H", ref, "--", path)
        return raw.strip() or None

    # -- sparse, partial checkouts ----------------------------------------------------------
    def is_sparse(self) -> bool:
        """A sparse checkout (see :func:`sparse_clone`): files outside its patterns are absent."""
        return self._config_bool("core.sparseCheckout", default=False)

    def _config_bool(self, name: str, *, default: bool) -> bool:
        """The boolean setting ``name`` (``core.sparseCheckout``), as ``git config --bool``
        reads it."""
        section, _, rest = name.partition(".")
        sub, _, key = rest.rpartition(".")
        settings = self._config()
        full = ".".join(filter(None, (section.lower(), sub, key.lower())))
        if full not in settings:
            return default
        raw = settings[full]
        value = "true" if raw is None else raw.lower()
        if value in ("true", "yes", "on", "false", "no", "off", ""):
            return value in ("true", "yes", "on")
        try:
            return int(value, 0) != 0
        except ValueError as e:
            raise GitError(f"git config: bad boolean value {value!r} for {name}") from e

    def materialize(self, paths: list[str]) -> None:
        """Check out ``paths`` (files of the repository; ``dir/``: every file under ``dir``)
        in a sparse checkout, fetching their blobs from the remote on demand in a partial
        clone; a no-op in a full checkout. A path that does not exist yet may then be
        written and committed like any other.

        In cone mode (what :func:`sparse_clone` and CI checkouts make) the files are checked
        out one by one, leaving the sparse patterns, and a sparse index, as they are: files
        already in the work tree, and tracked files someone deleted, are left alone."""
        if not paths or not self.is_sparse():
            return
        if self._config_bool("core.sparseCheckoutCone", default=True):
            self._materialize_files(paths)
            return
        patterns = self._sparse_patterns() + [f"/{_escape_pattern(p)}" for p in paths]
        self.run("sparse-checkout", "set", "--no-cone", "--", *dict.fromkeys(patterns))

    def _materialize_files(self, paths: list[str]) -> None:
        """Cone mode: ``git checkout HEAD -- files`` for the files of ``paths`` in HEAD that
        are skipped (outside the cone), never a file of the work tree."""
        if self.head() is None:
            return
        specs = sorted({p.rstrip("/") for p in paths})
        found = self.run("--literal-pathspecs", "ls-tree", "-r", "-z", "--name-only", "HEAD",
                         "--", *specs)  # fmt: skip
        absent = [p for p in found.split("\0") if p and not os.path.lexists(self.path / p)]
        if not absent:
            return
        # absent because deleted (in the work tree or the index), not skipped: left so
        raw = self.run("--literal-pathspecs", "diff", "--no-renames", "--name-status", "-z",
                       "--diff-filter=D", "HEAD", "--", *absent)  # fmt: skip
        deleted = set(raw.split("\0")[1::2])
        todo = [p for p in absent if p not in deleted]
        if todo:
            self.run("--literal-pathspecs", "checkout", "--quiet", "--ignore-skip-worktree-bits",
                     "HEAD", "--", *todo)  # fmt: skip

    def materialize_all(self) -> None:
        """Check out every file (a whole-repository check in a sparse checkout)."""
        if self.is_sparse():
            self.run("sparse-checkout", "disable")

    def _sparse_patterns(self) -> list[str]:
        """The non-cone patterns of the checkout."""
        return [line for line in self.run("sparse-checkout", "list").splitlines() if line]

    def path_history(
        self, path: str, tips: list[str], *, every_line: bool = False
    ) -> list[tuple[str, str]]:
        """(commit, blob) for every commit on the first-parent lines of ``tips`` that changed
        file ``path``, newest first; blob is the file's id after the commit ("" if deleted).
        ``every_line``: every commit reachable from ``tips``, merged branches included.

        One ``git log`` whatever the length of the history (merges diffed against their
        first parent, as the first-parent line sees them)."""
        if not tips:
            return []
        walk = "--full-history" if every_line else "--first-parent"
        raw = self.run("log", walk, "--diff-merges=first-parent", "--raw",
                       "--no-abbrev", "--no-renames", "--format=%H", *tips, "--", path)  # fmt: skip
        out: list[tuple[str, str]] = []
        commit = ""
        for line in raw.splitlines():
            if line.startswith(":"):
                fields = line.split("\t", 1)[0].split()
                out.append((commit, "" if fields[4] == "D" else fields[3]))
            elif line.strip():
                commit = line.strip()
        return out

    def read_object(self, blob: str) -> bytes:
        """The content of blob ``blob`` (an id from :meth:`path_history`)."""
        found = self._object(blob)
        if found is None or found[1] != "blob":
            raise GitError(f"no blob {blob[:12]}")
        return found[2]

    def rewritten_remote(self, branch: str) -> list[str]:
        """Commits the remote's ``branch`` pointed to (as this checkout saw it: the reflog of
        its remote-tracking ref) that are no longer in its history: what a forced push of
        older history removed. Empty in a fresh clone, which saw only the current value."""
        ref = f"refs/remotes/{self.remote}/{branch}"
        current = self.resolve(ref)
        if current is None:
            return []
        try:
            seen = set(self.run("reflog", "show", "--format=%H", ref, "--").split())
        except GitError:  # no reflog (core.logAllRefUpdates off)
            return []
        seen.discard(current)
        if not seen:
            return []
        gone = self.run("rev-list", *sorted(seen), "--not", current)
        return [line for line in gone.splitlines() if line]

    # -- history -------------------------------------------------------------------------
    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
        try:
            self.run("merge-base", "--is-ancestor", ancestor, descendant)
        except GitError:
            return False
        return True

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of ``a`` and ``b`` (None: unrelated histories)."""
        try:
            return self.run("merge-base", a, b).strip() or None
        except GitError:
            return None

    def count_commits(self, since: str, until: str) -> int:
        """Commits reachable from ``until`` and not from ``since`` (``since..until``)."""
        return int(self.run("rev-list", "--count", f"{since}..{until}").strip() or 0)

    def tree_changes(self, old: str, new: str, *prefixes: str) -> list[Change]:
        """Paths under ``prefixes`` that differ between commits ``old`` and ``new``
        (trees only: no work tree is read)."""
        raw = self.run("diff", "--no-renames", "--name-status", "-z", old, new, "--", *prefixes)
        fields = raw.split("\0")
        return [
            Change(status[0], path)
            for status, path in zip(fields[0::2], fields[1::2], strict=False)
            if status
        ]

    def blob_ids(self, commit: str, directory: str) -> dict[str, str]:
        """Path -> blob id of every file under ``directory`` at ``commit`` (recursively):
        one ``git ls-tree`` of that directory's trees; the work tree and index are not read.
        Equal ids mean equal content."""
        raw = self.run("ls-tree", "-r", "-z", "--full-tree", commit, "--", directory)
        found: dict[str, str] = {}
        for entry in raw.split("\0"):
            info, _, path = entry.partition("\t")
            fields = info.split()
            if len(fields) == 3 and fields[1] == "blob":
                found[path] = fields[2]
        return found

    def blobs_at(self, commit: str, paths: list[str]) -> dict[str, str]:
        """Path -> blob id of each of ``paths`` (files) that ``commit`` has (one command)."""
        if not paths:
            return {}
        raw = self.run("--literal-pathspecs", "ls-tree", "-z", "--full-tree", commit, "--", *paths)
        found: dict[str, str] = {}
        for entry in filter(None, raw.split("\0")):
            info, _, path = entry.partition("\t")
            fields = info.split()
            if len(fields) == 3 and fields[1] == "blob":
                found[path] = fields[2]
        return found

    def changed_names(self, base: str, prefix: str, ref: str | None = None) -> list[str]:
        """Paths under ``prefix`` that differ between ``base`` and ``ref`` (None: the working
        tree, untracked files included); trees and the index are compared, not the files."""
        if ref is not None:
            return [c.path for c in self.tree_changes(base, ref, prefix)]
        return [c.path for c in self.changes(base) if c.path.startswith(f"{prefix}/")]

    # -- moving the checkout -------------------------------------------------------------
    def start_orphan(self, branch: str) -> None:
        """Check out a new branch with no commit yet (the first event of a repository)."""
        self.run("checkout", "--quiet", "--orphan", branch)

    def fast_forward(self, ref: str) -> None:
        """Move the checked-out branch forward to ``ref``; GitError when it has diverged."""
        self.run("merge", "--quiet", "--ff-only", ref)

    def reset_to(self, ref: str | None = None) -> None:
        """Index and work tree (tracked files) to ``ref`` (default HEAD); ends a merge."""
        self.run("reset", "--quiet", "--hard", *([ref] if ref else []))

    def clean(self, *dirs: str) -> None:
        """Remove untracked files and directories under ``dirs``."""
        self.run("clean", "--quiet", "-fd", "--", *dirs)

    def discard(self, ref: str | None, *dirs: str) -> None:
        """Back to ``ref`` with nothing left behind under ``dirs``: no changed tracked file,
        no untracked file, no merge in progress."""
        if ref is not None or self.head() is not None:
            self.reset_to(ref)
        self.clean(*dirs)

    def return_to(self, branch: str | None, head: str | None, *dirs: str) -> None:
        """Check out ``branch`` (or the detached ``head``) as it was before a session;
        ``head`` None: an unborn ``branch`` (empty index, nothing under ``dirs``)."""
        if head is None:
            self.run("symbolic-ref", "HEAD", f"refs/heads/{branch or MAIN}")
            self.run("read-tree", "--empty")
            self.clean(*dirs)
        else:
            self.run("checkout", "--quiet", "--force", branch or head)

    # -- merging -------------------------------------------------------------------------
    def start_merge(self, ref: str) -> list[str]:
        """Merge ``ref`` into the checked-out branch without committing; returns the paths
        left in conflict (for the caller to resolve before :meth:`commit`)."""
        try:
            self.run("merge", "--quiet", "--no-commit", "--no-ff", "-X", "no-renames", ref)
        except GitError:
            if not self.resolve("MERGE_HEAD"):
                raise
        raw = self.run("diff", "--name-only", "-z", "--diff-filter=U")
        return sorted({p for p in raw.split("\0") if p})

    def take_version(self, commit: str, path: str) -> None:
        """Make ``path`` in the index and work tree what it is at ``commit`` (absent there:
        remove it), e.g. to resolve a merge; in a sparse checkout too, whether or not
        ``path`` is checked out."""
        if self.exists(commit, path):
            self.run("checkout", "--quiet", "--ignore-skip-worktree-bits", commit, "--", path)
        else:
            self.run("rm", "--quiet", "--force", "--sparse", "--ignore-unmatch", "--", path)

    def merge_commit(self, ref: str, message: str) -> str:
        """``git merge --no-ff ref`` (what merging a pull request does); the new commit."""
        self.run(*self._identity(), "merge", "--quiet", "--no-ff", "-m", message, ref)
        return self.head() or ""

    # -- writing -------------------------------------------------------------------------
    def checkout(self, ref: str, *, new_branch: str | None = None) -> None:
        if new_branch:
            self.run("checkout", "--quiet", "-B", new_branch, ref)
        else:
            self.run("checkout", "--quiet", ref)

    def commit(self, message: str, paths: list[str]) -> str:
        """Stage ``paths`` (additions and deletions) and commit what is staged (a merge in
        progress: the merge commit); returns the commit id."""
        present = [p for p in paths if os.path.lexists(self.path / p)]
        self.untrack([p for p in paths if p not in present])
        if present:  # --sparse: paths outside a sparse checkout's cone that were checked out
            self.run("--literal-pathspecs", "add", "--all", "--sparse", "--", *present)
        self.run(*self._identity(), "commit", "--quiet", "--no-verify", "-m", message)
        return self.head() or ""

    # -- commits without a full index (a partial checkout, see start_partial) --------------
    def start_partial(self, branch: str, start: str) -> None:
        """Make ``branch`` at commit ``start`` the checked-out branch of a clone without a
        checkout (:func:`bare_clone_for_partial`), with nothing in the work tree or the index:
        the caller writes the files it changes and commits them with
        :meth:`partial_commit`; git never holds an index of every artifact."""
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        self.run("update-ref", f"refs/heads/{branch}", start)

    def add_worktree(self, path: Path, branch: str, start: str) -> GitRepo:
        """A linked worktree at ``path`` (new) with ``branch`` set to ``start`` (created or
        moved there) checked out, as :meth:`start_partial` leaves a clone: nothing in its
        work tree and no index. Its commits (:meth:`partial_commit`) move ``branch``; this
        checkout's work tree, index and checked-out branch are not touched."""
        # locked with this process's id: a worktree left by a killed command is told from
        # one in use (:meth:`abandoned_worktrees`), and no `git worktree prune` removes it
        self.run(
            "worktree", "add", "--quiet", "--no-checkout", "--lock",
            "--reason", f"{_WORKTREE_OWNER}{os.getpid()}", "-B", branch, str(path), start,
        )  # fmt: skip
        return GitRepo(path, self.remote, self.push_remote)

    def remove_worktree(self, path: Path) -> None:
        """Remove the linked worktree at ``path`` (its files and git's record of it)."""
        try:
            self.run("worktree", "remove", "--force", "--force", str(path))  # locked, too
        except GitError:
            shutil.rmtree(path, ignore_errors=True)
            self.run("worktree", "prune")

    def abandoned_worktrees(self) -> list[Path]:
        """Linked worktrees that :meth:`add_worktree` made for a process that is gone (a
        command killed before it could remove its worktree): git refuses to check their
        branch out anywhere else until they are removed. Worktrees of running tufrepo
        commands, and any the user made, are not listed."""
        out = self.run("worktree", "list", "--porcelain", "-z")
        found = []
        for record in out.split("\0\0"):
            fields = dict(f.partition(" ")[::2] for f in record.split("\0") if f)
            reason = fields.get("locked", "")
            pid = reason.removeprefix(_WORKTREE_OWNER)
            if reason.startswith(_WORKTREE_OWNER) and pid.isdigit() and not _alive(int(pid)):
                found.append(Path(fields["worktree"]))
        return found

    def set_branch(self, branch: str, commit: str | None) -> None:
        """Point local ``branch`` at ``commit`` (None: delete it) without checking it out."""
        if commit is not None:
            self.run("update-ref", f"refs/heads/{branch}", commit)
        elif self.resolve(f"refs/heads/{branch}") is not None:
            self.delete_branch(branch)

    def tree_blobs(self, commit: str, directory: str) -> dict[str, str]:
        """{path: blob id} of the files under ``directory`` at ``commit`` (one git command)."""
        raw = self.run("--literal-pathspecs", "ls-tree", "-r", "-z", commit, "--", directory)
        out = {}
        for line in filter(None, raw.split("\0")):
            meta, path = line.split("\t", 1)
            out[path] = meta.split()[2]
        return out

    def prefetch(self, blobs: list[str]) -> None:
        """Fetch ``blobs`` a partial clone lacks from its remote, all in one request (git
        would fetch them one by one when read)."""
        self._fetch_objects(blobs, "blob:none")

    def _fetch_objects(self, objects: list[str], filter_spec: str) -> None:
        """One request for ``objects``, skipping those this command fetched already."""
        objects = [o for o in dict.fromkeys(objects) if o not in self._fetched]
        if objects and self.has_remote():
            self._run_input(["-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet",
                             self.remote, "--no-tags", "--no-write-fetch-head",
                             "--recurse-submodules=no", f"--filter={filter_spec}", "--stdin"],
                            "".join(f"{b}\n" for b in objects).encode())  # fmt: skip
            self._fetched.update(objects)

    def _fetch_alone(self, trees: list[str], blobs: list[str]) -> None:
        """Each of ``trees`` without the trees below it (``--filter=tree:0``: what is asked
        for is sent) and ``blobs``, in one request. An object asked for that is also inside
        a tree asked for is filtered out with it (the server marks it seen): then the blobs
        come in a request of their own, and the trees with every tree below them."""
        try:
            self._fetch_objects(blobs + trees, "tree:0")
        except GitError:
            self._fetch_objects(blobs, "tree:0")
            self._fetch_objects(trees, "blob:none")

    def _lacks_root_tree(self, commit: str | None) -> bool:
        """The clone lacks ``commit``'s root tree (asked without fetching it: a request by
        id to a server that ignores filters would send every object below it)."""
        if commit is None:
            return False
        raw = self.run("rev-list", "--objects", "--missing=print", "--max-count=1", commit)
        lines = raw.splitlines()
        return len(lines) > 1 and lines[1].startswith("?")

    def fetch_trees(
        self,
        commits: list[str],
        *,
        paths: tuple[str, ...] = (),
        expand: tuple[str, ...] = (),
        files: tuple[str, ...] = (),
    ) -> None:
        """In a clone without trees (:func:`bare_clone_for_partial`), fetch the trees the
        command will read, one request per level of directories: at each of ``commits``,
        its root tree, the directories on the way to ``paths``, every subdirectory of
        the directories in ``expand`` ("": the top), and every directory whose tree differs
        between the commits (what ``git diff`` of them reads). The blobs of ``files`` join
        the request after their directory's.

        git's own on-demand fetch of a missing tree brings every tree below it (all of them,
        for the top of a million artifacts), hence this."""
        wanted = {d for p in paths for d in _parents(p)}
        level: dict[str, set[bytes]] = {"": set()}
        for commit in dict.fromkeys(commits):
            level[""].add(self._root_tree(commit))
        if not self._lacks_root_tree(commits[0] if commits else None):
            return  # a complete clone (a server without partial clones): nothing to fetch
        self._fetch_alone(sorted(oid.hex() for oid in level[""]), [])
        have: set[bytes] = set(level[""])
        blobs: set[str] = set()
        while level or blobs:
            below: dict[str, set[bytes]] = {}
            found_blobs: set[str] = set()
            for directory, oids in level.items():
                try:
                    listings = [self._tree(oid) for oid in oids]
                except GitError:  # not read here; the command refuses the path if it reads it
                    continue
                for name in sorted({n for entries in listings for n in entries}):
                    found = {e[name] for e in listings if name in e}
                    path = f"{directory}/{name}" if directory else name
                    if {mode for mode, _ in found} != {_TREE_MODE}:
                        if path in files:
                            found_blobs |= {
                                sha.hex() for mode, sha in found if mode not in _NOT_BLOB
                            }
                        continue
                    trees = {sha for _, sha in found}
                    differs = len(trees) > 1 or len(found) < len(listings)
                    if path in wanted or directory in expand or differs:
                        below[path] = trees
            missing = sorted({sha.hex() for oids in below.values() for sha in oids - have})
            self._fetch_alone(missing, sorted(blobs))
            have |= {sha for oids in below.values() for sha in oids}
            level, blobs = below, found_blobs

    def partial_commit(self, message: str, files: dict[str, Path | None]) -> str:
        """Commit, on the checked-out branch, HEAD's tree with each path of ``files``
        replaced by the content of a file (None: removed); returns the commit. No index is
        read or written (see :meth:`start_partial`)."""
        head = self.head()
        if head is None:
            raise GitError("no commit to build on")
        changes: dict[str, tuple[str, str] | None] = {}
        written = [(p, f) for p, f in files.items() if f is not None]
        if written:
            oids = self.run("hash-object", "-w", "--no-filters", "--",
                            *[str(f) for _, f in written]).split()  # fmt: skip
            changes.update({p: ("100644", oid) for (p, _), oid in zip(written, oids, strict=True)})
        changes.update({p: None for p, f in files.items() if f is None})
        tree = self._graft(f"{head}^{{tree}}", changes)
        commit = self.run(*self._identity(), "commit-tree", tree, "-p", head, "-m", message)
        self.run("update-ref", "HEAD", commit.strip(), head)
        return commit.strip()

    def _graft(self, tree: str, changes: dict[str, tuple[str, str] | None]) -> str:
        """``tree`` with entries at paths replaced ((mode, id)) or removed (None); the trees
        on the way are rewritten, those beside it are shared (a few git processes per
        directory changed, whatever the size of the tree)."""
        dirs: dict[str, dict[str, tuple[str, str] | None]] = {"": {}}
        for path, entry in changes.items():
            parent, _, name = path.rpartition("/")
            dirs.setdefault(parent, {})[name] = entry
            while parent:
                parent = parent.rpartition("/")[0]
                dirs.setdefault(parent, {})

        def build(d: str) -> str | None:
            try:
                raw = self.run("ls-tree", "-z", f"{tree}:{d}" if d else tree)
            except GitError:  # a new directory
                raw = ""
            entries: dict[str, tuple[str, str]] = {}
            for line in filter(None, raw.split("\0")):
                meta, name = line.split("\t", 1)
                mode, _, oid = meta.split()
                entries[name] = (mode, oid)
            for sub in [x for x in dirs if x and x.rpartition("/")[0] == d]:
                subtree = build(sub)
                dirs[d][sub.rpartition("/")[2]] = ("040000", subtree) if subtree else None
            for name, entry in dirs[d].items():
                if entry is None:
                    entries.pop(name, None)
                elif entry[0] == "100644" and entries.get(name, ("",))[0] == "100755":
                    entries[name] = ("100755", entry[1])  # keeps an executable bit
                else:
                    entries[name] = entry
            if not entries:
                return None
            listing = "".join(
                f"{mode} {'tree' if mode == '040000' else 'blob'} {oid}\t{name}\0"
                for name, (mode, oid) in entries.items()
            )
            return self._run_input(["mktree", "-z", "--missing"], listing.encode()).strip()

        return build("") or self._run_input(["mktree", "-z", "--missing"], b"").strip()

    def _run_input(self, args: list[str], data: bytes) -> str:
        """``git args`` with ``data`` on its standard input."""
        proc = subprocess.run(["git", *args], cwd=self.path, input=data, capture_output=True,
                              check=False)  # fmt: skip
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip().splitlines() or ["failed"]
            raise GitError(f"git {args[0]}: {detail[-1]}")
        return proc.stdout.decode()

    def export_files(
        self,
        commit: str | None,
        paths: list[str],
        dest: Path | None = None,
        *,
        also: tuple[str, ...] = (),
    ) -> None:
        """Write the files of ``paths`` (a directory: every file under it) that ``commit``
        has into ``dest`` (default: the work tree), outside git's index; their blobs (and
        the blobs ``also``) are fetched in one request in a partial clone. Files already
        there are left alone.

        Raises:
            InputError: ``commit`` has a symlink there (never written, never followed).
        """
        if commit is None or not paths:
            self.prefetch(list(also))
            return
        out = dest or self.path
        found = self.run("--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", commit,
                         "--", *sorted({p.rstrip("/") for p in paths}))  # fmt: skip
        blobs = {}
        for line in filter(None, found.split("\0")):
            meta, path = line.split("\t", 1)
            mode, kind, oid = meta.split()
            if any(part in ("", ".", "..", ".git") for part in path.split("/")):
                raise GitError(f"refusing to write {path!r} from {commit[:12]}: not a plain path")
            if mode == "120000":
                raise InputError(f"{path}: symlinks are not allowed under {path.split('/')[0]}/")
            if kind == "blob" and not os.path.lexists(out / path):
                blobs[path] = oid
        if blobs and self._config_bool(f"remote.{self.remote}.promisor", default=False):
            self.prefetch([*also, *sorted(set(blobs.values()))])
        else:
            self.prefetch(list(also))
        for path, oid in blobs.items():
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_object(oid))

    def untrack(self, paths: list[str]) -> None:
        """Remove ``paths`` (files or directories, deleted from the work tree) from the index:
        a deletion that git sees in a sparse checkout too, where a missing file outside the
        cone would count as merely not checked out."""
        if paths:
            self.run("--literal-pathspecs", "rm", "-r", "--quiet", "--cached", "--sparse",
                     "--ignore-unmatch", "--", *paths)  # fmt: skip

    def _identity(self) -> list[str]:
        """``-c`` options naming tufrepo as committer when git has no identity configured."""
        if "user.name" in self._config():
            return []
        return ["-c", "user.name=tufrepo", "-c", "user.email=tufrepo@localhost"]

    def push(self, branch: str) -> None:
        """Push HEAD to ``branch`` on the push remote, never forcing, and make it the
        checked-out branch's upstream (``git pull`` and ``git status`` then work).

        Raises:
            StaleBranchError: someone pushed to ``branch`` first (fetch and redo).
            GitError: the remote refused the push for another reason (a hook, branch
                protection, permissions) or is unreachable; the message says which.
            InputError: there is no such push remote.
        """
        if not self.has_remote(self.push_remote):
            if self.push_remote == self.remote:
                raise GitError(f"no remote named {self.remote!r} to push to")
            raise InputError(f"no git remote named {self.push_remote!r} (add it: git remote add)")
        upstream = ["--set-upstream"] if self.current_branch() == branch else []
        proc = self._git(["push", "--quiet", "--porcelain", *upstream, self.push_remote,
                          f"HEAD:refs/heads/{branch}"])  # fmt: skip
        if proc.returncode != 0:
            raise push_error(branch, _text(proc.stdout), _text(proc.stderr))

    def push_ref(self, ref: str, branch: str) -> None:
        """Push ``ref`` (e.g. a remote-tracking branch) to ``branch`` on the remote."""
        self.run("push", "--quiet", self.remote, f"{ref}:refs/heads/{branch}")

    def delete_remote_branch(self, branch: str) -> None:
        self.run("push", "--quiet", self.remote, "--delete", f"refs/heads/{branch}")

    def delete_branch(self, branch: str) -> None:
        self.run("branch", "--quiet", "-D", branch)

    def export(self, commit: str, prefix: str, dest: Path) -> None:
        """Write the files under ``prefix`` at ``commit`` into ``dest`` (for --at checks).

        Raises:
            InputError: the tree holds a symlink (never followed, never written).
        """
        import git  # GitPython, for this command only

        try:
            tree = self._gitpython.commit(commit).tree / prefix
        except KeyError:
            return
        for item in tree.traverse():
            if not isinstance(item, git.Blob):
                continue
            if item.mode == _SYMLINK_MODE:
                raise InputError(f"{item.path}: symlinks are not allowed under {prefix}/")
            out = dest / item.path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(item.data_stream.read())

    @functools.cached_property
    def _gitpython(self) -> git.Repo:
        """GitPython's view of the checkout (imported here: see the module's docstring)."""
        import git

        return git.Repo(self.path, search_parent_directories=False)


_CHANGES_CONFIG = ("config", "sparse-checkout", "remote", "submodule", "init")


_WORKTREE_OWNER = "tufrepo pid "


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _env() -> dict[str, str]:
    """The environment of a git process: git's messages in English (they are parsed)."""
    return {**os.environ, "LANGUAGE": "C", "LC_ALL": "C"}


def _text(data: bytes) -> str:
    """git's output as text (names that are not UTF-8 survive a round trip)."""
    return data.decode("utf-8", "surrogateescape")


def _answer(stdout: IO[bytes]) -> tuple[str, str, bytes] | None:
    """One answer of ``cat-file --batch``: ``<id> <type> <size>``, the content and a newline;
    None for ``<name> missing`` (or ``ambiguous``).

    Raises:
        ValueError: anything else (the process is then out of step with its questions).
    """
    header = stdout.readline().split()
    if header[-1:] in ([b"missing"], [b"ambiguous"]):
        return None
    if len(header) != 3 or not header[2].isdigit():
        raise ValueError(f"unexpected answer {b' '.join(header)!r}")
    size = int(header[2])
    data = stdout.read(size + 1)
    if len(data) != size + 1:
        raise ValueError("truncated answer")
    return header[0].decode(), header[1].decode(), data[:-1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a ``cat-file --batch`` (its input closed, it exits; killed if it does not)."""
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# what git's own checks refuse in a tree: names that are .git (or .gitmodules, for a
# symlink) on NTFS or HFS+, which ignore case, trailing dots and spaces, streams, and some
# invisible characters
_HFS_IGNORED = str.maketrans("", "", "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d"
                             "\u202e\u206a\u206b\u206c\u206d\u206e\u206f\ufeff")  # fmt: skip
_NTFS_GITMODULES = re.compile(
    r"gitmod~[1-4]|gi7eba~[1-9]|gi7eb~[1-9][0-9]|gi7e~[1-9][0-9]{2}|gi7~[1-9][0-9]{3}"
    r"|gi~[1-9][0-9]{4}|g~[1-9][0-9]{5}|~[1-9][0-9]{6}"
)


def parse_tree(data: bytes) -> dict[str, tuple[int, bytes]]:
    """{name: (mode, object id)} of a tree object's content (``<mode> <name>\\0<20-byte id>``
    entries), refusing names no checkout may hold: empty, ``.``, ``..``, with ``/``, or
    standing for ``.git`` on a case-insensitive file system (see :func:`_check_name`).

    Raises:
        ValueError: a truncated entry, a bad mode or such a name.
    """
    out: dict[str, tuple[int, bytes]] = {}
    offset = 0
    while offset < len(data):
        space = data.find(b" ", offset)
        end = data.find(b"\0", space + 1) if space >= 0 else -1
        if space < 0 or end < 0 or end + 21 > len(data):
            raise ValueError("truncated tree entry")
        raw_mode = data[offset:space]
        if not raw_mode or raw_mode.strip(b"01234567"):
            raise ValueError("invalid tree entry mode")
        mode = int(raw_mode, 8)
        if mode >> 12 not in (0o04, 0o10, 0o12, 0o16):
            raise ValueError("invalid tree entry mode")
        name = _text(data[space + 1 : end])
        _check_name(name, mode)
        out[name] = (mode, data[end + 1 : end + 21])
        offset = end + 21
    return out


def _check_name(name: str, mode: int) -> None:
    if name in ("", ".", "..") or "/" in name:
        raise ValueError(f"invalid tree entry name {name!r}")
    for part in name.split("\\"):
        ntfs = part.split(":", 1)[0].rstrip(" .").lower()
        hfs = part.translate(_HFS_IGNORED).lower()
        if ntfs in (".git", "git~1") or hfs == ".git":
            raise ValueError(f"tree entry {name!r} stands for .git")
        if mode >> 12 == 0o12 and (
            ".gitmodules" in (ntfs, hfs) or _NTFS_GITMODULES.fullmatch(ntfs)
        ):
            raise ValueError(f"symlink {name!r} stands for .gitmodules")


def _subcommand(args: tuple[str, ...]) -> str:
    """The git command of ``args`` (after options such as ``-c name=value``)."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] == "-c" else rest[1:]
    return rest[0] if rest else ""


def _parents(path: str) -> list[str]:
    """The directories on the way to ``path``: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = path.strip("/").split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _escape_pattern(path: str) -> str:
    """``path`` as a literal sparse-checkout (gitignore) pattern."""
    return "".join(f"\\{c}" if c in "\\*?[]!# " else c for c in path)


def sparse_clone(url: str, dest: Path, directories: tuple[str, ...] = ("metadata",)) -> GitRepo:
    """A partial, sparse clone of ``url`` into ``dest``: commits and trees, the files under
    ``directories`` checked out, every other blob fetched from the remote only when a
    command checks it out (:meth:`GitRepo.materialize`). Its cost grows with the metadata
    and the change, not with the artifacts (a server without partial-clone support sends
    everything; it still works).

    Raises:
        GitError: the remote is unreachable or not a repository.
    """
    _clone(url, dest, ["--filter=blob:none", "--no-checkout"])
    repo = GitRepo(dest)
    # cone mode with a sparse index: git's index holds the files of ``directories`` and one
    # entry per other directory, so that status, checkout, add and commit cost what the
    # metadata costs, not what the artifacts do (GitRepo.materialize checks files out)
    repo.run("sparse-checkout", "set", "--cone", "--sparse-index", "--", *directories)
    if repo.head() is not None:
        repo.run("checkout", "--quiet")
    return repo


def push_error(branch: str, stdout: str, stderr: str) -> GitError:
    """The error for a failed ``git push --porcelain`` from its output."""
    status = next((line for line in stdout.splitlines() if line.startswith("!")), "")
    reason = status.split("\t")[-1].strip() if status else ""
    if reason.startswith("[rejected]") and any(
        r in reason for r in ("fetch first", "non-fast-forward", "stale info")
    ):
        return StaleBranchError(f"{branch} moved on the remote: {reason}")
    # GitPython quotes git's stderr as "  stderr: '...'"
    lines = [ln.strip().removeprefix("stderr:").strip(" '") for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    said = [" ".join(ln.split()[1:]) for ln in lines if ln.startswith("remote:")]
    said = [ln for ln in said if ln]
    detail = reason or (lines[-1] if lines else "failed")
    told = f" (the remote said: {'; '.join(said)[:300]})" if said else ""
    return GitError(f"the remote refused the push to {branch}: {detail}{told}")


def init_bare(path: Path) -> None:
    """Create an empty bare repository with ``main`` as its default branch."""
    import git  # GitPython, for this command only

    try:
        git.Repo.init(path, bare=True, initial_branch=MAIN)
    except git.GitCommandError as e:
        raise GitError(f"cannot create {path}: {e.stderr.strip()}") from e


def bare_clone_for_partial(url: str, dest: Path) -> GitRepo:
    """A partial clone of ``url`` into ``dest`` with nothing checked out and no index, for
    :meth:`GitRepo.start_partial`: commits only (``--filter=tree:0``, which servers allow
    where they limit tree depths); the trees and blobs a command reads are fetched by id
    (:meth:`GitRepo.fetch_trees`, :meth:`GitRepo.prefetch`). Every tree
    (``--filter=blob:none``) is a thousand trees of a thousand entries at a million
    artifacts.

    Raises:
        GitError: the remote is unreachable or not a repository.
    """
    _clone(url, dest, ["--filter=tree:0", "--no-checkout"])
    return GitRepo(dest)


def clone(url: str, dest: Path) -> GitRepo:
    """Clone ``url`` into ``dest`` (an empty directory) and return the checkout.

    Raises:
        GitError: the remote is unreachable or not a repository.
    """
    _clone(url, dest, [])
    repo = GitRepo(dest)
    log.debug("cloned %s (main %s)", url, repo.main_commit())
    return repo


def _clone(url: str, dest: Path, options: list[str]) -> None:
    if url.startswith("-"):
        raise InputError(f"invalid remote URL {url!r}")
    import git  # GitPython, for this command only

    try:
        git.Repo.clone_from(url, dest, multi_options=["--quiet", "--no-tags", *options])
    except git.GitCommandError as e:
        lines = [line for line in (e.stderr or "").strip().splitlines() if line.strip()]
        detail = lines[-1].strip().strip("'") if lines else "failed"
        raise GitError(f"cannot clone {url}: {detail.removeprefix('stderr: ')}") from e
