"""The previous site from its URL, for ``publish --previous URL``.

CI that deploys a fresh directory each time (GitHub Pages from an artifact, GitLab Pages)
has no earlier site on disk. This downloads from the live site what the next publish must
keep: ``timestamp.json`` and everything it leads to (snapshot, roles, artifacts), the
``tufrepo-site.json`` manifest and the files of publishes that stopped being current within
the horizon. Artifacts the new site has anyway are not downloaded.

Nothing here is trusted: the files are only carried over (clients verify them), remote paths
are checked before anything is written, and the new site is still verified from the
repository.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib import parse

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.api.metadata import Metadata

from tufrepo.client import SITE_MANIFEST, HttpFetcher
from tufrepo.errors import Error
from tufrepo.site_manifest import parse_manifest, retention

__all__ = ["fetch_previous_site", "is_url"]

_METADATA_MAX = 20_000_000
_ARTIFACT_MAX = 1 << 40  # only for files no metadata gives a length for


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _safe(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (
        bool(parts)
        and parts[0] in ("metadata", "targets")
        and not path.startswith("/")
        and "\\" not in path
        and all(p not in ("..", ".", "") for p in path.split("/"))
    )


class _Site:
    def __init__(self, url: str, dest: Path) -> None:
        self.base = url.rstrip("/")
        self.dest = dest
        self.fetcher = HttpFetcher()

    def get(self, path: str, max_length: int = _METADATA_MAX) -> bytes | None:
        """The file's bytes, or None when the site does not have it (HTTP 404/403)."""
        try:
            data: bytes = self.fetcher.download_bytes(f"{self.base}/{path}", max_length)
        except DownloadHTTPError as e:
            if e.status_code in (403, 404):
                return None
            raise Error(f"cannot read the previous site {self.base}: {e}") from e
        except DownloadError as e:
            raise Error(f"cannot read the previous site {self.base}: {e}") from e
        return data

    def save(self, path: str, data: bytes) -> None:
        out = self.dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)

    def copy(self, path: str, max_length: int) -> None:
        """Stream a (large) file into ``dest``; skipped when missing."""
        out = self.dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with (
                self.fetcher.download_file(f"{self.base}/{path}", max_length) as src,
                out.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        except DownloadHTTPError as e:
            out.unlink(missing_ok=True)
            if e.status_code not in (403, 404):
                raise Error(f"cannot read the previous site {self.base}: {e}") from e
        except DownloadError as e:
            out.unlink(missing_ok=True)
            raise Error(f"cannot read the previous site {self.base}: {e}") from e


def _parse(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return Metadata.from_bytes(data)
    except Exception:  # noqa: BLE001 - an unusable old file is simply not carried over
        return None


def _closure(site: _Site, timestamp: Any) -> dict[str, int]:
    """Files the live timestamp leads to (metadata saved on the way): path -> max length."""
    wanted: dict[str, int] = {}
    snap_path = f"metadata/{timestamp.signed.snapshot_meta.version}.snapshot.json"
    snap_data = site.get(snap_path)
    snapshot = _parse(snap_data)
    if snap_data is None or snapshot is None:
        return wanted
    site.save(snap_path, snap_data)
    for name, info in snapshot.signed.meta.items():
        role = name.removesuffix(".json")
        path = f"metadata/{info.version}.{parse.quote(role, safe='')}.json"
        data = site.get(path)
        md = _parse(data)
        if data is None or md is None or md.signed.type != "targets":
            continue
        site.save(path, data)
        for target, tf in md.signed.targets.items():
            directory, _, file = target.rpartition("/")
            for digest in tf.hashes.values():
                prefix = f"targets/{directory}/" if directory else "targets/"
                wanted[f"{prefix}{digest}.{file}"] = tf.length
    return wanted


def fetch_previous_site(
    url: str, dest: Path, *, have: set[str], now: datetime, keep: timedelta
) -> bool:
    """Download into ``dest`` what a publish must keep from the site at ``url`` (artifacts
    in ``have`` are skipped). False when there is no site there yet.

    Raises:
        Error: the site cannot be reached or answers with an error other than 404.
    """
    site = _Site(url, dest)
    ts_data = site.get("metadata/timestamp.json")
    timestamp = _parse(ts_data)
    if ts_data is None or timestamp is None or timestamp.signed.type != "timestamp":
        return False
    site.save("metadata/timestamp.json", ts_data)
    wanted = _closure(site, timestamp)
    manifest = site.get(SITE_MANIFEST)
    if manifest is not None:
        site.save(SITE_MANIFEST, manifest)
        superseded = parse_manifest(manifest).superseded
        kept, _ = retention(superseded, set(), superseded, now=now, keep=keep)
        for path in kept:
            wanted.setdefault(path, _ARTIFACT_MAX)
    for path, length in sorted(wanted.items()):
        if not _safe(path) or (dest / path).exists():
            continue
        if path.startswith("metadata/"):
            if not path.endswith(".root.json") and (data := site.get(path)) is not None:
                site.save(path, data)
        elif path not in have:
            site.copy(path, length)
    return True
