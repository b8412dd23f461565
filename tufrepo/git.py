"""The only module that talks to git (through GitPython, never a shell).

Everything is passed to git as separate arguments; branch names are validated before they
reach git; failures become :class:`tufrepo.errors.GitError`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import git

from tufrepo.errors import GitError, InputError

log = logging.getLogger(__name__)

EVENT_PREFIX = "sign/"
_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAIN = "main"
_SYMLINK_MODE = 0o120000


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


class GitRepo:
    """A git checkout. All git access of tufrepo goes through this class."""

    def __init__(self, path: Path, remote: str = "origin", push_remote: str | None = None) -> None:
        try:
            self.repo = git.Repo(path, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise InputError(f"{path} is not a git checkout") from e
        if self.repo.bare:
            raise InputError(f"{path} is a bare repository, not a checkout")
        self.path = Path(self.repo.working_tree_dir or path)
        self.remote = remote
        self.push_remote = push_remote or remote  # a fork, for signers who cannot push upstream

    # -- running git ---------------------------------------------------------------------
    def run(self, *args: str) -> str:
        """Run ``git args...`` in the checkout; GitError (with git's own message) on failure."""
        try:
            out: str = self.repo.git.execute(["git", *args], with_extended_output=False)
        except git.GitCommandError as e:
            msg = (e.stderr or str(e)).strip().splitlines()
            detail = next((line for line in reversed(msg) if line.strip()), "failed")
            detail = detail.strip().removeprefix("stderr: ").strip("'")
            raise GitError(f"git {args[0]}: {detail}") from e
        return out

    def remote_url(self) -> str | None:
        """The URL of the remote, or None without one."""
        if not self.has_remote():
            return None
        return self.run("remote", "get-url", self.remote).strip() or None

    def has_remote(self, name: str | None = None) -> bool:
        return (name or self.remote) in [r.name for r in self.repo.remotes]

    # -- refs ----------------------------------------------------------------------------
    def fetch(self) -> None:
        """Fetch all branches of the remote (no-op when there is no remote)."""
        if self.has_remote():
            self.run("fetch", "--quiet", "--prune", self.remote)

    def resolve(self, ref: str) -> str | None:
        """The commit id of ``ref``, or None when it does not exist."""
        try:
            return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except GitError:
            return None

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

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        try:
            self.run("merge-base", "--is-ancestor", ancestor, commit)
        except GitError:
            return False
        return True

    def fast_forward(self, branch: str) -> bool:
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
        self.run("merge", "--quiet", "--ff-only", remote)
        return True

    def current_branch(self) -> str | None:
        try:
            return self.run("symbolic-ref", "--quiet", "--short", "HEAD").strip()
        except GitError:
            return None

    def head(self) -> str | None:
        return self.resolve("HEAD")

    def is_clean(self) -> bool:
        return not self.run("status", "--porcelain", "--untracked-files=all").strip()

    # -- reading objects (never a temporary clone) ----------------------------------------
    def read_blob(self, commit: str | None, path: str) -> bytes | None:
        """The content of ``path`` at ``commit``, or None when absent."""
        if commit is None:
            return None
        try:
            blob = self.repo.commit(commit).tree / path
        except KeyError:
            return None
        if not isinstance(blob, git.Blob):
            return None
        data: bytes = blob.data_stream.read()
        return data

    def exists(self, commit: str | None, path: str) -> bool:
        """``path`` (file or directory) exists at ``commit``."""
        if commit is None:
            return False
        try:
            self.repo.commit(commit).tree / path  # the lookup is the test
        except KeyError:
            return False
        return True

    def list_dir(self, commit: str | None, path: str) -> list[str]:
        """Names of the blobs directly in directory ``path`` at ``commit``."""
        if commit is None:
            return []
        try:
            tree = self.repo.commit(commit).tree / path
        except KeyError:
            return []
        return sorted(item.name for item in tree if item.type == "blob")

    def changes(self, base: str | None, prefix: str) -> list[Change]:
        """Paths under ``prefix`` that differ between ``base`` and the working tree.

        Work is proportional to the change: git compares trees and the index stat cache.
        """
        out: list[Change] = []
        if base is not None:
            raw = self.run("diff", "--no-renames", "--name-status", "-z", base, "--", prefix)
            fields = raw.split("\0")
            for status, path in zip(fields[0::2], fields[1::2], strict=False):
                if status:
                    out.append(Change(status[0], path))
        else:
            raw = self.run("ls-files", "-z", "--", prefix)
            out.extend(Change("A", p) for p in raw.split("\0") if p)
        untracked = self.run("ls-files", "-z", "--others", "--exclude-standard", "--", prefix)
        out.extend(Change("A", p) for p in untracked.split("\0") if p)
        return out

    def history_changes(self, path: str, ref: str = "HEAD") -> list[str]:
        """Commits (short) on ``ref``'s first-parent line that modified or deleted files under
        ``path`` (an event's own commits, merged as one merge or squash commit, do not count)."""
        raw = self.run("log", "--first-parent", "--format=%h", "--diff-filter=MDR", ref, "--", path)
        return [line for line in raw.splitlines() if line]

    # -- writing -------------------------------------------------------------------------
    def checkout(self, ref: str, *, new_branch: str | None = None) -> None:
        if new_branch:
            self.run("checkout", "--quiet", "-B", new_branch, ref)
        else:
            self.run("checkout", "--quiet", ref)

    def commit(self, message: str, paths: list[str]) -> str:
        """Stage ``paths`` (additions and deletions) and commit; returns the commit id."""
        self.run("add", "--all", "--", *paths)
        args = ["-c", "user.name=tufrepo", "-c", "user.email=tufrepo@localhost"]
        if self.repo.config_reader().has_option("user", "name"):
            args = []
        self.run(*args, "commit", "--quiet", "--no-verify", "-m", message)
        return self.head() or ""

    def push(self, branch: str) -> None:
        """Push HEAD to ``branch`` on the push remote, never forcing, and make it the
        checked-out branch's upstream (``git pull`` and ``git status`` then work).

        Raises:
            GitError: the remote rejected the push (someone pushed first) or is unreachable.
            InputError: there is no such remote.
        """
        if not self.has_remote(self.push_remote):
            if self.push_remote == self.remote:
                raise GitError(f"no remote named {self.remote!r} to push to")
            raise InputError(f"no git remote named {self.push_remote!r} (add it: git remote add)")
        upstream = ["--set-upstream"] if self.current_branch() == branch else []
        self.run(
            "push", "--quiet", "--porcelain", *upstream, self.push_remote,
            f"HEAD:refs/heads/{branch}",
        )  # fmt: skip

    def reset_hard(self, ref: str) -> None:
        self.run("reset", "--quiet", "--hard", ref)

    def delete_branch(self, branch: str) -> None:
        self.run("branch", "--quiet", "-D", branch)

    def export(self, commit: str, prefix: str, dest: Path) -> None:
        """Write the files under ``prefix`` at ``commit`` into ``dest`` (for --at checks).

        Raises:
            InputError: the tree holds a symlink (never followed, never written).
        """
        try:
            tree = self.repo.commit(commit).tree / prefix
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


def init_bare(path: Path) -> None:
    """Create an empty bare repository with ``main`` as its default branch."""
    try:
        git.Repo.init(path, bare=True, initial_branch=MAIN)
    except git.GitCommandError as e:
        raise GitError(f"cannot create {path}: {e.stderr.strip()}") from e


def clone(url: str, dest: Path) -> GitRepo:
    """Clone ``url`` into ``dest`` (an empty directory) and return the checkout.

    Raises:
        GitError: the remote is unreachable or not a repository.
    """
    if url.startswith("-"):
        raise InputError(f"invalid remote URL {url!r}")
    try:
        git.Repo.clone_from(url, dest, multi_options=["--quiet", "--no-tags"])
    except git.GitCommandError as e:
        lines = [line for line in (e.stderr or "").strip().splitlines() if line.strip()]
        detail = lines[-1].strip().strip("'") if lines else "failed"
        raise GitError(f"cannot clone {url}: {detail.removeprefix('stderr: ')}") from e
    repo = GitRepo(dest)
    log.debug("cloned %s (main %s)", url, repo.main_commit())
    return repo
