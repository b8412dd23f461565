"""``tufrepo publish``: the static TUF site of a managed repository (DESIGN.md §3).

Site layout (consistent snapshots)::

    metadata/<N>.root.json          every root version (never pruned)
    metadata/<V>.snapshot.json      snapshot, versioned
    metadata/<V>.<role>.json        targets and delegated roles (role name URL-escaped)
    metadata/timestamp.json         the only unversioned file
    targets/<dir>/<hash>.<name>     artifacts, one copy per hash listed in metadata
    index.html                      for people: roles, signers, thresholds, expiry, artifacts
    tufrepo-site.json               what each publish referenced (drives pruning)

Guarantees for readers of OUTDIR:

* the repository is verified with python-tuf's ngclient (from ``1.root.json`` through every
  root version, every delegated role) before anything is written; an invalid repository, a
  site that would roll back, or a versioned file whose content would change is refused;
* every file is written atomically (temporary file in the same directory, then rename); a new
  OUTDIR is built in a sibling temporary directory and renamed into place;
* in an existing site, files are written in dependency order — artifacts, versioned
  metadata, roots, then ``timestamp.json`` — so whatever timestamp a reader sees, every file
  it leads to is already there; if writing fails before ``timestamp.json``, the new files are
  removed again and the site is unchanged;
* versioned files of earlier publishes stay until ``keep`` has passed since they stopped
  being current, so a client in the middle of an update never meets a 404.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api.metadata import Metadata

from tufrepo.client import SITE_MANIFEST, verify_files
from tufrepo.errors import CorruptMetadataError, InputError, MetadataError
from tufrepo.files import atomic_write
from tufrepo.roles import role_map
from tufrepo.site_index import SiteSource, render_index, source_of
from tufrepo.targets import (
    TARGETS_DIR,
    check_clashes,
    check_target_path,
    is_artifact_path,
    local_path,
    same_artifact,
    target_file,
)
from tufrepo.validate import walk_history

__all__ = ["MANIFEST", "PublishResult", "SitePlan", "plan_site", "publish"]

MANIFEST = SITE_MANIFEST
_TIMESTAMP = "metadata/timestamp.json"
_FORMAT = 1


@dataclass(frozen=True)
class Artifact:
    """A target of the repository; ``source`` is None when it is hosted elsewhere."""

    path: str
    role: str
    length: int
    hashes: dict[str, str]
    source: Path | None

    @property
    def site_paths(self) -> list[str]:
        directory, _, name = self.path.rpartition("/")
        prefix = f"targets/{directory}/" if directory else "targets/"
        return [f"{prefix}{digest}.{name}" for digest in self.hashes.values()]


@dataclass
class SitePlan:
    """Everything the new site holds, read and verified from the managed repository."""

    metadata: dict[str, bytes]
    roles: dict[str, Any]
    artifacts: list[Artifact]
    source: SiteSource | None = None  # the repository's name and commit, for index.html

    @property
    def files(self) -> dict[str, bytes | Path]:
        """Site path -> content (bytes) or the repository file to copy."""
        out: dict[str, bytes | Path] = dict(self.metadata)
        for art in self.artifacts:
            if art.source is not None:
                out.update(dict.fromkeys(art.site_paths, art.source))
        return out


@dataclass
class PublishResult:
    outdir: Path
    timestamp_version: int
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    hosted_elsewhere: list[str] = field(default_factory=list)


# --- reading the managed repository -------------------------------------------------------


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
    top = current.signed.version
    first = min(roots, default=1)  # > 1 for an imported repository (see docs/maintainer.md)
    missing = [str(v) for v in range(first, top + 1) if v not in roots]
    if missing:
        raise MetadataError(f"{history} lacks root version(s) {', '.join(missing)}")
    if max(roots) > top:
        raise MetadataError(f"{history} holds root v{max(roots)}, newer than root.json v{top}")
    if roots[top] != (meta / "root.json").read_bytes():
        raise MetadataError(f"root.json differs from {history}/{top}.root.json")
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
    ts_data, ts = _load(meta / "timestamp.json", "timestamp")
    snap_data, snap = _load(meta / "snapshot.json", "snapshot")
    files[_TIMESTAMP] = ts_data
    files[f"metadata/{ts.signed.snapshot_meta.version}.snapshot.json"] = snap_data
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
        roles[role] = md
    rmap = role_map(getattr(roles.get("targets"), "signed", None), roles.get)
    if missing := [r for r in retired if r in rmap]:
        raise MetadataError(f"missing metadata file {meta / missing[0]}.json")
    report = verify_files(files, now)
    if not report:
        raise MetadataError("the repository does not verify: " + "; ".join(report.problems))
    return SitePlan(files, roles, _artifacts(repo, roles), source_of(repo))


def _artifacts(checkout: Path, roles: dict[str, Any]) -> list[Artifact]:
    """Every target of every role, with its file under targets/ (None: hosted elsewhere).

    Raises:
        InputError: a target path that breaks the artifact path rule (``targets.path_problem``,
            file/directory clashes), a symlink or an unreadable file.
        MetadataError: a file that differs from its metadata, or a file no role lists.
    """
    listed: dict[str, Artifact] = {}
    entries = [
        (role, check_target_path(path), tf)
        for role, md in roles.items()
        if md.signed.type == "targets"
        for path, tf in md.signed.targets.items()
    ]
    check_clashes(path for _, path, _ in entries)
    for role, path, tf in entries:
        source: Path | None = local_path(checkout, path)
        if source is not None and os.path.lexists(source):
            if not same_artifact(tf, target_file(checkout, path)):
                raise MetadataError(f"targets/{path} does not match role {role}'s metadata")
        else:
            source = None
        listed[path] = Artifact(path, role, tf.length, dict(tf.hashes), source)
    base = checkout / TARGETS_DIR
    for found in sorted(base.rglob("*")) if base.is_dir() else []:
        rel = found.relative_to(base).as_posix()
        if is_artifact_path(rel) and rel not in listed and not found.is_dir():
            raise MetadataError(f"targets/{rel} is not listed in any role's metadata")
    return sorted(listed.values(), key=lambda a: a.path)


# --- the previous site and what to keep -----------------------------------------------------


def _is_versioned(site_path: str) -> bool:
    if site_path.startswith("targets/"):
        return True
    name = site_path.removeprefix("metadata/")
    return site_path.startswith("metadata/") and name.split(".", 1)[0].isdigit()


def _site_files(site: Path) -> set[str]:
    found: set[str] = set()
    for sub in ("metadata", "targets"):
        if (site / sub).is_dir():
            found.update(
                p.relative_to(site).as_posix() for p in (site / sub).rglob("*") if p.is_file()
            )
    return {p for p in found if _is_versioned(p) and "/." not in p}


def _is_site(path: Path) -> bool:
    """A tufrepo site (manifest), or a consistent-snapshot site made by another tool; never
    a repository checkout (which has metadata/root_history/)."""
    if (path / "metadata" / "root_history").exists():
        return False
    return (path / MANIFEST).is_file() or (
        (path / _TIMESTAMP).is_file() and (path / "metadata" / "1.root.json").is_file()
    )


def _records(site: Path, now: datetime) -> list[dict[str, Any]]:
    """Publish records of a previous site. Versioned files that no record names (a site made
    by another tool, a lost manifest, a publish interrupted after its timestamp) count as
    one publish that stopped being current now: they are kept for the horizon too."""
    records: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads((site / MANIFEST).read_text())
        if data["format"] == _FORMAT:
            records = [dict(r) for r in data["publishes"]]
    recorded = {f for r in records for f in r.get("files", [])}
    unknown = sorted(_site_files(site) - recorded)
    if unknown:
        stamp = _iso(now)
        records.append({"timestamp": None, "published": stamp, "superseded": stamp,
                        "files": unknown})  # fmt: skip
    return records


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _check_previous(previous: Path, plan: SitePlan) -> None:
    """Refuse a rollback of the site and changed content under a published versioned name."""
    old_ts = previous / _TIMESTAMP
    old = -1
    if old_ts.is_file():
        with contextlib.suppress(Exception):
            old = Metadata.from_bytes(old_ts.read_bytes()).signed.version
    new = plan.roles["timestamp"].signed.version
    if old > new or (old == new and old_ts.read_bytes() != plan.metadata[_TIMESTAMP]):
        raise MetadataError(
            f"{previous} already has timestamp v{old}; the repository's v{new} would "
            "roll the site back"
        )
    for path, data in plan.metadata.items():
        old_file = previous / path
        if path != _TIMESTAMP and old_file.is_file() and old_file.read_bytes() != data:
            raise MetadataError(f"{path} is already published with different content")


def _next_records(
    records: list[dict[str, Any]], plan: SitePlan, now: datetime, keep: timedelta
) -> list[dict[str, Any]]:
    version = plan.roles["timestamp"].signed.version
    files = sorted(p for p in plan.files if p != _TIMESTAMP)
    out: list[dict[str, Any]] = []
    published = _iso(now)
    for rec in records:
        if rec["timestamp"] == version:
            published = rec["published"]
            continue
        superseded = rec.get("superseded") or _iso(now)
        if now - _parse_iso(superseded) < keep:
            out.append({**rec, "superseded": superseded})
    out.append({"timestamp": version, "published": published, "superseded": None, "files": files})
    return out


# --- writing ---------------------------------------------------------------------------------


def _write(dest: Path, content: bytes | Path) -> None:
    """Atomically create or replace ``dest``, world-readable like any published file."""
    atomic_write(dest, content, mode=0o644)


def _same(dest: Path, content: bytes | Path) -> bool:
    if not dest.is_file():
        return False
    if isinstance(content, bytes):
        return dest.read_bytes() == content
    # artifacts are named by their hash: the same name and length is the same file
    return dest.stat().st_size == content.stat().st_size


def _write_site(
    site: Path, plan: SitePlan, carried: dict[str, Path], extra: dict[str, bytes]
) -> list[str]:
    """Write into ``site`` in dependency order; undo new files if it fails before the
    timestamp. Returns the site paths written."""
    files = plan.files
    order = sorted(
        files,
        key=lambda p: (
            p == _TIMESTAMP,
            p.startswith("metadata/") and p.endswith(".root.json"),
            p.startswith("metadata/"),
            p,
        ),
    )
    created: list[Path] = []
    written: list[str] = []
    try:
        for path, src in sorted(carried.items()):
            if not (site / path).exists():
                created.append(site / path)
                _write(site / path, src)
        for path in order:
            if path == _TIMESTAMP or _same(site / path, files[path]):
                continue
            if not (site / path).exists():
                created.append(site / path)
            _write(site / path, files[path])
            written.append(path)
    except BaseException:
        for f in created:
            f.unlink(missing_ok=True)
        raise
    if not _same(site / _TIMESTAMP, files[_TIMESTAMP]):
        _write(site / _TIMESTAMP, files[_TIMESTAMP])
        written.append(_TIMESTAMP)
    for path, data in extra.items():
        _write(site / path, data)
    return written


def _prune(site: Path, paths: list[str]) -> None:
    """Remove pruned files, then directories under targets/ that became empty."""
    for path in paths:
        (site / path).unlink(missing_ok=True)
    for start in sorted({(site / p).parent for p in paths}, key=lambda d: -len(d.parts)):
        parent = start
        while parent != site / "targets" and parent.is_relative_to(site / "targets"):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds when empty
            parent = parent.parent


def _check_outdir(outdir: Path, previous: Path | str | None) -> bool:
    """Whether ``outdir`` holds a site to update in place; InputError when unusable."""
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"OUTDIR {outdir} exists and is not a directory")
    in_place = outdir.is_dir() and any(outdir.iterdir())
    if in_place and not _is_site(outdir):
        raise InputError(f"OUTDIR {outdir} is not empty and holds no published site")
    if previous is not None:
        if in_place:
            raise InputError(f"OUTDIR {outdir} already holds a site: drop --previous")
        if not (Path(previous).is_dir() and _is_site(Path(previous))):
            raise InputError(f"--previous {previous} is not a published site")
    return in_place


def publish(
    repo: Path,
    outdir: Path,
    *,
    previous: Path | str | None = None,
    keep: timedelta = timedelta(days=7),
    now: datetime | None = None,
) -> PublishResult:
    """Verify the checkout at ``repo`` and publish it into ``outdir`` (see the module text).

    ``previous`` names an earlier site to carry kept versions from when ``outdir`` is new:
    a directory, or the URL of the live site (``tufrepo.previous``).

    Raises:
        InputError: bad ``outdir``/``previous`` or not a checkout.
        MetadataError: the repository does not verify, or would roll the site back.
        Error: the previous site's URL cannot be read.
    """
    from tufrepo.previous import fetch_previous_site, is_url

    now = now or datetime.now(UTC)
    checkout = repo.resolve()
    for sub in (checkout, checkout / "metadata", checkout / TARGETS_DIR):
        if outdir.resolve() == sub:
            raise InputError(f"OUTDIR {outdir} is the repository checkout (or part of it)")
    url = str(previous) if previous is not None and is_url(str(previous)) else None
    in_place = _check_outdir(outdir, previous if url is None else None)
    if in_place and url is not None:
        raise InputError(f"OUTDIR {outdir} already holds a site: drop --previous")
    plan = plan_site(repo, now)
    with tempfile.TemporaryDirectory(prefix="tufrepo-previous-") as tmp:
        source = outdir if in_place else (Path(previous) if previous is not None else None)
        if url is not None:
            found = fetch_previous_site(url, Path(tmp), have=set(plan.files), now=now, keep=keep)
            source = Path(tmp) if found else None
        return _publish_plan(plan, outdir, source, in_place=in_place, keep=keep, now=now)


def _publish_plan(
    plan: SitePlan,
    outdir: Path,
    source: Path | None,
    *,
    in_place: bool,
    keep: timedelta,
    now: datetime,
) -> PublishResult:
    records: list[dict[str, Any]] = []
    old_files: set[str] = set()
    if source is not None:
        _check_previous(source, plan)
        records = _records(source, now)
        old_files = _site_files(source)
    records = _next_records(records, plan, now, keep)
    keep_files = {f for r in records for f in r["files"]}
    keep_files |= {f for f in old_files if f.endswith(".root.json")}
    result = PublishResult(outdir, plan.roles["timestamp"].signed.version)
    result.kept = sorted((old_files & keep_files) - set(plan.files))
    result.pruned = sorted(old_files - keep_files - set(plan.files))
    result.hosted_elsewhere = [a.path for a in plan.artifacts if a.source is None]
    manifest = {
        "format": _FORMAT,
        "publishes": records,
        "hosted_elsewhere": result.hosted_elsewhere,
    }
    extra = {
        "index.html": render_index(plan, now, plan.source).encode(),
        ".nojekyll": b"",
        MANIFEST: (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(),
    }
    try:
        if in_place:
            result.written = _write_site(outdir, plan, {}, extra)
            _prune(outdir, result.pruned)
        else:
            carried = {p: source / p for p in result.kept} if source is not None else {}
            result.written = _write_new(outdir, plan, carried, extra)
    except OSError as e:
        raise InputError(f"cannot write {outdir}: {e.strerror or e}") from e
    return result


def _write_new(
    outdir: Path, plan: SitePlan, carried: dict[str, Path], extra: dict[str, bytes]
) -> list[str]:
    """Build the site in a sibling temporary directory, then rename it to ``outdir``."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=outdir.parent, prefix=f".{outdir.name}.tmp-"))
    try:
        stage.chmod(0o755)
        written = _write_site(stage, plan, carried, extra)
        stage.replace(outdir)  # an empty OUTDIR directory is replaced too (rename(2))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return written
