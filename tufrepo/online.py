"""Online roles: snapshot and timestamp, refreshed by CI on main.

:func:`online_reasons` is pure (metadata + now -> why a role needs refreshing);
:func:`rollbacks` is pure (the versions on main against the newest online-signed state in
its history -> what went backwards);
:class:`OnlineRepository` signs with the online keys named in root
(``x-tuf-on-ci-online-uri``), verifies every new version against root before keeping it,
and writes all files atomically at the end.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp
from tuf.repository import Repository

from tufrepo.errors import MetadataError, SignerError
from tufrepo.files import atomic_write
from tufrepo.repository import METADATA_DIR, MetadataView, serialize
from tufrepo.roles import ONLINE_URI, in_signing_period, keys_of, periods
from tufrepo.signers import load_signer

log = logging.getLogger(__name__)


def _meta(data: bytes, version: int) -> MetaFile:
    """A MetaFile with length and sha256 (clients cap downloads of metadata without them)."""
    return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})


def online_reasons(role: str, view: MetadataView, now: datetime) -> list[str]:
    """Why ``role`` (snapshot or timestamp) must be re-signed regardless of content changes."""
    md = view.get(role)
    if md is None:
        return ["does not exist yet"]
    root = view.root()
    reasons = []
    _, signing = periods(role, root, None)
    if in_signing_period(md.signed.expires, signing, now):
        reasons.append(f"inside its signing period (expires {md.signed.expires:%Y-%m-%d %H:%M})")
    try:
        root.verify_delegate(role, md.signed_bytes, md.signatures)
    except UnsignedMetadataError:
        reasons.append("does not verify with the current root (online key changed)")
    return reasons


def proven_roles(view: MetadataView, delegators: dict[str, str]) -> set[str]:
    """Targets-type roles that an earlier online-sign verified, byte for byte: the current
    snapshot (signed by root's online keys, which only online-sign holds, and which it signs
    only after verifying every offline role) lists their sha256 and length, and those of
    their delegator (``delegators``: role -> delegating role). Their signatures, keys and
    shape need no second check; their expiry does. ``targets`` (delegated by root, which
    snapshot does not list) is never proven.
    """
    snapshot = view.get("snapshot")
    if snapshot is None or not isinstance(snapshot.signed, Snapshot):
        return set()
    try:
        view.root().verify_delegate("snapshot", snapshot.signed_bytes, snapshot.signatures)
    except (UnsignedMetadataError, ValueError):
        return set()

    def listed(role: str) -> bool:
        meta = snapshot.signed.meta.get(f"{role}.json")
        data = view.raw(f"{role}.json")
        return (
            meta is not None
            and data is not None
            and meta.length == len(data)
            and meta.hashes.get("sha256") == view.sha256(f"{role}.json")
        )

    same = {role for role in {*delegators, *delegators.values()} if role != "root" and listed(role)}
    return {role for role, by in delegators.items() if role in same and by in same}


@dataclass(frozen=True)
class OnlineState:
    """The versions of one repository state: timestamp's, snapshot's, and each role's that
    snapshot lists (``targets``, delegated roles); ``where`` it was seen ("commit 1a2b3c",
    "the site published at URL")."""

    where: str
    timestamp: int
    snapshot: int
    roles: Mapping[str, int] = field(default_factory=dict)


def rollbacks(current: OnlineState, newest: OnlineState | None) -> list[str]:
    """One line per version in ``current`` lower than in ``newest`` (the newest state that
    online-sign signed in main's history): role, both versions, the commit. A role that
    ``current`` no longer has (its delegation was removed) is not a rollback."""
    if newest is None:
        return []
    pairs = [
        ("timestamp", current.timestamp, newest.timestamp),
        ("snapshot", current.snapshot, newest.snapshot),
    ]
    pairs += [
        (role, current.roles[role], version)
        for role, version in sorted(newest.roles.items())
        if role in current.roles
    ]
    return [
        f"{role}: v{now} is older than v{then}, online-signed in {newest.where} (rollback)"
        for role, now, then in pairs
        if now < then
    ]


class OnlineRepository(Repository):
    """Snapshot/timestamp of a checkout's metadata directory, signed with online keys.

    ``do_snapshot``/``do_timestamp`` of python-tuf's Repository drive it (see :func:`refresh`).
    """

    def __init__(
        self,
        checkout: Path,
        view: MetadataView,
        now: datetime,
        proven: frozenset[str] = frozenset(),
    ) -> None:
        self.dir = checkout / METADATA_DIR
        self.view = view
        self.now = now
        self.proven = proven  # roles the current snapshot lists as they are (proven_roles)
        self.pending: dict[str, Metadata[Any]] = {}

    # the Repository protocol ----------------------------------------------------------
    def open(self, role: str) -> Metadata[Any]:
        if role in self.pending:
            return self.pending[role]
        md = self.view.get(role)
        if md is not None:
            return copy.deepcopy(md)  # edits must not leak into the view's cache
        if role == "snapshot":
            new: Metadata[Any] = Metadata(Snapshot())
            new.signed.meta.clear()
        elif role == "timestamp":
            new = Metadata(Timestamp())
            new.signed.snapshot_meta.version = 0
        else:
            raise MetadataError(f"metadata/{role}.json is missing")
        new.signed.version = 0
        return new

    def close(self, role: str, md: Metadata[Any]) -> None:
        root = self.view.root()
        expiry, _ = periods(role, root, None)
        md.signed.version += 1
        md.signed.expires = (self.now + timedelta(days=expiry)).replace(microsecond=0)
        md.signatures.clear()
        for key in keys_of(root, role):
            uri = key.unrecognized_fields.get(ONLINE_URI)
            if not isinstance(uri, str):
                raise MetadataError(f"root: {role} key {key.keyid[:8]} has no {ONLINE_URI}")
            signer = load_signer(uri, key)
            try:
                md.sign(signer, append=True)
            except UnsignedMetadataError as e:
                raise SignerError(f"online key {uri} could not sign {role}: {e.__cause__}") from e
        try:
            root.verify_delegate(role, md.signed_bytes, md.signatures)
        except UnsignedMetadataError as e:
            raise SignerError(f"the online signature of {role} does not verify: {e}") from e
        self.pending[role] = md

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        infos = {}
        for role in self.view.role_map().targets_roles():
            data = self.view.raw(f"{role}.json")
            if data is None:
                raise MetadataError(f"metadata/{role}.json is missing")
            snapshot = self.view.get("snapshot") if role in self.proven else None
            if snapshot is not None:  # unchanged since the snapshot: its entry stays
                infos[f"{role}.json"] = snapshot.signed.meta[f"{role}.json"]
            else:
                infos[f"{role}.json"] = _meta(data, self.view.require(role).signed.version)
        return infos

    @property
    def snapshot_info(self) -> MetaFile:
        md = self.open("snapshot")
        data = serialize(md) if "snapshot" in self.pending else self.view.raw("snapshot.json")
        return _meta(data or b"", md.signed.version)

    def root(self) -> Root:
        return cast(Root, self.open("root").signed)

    def flush(self) -> list[str]:
        written = []
        for role, md in sorted(self.pending.items()):
            atomic_write(self.dir / f"{role}.json", serialize(md))
            written.append(f"{METADATA_DIR}/{role}.json")
        return written


def refresh(repo: OnlineRepository) -> list[str]:
    """Refresh snapshot and timestamp as needed; returns the roles re-signed (in memory)."""
    done = []
    force_snapshot = bool(online_reasons("snapshot", repo.view, repo.now))
    updated, _ = repo.do_snapshot(force=force_snapshot)
    if updated:
        done.append("snapshot")
    force_timestamp = bool(online_reasons("timestamp", repo.view, repo.now)) or updated
    ts_updated, _ = repo.do_timestamp(force=force_timestamp)
    if ts_updated:
        done.append("timestamp")
    return done
