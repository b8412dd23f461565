"""CI operations on main: online signing and opening signing events for expiring roles."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tuf.api.metadata import MetaFile

from tufrepo.errors import Error, GitError, InputError, MetadataError, StaleBranchError
from tufrepo.flows import Outcome, finish_event, verify_tree
from tufrepo.git import MAIN, GitRepo, event_branch
from tufrepo.listing import changed_entries
from tufrepo.online import OnlineRepository, proven_roles, refresh
from tufrepo.repository import METADATA_DIR, EventRepository, MetadataView, dir_view, git_view
from tufrepo.roles import (
    ONLINE_ROLES,
    ONLINE_URI,
    bin_prefix,
    in_signing_period,
    keys_of,
    periods,
)
from tufrepo.targets import (
    apply_changes,
    artifacts_around,
    check_clashes,
    exists_artifact,
    target_changes_by_role,
)
from tufrepo.validate import Report, role_artifact_problems
from tufrepo.workspace import Workspace, event_session

if TYPE_CHECKING:
    from tufrepo.history import Anchor

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 3


def offline_report(
    repo: GitRepo,
    view: MetadataView,
    now: datetime,
    previous: str | None = None,
    *,
    anchor: tuple[Anchor | None] | None = None,
    proven: frozenset[str] = frozenset(),
) -> Report:
    """Every offline role valid, root_history intact, targets metadata equal to the files,
    no version lower than already online-signed (in history, or published at ``previous``).

    The files are compared where they changed since the commits of ``anchor``
    (``(history.online_anchor(repo, view),)``, None: not known), whose state online-sign
    verified then (docs/performance.md says why that is sound); all of them the first time,
    or when roles were delegated differently since.
    """
    artifacts: Report | None = None
    commits = anchor[0].commits if anchor is not None and anchor[0] is not None else ()
    views = {commit: anchor_view(repo, commit) for commit in commits}  # each blob read once
    for commit in commits:
        found = changed_artifacts_report(repo, view, commit, views[commit])
        if found is None:
            artifacts = None
            break
        artifacts = Report() if artifacts is None else artifacts
        artifacts.problems += [p for p in found.problems if p not in artifacts.problems]
    if artifacts is None:
        repo.materialize_all()
    return verify_tree(
        repo, view, repo.path, "HEAD", now, online=False, previous=previous,
        artifacts=artifacts, proven=proven, anchor=anchor, anchor_views=views,
    )  # fmt: skip


def anchor_view(repo: GitRepo, commit: str) -> MetadataView:
    """The metadata of ``commit`` (one online-sign verified), read from git objects; targets
    roles parsed lazily (online-sign compares the entries that differ)."""
    return git_view(
        lambda path: repo.read_blob(commit, path),
        lambda path: repo.list_dir(commit, path),
        f"main when online-sign verified it ({commit[:8]})",
        lazy=True,
    )


def _materialize_key_files(repo: GitRepo, view: MetadataView) -> None:
    """Check out online key files kept in the repository (``file2:``/``filekey:`` URIs with
    a path inside the checkout), for a sparse checkout of metadata/ only."""
    if view.get("root") is None:
        return
    paths = []
    for role in ONLINE_ROLES:
        for key in keys_of(view.root(), role):
            uri = key.unrecognized_fields.get(ONLINE_URI)
            scheme, _, rest = uri.partition(":") if isinstance(uri, str) else ("", "", "")
            path = Path(rest).resolve()
            if scheme in ("file2", "filekey") and path.is_relative_to(repo.path.resolve()):
                paths.append(path.relative_to(repo.path.resolve()).as_posix())
    repo.materialize(paths)


def _proven(
    repo: GitRepo, view: MetadataView
) -> tuple[tuple[Anchor | None] | None, dict[str, MetaFile]]:
    """Online key files checked out; what online-sign verified before it last signed
    (``(history.online_anchor(repo, view),)``; None when it could not be found), and the
    roles (with their snapshot entries then) whose files it verified then, byte for byte
    (none when the metadata cannot be read: the full check reports why)."""
    from tufrepo.history import online_anchor  # only online-sign and verify need it

    try:
        _materialize_key_files(repo, view)
        anchor = online_anchor(repo, view)
    except Error:
        return None, {}
    if anchor is None:
        return (None,), {}
    try:
        changed = set()
        for commit in anchor.commits:
            for path in repo.changed_names(commit, METADATA_DIR, "HEAD"):
                name = path.removeprefix(f"{METADATA_DIR}/")
                if name.endswith(".json") and "/" not in name:
                    changed.add(name.removesuffix(".json"))
        proven = proven_roles(_delegators(view), changed, anchor.records)
    except Error:  # as if unknown: every file compared, the anchor looked for again
        return None, {}
    known = {role: anchor.records[f"{role}.json"] for role in proven}
    view.proven_versions.update({role: meta.version for role, meta in known.items()})
    return (anchor,), known


def _delegators(view: MetadataView) -> dict[str, str]:
    """Each targets-type role and the role that delegates it."""
    if view.get("targets") is None:
        return {}
    rmap = view.role_map()
    return {role: rmap.delegator(role) for role in rmap.targets_roles()}


def changed_artifacts_report(
    repo: GitRepo, view: MetadataView, verified: str, base: MetadataView | None = None
) -> Report | None:
    """Targets metadata against the files, for the artifacts and roles that changed since
    commit ``verified`` (whose metadata matched its files; ``base``: its metadata, when the
    caller has it): each changed artifact is hashed once, unchanged ones are not read, and of
    a changed role only the entries that differ from ``verified``'s are compared
    (:func:`listing_problems`). None when the roles own paths differently since then (every
    file must be checked again).
    """
    ws = Workspace(repo, verified)
    base = base or anchor_view(repo, verified)
    try:
        if base.get("targets") is None or view.get("targets") is None:
            return None
        bmap, emap = base.role_map(), view.role_map()
        if (bmap, bmap.bins) != (emap, emap.bins):  # roles own paths differently: check all
            return None
    except Error:  # unreadable metadata: the full check names it
        return None
    report = Report()
    try:
        report.problems += listing_problems(ws, base, view)
    except Error as e:
        report.problems.append(f"targets: {e.diagnostics()}")
    return report


def listing_problems(ws: Workspace, base: MetadataView, view: MetadataView) -> list[str]:
    """What differs between the files and the targets metadata of ``view`` (the working
    tree), where anything changed since ``base`` (main at ``ws.main``, verified then, with
    the same role map): the artifacts git names as changed, hashed once each (from git
    objects in a sparse checkout), and the entries of each changed role that differ from
    ``base``'s. An entry written as ``base`` had it, for a file git did not see change, was
    compared with that file then, and its role owned its path then as now; so the result is
    what comparing every file would give, and only the entries compared are built as
    ``TargetFile`` objects.

    Raises:
        InputError: a changed file that no role owns, a symlink, an unsafe path.
    """
    changed = ws.changed_artifacts()
    roles = ws.changed_roles()
    with ws.changed_tree(changed) as tree:
        return _listing_problems(base, view, roles, tree, changed)


def _listing_problems(
    base: MetadataView, view: MetadataView, roles: list[str], files: Path, changed: list[str]
) -> list[str]:
    rmap = view.role_map()
    present = [p for p in changed if exists_artifact(files, p)]
    by_role = target_changes_by_role(changed, rmap, removed=set(changed) - set(present))
    check_clashes(present + [a for p in present for a in artifacts_around(files, p)])
    problems = []
    for role in sorted({r for r in roles if r in rmap} | set(by_role)):
        old = base.targets(role).targets if base.get(role) is not None else {}
        listed = view.targets(role).targets if view.get(role) is not None else {}
        paths = by_role.get(role, [])
        compared = changed_entries(old, listed) | set(paths)
        expected = apply_changes({p: old[p] for p in compared if p in old}, files, paths)
        shown = {p: listed[p] for p in compared if p in listed}
        problems += role_artifact_problems(rmap, role, expected, shown)
    return problems


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
        view = dir_view(repo.path, lazy=True)  # entries built for what is compared
        anchor, proven = _proven(repo, view)
        report = offline_report(repo, view, now, previous, anchor=anchor, proven=frozenset(proven))
        if report.problems:
            raise MetadataError("refusing to sign online: " + "; ".join(report.problems))
        orepo = OnlineRepository(repo.path, view, now, proven)
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
