"""Pure bookkeeping of a published site: the manifest, what to keep, what to prune, headers.

``tufrepo-site.json`` (format 3) records what a publish needs to know about earlier ones::

    {"format": 3, "timestamp": 7,
     "commit": "<the git commit published>",
     "metadata": {"metadata/3.targets.json": "<sha256>", ...},   # metadata files on the site
     "superseded": {"targets/R/<sha256>.app-1.0.tgz": "2026-01-01T00:00:00Z", ...},
     "hosted_elsewhere": ["R/x/y/z/big.iso"],
     "roles": {"targets": {"version": 3, "expires": "...", "threshold": 1,
                           "keys": ["@alice (...)"], "signed": ["@alice (...)"],
                           "signing_days": 60, "targets": 2, "files": 2}, ...},
     "pending": ["metadata/4.targets.json", ...]}

``superseded`` names each file of the site that the current timestamp no longer leads to,
with the time it stopped being current. It grows with what changed, never with the size of
the site (current files are what the repository's metadata names). ``commit`` (absent when
the published metadata was not that of a commit) lets the next publish ask git what changed
instead of reading the whole repository and site; ``roles`` holds what ``index.html`` shows
of each role; ``pending`` names the files a publish is about to write (the record is written
once before them and once after ``timestamp.json``), so that the next publish knows of
files an interrupted one left. None of it is trusted for security (docs/performance.md).
Format 1 (one record per publish, listing every file) and 2 (no commit) are read too.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tufrepo.errors import InputError, MetadataError
from tufrepo.site_store import Headers

if TYPE_CHECKING:
    from tuf.api.metadata import Root

__all__ = [
    "DEFAULT_MAX_AGE",
    "IMMUTABLE",
    "TIMESTAMP",
    "Manifest",
    "RoleFacts",
    "check_max_age",
    "headers_for",
    "is_versioned",
    "parse_manifest",
    "retention",
    "upload_step",
]

TIMESTAMP = "metadata/timestamp.json"
IMMUTABLE = "public, max-age=31536000, immutable"
DEFAULT_MAX_AGE = 300
"""Seconds a CDN or browser may cache ``timestamp.json`` and the other unversioned files."""
_FORMAT = 3
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}
_SAFE_TYPES = ("application/", "image/png", "image/jpeg", "text/plain")


def is_versioned(site_path: str) -> bool:
    """``N.root.json``, ``V.role.json`` and ``targets/...``: names whose content never changes."""
    if site_path.startswith("targets/"):
        return True
    name = site_path.removeprefix("metadata/")
    return site_path.startswith("metadata/") and name.split(".", 1)[0].isdigit()


def _content_type(site_path: str) -> str:
    if site_path.endswith(".json") and not site_path.startswith("targets/"):
        return "application/json"
    if site_path == "index.html":
        return "text/html; charset=utf-8"
    guessed, encoding = mimetypes.guess_type(site_path.rsplit("/", 1)[-1], strict=False)
    if encoding is not None:  # app.tar.gz is a gzip file (no Content-Encoding: a CDN or
        guessed = _COMPRESSED.get(encoding)  # browser would unpack it)
    # artifacts share the site's origin with index.html: never serve them as HTML or script
    if guessed is None or not guessed.startswith(_SAFE_TYPES):
        return "application/octet-stream"
    if guessed in ("application/javascript", "application/xhtml+xml"):
        return "application/octet-stream"
    return guessed


def headers_for(site_path: str, max_age: int) -> Headers:
    """Versioned files are immutable; the others may be cached ``max_age`` seconds."""
    cache = IMMUTABLE if is_versioned(site_path) else f"public, max-age={max_age}"
    return Headers(_content_type(site_path), cache)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """``YYYY-MM-DDTHH:MM:SSZ`` (ValueError otherwise); not ``strptime``, which costs 0.1 s
    for the 1,024 roles of a record at a million artifacts."""
    if len(text) != 20 or text[10] != "T" or not text.endswith("Z"):
        raise ValueError(f"not an ISO 8601 UTC time: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RoleFacts:
    """What ``index.html`` shows of one published role (keys as ``describe_key`` words)."""

    version: int
    expires: datetime
    threshold: int
    keys: tuple[str, ...]
    signed: tuple[str, ...]
    signing_days: int | None
    targets: int = 0
    """Artifacts the role lists."""
    files: int = 0
    """Site files of its artifacts (one per hash; none for those hosted elsewhere)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "expires": iso(self.expires),
            "threshold": self.threshold,
            "keys": list(self.keys),
            "signed": list(self.signed),
            "signing_days": self.signing_days,
            "targets": self.targets,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RoleFacts:
        """Raises ValueError, KeyError or TypeError for a malformed record."""
        days = obj["signing_days"]
        return cls(
            version=int(obj["version"]),
            expires=parse_iso(str(obj["expires"])),
            threshold=int(obj["threshold"]),
            keys=tuple(str(k) for k in obj["keys"]),
            signed=tuple(str(k) for k in obj["signed"]),
            signing_days=None if days is None else int(days),
            targets=int(obj["targets"]),
            files=int(obj["files"]),
        )


@dataclass
class Manifest:
    """What the previous publish recorded (empty for a new site or an unreadable manifest)."""

    metadata: dict[str, str] = field(default_factory=dict)
    superseded: dict[str, str] = field(default_factory=dict)
    hosted_elsewhere: list[str] = field(default_factory=list)
    commit: str | None = None
    """The git commit whose metadata the site serves (None: unknown, publish in full)."""
    timestamp: int | None = None
    roles: dict[str, RoleFacts] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    def to_bytes(self, timestamp: int) -> bytes:
        head = {
            "format": _FORMAT,
            "timestamp": timestamp,
            "commit": self.commit,
            "metadata": self.metadata,
            "superseded": self.superseded,
            "hosted_elsewhere": self.hosted_elsewhere,
            "pending": self.pending,
        }
        # one line per role, through json's C encoder (``indent`` takes the pure-Python
        # one: 0.1 s for the 1,024 roles of a million artifacts)
        roles = ",\n ".join(
            f"{json.dumps(name)}: {json.dumps(facts.to_json(), sort_keys=True)}"
            for name, facts in sorted(self.roles.items())
        )
        return f'{json.dumps(head, sort_keys=True)[:-1]}, "roles": {{\n {roles}}}}}\n'.encode()


def _from_records(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Format 1: a file stopped being current when the last publish naming it did."""
    latest: dict[str, str | None] = {}
    for rec in records:
        for path in rec["files"]:
            when = rec.get("superseded")
            old = latest.get(path, "")
            latest[path] = None if when is None or old is None else max(str(when), old)
    return {p: w for p, w in latest.items() if w is not None}


def parse_manifest(data: bytes | None) -> Manifest:
    """The manifest in ``data``; an empty one when it is missing or unusable (the files it
    would have named then count as superseded now, see ``retention``)."""
    if data is None:
        return Manifest()
    try:
        obj = json.loads(data)
        if obj["format"] == 1:
            return Manifest(superseded=_from_records(obj["publishes"]))
        if obj["format"] in (2, _FORMAT):
            found = Manifest(
                metadata={str(k): str(v) for k, v in obj["metadata"].items()},
                superseded={str(k): str(v) for k, v in obj["superseded"].items()},
                hosted_elsewhere=[str(p) for p in obj.get("hosted_elsewhere", [])],
            )
        else:
            return Manifest()
    except (ValueError, KeyError, TypeError, AttributeError):
        return Manifest()
    if obj["format"] == _FORMAT:
        try:  # what only saves work: a malformed part means a full publish, nothing lost
            found.roles = {str(k): RoleFacts.from_json(v) for k, v in obj["roles"].items()}
            found.pending = [str(p) for p in obj["pending"]]
            commit, timestamp = obj["commit"], obj["timestamp"]
            if isinstance(commit, str) and isinstance(timestamp, int):
                found.commit, found.timestamp = commit, timestamp
        except (ValueError, KeyError, TypeError, AttributeError):
            found.roles, found.pending = {}, []
    return found


def retention(
    present: Iterable[str],
    current: set[str],
    superseded: Mapping[str, str],
    *,
    now: datetime,
    keep: timedelta,
) -> tuple[dict[str, str], list[str]]:
    """(files kept since they stopped being current, files to prune) among ``present``.

    A versioned file that the new publish does not use stopped being current at the time
    ``superseded`` records, or now when it records none (a site made by another tool, a lost
    manifest, a publish interrupted after its timestamp). It is kept until ``keep`` has
    passed since then; roots are never pruned.
    """
    kept: dict[str, str] = {}
    prune: list[str] = []
    stamp = iso(now)
    for path in sorted(set(present) - current):
        if not is_versioned(path):
            continue
        since = superseded.get(path, stamp)
        try:
            recent = now - parse_iso(since) < keep
        except ValueError:
            since, recent = stamp, True
        if recent or path.endswith(".root.json"):
            kept[path] = since
        else:
            prune.append(path)
    return kept, prune


def upload_step(path: str) -> int:
    """Upload order: artifacts, targets roles, snapshot, roots, timestamp."""
    if path.startswith("targets/"):
        return 0
    if path == TIMESTAMP:
        return 4
    if path.endswith(".root.json"):
        return 3
    return 2 if path.endswith(".snapshot.json") else 1


def check_max_age(root: Root, max_age: int) -> None:
    """Refuse a ``max_age`` that lets a CDN serve a timestamp past its refresh.

    Raises:
        InputError: ``max_age`` is not below the timestamp's signing period.
    """
    from tufrepo.roles import periods

    try:
        expiry, signing = periods("timestamp", root, None)
    except MetadataError:
        return  # a root without tuf-on-ci's periods: nothing to compare with
    limit = (signing or expiry) * 86400
    if max_age >= limit:
        raise InputError(
            f"--max-age {max_age}s is not below the timestamp's signing period ({limit}s): "
            "a CDN could serve an expired timestamp"
        )
