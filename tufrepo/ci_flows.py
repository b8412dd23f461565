"""CI operations on main: online signing and opening signing events for expiring roles."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from tufrepo.errors import GitError, InputError, MetadataError, StaleBranchError
from tufrepo.flows import Outcome, finish_event, verify_tree
from tufrepo.git import MAIN, GitRepo, event_branch
from tufrepo.online import OnlineRepository, refresh
from tufrepo.repository import METADATA_DIR, EventRepository, MetadataView, dir_view
from tufrepo.roles import bin_prefix, in_signing_period, periods
from tufrepo.validate import Report
from tufrepo.workspace import Workspace, event_session

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 3


def offline_report(repo: GitRepo, now: datetime, previous: str | None = None) -> Report:
    """Every offline role valid, root_history intact, targets metadata equal to the files,
    no version lower than already online-signed (in history, or published at ``previous``)."""
    view = dir_view(repo.path)
    return verify_tree(repo, view, repo.path, "HEAD", now, online=False, previous=previous)


def _sync_main(repo: GitRepo) -> None:
    """Be on main, at the remote's main (fast-forward only: never drop a local commit)."""
    if repo.current_branch() != MAIN:
        raise InputError(f"online-sign runs on {MAIN}, not {repo.current_branch() or 'HEAD'}")
    repo.fetch()
    remote = repo.remote_branch(MAIN)
    if remote is not None and remote != repo.head():
        try:
            repo.fast_forward(remote)
        except GitError as e:
            raise GitError(f"local {MAIN} has diverged from the remote's: {e}") from e


def online_sign(
    checkout: Path, *, push: bool, now: datetime, previous: str | None = None
) -> Outcome:
    """Refresh snapshot/timestamp on main when needed; retry when someone moved main.

    Raises:
        MetadataError: an offline role on main is invalid, or a version is lower than one
            already online-signed in main's history or published at ``previous`` (nothing
            is signed).
    """
    repo = GitRepo(checkout)
    if not repo.is_clean():
        raise InputError(f"{checkout} has uncommitted changes")
    for _attempt in range(PUSH_ATTEMPTS):
        _sync_main(repo)
        report = offline_report(repo, now, previous)
        if report.problems:
            raise MetadataError("refusing to sign online: " + "; ".join(report.problems))
        orepo = OnlineRepository(repo.path, dir_view(repo.path), now)
        try:
            roles = refresh(orepo)
        except ValueError as e:  # version rollback detected by python-tuf
            raise MetadataError(f"refusing to sign online: {e}") from e
        if not roles:
            return Outcome(MAIN, messages=["snapshot and timestamp are up to date"])
        before = repo.head() or ""
        paths = orepo.flush()
        try:
            sha = repo.commit(f"Online sign ({', '.join(roles)})", paths)
        except GitError:
            _discard(repo, before)  # leave main as it was: no uncommitted online metadata
            raise
        out = Outcome(MAIN, sha, push, [f"signed {r}" for r in roles])
        if not push:
            return out
        try:
            repo.push(MAIN)
        except StaleBranchError as e:
            log.warning("push of %s failed (%s): redoing on the new main", MAIN, e.diagnostics())
            _discard(repo, before)
            continue
        except GitError:
            _discard(repo, before)  # refused for another reason: retrying cannot help
            raise
        return out
    raise GitError(f"{MAIN} kept moving: gave up after {PUSH_ATTEMPTS} attempts")


def _discard(repo: GitRepo, commit: str) -> None:
    """Back to ``commit``, with no new or changed metadata files left behind."""
    repo.discard(commit, METADATA_DIR)


def due_roles(view: MetadataView, now: datetime) -> list[tuple[str, int]]:
    """Offline roles inside their signing period, with their current version."""
    root = view.root()
    roles = ["root", *view.role_map().targets_roles()]
    due = []
    for role in roles:
        md = view.require(role)
        _, signing = periods(role, root, md.signed)
        if in_signing_period(md.signed.expires, signing, now):
            due.append((role, md.signed.version))
    return due


def expiry_events(
    checkout: Path, *, push: bool, now: datetime, single_event: str | None = None
) -> list[Outcome]:
    """Open ``sign/<role>-v<N+1>`` (or one ``sign/<single_event>``) for expiring roles."""
    ws = Workspace.open(checkout)
    if ws.main is None:
        raise InputError("no main branch")
    due = due_roles(ws.base(), now)
    plan: dict[str, list[str]] = {}
    if single_event is not None and due:
        plan[event_branch(single_event)] = [role for role, _ in due]
    else:
        rmap = ws.base().role_map()
        binned: dict[str, list[tuple[str, int]]] = {}
        for role, version in due:
            if (owner := rmap.bin_owner(role)) is not None:
                binned.setdefault(owner, []).append((role, version))
            else:
                plan[event_branch(f"{role}-v{version + 1}")] = [role]
        for owner, bins in binned.items():  # one event for a role's bins, not one per bin
            top = max(v for _, v in bins)
            plan[event_branch(f"{bin_prefix(owner)}-v{top + 1}")] = [r for r, _ in bins]
    outcomes = []
    for branch, roles in plan.items():
        if ws.git.remote_branch(branch) or ws.git.resolve(f"refs/heads/{branch}"):
            outcomes.append(Outcome(branch, messages=[f"{branch} is already open"], roles=roles))
            continue
        with event_session(ws, branch, create=True):
            repo = EventRepository(ws.checkout, ws.base(), now)
            for role in roles:
                repo.close(role, repo.open(role))
            out = finish_event(ws, branch, repo, f"Re-sign expiring {', '.join(roles)}", push)
            out.messages.append(f"opened {branch} for {', '.join(roles)}")
            out.roles = roles
            outcomes.append(out)
    return outcomes
