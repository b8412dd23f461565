"""Bringing a signing event up to date with main, and targets metadata up to date with the files.

An event branch left main at its merge base ("fork"); main may have moved on since (other
events merged, online signing). :func:`update_event` merges main into the event the way a
person would, with rules instead of conflict markers:

* snapshot, timestamp and root_history are main's (events never change them, and the
  history of root is main's to keep);
* artifacts and descriptors the event changes are the event's;
* a role's metadata that only one side changed is that side's, byte for byte, so its
  signatures are kept;
* a role both changed is rebuilt: main's version with the event's changes replayed on it
  (:func:`tufrepo.threeway.merge_signed`), version main's + 1, signatures cleared; targets
  lists are recomputed from main's metadata and the event's artifact changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from tuf.api.metadata import Metadata, Signed, Targets

from tufrepo.errors import GitError, InputError, MetadataError
from tufrepo.repository import METADATA_DIR, EventRepository, MetadataView
from tufrepo.threeway import merge_signed
from tufrepo.workspace import Side, Workspace, merge_side, role_of

# set by EventRepository.close (version main's + 1, expiry from the period), not merged
_CLOSED = frozenset({"version", "expires", "spec_version"})


def update_event(ws: Workspace, branch: str, now: datetime) -> list[str]:
    """Merge main into the checked-out event ``branch`` (see the module doc); commit, never
    push. Returns what was done, empty when the event already contains main.

    Raises:
        GitError: a file outside metadata/, targets/ and descriptors/ changed on both sides,
            or the event shares no history with main.
        MetadataError: a role's changes cannot be replayed on main's (not valid metadata).
    """
    repo, main, head = ws.git, ws.main, ws.git.head()
    if main is None or head is None:
        return []
    fork = ws.merge_base()  # main itself: the event contains main already
    if fork == main:
        return []
    if fork is None:
        raise GitError(f"{branch} shares no history with main: open a new event")
    theirs = {c.path for c in repo.tree_changes(fork, main)}
    both = sorted(theirs & {c.path for c in repo.tree_changes(fork, head)})
    outside = [p for p in both if merge_side(p) is Side.GIT]
    if outside:
        raise GitError(
            f"cannot bring {branch} up to date: {outside[0]} changed on main and in the event;"
            " merge main into it with git"
        )
    roles = [role_of(p) or p for p in both if merge_side(p) is Side.REBUILD]
    # a role removed on one side and changed on the other is not rebuilt: the event's file
    # (or its removal) is kept, as for a delegation both changed (tufrepo.threeway)
    rebuild = [
        r for r in roles if all(repo.exists(c, f"{METADATA_DIR}/{r}.json") for c in (main, head))
    ]
    unresolved = repo.start_merge(main)
    for path in sorted(set(both) | set(unresolved)):
        main_wins = merge_side(path) is Side.MAIN or role_of(path) in rebuild
        repo.take_version(main if main_wins else head, path)
    ws.on_main(repo.commit(f"Merge main into {branch}", []))
    done = [f"merged main into {branch} ({repo.count_commits(fork, main)} new commits on main)"]
    if rebuild:
        done += _rebuild(ws, rebuild, ws.view_at(fork, "merge base"), ws.view_at(head, branch), now)
        ws.on_main(commit := repo.commit(f"Rebuild {', '.join(rebuild)} on main's", [METADATA_DIR]))
        ws.refreshed = commit  # _rebuild refreshed every role's targets, then committed
    return done


def _rebuild(
    ws: Workspace, roles: list[str], base: MetadataView, event: MetadataView, now: datetime
) -> list[str]:
    """Replay the event's changes of ``roles`` on main's versions (on disk after the merge)."""
    repo = EventRepository(ws.checkout, ws.base(), now)
    done = []
    order = {"root": 0, "targets": 1}
    for role in sorted(roles, key=lambda r: (order.get(r, 2), r)):  # delegators first
        md = repo.open(role)
        old, new = base.get(role), event.require(role)
        listed = md.signed.targets if isinstance(md.signed, Targets) else None
        merged, overrides = merge_signed(
            _fields(old.signed) if old else {}, _fields(md.signed), _fields(new.signed),
            main_only=_CLOSED | ({"targets"} if listed is not None else set()),
        )  # fmt: skip
        try:
            md.signed = type(md.signed).from_dict(merged)
        except (ValueError, KeyError, TypeError) as e:
            raise MetadataError(f"{role}: cannot replay this event's changes on main's: {e}") from e
        if listed is not None:  # main's (then recomputed from the files, below)
            cast(Targets, md.signed).targets = listed
        repo.close(role, md)
        done.append(f"{role}: rebuilt on main's v{ws.base().require(role).signed.version}"
                    " with this event's changes; it must be signed again")  # fmt: skip
        done += [f"{role}: {o.describe()}" for o in overrides]
    repo.flush()
    repo = EventRepository(ws.checkout, ws.base(), now)  # reads the rebuilt roles
    done += [f"{r}: targets recomputed from the files" for r in refresh_targets(ws, repo)]
    repo.flush()
    return done


def _fields(signed: Signed) -> dict[str, Any]:
    """``signed.to_dict()`` without a targets role's artifacts: merging keeps main's, and
    they are recomputed from the files (a flat role lists 100,000)."""
    if not isinstance(signed, Targets):
        return signed.to_dict()
    listed, signed.targets = signed.targets, {}
    try:
        return signed.to_dict()
    finally:
        signed.targets = listed


def refresh_targets(ws: Workspace, repo: EventRepository) -> list[str]:
    """Rewrite the targets metadata of roles whose artifacts changed; returns those roles."""
    base, event = repo.base, repo.view  # main's view that closing a role reads too
    expected = ws.expected_targets(base, event, ws.changed_roles())
    updated = []
    for role, targets in expected.items():
        if not repo.exists(role):
            raise InputError(f"artifacts for role {role}, which has no metadata")
        md: Metadata[Any] = repo.open(role)
        signed = cast(Targets, md.signed)
        base_md = base.get(role)
        if signed.targets == targets and base_md and md.signed.version > base_md.signed.version:
            continue
        if signed.targets == targets and (base_md is None or base.targets(role).targets == targets):
            continue
        signed.targets = targets
        repo.close(role, md)
        updated.append(role)
    return updated
