"""TUF clients of a published site: ``check-site`` (freshness smoke test) and ``download``.

Everything goes through python-tuf's ngclient ``Updater`` and its public API: the trusted
state is read back from the metadata files the updater persisted in its metadata directory
(never from ``Updater`` internals). The same inspection verifies a site that ``publish`` is
about to write, by serving the planned files from memory (``MemoryFetcher``).

Delegated roles are loaded the way a client loads them: by asking the updater for a target
path that the delegation covers (a *probe* path), so each role is verified by ngclient's own
delegation walk, then read from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api.exceptions import DownloadError, DownloadHTTPError, RepositoryError
from tuf.api.metadata import Metadata
from tuf.ngclient import FetcherInterface, Updater, Urllib3Fetcher

from tufrepo.errors import Error, InputError, MetadataError, NotFoundError
from tufrepo.progress import ProgressCallback, ProgressFactory, steps
from tufrepo.repository import python_tuf_problem
from tufrepo.roles import owners_of

__all__ = [
    "HttpFetcher",
    "MemoryFetcher",
    "ProgressCallback",
    "RoleExpiry",
    "SiteReport",
    "download",
    "fetch_first_root",
    "inspect_site",
    "parse_duration",
    "probe_paths",
]


SITE_MANIFEST = "tufrepo-site.json"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BRUTE_FORCE_LIMIT = 200_000


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"2d"``, ``"1w"`` (or a sum: ``"1d12h"``).

    Raises:
        InputError: not a duration.
    """
    parts = re.findall(r"(\d+)\s*([smhdw])", text.strip().lower())
    if not parts or re.sub(r"(\d+)\s*([smhdw])|\s", "", text.lower()):
        raise InputError(f"not a duration: {text!r} (use e.g. 90s, 30m, 12h, 2d, 1w)")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


# --- fetchers ------------------------------------------------------------------------------


class MemoryFetcher(FetcherInterface):
    """Serves files from a mapping of URL to bytes; any other URL is an HTTP 404."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files

    def _fetch(self, url: str) -> Iterator[bytes]:
        if url not in self.files:
            raise DownloadHTTPError(f"{url}: not found (404)", 404)
        return iter([self.files[url]])


class HttpFetcher(FetcherInterface):
    """ngclient's urllib3 fetcher, with the URL in HTTP errors and a progress hook."""

    def __init__(self, timeout: int = 30) -> None:
        self._inner = Urllib3Fetcher(socket_timeout=timeout, app_user_agent="tufrepo")
        self.on_chunk: ProgressCallback | None = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            chunks = self._inner.fetch(url)
        except DownloadHTTPError as e:
            raise DownloadHTTPError(f"{url}: HTTP {e.status_code}", e.status_code) from e
        return self._report(chunks)

    def _report(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self.on_chunk is not None:
                self.on_chunk(len(chunk))
            yield chunk


_FIRST_ROOT_TRIES = 20


def fetch_first_root(url: str) -> bytes:
    """Download ``URL/metadata/1.root.json`` (trust on first use: the caller warns), or the
    first root after it that python-tuf reads when older tools wrote the first ones.

    Raises:
        Error: no root can be downloaded, or none of the first ones is readable.
    """
    fetcher = HttpFetcher()
    for version in range(1, _FIRST_ROOT_TRIES + 1):
        root_url = f"{url.rstrip('/')}/metadata/{version}.root.json"
        try:
            data: bytes = fetcher.download_bytes(root_url, 512_000)
        except DownloadError as e:
            raise Error(f"cannot download the first root {root_url}: {_reason(e)}") from e
        if python_tuf_problem(data) is None:
            return data
    raise Error(f"none of the first {_FIRST_ROOT_TRIES} roots of {url} is readable by python-tuf")


# --- inspection --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleExpiry:
    """A verified role as a client sees it."""

    name: str
    version: int
    expires: datetime


@dataclass
class SiteReport:
    """What a client found on a site; true when there are no problems."""

    url: str
    roles: list[RoleExpiry] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    hosted_elsewhere: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fixers: list[str] = field(default_factory=list)
    """The @names who can fix the problems: the signers of the roles due (online roles:
    root's), and root's for any other problem."""

    def __bool__(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": not self.problems,
            "roles": [
                {"name": r.name, "version": r.version, "expires": _iso(r.expires)}
                for r in self.roles
            ],
            "targets": self.targets,
            "downloaded": self.downloaded,
            "hosted_elsewhere": self.hosted_elsewhere,
            "problems": self.problems,
            "fixers": self.fixers,
        }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    return f"{hours}h{rest // 60}m" if hours else f"{rest // 60}m{rest % 60}s"


def _reason(e: BaseException) -> str:
    """The most telling message of an exception chain (ngclient wraps urllib3 errors)."""
    msg = str(e)
    cause = None if isinstance(e, DownloadHTTPError) else e.__cause__
    while cause is not None:
        inner = str(getattr(cause, "reason", None) or cause)
        if inner:
            return f"{msg}: {inner}" if msg else inner
        cause = cause.__cause__
    return msg or type(e).__name__


def _pattern_example(pattern: str) -> str:
    """A target path that a delegation path pattern matches."""
    no_classes = re.sub(r"\[(!?)([^\]]*)\]", lambda m: "_" if m[1] else (m[2][:1] or "_"), pattern)
    return no_classes.replace("*", "x").replace("?", "x")


def probe_paths(delegations: Any, wanted: set[str], prefix: str = "") -> dict[str, str]:
    """For each delegated role in ``wanted``, a target path that leads a client's delegation
    walk (``Delegations.get_roles_for_target``) to it: examples of the path patterns first,
    then a bounded search for hash-prefix and succinct (hash-bin) delegations, under
    ``prefix`` (the directory of a path that leads to the delegating role)."""
    found: dict[str, str] = {}

    def consider(path: str) -> None:
        for name, terminating in delegations.get_roles_for_target(path):
            if name in wanted and name not in found:
                found[name] = path
            if terminating:
                break

    hashed = delegations.succinct_roles is not None
    for role in (delegations.roles or {}).values():
        hashed = hashed or role.path_hash_prefixes is not None
        for pattern in role.paths or []:
            consider(_pattern_example(pattern))
    i = 0
    while hashed and len(found) < len(wanted) and i < _BRUTE_FORCE_LIMIT:
        consider(f"{prefix}tufrepo-probe/{i}")
        i += 1
    return found


@dataclass
class _Client:
    """An ngclient Updater plus the directory where it persists what it trusts."""

    updater: Any
    metadata_dir: Path
    fetcher: Any

    def cached(self, role: str) -> Any:
        path = self.metadata_dir / f"{parse.quote(role, '')}.json"
        return Metadata.from_file(str(path)) if path.exists() else None


def _updater(
    base_url: str, root: bytes, metadata_dir: Path, fetcher: Any, *, cached: bool = False
) -> _Client:
    base = base_url.rstrip("/")
    try:
        updater = Updater(
            str(metadata_dir),
            f"{base}/metadata/",
            target_base_url=f"{base}/targets/",
            fetcher=fetcher,
            bootstrap=None if cached else root,
        )
    except (RepositoryError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"the trusted root is not valid root metadata: {e}") from e
    return _Client(updater, metadata_dir, fetcher)


def _walk_roles(client: _Client, report: SiteReport) -> dict[str, Any]:
    """Load every reachable targets-type role through the updater; return name -> metadata."""
    trusted: dict[str, Any] = {"targets": client.cached("targets")}
    # a role file in a persistent cache is only current when it has snapshot's version
    versions = {name: meta.version for name, meta in client.cached("snapshot").signed.meta.items()}
    queue = ["targets"]
    reached_by = {"targets": ""}
    while queue:
        parent = queue.pop(0)
        delegations = trusted[parent].signed.delegations
        if delegations is None:
            continue
        if delegations.roles is not None:
            children = list(delegations.roles)
        else:
            children = list(delegations.succinct_roles.get_roles())
        wanted = {c for c in children if c not in trusted}
        prefix = reached_by[parent].rpartition("/")[0]
        probes = probe_paths(delegations, wanted, f"{prefix}/" if prefix else "")
        for child in children:
            if child not in wanted:
                continue
            if child not in probes:
                report.problems.append(f"role {child}: no target path leads a client to it")
                continue
            try:
                client.updater.get_targetinfo(probes[child])
            except (RepositoryError, DownloadError) as e:
                report.problems.append(f"role {child}: {_reason(e)}")
                continue
            md = client.cached(child)
            if md is None or md.signed.version != versions.get(f"{child}.json"):
                report.problems.append(f"role {child}: not reached by a client's delegation walk")
                continue
            trusted[child] = md
            reached_by[child] = probes[child]
            queue.append(child)
            report.problems += _misplaced(delegations, child, md)
    return trusted


def _misplaced(delegations: Any, role: str, md: Any) -> list[str]:
    """Artifacts a hash bin lists although their path hashes to another bin: a client
    looks for them in that other bin, so it never finds them."""
    succinct = delegations.succinct_roles
    if succinct is None:
        return []
    return [
        f"role {role}: lists {path}, which belongs to {owner} (clients never find it)"
        for path in md.signed.targets
        if (owner := succinct.get_role_for_target(path)) != role
    ]


def inspect_site(
    base_url: str,
    root: bytes,
    *,
    fetcher: Any = None,
    now: datetime | None = None,
    valid_for: timedelta = timedelta(0),
    download_all: bool = False,
    cache_dir: Path | None = None,
    progress: ProgressFactory | None = None,
) -> SiteReport:
    """Refresh from ``root`` like a client, load every delegated role, check expiry against
    ``now + valid_for`` and, with ``download_all``, download and verify every artifact.

    ``progress(label, count)`` may give a callback advanced by one per artifact checked.
    With ``cache_dir``, trusted metadata is kept there between runs (the cached root, when
    present, is the trust anchor), so a site that goes back in time is refused.
    Problems found on the site are in the report; only a bad trusted root raises.

    Raises:
        InputError: ``root`` is not root metadata.
    """
    now = now or datetime.now(UTC)
    report = SiteReport(base_url)
    with tempfile.TemporaryDirectory(prefix="tufrepo-client-") as tmp:
        metadata_dir = cache_dir or Path(tmp) / "metadata"
        metadata_dir.mkdir(parents=True, exist_ok=True)
        cached = (metadata_dir / "root.json").exists()
        fetcher = fetcher or HttpFetcher()
        client = _updater(base_url, root, metadata_dir, fetcher, cached=cached)
        try:
            client.updater.refresh()
        except (RepositoryError, DownloadError) as e:
            report.problems.append(f"refresh failed: {_reason(e)}")
            trusted_root = client.cached("root")
            report.fixers = owners_of("root", {"root": trusted_root}) if trusted_root else []
            return report
        roles = {name: client.cached(name) for name in ("root", "timestamp", "snapshot")}
        roles.update(_walk_roles(client, report))
        due = _check_expiry(roles, report, now, valid_for)
        report.targets = sorted(
            {p for md in roles.values() if md.signed.type == "targets" for p in md.signed.targets}
        )
        if download_all:
            elsewhere = set(_hosted_elsewhere(base_url, client))
            report.hosted_elsewhere = sorted(elsewhere & set(report.targets))
            with steps(progress, "artifacts", len(report.targets)) as step:
                _download_all(client, report, Path(tmp) / "targets", elsewhere, step)
    if len(report.problems) > len(due):  # not only expiry: root's signers decide
        due.add("root")
    report.fixers = sorted({o for name in due for o in owners_of(name, roles)})
    return report


def _check_expiry(
    roles: dict[str, Any], report: SiteReport, now: datetime, valid_for: timedelta
) -> set[str]:
    """Add each role's expiry to ``report`` and a problem when it is within ``valid_for``;
    returns the roles that are due."""
    due = set()
    for name, md in roles.items():
        expires = md.signed.expires
        report.roles.append(RoleExpiry(name, md.signed.version, expires))
        if expires <= now:
            report.problems.append(f"{name} v{md.signed.version} expired {_iso(expires)}")
        elif expires <= now + valid_for:
            left = _human(expires - now)
            report.problems.append(
                f"{name} v{md.signed.version} expires {_iso(expires)}, in {left} "
                f"(less than the {_human(valid_for)} asked for)"
            )
        else:
            continue
        due.add(name)
    return due


def _hosted_elsewhere(base_url: str, client: _Client) -> list[str]:
    """Artifacts that the site's publish manifest says are hosted elsewhere (descriptors).
    The manifest is not signed: it only lets ``--download-all`` skip them, with a note."""
    try:
        data = client.fetcher.download_bytes(f"{base_url.rstrip('/')}/{SITE_MANIFEST}", 10**8)
        paths = json.loads(data)["hosted_elsewhere"]
    except (DownloadError, ValueError, KeyError, TypeError):
        return []
    return [p for p in paths if isinstance(p, str)]


def _download_all(
    client: _Client,
    report: SiteReport,
    workdir: Path,
    elsewhere: set[str],
    step: ProgressCallback | None,
) -> None:
    workdir.mkdir()
    for i, path in enumerate(report.targets):
        if step is not None:
            step(1)
        if path in elsewhere:
            continue
        try:
            info = client.updater.get_targetinfo(path)
            if info is None:
                report.problems.append(f"artifact {path}: not found by a client")
                continue
            client.updater.download_target(info, str(workdir / str(i)))
        except (RepositoryError, DownloadError) as e:
            report.problems.append(f"artifact {path}: {_reason(e)}")
            continue
        (workdir / str(i)).unlink()
        report.downloaded.append(path)


def verify_files(files: Mapping[str, bytes], now: datetime | None = None) -> SiteReport:
    """Inspect a site given as ``{site path: bytes}`` (metadata only), as a client would."""
    base = "memory://site"
    urls = {f"{base}/{path}": data for path, data in files.items()}
    # the first root python-tuf reads: 1.root.json, the earliest one of an imported
    # repository, or the first after those an older tool wrote (the tolerant reader of
    # tufrepo.validate verifies the chain up to it)
    versions = sorted(
        int(v)
        for p in files
        if p.startswith("metadata/")
        and p.endswith(".root.json")
        and (v := p.removeprefix("metadata/").removesuffix(".root.json")).isdigit()
    )
    roots = (files[f"metadata/{v}.root.json"] for v in versions)
    root = next((data for data in roots if python_tuf_problem(data) is None), None)
    if root is None:
        raise MetadataError("no root (metadata/N.root.json) that python-tuf reads to verify from")
    return inspect_site(base, root, fetcher=MemoryFetcher(urls), now=now)


# --- download ----------------------------------------------------------------------------


def default_cache_dir(base_url: str, root: bytes) -> Path:
    """Per site and trust anchor: ``$XDG_CACHE_HOME/tufrepo/<hash>``."""
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = hashlib.sha256(base_url.rstrip("/").encode() + b"\0" + root).hexdigest()[:16]
    return Path(home) / "tufrepo" / key


def download(
    base_url: str,
    target: str,
    root: bytes,
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    progress: ProgressFactory | None = None,
) -> Path:
    """Refresh (keeping metadata in ``cache_dir`` so rollbacks are caught across runs),
    find ``target``, download and verify it, and move it into ``out_dir`` atomically.

    Raises:
        NotFoundError: no role lists ``target``.
        MetadataError: the site does not verify.
        Error: the site cannot be reached.
    """

    cache_dir = cache_dir or default_cache_dir(base_url, root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fetcher = HttpFetcher()
    client = _updater(base_url, root, cache_dir, fetcher, cached=(cache_dir / "root.json").exists())
    try:
        info = client.updater.get_targetinfo(target)
    except RepositoryError as e:
        raise MetadataError(f"the site {base_url} does not verify: {_reason(e)}") from e
    except DownloadError as e:
        raise Error(f"cannot update from {base_url}: {_reason(e)}") from e
    if info is None:
        raise NotFoundError(f"no artifact {target!r} on {base_url}")
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / target.rsplit("/", 1)[-1]
    if client.updater.find_cached_target(info, str(dest)):
        return dest
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{dest.name}.")
    os.close(fd)
    try:
        with steps(progress, target, info.length) as cb:
            fetcher.on_chunk = cb
            client.updater.download_target(info, tmp)
        Path(tmp).replace(dest)
    except RepositoryError as e:
        raise MetadataError(f"artifact {target} does not verify: {_reason(e)}") from e
    except DownloadError as e:
        raise Error(f"cannot download {target}: {_reason(e)}") from e
    finally:
        fetcher.on_chunk = None
        Path(tmp).unlink(missing_ok=True)
    return dest
