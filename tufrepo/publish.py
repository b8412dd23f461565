"""``tufrepo publish``: the static TUF site of a managed repository (DESIGN.md §3, §6).

Three parts: the *site plan* (``tufrepo.site_plan``: which files a site must hold, read and
verified from the checkout), the *update* (``tufrepo.site_delta``: only what changed since
the commit the site's record names, verified as a client updating from that state would)
and the *publish* here, which brings a store (``tufrepo.site_store``: a directory or an
object-store bucket) up to either. Site layout (consistent snapshots)::

    metadata/<N>.root.json          every root version (never pruned)
    metadata/<V>.snapshot.json      snapshot, versioned
    metadata/<V>.<role>.json        targets and delegated roles (role name URL-escaped)
    metadata/timestamp.json         the only unversioned metadata file
    targets/<dir>/<hash>.<name>     artifacts, one copy per hash listed in metadata
    index.html                      for people: roles, signers, thresholds, expiry, artifacts
    tufrepo-site.json               the commit published, what earlier publishes left

Readers of the site always see a consistent repository (docs/publishing.md): what is written
is verified as a client would before anything is written; only files the site lacks are
written (an artifact already there under its hash name is neither hashed nor copied), each
atomically, step after step — artifacts, targets roles, snapshot, roots, ``timestamp.json``
last; an interrupted publish leaves the old site usable and the next one completes it; files
of earlier publishes stay for ``keep`` and are deleted only once the new timestamp is live.
An update of a site whose record can be used lists nothing and reads only the change; any
doubt means the full publish (docs/performance.md, "Publishing").
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Metadata

from tufrepo.client import SITE_MANIFEST
from tufrepo.errors import InputError, MetadataError
from tufrepo.git import GitRepo
from tufrepo.progress import ProgressFactory, counting, steps
from tufrepo.site_index import (
    SitePage,
    SiteSource,
    render_index,
    roots_of,
    source_of,
)
from tufrepo.site_manifest import (
    DEFAULT_MAX_AGE,
    TIMESTAMP,
    Manifest,
    check_max_age,
    digest,
    headers_for,
    iso,
    parse_manifest,
    retention,
    upload_step,
)
from tufrepo.site_plan import (
    SitePlan,
    page_of,
    plan_site,
    published_commit,
    role_facts_of,
    verified_source,
)
from tufrepo.site_store import (
    DirectorySite,
    SiteStore,
    check_outdir,
    is_store_url,
    open_object_site,
    remove_scratch,
    scratch,
)
from tufrepo.targets import (
    TARGETS_DIR,
)

if TYPE_CHECKING:
    from tufrepo.site_delta import SiteDelta

__all__ = [
    "DEFAULT_MAX_AGE",
    "MANIFEST",
    "PublishResult",
    "SitePlan",
    "open_site",
    "plan_site",
    "publish",
]

MANIFEST = SITE_MANIFEST
log = logging.getLogger(__name__)
_WORKERS = 16  # parallel uploads within one step


@dataclass
class PublishResult:
    outdir: str
    timestamp_version: int
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    hosted_elsewhere: list[str] = field(default_factory=list)
    unchanged: int = 0
    """Files of the plan the site already held (not written again)."""
    full_reason: str | None = None
    """Why the whole repository was read and verified (None: only what changed since the
    commit the site's record names)."""


# --- the site before this publish -----------------------------------------------------------


@dataclass
class _Before:
    """What the store (or the previous site) holds: listing, manifest, unchanged metadata."""

    listing: dict[str, int]
    manifest: Manifest
    same_metadata: set[str]


def _read_before(source: SiteStore | None, plan: SitePlan, record: Manifest | None) -> _Before:
    """Read the earlier site and refuse a rollback or changed content under a versioned name
    (``record``: its manifest, when already read).

    Raises:
        MetadataError: the site has a newer timestamp, or a versioned file with other content.
    """
    if source is None:
        return _Before({}, Manifest(), set())
    listing = source.listing()
    if MANIFEST not in listing:
        manifest = Manifest()
    else:
        manifest = record if record is not None else parse_manifest(source.read(MANIFEST))
    new = plan.roles["timestamp"].signed.version
    old_bytes = source.read(TIMESTAMP) if TIMESTAMP in listing else None
    old = -1
    if old_bytes is not None:
        try:
            old = Metadata.from_bytes(old_bytes).signed.version
        except Exception:  # noqa: BLE001 - an unreadable old timestamp does not block
            old = -1
    if old > new or (old == new and old_bytes != plan.metadata[TIMESTAMP]):
        raise MetadataError(
            f"{source.label} already has timestamp v{old}; the repository's v{new} would "
            "roll the site back"
        )
    same = {TIMESTAMP} if old_bytes == plan.metadata[TIMESTAMP] else set()
    for path, data in plan.metadata.items():
        if path == TIMESTAMP or path not in listing:
            continue
        recorded = manifest.metadata.get(path)
        if recorded is None:
            old_data = source.read(path)
            recorded = digest(old_data) if old_data is not None else None
        if recorded is not None and recorded != digest(data):
            raise MetadataError(f"{path} is already published with different content")
        if recorded is not None and listing[path] == len(data):
            same.add(path)
    return _Before(listing, manifest, same)


# --- writing ----------------------------------------------------------------------------------


def _to_write(plan: SitePlan, before: _Before, dest_listing: dict[str, int]) -> list[str]:
    """Plan files the destination lacks, in upload order. An artifact already there under
    its hash name with its length is the same file (it was checked when it was written)."""
    todo = [p for p in plan.metadata if not (p in before.same_metadata and p in dest_listing)]
    for art in plan.artifacts:
        if art.source is not None:
            todo.extend(p for p in art.site_paths if dest_listing.get(p) != art.length)
    return sorted(todo, key=lambda p: (upload_step(p), p))


def _write_site(
    dest: SiteStore,
    writes: list[tuple[str, bytes | Path]],
    max_age: int,
    done: Callable[[str], None],
) -> None:
    """Write step by step (``_step``), each step only after the previous one succeeded; the
    files of one step in parallel (uploads are network-bound). Stops at the first failure,
    so the old timestamp stays live."""
    for _, group in itertools.groupby(writes, key=lambda w: upload_step(w[0])):
        batch = list(group)
        with ThreadPoolExecutor(min(_WORKERS, len(batch))) as pool:
            futures = {pool.submit(dest.put, p, c, headers_for(p, max_age)): p for p, c in batch}
            try:
                for future in as_completed(futures):
                    future.result()
                    done(futures[future])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _publish_plan(
    checkout: Path,
    plan: SitePlan,
    dest: SiteStore,
    source: SiteStore | None,
    *,
    keep: timedelta,
    now: datetime,
    max_age: int,
    progress: ProgressFactory | None,
    record: Manifest | None = None,
) -> PublishResult:
    """Bring ``dest`` up to ``plan``; ``source`` is the earlier site (``dest`` itself when
    updating in place, another directory for a new OUTDIR, or None; ``record``: its
    manifest, when already read). ``progress`` counts the artifacts checked, then the files
    written."""

    before = _read_before(source, plan, record)
    dest_listing = before.listing if dest is source else dest.listing()
    current = plan.files
    kept, prune = retention(before.listing, current, before.manifest.superseded, now=now, keep=keep)
    result = PublishResult(dest.label, plan.roles["timestamp"].signed.version)
    result.kept, result.pruned = sorted(kept), prune
    result.hosted_elsewhere = [a.path for a in plan.artifacts if a.source is None]
    todo = _to_write(plan, before, dest_listing)
    result.unchanged = len(current) - len(todo)
    by_path = {p: a for a in plan.artifacts if a.source is not None for p in a.site_paths}
    with steps(progress, "checking artifacts", len(by_path.keys() & set(todo))) as step:
        verified = {p: verified_source(checkout, by_path[p], step) for p in todo if p in by_path}
    carried: list[tuple[str, bytes | Path]] = []
    if dest is not source and isinstance(source, DirectorySite):
        carried = [(p, source.root / p) for p in sorted(kept) if p not in dest_listing]
    metadata = {p: d for p, d in before.manifest.metadata.items() if p in kept}
    metadata.update({p: digest(d) for p, d in plan.metadata.items() if p != TIMESTAMP})
    facts = role_facts_of(plan)
    manifest = Manifest(metadata, kept, result.hosted_elsewhere, published_commit(checkout, plan),
                        result.timestamp_version, facts)  # fmt: skip
    page = page_of(plan, facts)
    try:
        _write_site(dest, carried, max_age, lambda _: None)
        writes = [(p, plan.metadata.get(p) or verified[p]) for p in todo]
        with steps(progress, "writing site files", len(writes)) as step:
            _write_site(dest, writes, max_age, counting(result.written.append, step))
        _finish(dest, page, manifest, now=now, source=plan.source, max_age=max_age)
        if dest is source:
            dest.delete(prune)  # only now that the new timestamp is live
    except OSError as e:
        raise InputError(f"cannot write {dest.label}: {e.strerror or e}") from e
    return result


def _finish(
    dest: SiteStore,
    page: SitePage,
    manifest: Manifest,
    *,
    now: datetime,
    source: SiteSource | None,
    max_age: int,
) -> None:
    """index.html and the record, once the new timestamp is live."""
    extra: list[tuple[str, bytes | Path]] = [
        ("index.html", render_index(page, now, source).encode()),
        (MANIFEST, manifest.to_bytes(page.timestamp_version)),
    ]
    if isinstance(dest, DirectorySite) and not (dest.root / ".nojekyll").exists():
        extra.append((".nojekyll", b""))  # GitHub Pages: serve files starting with _
    _write_site(dest, extra, max_age, lambda _: None)


def _publish_delta(
    checkout: Path,
    delta: SiteDelta,
    dest: SiteStore,
    record: Manifest,
    *,
    keep: timedelta,
    now: datetime,
    max_age: int,
    progress: ProgressFactory | None,
) -> PublishResult:
    """Add ``delta`` to ``dest`` (which serves the commit ``record`` names): the new files
    in upload order, then index.html and the record; prune what the record says expired."""
    new = {*delta.metadata, *(p for a in delta.uploads for p in a.site_paths)}
    stamp = iso(now)
    superseded = {p: w for p, w in record.superseded.items() if p not in new}
    for path in (*delta.superseded, *record.pending):  # pending: an interrupted publish's
        if path not in new:
            superseded.setdefault(path, stamp)
    kept, prune = retention(superseded, set(), superseded, now=now, keep=keep)
    metadata = {p: d for p, d in record.metadata.items() if p not in prune}
    metadata.update({p: digest(d) for p, d in delta.metadata.items() if p != TIMESTAMP})
    manifest = Manifest(metadata, kept, delta.hosted_elsewhere, delta.commit,
                        delta.timestamp_version, delta.roles)  # fmt: skip
    result = PublishResult(dest.label, delta.timestamp_version, kept=sorted(kept), pruned=prune)
    result.hosted_elsewhere = delta.hosted_elsewhere
    todo = sorted(new, key=lambda p: (upload_step(p), p))
    by_path = {p: a for a in delta.uploads for p in a.site_paths}
    with steps(progress, "checking artifacts", len(by_path)) as step:
        verified = {p: verified_source(checkout, a, step) for p, a in by_path.items()}
    roots = {f"metadata/{v}.root.json": d for v, d in delta.roots.items()}
    page = SitePage(delta.roles, delta.bins, roots_of(roots), delta.timestamp_version,
                    delta.artifacts)  # fmt: skip
    signed = [r for r in delta.roles if r not in ("root", "timestamp", "snapshot")]
    total = len(roots) + 2 + len(signed) + sum(f.files for f in delta.roles.values())
    try:
        if isinstance(dest, DirectorySite):
            dest.remove_junk(record.pending)
        if todo:  # first name what is about to be written, for the next publish
            pending = replace(record, pending=todo)
            _write_site(dest, [(MANIFEST, pending.to_bytes(record.timestamp or 0))], max_age,
                        lambda _: None)  # fmt: skip
        writes = [(p, delta.metadata.get(p) or verified[p]) for p in todo]
        with steps(progress, "writing site files", len(writes)) as step:
            _write_site(dest, writes, max_age, counting(result.written.append, step))
        _finish(dest, page, manifest, now=now, source=source_of(checkout), max_age=max_age)
        dest.delete(prune)  # only now that the new timestamp is live
    except OSError as e:
        raise InputError(f"cannot write {dest.label}: {e.strerror or e}") from e
    result.unchanged = max(0, total - len(result.written))
    return result


def _publish_in_place(
    checkout: Path,
    site: SiteStore,
    *,
    keep: timedelta,
    now: datetime,
    max_age: int,
    progress: ProgressFactory | None,
) -> PublishResult:
    """Update the site ``site`` holds: only the change since the commit its record names
    when that can be vouched for (``tufrepo.site_delta``), else read and verify everything."""
    from tufrepo.site_delta import FullPublish, plan_delta

    record = parse_manifest(site.read(MANIFEST))
    options: dict[str, Any] = {"keep": keep, "now": now, "max_age": max_age, "progress": progress}
    try:
        delta = plan_delta(checkout, record, site.read(TIMESTAMP) if record.commit else None, now)
    except FullPublish as e:
        reason = str(e)
    else:
        check_max_age(delta.root, max_age)
        return _publish_delta(checkout, delta, site, record, **options)
    log.info("publishing in full: %s", reason)
    plan = _plan_all(checkout, now)
    check_max_age(plan.roles["root"].signed, max_age)
    result = _publish_plan(checkout, plan, site, site, **options, record=record)
    result.full_reason = reason
    return result


def _plan_all(checkout: Path, now: datetime) -> SitePlan:
    """The full publish's plan: every artifact checked out first (a sparse checkout lacks
    them; an update fetches only the new ones, ``SiteDelta``), then read and verified."""
    with contextlib.suppress(InputError):  # a plain directory is published as it is
        GitRepo(checkout).materialize_all()
    return plan_site(checkout, now)


def open_site(target: str) -> Path | SiteStore:
    """A directory, or the bucket that an ``s3://``, ``gs://`` or ``az://`` URL names.

    Raises:
        InputError: an unknown URL scheme, missing credentials or the missing extra.
    """
    return open_object_site(target) if is_store_url(target) else Path(target)


def publish(
    repo: Path,
    outdir: Path | str | SiteStore,
    *,
    previous: Path | str | None = None,
    keep: timedelta = timedelta(days=7),
    now: datetime | None = None,
    max_age: int = DEFAULT_MAX_AGE,
    progress: ProgressFactory | None = None,
) -> PublishResult:
    """Verify the checkout at ``repo`` and publish it into ``outdir`` (a directory, a store
    URL or a store; see the module text). ``max_age``: seconds that ``timestamp.json`` and
    the other unversioned files may be cached; ``progress`` (``tufrepo.progress``) counts
    the artifacts checked and the files written, the long part.

    ``previous`` names an earlier site to carry kept versions from when ``outdir`` is a new
    directory: a directory, or the URL of the live site (``tufrepo.previous``).

    Raises:
        InputError: bad ``outdir``/``previous``/``max_age``, not a checkout, a missing
            bucket or credentials.
        MetadataError: the repository does not verify, or would roll the site back.
        Error: the store or the previous site's URL cannot be read or written.
    """
    now = now or datetime.now(UTC)
    site = open_site(outdir) if isinstance(outdir, str) else outdir
    checkout = repo.resolve()
    if not isinstance(site, Path):
        if previous is not None:
            raise InputError("--previous is only for a new OUTDIR directory, not a bucket")
        return _publish_in_place(
            checkout, site, keep=keep, now=now, max_age=max_age, progress=progress
        )
    return _publish_directory(
        checkout, site, previous, keep=keep, now=now, max_age=max_age, progress=progress
    )


def _publish_directory(
    checkout: Path,
    outdir: Path,
    previous: Path | str | None,
    *,
    keep: timedelta,
    now: datetime,
    max_age: int,
    progress: ProgressFactory | None,
) -> PublishResult:
    """In place when ``outdir`` holds a site; otherwise built beside it, then renamed."""
    from tufrepo.previous import fetch_previous_site, is_url

    for sub in (checkout, checkout / "metadata", checkout / TARGETS_DIR):
        if outdir.resolve() == sub:
            raise InputError(f"OUTDIR {outdir} is the repository checkout (or part of it)")
    url = str(previous) if previous is not None and is_url(str(previous)) else None
    in_place = check_outdir(outdir, previous if url is None else None)
    if in_place and url is not None:
        raise InputError(f"OUTDIR {outdir} already holds a site: drop --previous")
    options: dict[str, Any] = {"keep": keep, "now": now, "max_age": max_age, "progress": progress}
    if in_place:
        remove_scratch(outdir)
        return _publish_in_place(checkout, DirectorySite(outdir, clean=True), **options)
    plan = _plan_all(checkout, now)
    check_max_age(plan.roles["root"].signed, max_age)
    remove_scratch(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    fetched = outdir.parent / scratch(outdir, "previous")
    stage = Path(tempfile.mkdtemp(dir=outdir.parent, prefix=scratch(outdir, "stage")))
    try:
        source = DirectorySite(Path(previous)) if previous is not None else None
        if url is not None:
            found = fetch_previous_site(url, fetched, have=plan.files, now=now, keep=keep)
            source = DirectorySite(fetched) if found else None
        stage.chmod(0o755)
        result = _publish_plan(checkout, plan, DirectorySite(stage), source, **options)
        result.full_reason = "a new site directory"
        stage.replace(outdir)  # an empty OUTDIR directory is replaced too (rename(2))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(fetched, ignore_errors=True)
    result.outdir = str(outdir)
    return result
