"""The *site plan* of ``tufrepo publish``: which files a site must hold, read and verified
from the checkout as a client would (``plan_site``), and what ``index.html`` and the site's
record say of it. Artifact files are checked against their metadata only when they are
written (``verified_source``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api.metadata import Metadata

from tufrepo.client import verify_files
from tufrepo.errors import CorruptMetadataError, Error, InputError, MetadataError
from tufrepo.progress import ProgressCallback
from tufrepo.repository import dir_view
from tufrepo.roles import role_map
from tufrepo.site_index import (
    PageArtifact,
    SitePage,
    SiteSource,
    lists_artifacts,
    role_facts,
    roots_of,
    source_of,
)
from tufrepo.site_manifest import TIMESTAMP, RoleFacts
from tufrepo.targets import (
    TARGETS_DIR,
    check_clashes,
    check_target_path,
    files_under,
    is_artifact_path,
    local_path,
)
from tufrepo.validate import verify_metadata, walk_history

__all__ = [
    "Artifact",
    "SitePlan",
    "check_roots",
    "page_of",
    "plan_site",
    "published_commit",
    "role_facts_of",
    "verified_source",
]


@dataclass(frozen=True)
class Artifact:
    """A target of the repository; ``source`` (the file's path in the checkout, not yet
    checked) is None when it is hosted elsewhere."""

    path: str
    role: str
    length: int
    hashes: dict[str, str]
    source: str | None

    @property
    def site_paths(self) -> list[str]:
        directory, _, name = self.path.rpartition("/")
        prefix = f"targets/{directory}/" if directory else "targets/"
        return [f"{prefix}{digest}.{name}" for digest in self.hashes.values()]


@dataclass
class SitePlan:
    """Everything the new site holds, read and verified from the managed repository
    (artifact files are checked against their metadata only when they are uploaded)."""

    metadata: dict[str, bytes]
    roles: dict[str, Any]
    artifacts: list[Artifact]
    source: SiteSource | None = None  # the repository's name and commit, for index.html
    origin: dict[str, str] = field(default_factory=dict)
    """Site path of each metadata file -> its path in the checkout."""

    @property
    def files(self) -> set[str]:
        """Every site path of the plan."""
        out = set(self.metadata)
        for art in self.artifacts:
            if art.source is not None:
                out.update(art.site_paths)
        return out


def _load(path: Path, role: str) -> tuple[bytes, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise MetadataError(f"missing metadata file {path}") from e
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    try:
        md = Metadata.from_bytes(data)
    except Exception as e:  # python-tuf raises many types for bad input
        raise CorruptMetadataError(f"{path} is not valid TUF metadata: {e}") from e
    if md.signed.type != ("targets" if role not in _TOP_LEVEL else role):
        raise MetadataError(f"{path} holds {md.signed.type} metadata, expected {role}")
    return data, md


_TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")


def _read_roots(meta: Path, current: Any) -> dict[int, bytes]:
    history = meta / "root_history"
    roots: dict[int, bytes] = {}
    for f in history.glob("*.root.json") if history.is_dir() else []:
        version = f.name.split(".", 1)[0]
        if version.isdigit():  # copied byte for byte: entries older tools wrote stay as signed
            roots[int(version)] = f.read_bytes()
    return check_roots(roots, current, (meta / "root.json").read_bytes(), f"{history}/")


def check_roots(
    roots: dict[int, bytes], current: Any, current_bytes: bytes, label: str
) -> dict[int, bytes]:
    """``roots`` (version -> bytes of root_history, shown as ``label``), checked: no gap up
    to the current root ``current`` (whose file holds ``current_bytes``), a valid chain.

    Raises:
        MetadataError: a gap, a newer entry than root.json, a chain that does not verify.
    """
    top, where = current.signed.version, label.rstrip("/")
    first = min(roots, default=1)  # > 1 for an imported repository (see docs/maintainer.md)
    missing = [str(v) for v in range(first, top + 1) if v not in roots]
    if missing:
        raise MetadataError(f"{where} lacks root version(s) {', '.join(missing)}")
    if max(roots) > top:
        raise MetadataError(f"{where} holds root v{max(roots)}, newer than root.json v{top}")
    if roots[top] != current_bytes:
        raise MetadataError(f"root.json differs from {label}{top}.root.json")
    chain = walk_history(dict(roots.items()))
    if chain.problems:
        raise MetadataError("; ".join(chain.problems))
    return roots


def plan_site(repo: Path, now: datetime | None = None) -> SitePlan:
    """Read the checkout at ``repo`` and verify it as a client would.

    Raises:
        InputError: ``repo`` is not a checkout with metadata/.
        MetadataError: missing, inconsistent or invalid metadata, or artifacts that do not
            match it (CorruptMetadataError for unparsable files).
    """
    meta = repo / "metadata"
    if not meta.is_dir():
        raise InputError(f"{repo} has no metadata/ directory (not a tufrepo checkout?)")
    _, root = _load(meta / "root.json", "root")
    if not root.signed.consistent_snapshot:
        raise MetadataError("root.json does not enable consistent_snapshot: publish needs it")
    files = {f"metadata/{v}.root.json": d for v, d in _read_roots(meta, root).items()}
    origin = {p: f"metadata/root_history/{p.removeprefix('metadata/')}" for p in files}
    ts_data, ts = _load(meta / "timestamp.json", "timestamp")
    snap_data, snap = _load(meta / "snapshot.json", "snapshot")
    files[TIMESTAMP] = ts_data
    snap_path = f"metadata/{ts.signed.snapshot_meta.version}.snapshot.json"
    files[snap_path] = snap_data
    origin.update({TIMESTAMP: TIMESTAMP, snap_path: "metadata/snapshot.json"})
    roles: dict[str, Any] = {"root": root, "timestamp": ts, "snapshot": snap}
    retired = []
    for name, info in snap.signed.meta.items():
        role = name.removesuffix(".json")
        if not name.endswith(".json") or "/" in role or "\\" in role or role.startswith("."):
            raise MetadataError(f"snapshot lists an unusable role file name {name!r}")
        if not (meta / name).exists() and role != "targets":
            retired.append(role)  # a re-binned role's old bin: checked below
            continue
        data, md = _load(meta / name, role)
        files[f"metadata/{info.version}.{parse.quote(role, safe='')}.json"] = data
        origin[f"metadata/{info.version}.{parse.quote(role, safe='')}.json"] = f"metadata/{name}"
        roles[role] = md
    rmap = role_map(getattr(roles.get("targets"), "signed", None), roles.get)
    if missing := [r for r in retired if r in rmap]:
        raise MetadataError(f"missing metadata file {meta / missing[0]}.json")
    report = verify_files(files, now)
    if not report:
        raise MetadataError(_refusal(repo, now, report.problems))
    return SitePlan(files, roles, _artifacts(repo, roles), source_of(repo), origin)


def _refusal(repo: Path, now: datetime | None, client_problems: list[str]) -> str:
    """Why the client refused the checkout, in ``tufrepo verify``'s words when it names the
    problem (one problem, one message), else in the client's."""
    try:
        found = verify_metadata(dir_view(repo), now or datetime.now(UTC)).problems
    except Error:  # metadata verify cannot read: the client's words are all there is
        found = []
    if not found:
        return "the repository does not verify: " + "; ".join(client_problems)
    more = f" (and {len(found) - 1} more: run tufrepo verify)" if len(found) > 1 else ""
    return f"the repository does not verify: {found[0]}{more}"


def _artifacts(checkout: Path, roles: dict[str, Any]) -> list[Artifact]:
    """Every target of every role, with its file under targets/ (None: hosted elsewhere).
    Files are not read here: ``_verified_source`` checks each one that is uploaded (string
    operations only: this runs over every artifact).

    Raises:
        InputError: a target path that breaks the artifact path rule (``targets.path_problem``,
            file/directory clashes), a symlink under targets/.
        MetadataError: a file under targets/ that no role lists.
    """
    base = f"{checkout}{os.sep}{TARGETS_DIR}"
    files = set(files_under(base))
    listed: dict[str, Artifact] = {}
    entries = [
        (role, check_target_path(path), tf)
        for role, md in roles.items()
        if md.signed.type == "targets"
        for path, tf in md.signed.targets.items()
    ]
    check_clashes(path for _, path, _ in entries)
    for role, path, tf in entries:
        found = f"{base}{os.sep}{path}" if path in files else None
        listed[path] = Artifact(path, role, tf.length, dict(tf.hashes), found)
    for rel in sorted(files):
        if is_artifact_path(rel) and rel not in listed:
            raise MetadataError(f"targets/{rel} is not listed in any role's metadata")
    return sorted(listed.values(), key=lambda a: a.path)


def verified_source(checkout: Path, art: Artifact, step: ProgressCallback | None) -> Path:
    """The artifact's file, after checking it (no symlink, regular file) and its hashes;
    ``step`` (if any) counts it.

    Raises:
        InputError: a symlink, not a regular file, unreadable.
        MetadataError: the file differs from its metadata.
    """
    from tuf.api.metadata import TargetFile

    from tufrepo.targets import same_artifact, target_file

    expected = TargetFile(art.length, art.hashes, art.path)
    if not same_artifact(expected, target_file(checkout, art.path)):
        raise MetadataError(f"targets/{art.path} does not match role {art.role}'s metadata")
    if step is not None:
        step(1)
    return local_path(checkout, art.path)  # target_file checked the path, no symlink


def role_facts_of(plan: SitePlan) -> dict[str, RoleFacts]:
    counts: dict[str, list[int]] = {}
    for art in plan.artifacts:
        found = counts.setdefault(art.role, [0, 0])
        found[0] += 1
        found[1] += len(art.hashes) if art.source is not None else 0
    return {name: role_facts(name, plan.roles, *counts.get(name, [0, 0])) for name in plan.roles}


def page_of(plan: SitePlan, facts: dict[str, RoleFacts]) -> SitePage:
    rmap = role_map(plan.roles["targets"].signed, plan.roles.get)
    bins: dict[str, list[str]] = {}
    for name in sorted(facts):
        if name not in _TOP_LEVEL and (owner := rmap.bin_owner(name)) is not None:
            bins.setdefault(owner, []).append(name)
    artifacts = None
    if lists_artifacts(len(plan.artifacts)):
        artifacts = [
            PageArtifact(
                a.path, a.role, a.length,
                a.hashes.get("sha256") or next(iter(a.hashes.values()), ""),
                a.site_paths[0] if a.source is not None else None,
            )
            for a in plan.artifacts
        ]  # fmt: skip
    version = plan.roles["timestamp"].signed.version
    return SitePage(facts, bins, roots_of(plan.metadata), version, artifacts)


def published_commit(checkout: Path, plan: SitePlan) -> str | None:
    """HEAD of ``checkout`` when every metadata file of ``plan`` is HEAD's (what the record
    may name); None otherwise (not a git checkout, uncommitted metadata)."""
    from tufrepo.git import GitRepo
    from tufrepo.site_delta import git_blob_id

    try:
        repo = GitRepo(checkout)
        head = repo.head()
        ids = repo.blob_ids(head, "metadata") if head else {}
    except Error:
        return None
    for path, data in plan.metadata.items():
        blob = ids.get(plan.origin.get(path, ""))
        if blob is None or git_blob_id(data, blob) != blob:
            return None
    return head
