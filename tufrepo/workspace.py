"""A checkout seen as a signing event against main, and the transaction around changing it.

:class:`Workspace` joins git (what changed since main, main's files as git objects) with the
pure logic (event status, expected targets). :func:`event_session` checks an event branch out
and guarantees that a failure - a bad input, a signer error, a rejected push - leaves the
checkout, its branches and the remote as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuf.api.metadata import TargetFile

from tufrepo.errors import GitError, InputError
from tufrepo.event import EventStatus, event_status
from tufrepo.git import GitRepo
from tufrepo.repository import METADATA_DIR, MetadataView, dir_view, git_view
from tufrepo.roles import STATE_FILE, delegated_role_names
from tufrepo.targets import (
    CONTENT_DIRS,
    DESCRIPTORS_DIR,
    TARGETS_DIR,
    apply_changes,
    descriptor_target,
    is_artifact_path,
    target_changes_by_role,
)

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    """A checkout and the main commit it is compared with."""

    git: GitRepo
    main: str | None

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

    def base(self) -> MetadataView:
        """Main's metadata, read from git objects."""
        main = self.main
        return git_view(
            lambda p: self.git.read_blob(main, p),
            lambda d: self.git.list_dir(main, d),
            "main",
        )

    def event(self) -> MetadataView:
        return dir_view(self.checkout)

    def changed_roles(self) -> list[str]:
        """Roles whose ``metadata/<role>.json`` differs from main (working tree included)."""
        roles = []
        for change in self.git.changes(self.main, METADATA_DIR):
            name = change.path.removeprefix(f"{METADATA_DIR}/")
            if "/" not in name and name.endswith(".json") and name != STATE_FILE:
                roles.append(name.removesuffix(".json"))
        return sorted(roles)

    def changed_artifacts(self) -> list[str]:
        """Target paths (relative to targets/) that differ from main (hidden names are not
        artifacts)."""
        prefix = f"{TARGETS_DIR}/"
        paths = {c.path.removeprefix(prefix) for c in self.git.changes(self.main, TARGETS_DIR)}
        dprefix = f"{DESCRIPTORS_DIR}/"
        for change in self.git.changes(self.main, DESCRIPTORS_DIR):
            paths.add(descriptor_target(change.path.removeprefix(dprefix)))
        return sorted(p for p in paths if is_artifact_path(p))

    def expected_targets(
        self, base: MetadataView, event: MetadataView, roles: list[str]
    ) -> dict[str, dict[str, TargetFile]]:
        """Targets of each changed targets-type role recomputed from main + the changed files.

        Work grows with the change: main's (verified) targets metadata is the starting point
        and only changed artifacts are hashed.

        Raises:
            InputError: a changed file that no role owns, a symlink, an unsafe path.
        """
        delegated: set[str] = set()
        for view in (base, event):
            if view.get("targets") is not None:
                delegated |= set(delegated_role_names(view.targets()))
        by_role = target_changes_by_role(self.changed_artifacts(), delegated)
        targets_roles = {r for r in roles if r != "root" and (r == "targets" or r in delegated)}
        out = {}
        for role in sorted(targets_roles | set(by_role)):
            old = base.targets(role).targets if base.get(role) is not None else {}
            out[role] = apply_changes(old, self.checkout, by_role.get(role, []))
        return out

    def status(self, name: str, now: datetime) -> EventStatus:
        base, event = self.base(), self.event()
        roles = self.changed_roles()
        expected = self.expected_targets(base, event, roles)
        return event_status(
            name, base, event, changed_roles=roles, expected_targets=expected, now=now
        )


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
    start = _start_point(repo, branch, local, remote)
    if start is None:
        if not create:
            raise InputError(f"signing event {branch} does not exist")
        if ws.main is None and repo.head() is not None:
            raise InputError("no main branch to start the signing event from")
        start = ws.main
    orig_branch, orig_head = repo.current_branch(), repo.head()
    try:
        if start is None:  # an empty repository: the first commit starts the event
            repo.run("checkout", "--quiet", "--orphan", branch)
        else:
            repo.checkout(start, new_branch=branch)
        yield
    except BaseException:
        _rollback(repo, branch, local, orig_branch, orig_head)
        raise
    if orig_head is not None:  # after `delegate` in an empty clone, stay on the event
        _return_to(repo, orig_branch, orig_head)


def _start_point(repo: GitRepo, branch: str, local: str | None, remote: str | None) -> str | None:
    if local is None or remote is None or local == remote:
        return remote or local
    if repo.is_ancestor(local, remote):
        return remote
    if repo.is_ancestor(remote, local):
        return local  # unpushed local commits (e.g. after --no-push)
    raise GitError(f"local {branch} and the remote's have diverged: resolve it with git first")


def _return_to(repo: GitRepo, branch: str | None, head: str | None) -> None:
    """Check out what was checked out before (an unborn branch: empty index and tree)."""
    if head is None:
        repo.run("symbolic-ref", "HEAD", f"refs/heads/{branch or 'main'}")
        repo.run("read-tree", "--empty")
        repo.run("clean", "--quiet", "-fd", "--", *CONTENT_DIRS)
    else:
        repo.run("checkout", "--quiet", "--force", branch or head)


def _rollback(
    repo: GitRepo, branch: str, local: str | None, orig_branch: str | None, orig_head: str | None
) -> None:
    """Undo an event session: files, the local event branch, and the checked-out branch."""
    try:
        if repo.head() is not None:
            repo.run("reset", "--quiet", "--hard")
        repo.run("clean", "--quiet", "-fd", "--", *CONTENT_DIRS)
        if local is not None:
            repo.run("reset", "--quiet", "--hard", local)
        _return_to(repo, orig_branch, orig_head)
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
    sha = ws.git.commit(message, paths)
    if push:
        ws.git.push(branch)
    return sha
