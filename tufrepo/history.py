"""What online-sign already signed: the newest online-signed state in a branch's history.

The evidence is git's: every ``metadata/timestamp.json`` on the first-parent line of the
branch (read from git objects, not the working tree), and on the lines that the remote's main
had before a forced push removed them (the checkout's remote-tracking reflog). A timestamp
counts only when an online key of a trusted root (any version in root_history) signed it:
someone who can push to main but holds no online key can neither forge evidence nor hide
it. The comparison itself is pure (:func:`tufrepo.online.rollbacks`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, cast

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Snapshot, Timestamp

from tufrepo.errors import CorruptMetadataError
from tufrepo.git import MAIN, GitRepo
from tufrepo.online import OnlineState, rollbacks
from tufrepo.repository import METADATA_DIR, MetadataView, parse
from tufrepo.roles import delegated_role_names

log = logging.getLogger(__name__)

TIMESTAMP = f"{METADATA_DIR}/timestamp.json"
SNAPSHOT = f"{METADATA_DIR}/snapshot.json"


def current_state(view: MetadataView, where: str) -> OnlineState:
    """The versions in ``view``: timestamp and snapshot (0 when missing: online-sign would
    start again at v1) and every targets-type role, as the next snapshot would list them."""
    ts, snap = view.get("timestamp"), view.get("snapshot")
    roles = {}
    if view.get("targets") is not None:
        for role in ["targets", *delegated_role_names(view.targets())]:
            md = view.get(role)
            if md is not None:
                roles[role] = md.signed.version
    return OnlineState(
        where, ts.signed.version if ts else 0, snap.signed.version if snap else 0, roles
    )


def trusted_roots(view: MetadataView) -> list[Root]:
    """Every root version in ``view``'s root_history, newest first (the chain itself is
    checked by ``validate.verify_root_chain``)."""
    roots = []
    for version in reversed(view.history_versions()):
        data = view.history(version)
        if data is not None:
            try:
                roots.append(cast(Root, parse(f"root_history/{version}.root.json", data).signed))
            except CorruptMetadataError:
                continue  # reported by verify_root_chain
    return roots


def _signed_by(roots: list[Root], role: str, md: Metadata[Any]) -> Root | None:
    """The first of ``roots`` whose ``role`` keys meet their threshold on ``md``."""
    for root in roots:
        try:
            root.verify_delegate(role, md.signed_bytes, md.signatures)
        except (UnsignedMetadataError, ValueError):
            continue
        return root
    return None


def _read(data: bytes | None, kind: type[Timestamp] | type[Snapshot]) -> Metadata[Any] | None:
    if data is None:
        return None
    try:
        md = Metadata.from_bytes(data)
    except Exception:  # noqa: BLE001 - anything unparsable is simply no evidence
        return None
    return md if isinstance(md.signed, kind) else None


def _version(data: bytes) -> int | None:
    """``signed.version`` of a metadata file, parsed cheaply (a full parse is only for the
    candidates that are checked)."""
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def newest_online_state(repo: GitRepo, tips: list[str], roots: list[Root]) -> OnlineState | None:
    """The highest-version timestamp signed by an online key of ``roots`` on the first-parent
    lines of ``tips``, with the versions its snapshot lists; None when there is none."""
    first_seen: dict[str, str] = {}
    for commit, blob in repo.path_history(TIMESTAMP, tips):  # newest first
        if blob:
            first_seen[blob] = commit  # ends as the oldest commit holding this content
    candidates = []
    for blob, commit in first_seen.items():
        version = _version(repo.read_object(blob))
        if version is not None:
            candidates.append((version, commit, blob))
    for version, commit, blob in sorted(candidates, key=lambda c: -c[0]):
        md = _read(repo.read_object(blob), Timestamp)
        root = _signed_by(roots, "timestamp", md) if md is not None else None
        if md is None or root is None:
            log.debug("timestamp v%s in %s is not online-signed: no evidence", version, commit)
            continue
        named = cast(Timestamp, md.signed).snapshot_meta.version
        listed: dict[str, int] = {}
        snap = _read(repo.read_blob(commit, SNAPSHOT), Snapshot)
        if (
            snap is not None
            and snap.signed.version == named
            and _signed_by([root], "snapshot", snap)
        ):
            listed = {n.removesuffix(".json"): m.version for n, m in snap.signed.meta.items()}
        return OnlineState(commit, version, named, listed)
    return None


def rollback_problems(repo: GitRepo, view: MetadataView, ref: str) -> list[str]:
    """Versions in ``view`` (the state at ``ref``) lower than what online-sign already signed
    in ``ref``'s first-parent history or in main's history that a forced push removed."""
    if repo.head() is None or view.get("root") is None:
        return []
    gone = repo.rewritten_remote(MAIN)
    newest = newest_online_state(repo, [ref, *gone], trusted_roots(view))
    if newest is None:
        return []
    where = newest.commit[:12]
    if newest.commit in gone:
        where += f", which the remote's {MAIN} no longer contains (its history was rewritten)"
    return rollbacks(current_state(view, ref), dataclasses.replace(newest, commit=where))
