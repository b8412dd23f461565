"""The operations behind the commands: pure logic run inside a git session.

Each function checks its inputs before writing anything, writes through an
:class:`EventRepository` (verified, atomic), commits, and pushes; any failure rolls the
checkout back (see :func:`tufrepo.workspace.event_session`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tuf.api.metadata import Root, TargetFile, Targets

from tufrepo.bins import make_bins, sync_bins
from tufrepo.errors import CorruptMetadataError, Error, InputError, MetadataError
from tufrepo.event import EventStatus
from tufrepo.files import atomic_write
from tufrepo.git import (
    EVENT_PREFIX,
    MAIN,
    Change,
    GitRepo,
    bare_clone_for_partial,
    event_branch,
    sparse_clone,
)
from tufrepo.partial import PartialWorkspace, event_worktree, worktree_start
from tufrepo.progress import ProgressFactory
from tufrepo.repository import (
    HISTORY_DIR,
    METADATA_DIR,
    EventRepository,
    MetadataView,
    dir_view,
    git_view,
)
from tufrepo.roles import ONLINE_ROLES, ONLINE_URI, STATE_FILE, TOP_LEVEL, RoleMap
from tufrepo.signers import import_public_key
from tufrepo.signing import (
    Actor,
    RoleConfig,
    accept_invitations,
    close_roles,
    configure_role,
    current_config,
    init_repository,
    sign_all,
)
from tufrepo.targets import (
    CONTENT_DIRS,
    DESCRIPTOR_SUFFIX,
    DESCRIPTORS_DIR,
    TARGETS_DIR,
    artifacts_around,
    check_clashes,
    check_no_symlink,
    check_target_path,
    descriptor_bytes,
    exists_artifact,
    scan_all,
)
from tufrepo.update import refresh_targets, update_event
from tufrepo.validate import (
    Report,
    verify_recorded,
    verify_repository,
    version_regressions,
)
from tufrepo.workspace import Workspace, commit_and_push, event_session

if TYPE_CHECKING:
    from tufrepo import importer
    from tufrepo.history import Anchor


@dataclass
class Outcome:
    """What a command did, for the CLI to print."""

    branch: str
    commit: str | None = None
    pushed: bool = False
    messages: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


def finish_event(
    ws: Workspace,
    branch: str,
    repo: EventRepository,
    msg: str,
    push: bool,
    *,
    updated: list[str] | None = None,
) -> Outcome:
    """Commit what ``repo`` wrote and push it (with the commits of ``update_event``, whose
    messages are ``updated``)."""
    repo.stage_state()
    ws.flushed(repo.flush())
    out = Outcome(branch, messages=list(updated or []))
    head = ws.git.head()
    ws.forget_changes()
    changed = _paths_to_stage(ws.uncommitted())
    if not changed:
        out.messages.append("nothing else changed" if updated else "nothing changed")
        if updated and head is not None:
            out.commit, out.pushed = head, push
            if push:
                ws.git.push(branch)
        return out
    out.commit = commit_and_push(ws, branch, msg, changed, push)
    out.pushed = push
    return out


STAGE_ONE_BY_ONE = 2000
"""Up to this many changed files under a directory outside metadata/ are staged by name."""


def _paths_to_stage(changes: list[Change]) -> list[str]:
    """What to stage for ``changes``: metadata/ whole, other changed files by name (git adds a
    directory outside a sparse checkout's cone by expanding its whole index), or their
    directory when there are many."""
    out: set[str] = set()
    named: dict[str, list[str]] = {}
    for c in changes:
        top = c.path.split("/", 1)[0]
        if top == METADATA_DIR:
            out.add(METADATA_DIR)
        elif top in CONTENT_DIRS:
            named.setdefault(top, []).append(c.path)
    for top, paths in named.items():
        out.update([top] if len(paths) > STAGE_ONE_BY_ONE else paths)
    return sorted(out)


def delegate(
    ws: Workspace,
    event: str,
    role: str | None,
    cfg: RoleConfig,
    actor: Actor,
    *,
    push: bool,
    now: datetime,
) -> Outcome:
    """Initialise the repository or change a role's delegation in event ``event``."""
    branch = event_branch(event)
    with event_session(ws, branch, create=True):
        updated = update_event(ws, branch, now)
        repo = EventRepository(ws.checkout, ws.base(), now)
        already = ws.changed_roles()
        if repo.view.get("root") is None:
            if role not in (None, "root", "targets"):
                raise InputError(f"initialise the repository before delegating {role}")
            invited = init_repository(repo, actor, cfg)
            closing = ["root", "targets"]
        else:
            if role is None:
                raise InputError("name the role to change (root, targets, or a delegated role)")
            invited, closing = _configure(repo, role, cfg, actor)
        close_roles(repo, closing)
        signed = sign_all(repo, sorted(set(already) | set(closing)), actor)
        what = "initialise repository" if "init" in branch and not already else f"delegate {role}"
        out = finish_event(ws, branch, repo, f"{what} ({actor.user})", push, updated=updated)
        out.messages += [f"invited {u}" for u in invited] + signed_lines(repo.role_map(), signed)
        return out


def _configure_changing(
    repo: EventRepository, role: str, cfg: RoleConfig, actor: Actor
) -> list[str]:
    """configure_role, refusing a configuration that changes nothing (which would only make
    signers sign again)."""
    nothing = (
        f"nothing to change for {role}: give --signers, --threshold, --expiry-period, "
        "--signing-period or --online-key"
    )
    if cfg == RoleConfig() and repo.exists(role):
        raise InputError(nothing)
    known = role in TOP_LEVEL or role in repo.role_map()
    up = repo.delegator_name(role) if known else "targets"  # a new role: a change anyway
    names = [n for n in (role, up) if repo.exists(n)]
    before = {n: json.dumps(repo.open(n).signed.to_dict(), sort_keys=True) for n in names}
    state = repr(repo.event_state.invites)
    invited = configure_role(repo, role, cfg, actor)
    after = {n: json.dumps(repo.open(n).signed.to_dict(), sort_keys=True) for n in names}
    unchanged = before == after and repr(repo.event_state.invites) == state
    if names == [role, up] and unchanged and not invited and cfg.bins is None:
        raise InputError(f"{role} already has this configuration: {nothing}")
    return invited


def role_settings(ws: Workspace, event: str, role: str) -> RoleConfig | None:
    """``role``'s configuration in ``event`` (or on main when the event does not exist yet),
    for a person to edit; None for a role that is not delegated or a new repository."""
    branch = event_branch(event)
    commit = ws.git.remote_branch(branch) or ws.git.resolve(f"refs/heads/{branch}") or ws.main
    view = git_view(
        lambda p: ws.git.read_blob(commit, p), lambda d: ws.git.list_dir(commit, d), branch
    )
    if view.get("root") is None:
        return None
    return current_config(view, role)


def signed_lines(rmap: RoleMap, signed: list[str]) -> list[str]:
    """``signed R`` per role, the hash bins of one role folded into one line."""
    bins: dict[str, list[str]] = {}
    lines = []
    for role in signed:
        if (owner := rmap.bin_owner(role)) is None:
            lines.append(f"signed {role}")
        else:
            bins.setdefault(owner, []).append(role)
    for owner, names in bins.items():
        what = f"{len(names)} hash bins of {owner} ({names[0]} .. {names[-1]})"
        lines.append(f"signed {names[0] if len(names) == 1 else what}")
    return lines


def _configure(
    repo: EventRepository, role: str, cfg: RoleConfig, actor: Actor
) -> tuple[list[str], list[str]]:
    """Apply ``cfg`` to ``role``: returns (users invited, roles to close)."""
    invited: list[str] = []
    closing: list[str] = []
    if cfg.bins is None or cfg.changes_delegation() or role not in repo.role_map():
        invited = _configure_changing(repo, role, cfg, actor)
        up = repo.delegator_name(role)
        closing = [up] if role in ONLINE_ROLES else [role, up]
        closing += sync_bins(repo, role)
    if cfg.bins is not None:
        closing += make_bins(repo, role, cfg.bins or None)
    return invited, closing


def sign(
    ws: Workspace,
    event: str,
    actor: Actor,
    *,
    push: bool,
    now: datetime,
    review: Callable[[EventStatus], bool],
) -> Outcome:
    """Accept invitations and sign every changed role the actor signs for.

    ``review`` is shown the event status (changes, recomputed targets) and may refuse.

    Raises:
        MetadataError: the targets metadata differs from the files, or the event is invalid.
    """
    branch = event_branch(event)
    with _sign_session(ws, branch) as here:
        updated = update_event(here, branch, now)  # sign what main will have after the merge
        tree = here.event()  # reviewed, then signed: each file parsed once
        status = here.status(branch, now, tree)
        problems = status.problems + [p for r in status.roles for p in r.problems]
        if problems:
            raise MetadataError(f"refusing to sign {branch}: {'; '.join(problems)}")
        if not review(status):
            raise InputError("signing cancelled")
        repo = EventRepository(here.checkout, here.base(), now, tree)
        accepted = accept_invitations(repo, actor)
        changed = here.changed_roles()
        closing = sorted(
            {r for a in accepted for r in (a, repo.delegator_name(a), *sync_bins(repo, a))}
            - set(ONLINE_ROLES)
        )
        close_roles(repo, closing)
        signed = sign_all(repo, sorted(set(changed) | set(closing)), actor)
        if not accepted and not signed and not updated:
            return Outcome(branch, messages=["nothing to sign"])
        msg = f"Signature from {actor.user}" if signed else f"{actor.user} accepted invitation"
        out = finish_event(here, branch, repo, msg, push, updated=updated)
        out.messages += [f"accepted invitation for {r}" for r in accepted]
        out.messages += signed_lines(repo.role_map(), signed)
        return out


@contextmanager
def _sign_session(ws: Workspace, branch: str) -> Iterator[Workspace]:
    """The event ``branch`` to sign: in a worktree of the command's own, read and committed
    as git objects, when the event contains main and is not the branch checked out here
    (the checkout is left as it is: no index refresh, no checkout of the event and back);
    else checked out in ``ws`` (an event session: the checkout's files follow the event,
    and an event behind main is brought up to date with a git merge)."""
    start = worktree_start(ws, branch)
    if start is None:
        with event_session(ws, branch, create=False):
            yield ws
        return
    with event_worktree(ws, branch, start) as partial:
        yield partial


@contextmanager
def _app_session(
    checkout: Path, remote_url: str | None, branch: str, targets: list[str]
) -> Iterator[Workspace]:
    """The event ``branch`` checked out: in ``checkout`` (an event session), or in a clone of
    ``remote_url`` of this command's own, removed when it ends. That clone holds the
    metadata and the trees on the way to ``targets`` alone (:class:`PartialWorkspace`); only
    an event that main moved on from is brought up to date in a sparse clone (git merges
    need an index of every file)."""
    if remote_url is None:
        ws = Workspace.open(checkout)
        with event_session(ws, branch, create=True):
            yield ws
        return
    tmp = Path(tempfile.mkdtemp(prefix="tufrepo-app-"))
    try:
        repo = bare_clone_for_partial(remote_url, tmp / "repo")
        main, event = repo.main_commit(), repo.remote_branch(branch)
        if main is not None and (event is None or repo.is_ancestor(main, event)):
            repo.start_partial(branch, event or main)
            partial = PartialWorkspace(repo, main, throwaway=True)
            partial.prefetch_metadata(["root.json", "targets.json", STATE_FILE], targets)
            yield partial
            return
        shutil.rmtree(tmp / "repo")
        sparse_clone(remote_url, tmp / "repo")  # metadata only: the event's files on demand
        ws = Workspace(GitRepo(tmp / "repo"), main, throwaway=True)
        with event_session(ws, branch, create=True):
            yield ws
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_event(
    checkout: Path,
    name: str,
    artifacts: list[tuple[str, Path]],
    removals: list[str],
    *,
    descriptors: list[tuple[str, bytes]] | None = None,
    remote_url: str | None,
    push: bool,
    now: datetime,
) -> Outcome:
    """App CI: put artifacts (files, or descriptors of artifacts hosted elsewhere) on
    ``sign/<name>``, remove others, and update the owning roles' metadata. Never signs.

    Every input is checked before anything is written.
    """
    branch = event_branch(name)
    files = [(check_target_path(p), f) for p, f in artifacts]
    for _, f in files:
        if not f.is_file():
            raise InputError(f"artifact file {f} does not exist or is not a file")
    descs = [(check_target_path(p), descriptor_bytes(p, d)) for p, d in descriptors or []]
    removed = [check_target_path(p, removal=True) for p in removals]
    named = [p for p, _ in files] + [p for p, _ in descs] + removed
    if len(set(named)) != len(named):
        raise InputError("a target path is named more than once")
    check_clashes([p for p, _ in files] + [p for p, _ in descs])
    with _app_session(checkout, remote_url, branch, named) as ws:
        if ws.main is None:
            raise InputError("the repository has no main branch yet: initialise it first")
        updated = update_event(ws, branch, now)
        ws.forget_changes()
        ws.materialize(named, around=True)
        gone: list[str] = []
        for path in removed:
            if not exists_artifact(ws.checkout, path):
                raise InputError(f"cannot remove {path}: no such artifact")
            gone += _replace(ws.checkout, path, None, as_descriptor=False)
        added = [p for p, _ in files] + [p for p, _ in descs]
        check_clashes(added + [a for p in added for a in artifacts_around(ws.checkout, p)])
        for path, src in files:
            gone += _replace(ws.checkout, path, src.read_bytes(), as_descriptor=False)
        for path, data in descs:
            gone += _replace(ws.checkout, path, data, as_descriptor=True)
        written = [f"{TARGETS_DIR}/{p}" for p, _ in files]
        written += [f"{DESCRIPTORS_DIR}/{p}{DESCRIPTOR_SUFFIX}" for p, _ in descs]
        ws.record(written, gone)
        repo = EventRepository(ws.checkout, ws.base(), now, ws.event())
        roles = refresh_targets(ws, repo)
        msg = f"Artifact changes: {', '.join(roles) or 'none'}"
        out = finish_event(ws, branch, repo, msg, push, updated=updated)
        out.messages += [f"updated {r}" for r in roles]
        return out


def _replace(checkout: Path, target: str, data: bytes | None, *, as_descriptor: bool) -> list[str]:
    """Make ``target`` a file (or a descriptor) with ``data``, removing the other form;
    ``data`` None removes both. Returns the paths (in the checkout) removed."""
    file_path = check_no_symlink(checkout / TARGETS_DIR, target, TARGETS_DIR)
    desc_path = check_no_symlink(
        checkout / DESCRIPTORS_DIR, f"{target}{DESCRIPTOR_SUFFIX}", DESCRIPTORS_DIR
    )
    keep = desc_path if as_descriptor else file_path
    gone = []
    for path, base in ((file_path, TARGETS_DIR), (desc_path, DESCRIPTORS_DIR)):
        if (path != keep or data is None) and path.exists():
            path.unlink()
            _remove_empty_parents(path.parent, checkout / base)
            gone.append(path.relative_to(checkout).as_posix())
    if data is not None:
        atomic_write(keep, data)
    return gone


def _remove_empty_parents(directory: Path, stop: Path) -> None:
    """Remove ``directory`` and its parents below ``stop`` while they are empty (so that a
    removed artifact's directory can become an artifact in the same event)."""
    while directory != stop and directory.is_relative_to(stop):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def update_targets(ws: Workspace, *, push: bool, now: datetime) -> Outcome:
    """CI on an event branch: rewrite targets metadata of roles whose artifacts changed."""
    branch = ws.git.current_branch()
    if branch is None or not branch.startswith(EVENT_PREFIX):
        raise InputError(f"update-targets runs on a signing event branch, not {branch or 'HEAD'}")
    event_branch(branch)
    with event_session(ws, branch, create=False):
        updated = update_event(ws, branch, now)
        repo = EventRepository(ws.checkout, ws.base(), now)
        done = ws.refreshed is not None and ws.refreshed == ws.git.head()  # by the rebuild
        roles = [] if done else refresh_targets(ws, repo)
        msg = f"Update targets metadata: {', '.join(roles)}"
        out = finish_event(ws, branch, repo, msg, push, updated=updated)
        out.messages += [f"updated {r}" for r in roles] or ["targets metadata is up to date"]
        return out


def update_event_branch(ws: Workspace, event: str, *, push: bool, now: datetime) -> Outcome:
    """``tufrepo event update``: merge main into ``sign/<event>`` (see tufrepo.update)."""
    branch = event_branch(event)
    with event_session(ws, branch, create=False):
        updated = update_event(ws, branch, now)
        if not updated:
            return Outcome(branch, messages=[f"{branch} is up to date with main"])
        repo = EventRepository(ws.checkout, ws.base(), now)
        return finish_event(ws, branch, repo, "Update", push, updated=updated)


def event_status_of(ws: Workspace, now: datetime, *, update: bool = False) -> EventStatus:
    """Status of the event checked out in ``ws`` (its branch name, or HEAD); main's files
    that the event builds on must be the ones main's snapshot/timestamp record. ``update``
    first fast-forwards a clean event branch to the remote's (after a fetch)."""
    branch = ws.git.current_branch()
    if update and branch is not None and branch.startswith(EVENT_PREFIX):
        ws.git.follow_remote(branch)
    status = ws.status(branch or "HEAD", now)
    touched = {"snapshot", *(r.role for r in status.roles)}
    recorded = verify_recorded(ws.base(), touched).problems
    status.problems += [f"main: {p}" for p in recorded]
    return status


def on_main(ws: Workspace) -> bool:
    """The checkout is main (by name, or a detached HEAD at main): not a signing event."""
    branch = ws.git.current_branch()
    return branch == MAIN or (branch is None and ws.main is not None and ws.git.head() == ws.main)


def verify(
    checkout: Path,
    ref: str | None,
    now: datetime,
    *,
    previous: str | None = None,
    progress: ProgressFactory | None = None,
) -> Report:
    """``tufrepo verify``: the working tree, or ``ref``'s git objects with ``--at``;
    ``previous`` names the published site, whose versions must not be higher."""
    repo = GitRepo(checkout)
    if ref is None:
        repo.materialize_all()  # every file is compared
        return verify_tree(
            repo, dir_view(repo.path), repo.path, "HEAD", now, previous=previous,
            progress=progress,
        )  # fmt: skip
    commit = repo.resolve(ref)
    if commit is None:
        raise InputError(f"no such git ref: {ref}")
    view = git_view(lambda p: repo.read_blob(commit, p), lambda d: repo.list_dir(commit, d), ref)
    with tempfile.TemporaryDirectory(prefix="tufrepo-verify-") as tmp:
        try:
            repo.export(commit, TARGETS_DIR, Path(tmp))
            repo.export(commit, DESCRIPTORS_DIR, Path(tmp))
        except InputError as e:
            report = Report()
            report.problems.append(f"targets: {e.diagnostics()}")
            return report
        return verify_tree(repo, view, Path(tmp), commit, now, previous=previous, progress=progress)


def verify_tree(
    repo: GitRepo,
    view: MetadataView,
    tree: Path,
    ref: str,
    now: datetime,
    *,
    online: bool = True,
    progress: ProgressFactory | None = None,
    previous: str | None = None,
    artifacts: Report | None = None,
    proven: frozenset[str] = frozenset(),
    anchor: tuple[Anchor | None] | None = None,
    anchor_views: Mapping[str, MetadataView] | None = None,
) -> Report:
    """``verify_repository`` of ``view`` with the artifacts under ``tree``, ``ref``'s
    root_history facts from git (``ref`` "HEAD": ``view`` is the working tree), and no
    version lower than online-sign already signed (``artifacts``: the artifacts compared
    already, e.g. only those changed since online-sign last checked them; ``proven``: see
    ``online.proven_roles``; ``anchor``: ``history.online_anchor`` of ``view`` at ``ref``,
    when the caller computed it already; ``anchor_views``: the metadata of its commits, when
    the caller read it already)."""
    scanned: dict[str, dict[str, TargetFile]] | Error | None = None
    if artifacts is None:
        try:
            scanned = scan_all(tree, view.role_map(), progress)
        except Error as e:
            scanned = e
    history: list[str] = []
    regressions: list[str] = []
    if repo.head():
        history = repo.history_changes(f"{METADATA_DIR}/root_history", ref)
        regressions = _regressions(repo, view, ref, anchor, anchor_views or {})
    report = verify_repository(
        view, now, scanned, history, online=online, regressions=regressions, proven=proven
    )
    if artifacts is not None:
        report.extend(artifacts)
    from tufrepo.history import rollback_problems  # only online-sign and verify need it

    report.problems += rollback_problems(repo, view, ref, previous)
    return report


def _view_at(repo: GitRepo, commit: str, label: str) -> MetadataView:
    return git_view(
        lambda p: repo.read_blob(commit, p), lambda d: repo.list_dir(commit, d), label, lazy=True
    )


def _before(repo: GitRepo, commit: str, before: str, anchor: MetadataView | None) -> MetadataView:
    """The metadata of ``before``, the parent of anchor commit ``commit``, which changed
    nothing but snapshot.json and timestamp.json (``history.online_anchor``): the other
    files are ``commit``'s, read once through ``anchor`` (its view) when given."""
    label = f"main before its last online signing ({before[:8]})"
    if anchor is None:
        return _view_at(repo, before, label)
    own = {f"{role}.json" for role in ONLINE_ROLES}

    def read(name: str) -> bytes | None:
        if name in own:
            return repo.read_blob(before, f"{METADATA_DIR}/{name}")
        return anchor.raw(name)

    def lister(sub: str) -> list[str]:
        return repo.list_dir(before, f"{METADATA_DIR}/{sub}".rstrip("/"))

    return MetadataView(read, lister, label, lazy=True)


def _regressions(
    repo: GitRepo,
    view: MetadataView,
    ref: str,
    known: tuple[Anchor | None] | None = None,
    views: Mapping[str, MetadataView] | None = None,
) -> list[str]:
    """Roles changed since the state online-sign last verified (the parent of each commit
    that made timestamp.json main's newest online-signed timestamp: ``online_anchor``, or
    ``known``'s when given; ``views``: the metadata of those commits) must have grown their
    version."""
    from tufrepo.history import online_anchor  # only online-sign and verify need it

    anchor = known[0] if known is not None else online_anchor(repo, view, ref)
    problems: list[str] = []
    for commit in anchor.commits if anchor is not None else ():
        before = repo.resolve(f"{commit}^1")
        if before is None:
            continue
        previous = _before(repo, commit, before, (views or {}).get(commit))
        changed = repo.changed_names(before, METADATA_DIR, None if ref == "HEAD" else ref)
        names = [
            n.removeprefix(f"{METADATA_DIR}/")
            for n in changed
            if n.endswith(".json") and "/" not in n.removeprefix(f"{METADATA_DIR}/")
        ]
        try:
            found = version_regressions(previous, view, names)
        except CorruptMetadataError as e:
            found = [e.diagnostics()]
        problems += [p for p in found if p not in problems]
    return problems


def import_repository(
    ws: Workspace,
    event: str,
    cfg: importer.ImportConfig,
    actor: Actor,
    *,
    push: bool,
    now: datetime,
) -> Outcome:
    """Open ``sign/<event>`` adopting the repository on main (see ``tufrepo.importer``)."""
    from tufrepo import importer  # only this command needs it

    branch = event_branch(event)
    if ws.main is None:
        raise InputError("no main branch: commit the existing repository to main first")
    if cfg.online_uri is None:
        raise InputError("importing needs --online-key URI (the snapshot/timestamp signer)")
    online = import_public_key(cfg.online_uri)
    online.unrecognized_fields[ONLINE_URI] = cfg.online_uri
    if ws.git.remote_branch(branch) or ws.git.resolve(f"refs/heads/{branch}"):
        raise InputError(f"{branch} exists already: sign it, or import into a new event")
    base = ws.base()
    with event_session(ws, branch, create=True):
        scanned: dict[str, Any] | Error
        ws.git.materialize_all()
        try:
            scanned = scan_all(ws.checkout, base.role_map())
        except Error as e:
            scanned = e
        adoption = importer.check_adoptable(base, scanned)
        repo = EventRepository(ws.checkout, base, now)
        roles = ["root", "targets", *adoption.delegated]
        mds = {r: repo.open(r) for r in roles}
        importer.adopt(
            cast(Root, mds["root"].signed),
            cast(Targets, mds["targets"].signed),
            {r: cast(Targets, mds[r].signed) for r in adoption.delegated},
            cfg,
            online,
        )
        for version, data in adoption.roots.items():
            repo.pending[f"{HISTORY_DIR}/{version}.root.json"] = data
        close_roles(repo, roles)
        signed = sign_all(repo, roles, actor)
        out = finish_event(ws, branch, repo, f"Import existing repository ({actor.user})", push)
        out.roles = roles
        out.messages += [f"adopted {r}" for r in roles] + [f"signed {r}" for r in signed]
        return out
