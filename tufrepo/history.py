"""What online-sign already signed: the newest online-signed state in a branch's history.

The evidence is git's: every ``metadata/timestamp.json`` on the first-parent line of the
branch (read from git objects, not the working tree), and on the lines that the remote's main
had before a forced push removed them (the checkout's remote-tracking reflog); and, when
given, the published site (``--previous URL|DIR``), which a fresh clone needs to notice a
forced push of older history (see docs/ci.md). A timestamp counts only when an online key
of a trusted root (any version in root_history) signed it: someone who can push to main but
holds no online key cannot forge evidence. The comparison itself is pure
(:func:`tufrepo.online.rollbacks`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

from tuf.api.exceptions import (
    DownloadError,
    DownloadHTTPError,
    LengthOrHashMismatchError,
    UnsignedMetadataError,
)
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from tufrepo.errors import CorruptMetadataError, Error, MetadataError
from tufrepo.git import MAIN, GitRepo
from tufrepo.online import OnlineState, rollbacks
from tufrepo.repository import METADATA_DIR, MetadataView, parse, signed_bytes

log = logging.getLogger(__name__)

_METADATA_MAX = 20_000_000
TIMESTAMP = f"{METADATA_DIR}/timestamp.json"
SNAPSHOT = f"{METADATA_DIR}/snapshot.json"


def current_state(view: MetadataView, where: str) -> OnlineState:
    """The versions in ``view``: timestamp and snapshot (0 when missing: online-sign would
    start again at v1) and every targets-type role, as the next snapshot would list them."""
    ts, snap = view.get("timestamp"), view.get("snapshot")
    roles = {}
    if view.get("targets") is not None:
        for role in view.role_map().targets_roles():  # named roles and hash bins
            if (version := view.version(role)) is not None:
                roles[role] = version
    return OnlineState(
        where, ts.signed.version if ts else 0, snap.signed.version if snap else 0, roles
    )


_ROOTS: weakref.WeakKeyDictionary[MetadataView, list[Root]] = weakref.WeakKeyDictionary()
""":func:`trusted_roots` of each view (its files are read once, so they do not change)."""


def trusted_roots(view: MetadataView) -> list[Root]:
    """Every root version in ``view``'s root_history, newest first (the chain itself is
    checked by ``validate.verify_root_chain``); parsed once per view (online-sign asks three
    times: the anchor, the timestamp it names, the rollback check)."""
    if view not in _ROOTS:
        _ROOTS[view] = _trusted_roots(view)
    return list(_ROOTS[view])


def _trusted_roots(view: MetadataView) -> list[Root]:
    roots = []
    for version in reversed(view.history_versions()):
        data = view.history(version)
        if data is not None:
            try:
                signed = parse(f"root_history/{version}.root.json", data).signed
            except CorruptMetadataError:
                continue  # reported by verify_root_chain
            if isinstance(signed, Root):
                roots.append(signed)
    return roots


def _signed_by(roots: list[Root], role: str, md: Metadata[Any]) -> Root | None:
    """The first of ``roots`` whose ``role`` keys meet their threshold on ``md``."""
    payload = signed_bytes(md)  # encoded once, at C speed, for every root tried
    for root in roots:
        try:
            root.verify_delegate(role, payload, md.signatures)
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


def last_online_signing(repo: GitRepo, view: MetadataView, ref: str = "HEAD") -> str | None:
    """The newest commit on ``ref``'s first-parent line whose ``timestamp.json`` an online key
    of a trusted root signed (None: there is none).

    A commit that changed timestamp.json without such a signature (anyone who can push to
    main can make one) is passed over, so it cannot move the point from which online-sign
    trusts the state it verified earlier. Usually the newest change is signed: one read.
    """
    newest = repo.last_change(TIMESTAMP, ref)
    if newest is None:
        return None
    roots = trusted_roots(view)
    md = _read(repo.read_blob(newest, TIMESTAMP), Timestamp)
    if md is not None and _signed_by(roots, "timestamp", md) is not None:
        return newest
    for commit, blob in repo.path_history(TIMESTAMP, [ref]):  # newest first
        md = _read(repo.read_object(blob), Timestamp) if blob else None
        if md is not None and _signed_by(roots, "timestamp", md) is not None:
            return commit
    return None


@dataclass(frozen=True)
class Anchor:
    """What online-sign verified before it last signed (see :func:`online_anchor`).

    ``commits``: every commit reachable from the branch that made ``timestamp.json`` the
    bytes of its newest online-signed timestamp, changing nothing else but snapshot.json;
    ``records``: the entries of the snapshot that timestamp names (online-signed, and the
    bytes the timestamp records), role file -> entry.
    """

    commits: tuple[str, ...]
    records: Mapping[str, MetaFile]


def _blob_id(data: bytes, like: str) -> str:
    """git's id of a blob holding ``data``, in the object format of id ``like``."""
    header = b"blob %d\0" % len(data)
    digest = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return digest(header + data).hexdigest()


def online_anchor(repo: GitRepo, view: MetadataView, ref: str = "HEAD") -> Anchor | None:
    """The commits online-sign's last verification stands on (None: nothing online-signed).

    The newest online-signed timestamp on ``ref``'s first-parent line (``T``,
    :func:`last_online_signing`) was made by online-sign, which verified the repository,
    then committed ``T`` and the snapshot it names, with no other change, and pushed that
    commit as a fast-forward of main. So while main is only appended to, that commit is
    among the commits reachable from ``ref`` (merged branches included) that made
    timestamp.json ``T`` and changed nothing but it and snapshot.json: a file equal at all
    of them is one online-sign verified. Commits that re-commit ``T`` later (a pusher to
    main can) only add to the list, and a history the checkout saw the remote drop (a
    forced push) is searched too.
    """
    signed_at = last_online_signing(repo, view, ref)
    if signed_at is None:
        return None
    data = repo.read_blob(signed_at, TIMESTAMP) or b""
    ts = _read(data, Timestamp)
    roots = trusted_roots(view)
    root = _signed_by(roots, "timestamp", ts) if ts is not None else None
    if ts is None or root is None:  # last_online_signing checked it: cannot happen
        return None
    tips = [ref, *repo.rewritten_remote(MAIN)]
    history = repo.path_history(TIMESTAMP, tips, every_line=True)
    blob = _blob_id(data, next((b for _, b in history if b), ""))
    made = dict.fromkeys(c for c, b in history if b == blob)
    commits = tuple(c for c in made if _online_signing_commit(repo, c))
    if not commits:  # none could be online-sign's: nothing is taken as verified before
        return None
    return Anchor(commits, _records(repo.read_blob(signed_at, SNAPSHOT), ts, root))


@dataclass(frozen=True)
class Verified:
    """What :func:`online_verified` found: the commits of :func:`online_anchor` and the roles
    online-sign verified there, each with its entry in the snapshot it signed."""

    commits: tuple[str, ...] = ()
    roles: Mapping[str, MetaFile] = dataclasses.field(default_factory=dict)


def online_verified(
    repo: GitRepo, view: MetadataView, delegators: Mapping[str, str], ref: str = "HEAD"
) -> Verified:
    """Targets-type roles whose file at ``ref`` online-sign verified before it last signed,
    with the entry the snapshot it signed then gave each.

    A role counts when its file, the file of every role that delegates to it up to
    ``targets``, and ``root.json`` are byte for byte what they were at every commit of
    :func:`online_anchor` (online-sign verified that state, signatures by each delegator's
    keys included, then signed the snapshot listing the role: verifying it again would read
    the same bytes against the same keys), and that snapshot listed it. ``delegators``:
    role -> the role that delegates it (``targets`` -> ``root``). Unlike
    ``online.proven_roles`` (online-sign's, which has no root to compare: root is not in
    snapshot) ``targets`` counts here. Expiry is not part of it: time passes.
    """
    anchor = online_anchor(repo, view, ref)
    if anchor is None:
        return Verified()
    changed = set()
    for commit in anchor.commits:
        for path in repo.changed_names(commit, METADATA_DIR, ref):
            name = path.removeprefix(f"{METADATA_DIR}/")
            if name.endswith(".json") and "/" not in name:
                changed.add(name.removesuffix(".json"))

    def unchanged(role: str) -> bool:
        seen = set()
        while role in delegators and role not in seen and role not in changed:
            seen.add(role)
            role = delegators[role]
        return role == "root" and role not in changed

    return Verified(anchor.commits, {
        role: anchor.records[f"{role}.json"]
        for role in delegators
        if f"{role}.json" in anchor.records and unchanged(role)
    })  # fmt: skip


def online_signed(repo: GitRepo, view: MetadataView, commit: str) -> bool:
    """``commit`` is one online-sign makes — it changes snapshot.json and timestamp.json
    alone, and an online key of a root of ``view``'s root_history signed its timestamp —
    so online-sign verified the state it stands on (every role, and every role's targets
    against the files)."""
    md = _read(repo.read_blob(commit, TIMESTAMP), Timestamp)
    if md is None or _signed_by(trusted_roots(view), "timestamp", md) is None:
        return False
    return _online_signing_commit(repo, commit)


def _online_signing_commit(repo: GitRepo, commit: str) -> bool:
    """``commit`` changes snapshot.json and timestamp.json alone, as online-sign's commits
    do (not a merge: an event brought up to date with main makes timestamp.json main's
    bytes on its own line too, and its role files are not what online-sign verified)."""
    if repo.resolve(f"{commit}^2") is not None:
        return False
    parent = repo.resolve(f"{commit}^1")
    if parent is None:
        return True  # the first commit (a generated repository): nothing before it
    return {c.path for c in repo.tree_changes(parent, commit)} <= {TIMESTAMP, SNAPSHOT}


def _records(data: bytes | None, ts: Metadata[Any], root: Root) -> dict[str, MetaFile]:
    """The entries of snapshot ``data`` when it is the one timestamp ``ts`` names: its
    version, its length and hashes where ``ts`` records them, signed for ``root``; else
    none (nothing is then taken as verified before)."""
    snap = _read(data, Snapshot)
    named = cast(Timestamp, ts.signed).snapshot_meta
    if data is None or snap is None or snap.signed.version != named.version:
        return {}
    try:
        named.verify_length_and_hashes(data)
    except LengthOrHashMismatchError:
        return {}
    if _signed_by([root], "snapshot", snap) is None:
        return {}
    return dict(cast(Snapshot, snap.signed).meta)


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
        snap = _read(repo.read_blob(commit, SNAPSHOT), Snapshot)
        return OnlineState(commit, version, named, _listed(snap, named, root))
    return None


def _site_reader(previous: str) -> Callable[[str], bytes | None]:
    """Read ``path`` of the site at ``previous`` (URL or directory); None when it has none."""
    from tufrepo.client import HttpFetcher  # a TUF client and urllib3: only for --previous
    from tufrepo.previous import is_url

    if not is_url(previous):
        base = Path(previous)
        return lambda path: (base / path).read_bytes() if (base / path).is_file() else None
    fetcher, url = HttpFetcher(), previous.rstrip("/")

    def get(path: str) -> bytes | None:
        try:
            data: bytes = fetcher.download_bytes(f"{url}/{path}", _METADATA_MAX)
        except DownloadHTTPError as e:
            if e.status_code == HTTPStatus.NOT_FOUND:
                return None
            raise Error(f"cannot read the published site {url}: {e}") from e
        except DownloadError as e:
            raise Error(f"cannot read the published site {url}: {e}") from e
        return data

    return get


def site_state(previous: str, roots: list[Root]) -> OnlineState | None:
    """The versions published at ``previous`` (URL or directory of a site): its
    ``timestamp.json`` and the snapshot that names; None when there is no site yet.

    Raises:
        MetadataError: the published timestamp is not signed by an online key of ``roots``
            (main is behind the site, or the site was tampered with).
        Error: the site cannot be read.
    """
    read = _site_reader(previous)
    data = read("metadata/timestamp.json")
    if data is None:
        return None
    ts = _read(data, Timestamp)
    root = _signed_by(roots, "timestamp", ts) if ts is not None else None
    if ts is None or root is None:
        raise MetadataError(
            f"the timestamp published at {previous} is not signed by an online key of any "
            "root on main: main is behind the site, or the site was tampered with"
        )
    named = cast(Timestamp, ts.signed).snapshot_meta.version
    snap = _read(read(f"metadata/{named}.snapshot.json"), Snapshot)
    return OnlineState(f"the site published at {previous}", ts.signed.version, named,
                       _listed(snap, named, root))  # fmt: skip


def _listed(snap: Metadata[Any] | None, named: int, root: Root) -> dict[str, int]:
    """Role versions that ``snap`` lists, when it is snapshot v``named`` signed for ``root``."""
    if snap is None or snap.signed.version != named or not _signed_by([root], "snapshot", snap):
        return {}
    return {n.removesuffix(".json"): m.version for n, m in snap.signed.meta.items()}


def rollback_problems(
    repo: GitRepo, view: MetadataView, ref: str, previous: str | None = None
) -> list[str]:
    """Versions in ``view`` (the state at ``ref``) lower than what online-sign already signed
    in ``ref``'s first-parent history, in main's history that a forced push removed (as this
    checkout saw it), or on the site published at ``previous``.

    Raises:
        MetadataError, Error: see :func:`site_state`.
    """
    if repo.head() is None or view.get("root") is None:
        return []
    try:
        current = current_state(view, ref)
    except CorruptMetadataError:
        return []  # verify_repository names the file; its versions are no evidence
    roots = trusted_roots(view)
    gone = repo.rewritten_remote(MAIN)
    problems = []
    newest = newest_online_state(repo, [ref, *gone], roots)
    if newest is not None:
        where = f"commit {newest.where[:12]}"
        if newest.where in gone:
            where += f", which the remote's {MAIN} no longer contains (its history was rewritten)"
        problems += rollbacks(current, dataclasses.replace(newest, where=where))
    if previous is not None:
        problems += rollbacks(current, site_state(previous, roots))
    return problems
