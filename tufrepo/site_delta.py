"""What a publish into an existing site must add: the change since the commit it records.

A site's record (``tufrepo-site.json``, ``tufrepo.site_manifest``) names the git commit whose
metadata the site serves. ``plan_delta`` asks git what differs between that commit and HEAD
under ``metadata/`` and ``targets/`` (trees compared, never the work tree or the site
listed), verifies the new state the way a client updates from the one it trusts — root chain,
timestamp, snapshot (rollback checks against the recorded commit's), then only the roles
whose version changed, each through ngclient's delegation walk — and returns the files to
add: new versioned metadata, new artifacts, ``timestamp.json``. Anything it cannot vouch
for raises :class:`FullPublish`, and ``tufrepo.publish`` reads and verifies everything
instead. The record only saves work: why that is sound is in docs/performance.md.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api.exceptions import DownloadError, LengthOrHashMismatchError, RepositoryError
from tuf.api.metadata import Metadata, MetaFile, TargetFile
from tuf.ngclient import Updater

from tufrepo.client import MemoryFetcher, probe_paths
from tufrepo.errors import Error
from tufrepo.git import GitRepo
from tufrepo.history import Verified, online_signed, online_verified
from tufrepo.jsonfast import canonical
from tufrepo.repository import MetadataView, git_view, python_tuf_problem
from tufrepo.roles import RoleMap, role_map
from tufrepo.site_index import PageArtifact, lists_artifacts, role_facts
from tufrepo.site_manifest import TIMESTAMP, Manifest, RoleFacts
from tufrepo.site_plan import Artifact, check_roots
from tufrepo.site_reader import (
    HISTORY,
    SITE,
    FullPublish,
    Reader,
    Served,
    differing,
    git_blob_id,
    parse_metadata,
    refresh_top,
    target_file,
)
from tufrepo.targets import (
    DESCRIPTOR_SUFFIX,
    DESCRIPTORS_DIR,
    TARGETS_DIR,
    check_target_path,
    is_artifact_path,
)

__all__ = ["FullPublish", "SiteDelta", "git_blob_id", "plan_delta", "site_paths"]

_META = "metadata"
PROVE_ABOVE = 1_000_000
"""Bytes of changed roles from which online-sign's verification is looked for instead of a
client's (``_proven``): below, a client verifies them in less time than git takes to show
what online-sign verified (hash bins, ~1,000 entries each, stay well below)."""


def site_paths(path: str, hashes: Mapping[str, str]) -> list[str]:
    """``targets/<dir>/<hash>.<name>`` of an artifact, one per hash (consistent snapshots)."""
    directory, _, name = path.rpartition("/")
    prefix = f"targets/{directory}/" if directory else "targets/"
    return [f"{prefix}{digest}.{name}" for digest in hashes.values()]


def role_site_path(role: str, version: int) -> str:
    return f"metadata/{version}.{parse.quote(role, safe='')}.json"


@dataclass
class SiteDelta:
    """What a publish adds to the site at the recorded commit to serve ``commit``."""

    commit: str
    metadata: dict[str, bytes]
    """New metadata files of the site (versioned; ``timestamp.json`` when it changed)."""
    uploads: list[Artifact]
    """New artifacts to copy (each checked against its metadata when it is)."""
    superseded: set[str]
    """Site files the new timestamp no longer leads to."""
    hosted_elsewhere: list[str]
    roles: dict[str, RoleFacts]
    """Every role's facts after this publish."""
    bins: dict[str, list[str]]
    roots: dict[int, bytes]
    timestamp_version: int
    artifacts: list[PageArtifact] | None = None
    root: Any = None
    """The new root's signed part (for ``check_max_age``)."""
    reads: list[str] = field(default_factory=list)
    """Metadata files of the checkout read (what the tests count)."""


def plan_delta(
    checkout: Path, record: Manifest, live_timestamp: bytes | None, now: datetime
) -> SiteDelta:
    """The change from the site's recorded commit to the checkout's HEAD, verified.

    Raises:
        FullPublish: no usable record (none, commit unknown or not an ancestor of HEAD, the
            live timestamp is not that commit's), uncommitted metadata, or anything this
            check cannot vouch for (including a failed verification: the full publish
            then says what is wrong, in ``tufrepo verify``'s words).
    """
    if record.commit is None or not record.roles:
        raise FullPublish("the site records no published commit")
    try:
        repo = GitRepo(checkout)
    except Error as e:
        raise FullPublish("not a git checkout") from e
    head, base = repo.head(), record.commit
    if head is None or repo.resolve(base) is None:
        raise FullPublish(f"the published commit {base[:12]} is unknown to this clone")
    if not repo.is_ancestor(base, head):
        raise FullPublish(f"the published commit {base[:12]} is not an ancestor of HEAD")
    reader = Reader(checkout, repo, repo.blob_ids(head, _META), repo.blob_ids(base, _META))
    old_ts = reader.old(TIMESTAMP)
    if old_ts is None or live_timestamp != old_ts:
        raise FullPublish("the site's timestamp.json is not the published commit's")
    delta = _Planner(checkout, repo, reader, record, now).plan(head, base, old_ts)
    delta.reads = reader.reads
    return delta


class _Planner:
    def __init__(
        self, checkout: Path, repo: GitRepo, reader: Reader, record: Manifest, now: datetime
    ) -> None:
        self.checkout, self.repo, self.reader, self.record, self.now = (
            checkout, repo, reader, record, now,
        )  # fmt: skip
        self.proof, self.proven = Verified(), set[str]()
        self.view: MetadataView | None = None

    def plan(self, head: str, base: str, old_ts_data: bytes) -> SiteDelta:
        rd = self.reader
        root = rd.parsed("new", "metadata/root.json")
        if not root.signed.consistent_snapshot:
            raise FullPublish("root does not enable consistent snapshots")
        roots = self._roots(root)
        ts_data, snap_data = rd.new(TIMESTAMP), rd.new("metadata/snapshot.json")
        ts, snap = rd.parsed("new", TIMESTAMP), rd.parsed("new", "metadata/snapshot.json")
        old_ts = parse_metadata(old_ts_data, TIMESTAMP)
        old_snap = rd.parsed("old", "metadata/snapshot.json")
        if old_snap is None:
            raise FullPublish("the published commit has no snapshot")
        files: dict[str, bytes] = {}
        if ts_data != old_ts_data:
            if ts.signed.version <= old_ts.signed.version:
                raise FullPublish("timestamp changed without a higher version")
            files[TIMESTAMP] = ts_data
        snap_path = f"metadata/{ts.signed.snapshot_meta.version}.snapshot.json"
        if snap_data != rd.old("metadata/snapshot.json"):
            if snap.signed.version <= old_snap.signed.version:
                raise FullPublish("snapshot changed without a higher version")
            files[snap_path] = snap_data
        changed, removed = self._changed_roles(snap.signed.meta, old_snap.signed.meta)
        for role in changed:
            files[role_site_path(role, snap.signed.meta[f"{role}.json"].version)] = rd.new(
                f"metadata/{role}.json"
            )
        old_root_versions = {p for p in rd.old_ids if p.startswith(HISTORY)}
        for version, data in roots.items():
            if f"{HISTORY}{version}.root.json" not in old_root_versions:
                files[f"metadata/{version}.root.json"] = data
        targets = rd.shell("new", "metadata/targets.json")
        if targets is None:
            raise FullPublish("metadata/targets.json is missing")
        rmap = role_map(targets.signed, self._new_role)
        verified = self._verify(roots, files, changed, rmap, snap)
        delta = self._artifacts(head, base, files, changed, removed, verified, rmap)
        delta.roots, delta.timestamp_version = roots, ts.signed.version
        delta.root = root.signed
        return delta

    # -- metadata --------------------------------------------------------------------------
    def _roots(self, root: Any) -> dict[int, bytes]:
        history = {}
        for path in self.reader.new_ids:
            version = path.removeprefix(HISTORY).removesuffix(".root.json")
            if path.startswith(HISTORY) and path.endswith(".root.json") and version.isdigit():
                history[int(version)] = self.reader.new(path)
        try:
            return check_roots(history, root, self.reader.new("metadata/root.json"), HISTORY)
        except Error as e:
            raise FullPublish(str(e)) from e

    def _changed_roles(
        self, meta: Mapping[str, Any], old: Mapping[str, Any]
    ) -> tuple[list[str], list[str]]:
        """(roles whose version changed or that are new, roles no longer in snapshot)."""
        ids = (self.reader.new_ids, self.reader.old_ids)
        changed = []
        for name, info in meta.items():
            role = name.removesuffix(".json")
            if not name.endswith(".json") or "/" in role or "\\" in role or role.startswith("."):
                raise FullPublish(f"snapshot lists an unusable role file name {name!r}")
            before = old.get(name)
            path = f"metadata/{name}"
            if before is not None and before.version == info.version:
                if ids[0].get(path) != ids[1].get(path):
                    raise FullPublish(f"{path} changed without a new version")
                continue
            if before is not None and before.version > info.version:
                raise FullPublish(f"{path} goes back to v{info.version}")
            if path not in ids[0]:
                raise FullPublish(f"{path} is missing")  # a retired bin: the full check
            changed.append(role)
        return changed, [n.removesuffix(".json") for n in old if n not in meta]

    def _new_role(self, name: str) -> Any:
        """Role ``name`` of HEAD without its entries (None when it has no file)."""
        path = f"metadata/{name}.json"
        return self.reader.shell("new", path) if path in self.reader.new_ids else None

    def _to_verify(self, changed: list[str]) -> set[str]:
        """The changed targets-type roles, and every role delegated by a role whose
        delegations changed (its keys, threshold or bins may be new)."""
        wanted = {r for r in changed if r not in ("root", "timestamp", "snapshot")}
        for role in list(wanted):
            new = self.reader.shell("new", f"metadata/{role}.json")
            if new.signed.delegations is None:
                continue  # it delegates nothing (its old file need not be read)
            old = self.reader.shell("old", f"metadata/{role}.json")
            if old is not None and old.signed.delegations == new.signed.delegations:
                continue
            delegations = new.signed.delegations
            if delegations is not None and delegations.roles is not None:
                wanted.update(delegations.roles)
            elif delegations is not None and delegations.succinct_roles is not None:
                wanted.update(delegations.succinct_roles.get_roles())
        return wanted

    def _verify(
        self,
        roots: dict[int, bytes],
        files: dict[str, bytes],
        changed: list[str],
        rmap: RoleMap,
        snap: Any,
    ) -> set[str]:
        """Update a client from the published commit's timestamp and snapshot to the new
        ones, then load the roles to verify through its delegation walk, except those
        online-sign verified before (``_proven``); the roles verified either way."""
        first = next((d for _, d in sorted(roots.items()) if python_tuf_problem(d) is None), None)
        if first is None:
            raise FullPublish("no root that python-tuf reads")
        wanted = self._to_verify(changed)
        paths = [p for r in wanted if (p := f"metadata/{r}.json") in self.reader.new_ids]
        big = sum(len(self.reader.new(p)) for p in paths) >= PROVE_ABOVE
        proven = self._proven(wanted, rmap, snap.signed.meta) if big else set()
        root_changed = any(p.endswith(".root.json") for p in files)
        served = Served(self.reader, files, snap)
        out = set(proven)
        wanted -= proven
        with tempfile.TemporaryDirectory(prefix="tufrepo-publish-") as tmp:
            cache = Path(tmp)
            (cache / "timestamp.json").write_bytes(self.reader.old(TIMESTAMP) or b"")
            (cache / "snapshot.json").write_bytes(self.reader.old("metadata/snapshot.json") or b"")
            try:
                updater = Updater(
                    str(cache), f"{SITE}/metadata/", target_base_url=f"{SITE}/targets/",
                    fetcher=MemoryFetcher(served), bootstrap=first,
                )  # fmt: skip
                targets_too = "targets" in wanted or (root_changed and "targets" not in proven)
                if wanted or targets_too:
                    updater.refresh()  # root, timestamp, snapshot, targets
                else:
                    refresh_top(updater)
                if not wanted - {"targets"} and targets_too:
                    updater.get_targetinfo("tufrepo-probe")  # loads targets (and a role)
                for role in sorted(wanted - {"targets"}):
                    self._walk_to(updater, cache, role, rmap, snap.signed.meta)
                    out.add(role)
            except (RepositoryError, DownloadError, ValueError, KeyError, TypeError) as e:
                raise FullPublish(f"a client refuses the update: {e}") from e
            if (cache / "targets.json").exists():  # loaded, so verified
                out.add("targets")
        return out

    def _proven(self, wanted: set[str], rmap: RoleMap, meta: Mapping[str, Any]) -> set[str]:
        """Of ``wanted``, the roles online-sign verified before it last signed, byte for
        byte, with their delegators and root (``history.online_verified``; docs/publishing.md
        says why that is sound), that the new snapshot lists as it listed them then (version,
        length, hashes). A hash bin must still list only paths of its own bin."""
        if not wanted:
            return set()
        delegators: dict[str, str] = {}
        try:
            for start in wanted:
                role = start
                while role not in delegators and role != "root":
                    delegators[role] = rmap.delegator(role)
                    role = delegators[role]
            head = self.repo.head() or ""
            view = git_view(
                lambda p: self.repo.read_blob(head, p),
                lambda d: self.repo.list_dir(head, d), f"HEAD ({head[:8]})",
            )  # fmt: skip
            self.proof = online_verified(self.repo, view, delegators)
        except Error:
            return set()  # verified as a client would
        self.view = view
        records = self.proof.roles
        self.proven = {
            role for role in wanted
            if role in records and self._listed_as_then(role, records[role], meta, rmap)
        }  # fmt: skip
        return self.proven

    def _listed_as_then(
        self, role: str, then: MetaFile, meta: Mapping[str, Any], rmap: RoleMap
    ) -> bool:
        path = f"metadata/{role}.json"
        info = meta.get(f"{role}.json")
        if info is None or info.version != then.version:
            return False
        data = self.reader.new(path)
        try:
            info.verify_length_and_hashes(data)
        except LengthOrHashMismatchError:
            return False
        if self.reader.shell("new", path).signed.version != info.version:
            return False
        up = rmap.delegator(role)
        delegator = None if up == "root" else self._new_role(up)
        delegations = delegator.signed.delegations if delegator is not None else None
        succinct = delegations.succinct_roles if delegations is not None else None
        return succinct is None or all(
            succinct.get_role_for_target(p) == role for p in self.reader.entries("new", path)
        )

    def _walk_to(
        self, updater: Updater, cache: Path, role: str, rmap: RoleMap, meta: Mapping[str, Any]
    ) -> Any:
        chain = [role]
        while (up := rmap.delegator(chain[0])) != "targets":
            chain.insert(0, up)
        parent, prefix = self.reader.shell("new", "metadata/targets.json"), ""
        md = parent
        for child in chain:
            delegations = parent.signed.delegations
            probes = probe_paths(delegations, {child}, prefix) if delegations else {}
            if child not in probes:
                raise FullPublish(f"no target path leads a client to {child}")
            updater.get_targetinfo(probes[child])
            path = cache / f"{parse.quote(child, '')}.json"
            md = Metadata.from_file(str(path)) if path.exists() else None
            if md is None or md.signed.version != meta[f"{child}.json"].version:
                raise FullPublish(f"role {child}: not reached by a client's delegation walk")
            succinct = delegations.succinct_roles if delegations else None
            if succinct is not None and any(
                succinct.get_role_for_target(p) != child for p in md.signed.targets
            ):
                raise FullPublish(f"role {child} lists a path of another bin")
            head = probes[child].rpartition("/")[0]
            parent, prefix = md, f"{head}/" if head else ""
        return md

    # -- artifacts -------------------------------------------------------------------------
    def _artifacts(  # noqa: PLR0917 - one step of plan(), its state passed along
        self,
        head: str,
        base: str,
        files: dict[str, bytes],
        changed: list[str],
        removed: list[str],
        verified: set[str],
        rmap: RoleMap,
    ) -> SiteDelta:
        rd = self.reader
        new_entries: dict[str, Any] = {}  # path -> entry (JSON), of the changed roles
        owner: dict[str, str] = {}
        superseded: set[str] = set()
        old_meta = rd.parsed("old", "metadata/snapshot.json").signed.meta
        listing_roles = [r for r in changed if r not in ("root", "timestamp", "snapshot")]
        for role in listing_roles:
            entries = rd.entries("new", f"metadata/{role}.json")
            new_entries.update(entries)
            owner.update(dict.fromkeys(entries, role))
        for role in [*listing_roles, *removed]:
            if f"{role}.json" in old_meta:
                superseded.add(role_site_path(role, old_meta[f"{role}.json"].version))
        if any(p.endswith(".snapshot.json") for p in files):
            old_version = rd.parsed("old", TIMESTAMP).signed.snapshot_meta.version
            superseded.add(f"metadata/{old_version}.snapshot.json")
        added, gone = self._entry_changes(head, base, listing_roles, removed, new_entries)
        for path in added:
            try:
                check_target_path(path)
            except Error as e:
                raise FullPublish(str(e)) from e
        self._check_targets_tree(head, base, added, new_entries, gone)
        self.repo.materialize([f"targets/{p}" for p in added])  # sparse: fetch just these
        hosted = set(self.record.hosted_elsewhere) - gone.keys() - added.keys()
        uploads = []
        for path, tf in sorted(added.items()):
            local = self.checkout / "targets" / path
            if os.path.lexists(local):
                uploads.append(Artifact(path, owner[path], tf.length, dict(tf.hashes), str(local)))
            else:
                hosted.add(path)
        current = {s for u in uploads for s in u.site_paths}
        for path, tf in gone.items():
            if path not in self.record.hosted_elsewhere:
                superseded.update(set(site_paths(path, tf.hashes)) - current)
        facts = self._facts(changed, removed, verified, rmap, hosted)
        return SiteDelta(
            commit=head, metadata=files, uploads=uploads, superseded=superseded - set(files),
            hosted_elsewhere=sorted(hosted), roles=facts, bins=self._bins(facts, rmap),
            roots={}, timestamp_version=0,
            artifacts=self._page_artifacts(facts, hosted),
        )  # fmt: skip

    def _entry_changes(
        self, head: str, base: str, roles: list[str], removed: list[str], new: dict[str, Any]
    ) -> tuple[dict[str, TargetFile], dict[str, TargetFile]]:
        """(entries of ``new`` that the recorded commit's ``roles`` and ``removed`` lacked
        or listed otherwise, entries of theirs that ``new`` lacks or lists otherwise)."""
        additions = self._additions(head, base, roles, removed, new)
        if additions is not None:  # the old roles need not be read
            return {p: target_file(p, new[p]) for p in additions}, {}
        old: dict[str, Any] = {}
        for role in [*roles, *removed]:
            old.update(self.reader.entries("old", f"metadata/{role}.json"))
        added = {p: target_file(p, new[p]) for p in differing(new, old)}
        return added, {p: target_file(p, old[p]) for p in differing(old, new)}

    def _additions(
        self, head: str, base: str, roles: list[str], removed: list[str], listed: Mapping[str, Any]
    ) -> list[str] | None:
        """The artifacts git says were added (under targets/ or descriptors/) since the
        recorded commit, when they are all the entries that differ from its roles' — so the
        old roles need not be read: every changed role is one online-sign verified (its
        entries equal the files, and no file changed since its commits), git names only
        added files, each a new entry, and the recorded commit is one online-sign made (its
        entries equalled its files too). None when this cannot be shown."""
        commits = self.proof.commits
        if removed or not roles or not set(roles) <= self.proven or not commits:
            return None
        trees = (TARGETS_DIR, DESCRIPTORS_DIR)
        if any(self.repo.tree_changes(c, head, *trees) for c in commits):
            return None
        paths = []
        for change in self.repo.tree_changes(base, head, *trees):
            top, _, path = change.path.partition("/")
            if top == DESCRIPTORS_DIR:
                if not path.endswith(DESCRIPTOR_SUFFIX):
                    return None
                path = path.removesuffix(DESCRIPTOR_SUFFIX)
            if not is_artifact_path(path):
                continue
            if change.status != "A" or path not in listed:
                return None
            paths.append(path)
        if self.view is None or not online_signed(self.repo, self.view, base):
            return None
        return list(dict.fromkeys(paths))

    def _check_targets_tree(
        self,
        head: str,
        base: str,
        added: Mapping[str, Any],
        listed: Mapping[str, Any],
        gone: Mapping[str, Any],
    ) -> None:
        """Every file git says changed under targets/ is a new entry of the new metadata
        (or a removed one that left): anything else is for the full check."""
        for change in self.repo.tree_changes(base, head, "targets"):
            path = change.path.removeprefix("targets/")
            if not is_artifact_path(path):
                continue
            if change.status in ("A", "M") and path in added:
                continue
            if change.status == "D" and path in gone and path not in listed:
                continue
            raise FullPublish(f"targets/{path} changed without a matching metadata change")

    def _facts(
        self,
        changed: list[str],
        removed: list[str],
        verified: set[str],
        rmap: RoleMap,
        hosted: set[str],
    ) -> dict[str, RoleFacts]:
        rd = self.reader
        facts = {k: v for k, v in self.record.roles.items() if k not in removed}
        roles: dict[str, Any] = {
            name: rd.parsed("new", f"metadata/{name}.json")
            for name in ("root", "timestamp", "snapshot")
        }
        roles["targets"] = self._new_role("targets")
        refresh = {"root", "timestamp", "snapshot", "targets", *changed}
        for name in sorted(refresh):
            md = roles.get(name) or self._new_role(name)
            if md is None:
                raise FullPublish(f"no metadata for role {name}")
            view = {**roles, name: md}
            if name not in roles and (up := rmap.delegator(name)) not in view:
                view[up] = self._new_role(up)
            path = f"metadata/{name}.json"
            listed = rd.entries("new", path) if md.signed.type == "targets" else {}
            count = sum(map(len, map(itemgetter("hashes"), listed.values())))
            count -= sum(len(listed[p]["hashes"]) for p in hosted if p in listed)
            trusted = name in verified or name in ("timestamp", "snapshot")  # by the client
            payload = None
            if md.signed.type == "targets":  # md has no entries: sign over the file's
                payload = lambda p=path: canonical(rd.doc("new", p)["signed"])  # noqa: E731
            facts[name] = role_facts(
                name, view, len(listed), count, verified=trusted, payload=payload
            )
        snap_roles = {n.removesuffix(".json") for n in roles["snapshot"].signed.meta
                      if f"metadata/{n}" in self.reader.new_ids}  # fmt: skip
        missing = snap_roles - set(facts)
        if missing:
            raise FullPublish(f"the record lacks role {sorted(missing)[0]}")
        expired = [n for n, f in facts.items() if f.expires <= self.now]
        if expired:
            raise FullPublish(f"role {expired[0]} has expired")
        return facts

    def _bins(self, facts: dict[str, RoleFacts], rmap: RoleMap) -> dict[str, list[str]]:
        bins: dict[str, list[str]] = {}
        found: dict[str, tuple[str, Any]] = {}  # by name prefix: a role's bins share one
        for name in sorted(facts):
            if name in ("root", "timestamp", "snapshot", "targets"):
                continue
            prefix = name.rpartition("-")[0]
            known = found.get(prefix)
            if known is not None and known[1].is_delegated_role(name):
                owner: str | None = known[0]
            elif (owner := rmap.bin_owner(name)) is not None:
                md = self._new_role(owner)
                found[prefix] = (owner, md.signed.delegations.succinct_roles)
            if owner is not None:
                bins.setdefault(owner, []).append(name)
        return bins

    def _page_artifacts(
        self, facts: dict[str, RoleFacts], hosted: set[str]
    ) -> list[PageArtifact] | None:
        """Every artifact, for a small repository's page (reads every role: it is small)."""
        if not lists_artifacts(sum(f.targets for f in facts.values())):
            return None
        out = []
        for role in sorted(facts):
            if role in ("root", "timestamp", "snapshot"):
                continue
            listed = self.reader.entries("new", f"metadata/{role}.json")
            for path, entry in listed.items() if self._new_role(role) else ():
                tf = target_file(path, entry)
                sha = tf.hashes.get("sha256") or next(iter(tf.hashes.values()), "")
                href = None if path in hosted else site_paths(path, tf.hashes)[0]
                out.append(PageArtifact(path, role, tf.length, sha, href))
        return sorted(out, key=lambda a: a.path)
