"""Reading the checkout and the recorded commit for ``tufrepo.site_delta``: each metadata
file read once (the checkout's checked to be HEAD's), decoded once as JSON, and a role's
entries compared without building python-tuf objects for the unchanged ones (a flat role of
100,000 artifacts is a 14.6 MB file); and serving the new metadata to the client that
verifies it (``Served``)."""

from __future__ import annotations

import copy
import hashlib
import json
import operator
from collections.abc import Iterator, Mapping
from itertools import compress
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api.metadata import Metadata, TargetFile
from tuf.ngclient import Updater

from tufrepo.git import GitRepo
from tufrepo.jsonfast import loads_unique
from tufrepo.site_manifest import TIMESTAMP

__all__ = [
    "HISTORY",
    "SITE",
    "FullPublish",
    "Reader",
    "Served",
    "differing",
    "git_blob_id",
    "parse_metadata",
    "refresh_top",
    "target_file",
]

HISTORY = "metadata/root_history/"
SITE = "memory://site"


class FullPublish(Exception):  # noqa: N818 - a signal to the caller, not an error
    """The record cannot be used for this publish; the message says why (for the log)."""


def git_blob_id(data: bytes, like: str | None = None) -> str:
    """git's id of a blob holding ``data`` (SHA-256 when ``like`` is such an id)."""
    algorithm = "sha256" if like is not None and len(like) == 64 else "sha1"
    return hashlib.new(algorithm, b"blob %d\0" % len(data) + data).hexdigest()


class Reader:
    """Metadata files of the checkout, each checked to be HEAD's (a file with uncommitted
    changes means a full publish, which publishes the work tree), and of the recorded
    commit (git objects)."""

    def __init__(self, checkout: Path, repo: GitRepo, new: dict[str, str], old: dict[str, str]):
        self.checkout, self.repo, self.new_ids, self.old_ids = checkout, repo, new, old
        self.reads: list[str] = []
        self._parsed: dict[tuple[str, str], Any] = {}
        self._docs: dict[tuple[str, str], Any] = {}
        self._new: dict[str, bytes] = {}

    def new(self, path: str) -> bytes:
        if path in self._new:
            return self._new[path]
        blob = self.new_ids.get(path)
        try:
            data = (self.checkout / path).read_bytes()
        except OSError as e:
            raise FullPublish(f"cannot read {path}: {e.strerror}") from e
        if blob is None or git_blob_id(data, blob) != blob:
            raise FullPublish(f"{path} differs from HEAD's (uncommitted changes)")
        self.reads.append(path)
        self._new[path] = data
        return data

    def old(self, path: str) -> bytes | None:
        blob = self.old_ids.get(path)
        return None if blob is None else self.repo.read_object(blob)

    def parsed(self, which: str, path: str) -> Any:
        """The metadata at ``path`` (``which``: "new" or "old"; None when absent)."""
        key = (which, path)
        if key not in self._parsed:
            data = self.new(path) if which == "new" else self.old(path)
            self._parsed[key] = None if data is None else parse_metadata(data, path)
        return self._parsed[key]

    def doc(self, which: str, path: str) -> Any:
        """The JSON of the metadata at ``path`` (None when absent), decoded once: a big
        role's entries are read from it, never built into python-tuf objects. A new file
        with a duplicate key is refused; the recorded commit's was published already, as
        python-tuf (``json.loads``) read it."""
        key = (which, path)
        if key not in self._docs:
            data = self.new(path) if which == "new" else self.old(path)
            decode = loads_unique if which == "new" else json.loads
            try:
                self._docs[key] = None if data is None else decode(data)
            except ValueError as e:
                raise FullPublish(f"{path} is not valid TUF metadata") from e
        return self._docs[key]

    def shell(self, which: str, path: str) -> Any:
        """The targets-type metadata at ``path`` without its entries (version, expiry,
        delegations, signatures; None when absent): cheap however many artifacts it lists."""
        key = ("shell " + which, path)
        if key not in self._parsed:
            doc = self.doc(which, path)
            self._parsed[key] = None if doc is None else _shell(doc, path)
        return self._parsed[key]

    def entries(self, which: str, path: str) -> dict[str, Any]:
        """The ``targets`` entries of the role at ``path`` as JSON (none when absent)."""
        doc = self.doc(which, path)
        found = doc.get("signed", {}).get("targets") if isinstance(doc, dict) else None
        if doc is not None and not isinstance(found, dict):
            raise FullPublish(f"{path} is not valid targets metadata")
        return found or {}


def parse_metadata(data: bytes, path: str) -> Any:
    try:
        return Metadata.from_bytes(data)
    except Exception as e:  # python-tuf raises many types for bad input
        raise FullPublish(f"{path} is not valid TUF metadata") from e


def _shell(doc: Any, path: str) -> Any:
    if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
        raise FullPublish(f"{path} is not valid TUF metadata")
    signed = {k: v for k, v in doc["signed"].items() if k != "targets"}
    if "targets" in doc["signed"]:
        signed["targets"] = {}
    light = copy.deepcopy({**doc, "signed": signed})  # from_dict consumes what it reads
    try:
        md = Metadata.from_dict(light)
    except Exception as e:  # python-tuf raises many types for bad input
        raise FullPublish(f"{path} is not valid TUF metadata") from e
    if md.signed.type != "targets":
        raise FullPublish(f"{path} is not targets metadata")
    return md


def _same(a: Any, b: Any) -> bool:
    """Two entries (JSON) name the same file: length and hashes (custom fields aside)."""
    if a == b:
        return True
    return bool(a.get("length") == b.get("length") and a.get("hashes") == b.get("hashes"))


def differing(entries: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Paths of ``entries`` that ``other`` lacks or lists with another length or hashes
    (the loops over every entry run in C: 100,000 of them in a flat role)."""
    paths = list(entries)
    unequal = compress(paths, map(operator.ne, map(other.get, paths), entries.values()))
    return [p for p in unequal if p not in other or not _same(other[p], entries[p])]


def target_file(path: str, entry: Any) -> TargetFile:
    """The entry of a new or removed artifact, checked as python-tuf reads it."""
    try:
        return TargetFile.from_dict(copy.deepcopy(entry), path)
    except Exception as e:  # python-tuf raises many types for bad input
        raise FullPublish(f"the entry of {path} is not valid") from e


def refresh_top(updater: Updater) -> None:
    """``updater.refresh()`` without its last step, loading targets: root chain, timestamp,
    snapshot, each verified as refresh does (python-tuf's own steps; refresh itself should
    a later python-tuf lack them)."""
    steps = [getattr(updater, f"_load_{name}", None) for name in ("root", "timestamp", "snapshot")]
    if not all(callable(step) for step in steps):
        updater.refresh()
        return
    for step in steps:
        step()  # type: ignore[misc]


class Served(Mapping[str, bytes]):
    """The new site's metadata as the client asks for it (``memory://site/...``): new files
    from the delta, unchanged roles read from the checkout when a walk passes them."""

    def __init__(self, reader: Reader, files: dict[str, bytes], snap: Any):
        self.reader, self.files, self.meta = reader, files, snap.signed.meta
        self.snapshot = snap.signed.version

    def _path(self, url: str) -> str | None:
        site = url.removeprefix(f"{SITE}/")
        if site in self.files or site == TIMESTAMP:
            return site
        if site == f"metadata/{self.snapshot}.snapshot.json":
            return "metadata/snapshot.json"
        name = site.removeprefix("metadata/")
        version, _, rest = name.partition(".")
        role = parse.unquote(rest.removesuffix(".json"))
        if rest.endswith(".json") and version.isdigit():
            if role == "root":
                return f"{HISTORY}{version}.root.json"
            info = self.meta.get(f"{role}.json")
            if info is not None and str(info.version) == version:
                return f"metadata/{role}.json"
        return None

    def __getitem__(self, url: str) -> bytes:
        site = url.removeprefix(f"{SITE}/")
        if site in self.files:
            return self.files[site]
        path = self._path(url)
        if path is None or path not in self.reader.new_ids:
            raise KeyError(url)
        return self.reader.new(path)

    def __contains__(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        path = self._path(url)
        return path is not None and (path in self.files or path in self.reader.new_ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)
