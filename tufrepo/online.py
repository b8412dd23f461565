"""Online roles: snapshot and timestamp, refreshed by CI on main.

:func:`online_reasons` is pure (metadata + now -> why a role needs refreshing);
:func:`rollbacks` is pure (the versions on main against the newest online-signed state in
its history -> what went backwards);
:class:`OnlineRepository` signs with the online keys named in root
(``x-tuf-on-ci-online-uri``), verifies every new version against root before keeping it,
and writes all files atomically at the end.
"""

from __future__ import annotations

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
from tufrepo.repository import METADATA_DIR, MetadataView, copy_metadata, serialize, signed_bytes
from tufrepo.roles import ONLINE_URI, in_signing_period, keys_of, periods
from tufrepo.signers import load_signer

log = logging.getLogger(__name__)


def _meta(data: bytes, version: int) -> MetaFile:
    """A snapshot entry: version and length (clients cap downloads of metadata without a
    length). No hashes: clients verify each role's signatures, and at a thousand hash bins
    a sha256 (~105 bytes an entry) was more than half of the snapshot a client downloads."""
    return MetaFile(version, len(data))


def _timestamp_meta(data: bytes, version: int) -> MetaFile:
    """Timestamp's one entry: snapshot's version, length and sha256."""
    return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})


def _entry(meta: MetaFile) -> MetaFile:
    """``meta`` as online-sign writes it: no hashes (kept when there is no length to cap
    the download with, as in snapshots made by tuf-on-ci, which have neither)."""
    return MetaFile(meta.version, meta.length) if meta.length is not None else meta


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
        root.verify_delegate(role, signed_bytes(md), md.signatures)
    except UnsignedMetadataError:
        reasons.append("does not verify with the current root (online key changed)")
    return reasons


def proven_roles(
    delegators: Mapping[str, str], changed: set[str], records: Mapping[str, MetaFile]
) -> set[str]:
    """Targets-type roles that an earlier online-sign verified, byte for byte: neither their
    file nor the file of any role that delegates to them (up to ``targets``) is in
    ``changed`` (roles whose file differs from the commits that online-sign's last
    verification stands on, ``history.online_anchor``), and the snapshot it signed then
    (``records``) lists them. Verifying them again would read the same bytes against the
    same delegators: only their expiry needs a second look. ``delegators``: role ->
    delegating role; ``targets`` (delegated by root) is never proven.
    """

    def unchanged(role: str) -> bool:
        seen = set()
        while role in delegators and role not in seen:
            if role in changed:
                return False
            seen.add(role)
            role = delegators[role]
        return role == "root"

    return {
        role
        for role in delegators
        if role != "targets" and f"{role}.json" in records and unchanged(role)
    }


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


class _Encoded(Metadata[Any]):
    """Metadata whose ``signed_bytes`` is :func:`tufrepo.repository.signed_bytes`: the same
    canonical bytes as python-tuf's (``tufrepo.jsonfast`` proves it, or takes python-tuf's
    encoder), at C speed. python-tuf's ``do_snapshot``/``do_timestamp`` verify the current
    snapshot and timestamp over ``signed_bytes``: a snapshot of a thousand bins took
    securesystemslib's pure-Python encoder ~30 ms."""

    @property
    def signed_bytes(self) -> bytes:
        return signed_bytes(self)


class OnlineRepository(Repository):
    """Snapshot/timestamp of a checkout's metadata directory, signed with online keys.

    ``do_snapshot``/``do_timestamp`` of python-tuf's Repository drive it (see :func:`refresh`).
    """

    def __init__(
        self,
        checkout: Path,
        view: MetadataView,
        now: datetime,
        proven: Mapping[str, MetaFile] | None = None,
    ) -> None:
        self.dir = checkout / METADATA_DIR
        self.view = view
        self.now = now
        # roles verified before (proven_roles) and their entries in the snapshot signed then
        self.proven = proven or {}
        self.pending: dict[str, Metadata[Any]] = {}

    # the Repository protocol ----------------------------------------------------------
    def open(self, role: str) -> Metadata[Any]:
        if role in self.pending:
            return self.pending[role]
        md = self.view.get(role)
        if md is not None:
            out = copy_metadata(md)  # edits must not leak into the view's cache
            out.__class__ = _Encoded
            return out
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
        if isinstance(md.signed, Snapshot):  # not the entries of an unverified snapshot
            infos = self.targets_infos
            md.signed.meta = {n: _entry(infos.get(n, m)) for n, m in md.signed.meta.items()}
        md.signatures.clear()
        payload = signed_bytes(md)  # what md.sign() would sign, encoded once at C speed
        for key in keys_of(root, role):
            uri = key.unrecognized_fields.get(ONLINE_URI)
            if not isinstance(uri, str):
                raise MetadataError(f"root: {role} key {key.keyid[:8]} has no {ONLINE_URI}")
            signer = load_signer(uri, key)
            try:
                signature = signer.sign(payload)
            except Exception as e:  # as Metadata.sign: any failure of the signer
                raise SignerError(f"online key {uri} could not sign {role}: {e}") from e
            md.signatures[signature.keyid] = signature
        try:
            root.verify_delegate(role, payload, md.signatures)
        except UnsignedMetadataError as e:
            raise SignerError(f"the online signature of {role} does not verify: {e}") from e
        self.pending[role] = md

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        infos = {}
        for role in self.view.role_map().targets_roles():
            known = self.proven.get(role)
            if known is not None and known.length is not None:  # the same file: not read
                infos[f"{role}.json"] = MetaFile(known.version, known.length)
                continue
            data = self.view.raw(f"{role}.json")
            if data is None:
                raise MetadataError(f"metadata/{role}.json is missing")
            version = known.version if known is not None else self.view.require(role).signed.version
            infos[f"{role}.json"] = _meta(data, version)
        return infos

    @property
    def snapshot_info(self) -> MetaFile:
        md = self.open("snapshot")
        data = serialize(md) if "snapshot" in self.pending else self.view.raw("snapshot.json")
        return _timestamp_meta(data or b"", md.signed.version)

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
