"""Where a published site lives: a directory, or an object-store bucket (S3, GCS, Azure).

``tufrepo.publish`` decides *what* a site must hold and in which order; a store only lists,
reads, writes and deletes files by their site path (``metadata/3.targets.json``). Two stores:

* ``DirectorySite``: a directory (GitHub/GitLab Pages, any static web server). Each file is
  written atomically (temporary file beside it, then rename); temporary files left by a
  killed publish (``.<name>.<random>.tmp``) are removed by the next one.
* ``ObjectSite``: ``s3://BUCKET/PREFIX``, ``gs://BUCKET/PREFIX``, ``az://CONTAINER/PREFIX``
  through `obstore <https://developmentseed.org/obstore/>`_ (the optional extra
  ``tufrepo[objectstore]``), with each cloud's usual environment credentials. A PUT is
  atomic on all three; every object gets a ``Content-Type`` and a ``Cache-Control``.

Credentials are read from the environment only, never from the command line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from tufrepo.client import SITE_MANIFEST
from tufrepo.errors import Error, InputError
from tufrepo.files import atomic_write

__all__ = [
    "SCHEMES",
    "DirectorySite",
    "Headers",
    "ObjectSite",
    "SiteStore",
    "check_outdir",
    "is_store_url",
    "open_object_site",
]

SCHEMES = ("s3", "gs", "az")
EXTRA = "tufrepo[objectstore]"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
_JUNK = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # files.stage()'s temporary names
_DIRS = ("metadata", "targets")

# Any one of these sets of variables is a credential object_store can use (OIDC federation
# included: AWS web identity, Azure federated token or the az CLI, a GCP access token).
_CREDENTIALS: dict[str, list[tuple[str, ...]]] = {
    "s3": [
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI",),
        ("AWS_METADATA_ENDPOINT",),  # an EC2 instance profile, asked for explicitly
    ],
    "gs": [
        ("GOOGLE_APPLICATION_CREDENTIALS",),
        ("GOOGLE_SERVICE_ACCOUNT",),
        ("GOOGLE_SERVICE_ACCOUNT_PATH",),
        ("GOOGLE_SERVICE_ACCOUNT_KEY",),
        ("GOOGLE_BEARER_TOKEN",),
    ],
    "az": [
        ("AZURE_STORAGE_ACCOUNT_KEY",),
        ("AZURE_STORAGE_SAS_KEY",),
        ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"),
        ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"),
        ("AZURE_USE_AZURE_CLI",),
    ],
}


@dataclass(frozen=True)
class Headers:
    """HTTP headers an object is served with (a directory cannot hold them)."""

    content_type: str
    cache_control: str


class SiteStore(Protocol):
    """The operations publish needs from where a site lives."""

    label: str

    def listing(self) -> dict[str, int]:
        """Every file of the site (site path -> size), temporary files excluded."""

    def read(self, path: str) -> bytes | None:
        """A file's bytes, None when it is missing."""

    def put(self, path: str, content: bytes | Path, headers: Headers) -> None:
        """Create or replace a file atomically."""

    def delete(self, paths: list[str]) -> None:
        """Remove files (missing ones are fine)."""


def is_store_url(text: str) -> bool:
    """Whether ``text`` names a URL rather than a directory (``s3://``, ``https://``...)."""
    return _URL.match(text) is not None


# --- a directory ----------------------------------------------------------------------------


class DirectorySite:
    """A site in a local directory."""

    def __init__(self, root: Path, *, clean: bool = False) -> None:
        """``clean``: remove the temporary files of a killed publish while listing."""
        self.root = root
        self.label = str(root)
        self.clean = clean

    def listing(self) -> dict[str, int]:
        found: dict[str, int] = {}
        stack = [("", str(self.root))]  # string operations: sites can be large
        while stack:
            prefix, directory = stack.pop()
            with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((prefix + entry.name + "/", entry.path))
                    elif not entry.is_file(follow_symlinks=False):
                        continue
                    elif not _JUNK.match(entry.name):
                        found[prefix + entry.name] = entry.stat(follow_symlinks=False).st_size
                    elif self.clean:
                        Path(entry.path).unlink(missing_ok=True)
        return found

    def remove_junk(self, paths: list[str]) -> None:
        """Temporary files a killed publish left beside ``paths`` (files it was writing)."""
        for directory in {(self.root / p).parent for p in paths} | {self.root}:
            with contextlib.suppress(OSError), os.scandir(directory) as entries:
                for entry in entries:
                    if _JUNK.match(entry.name) and entry.is_file(follow_symlinks=False):
                        Path(entry.path).unlink(missing_ok=True)

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def put(self, path: str, content: bytes | Path, headers: Headers) -> None:
        del headers  # a directory serves what its web server decides
        atomic_write(self.root / path, content, mode=0o644)

    def delete(self, paths: list[str]) -> None:
        """Remove files, then directories under targets/ that became empty."""
        for path in paths:
            (self.root / path).unlink(missing_ok=True)
        top = self.root / "targets"
        for start in sorted({(self.root / p).parent for p in paths}, key=lambda d: -len(d.parts)):
            parent = start
            while parent != top and parent.is_relative_to(top):
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only succeeds when empty
                parent = parent.parent


def check_outdir(outdir: Path, previous: Path | str | None) -> bool:
    """Whether ``outdir`` holds a site to update in place; InputError when unusable."""
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"OUTDIR {outdir} exists and is not a directory")
    in_place = outdir.is_dir() and any(outdir.iterdir())
    if in_place and not is_site(outdir):
        raise InputError(f"OUTDIR {outdir} is not empty and holds no published site")
    if previous is not None:
        if in_place:
            raise InputError(f"OUTDIR {outdir} already holds a site: drop --previous")
        if not (Path(previous).is_dir() and is_site(Path(previous))):
            raise InputError(f"--previous {previous} is not a published site")
    return in_place


def is_site(path: Path) -> bool:
    """A tufrepo site (manifest), or a consistent-snapshot site made by another tool; never
    a repository checkout (which has metadata/root_history/)."""
    if (path / "metadata" / "root_history").exists():
        return False
    return (path / SITE_MANIFEST).is_file() or (
        (path / "metadata/timestamp.json").is_file()
        and (path / "metadata" / "1.root.json").is_file()
    )


def scratch(outdir: Path, kind: str) -> str:
    """Name prefix of publish's scratch directories beside ``outdir`` (outside the site)."""
    return f".{outdir.name}.tufrepo-{kind}"


def remove_scratch(outdir: Path) -> None:
    """Scratch directories a killed publish left beside ``outdir``."""
    if outdir.parent.is_dir():
        for kind in ("stage", "previous"):
            for old in outdir.parent.glob(scratch(outdir, kind) + "*"):
                shutil.rmtree(old, ignore_errors=True)


# --- an object store --------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _status(e: BaseException) -> int | None:
    found = re.search(r"status(?: code)?:? (\d{3})", str(e))
    return int(found.group(1)) if found else None


class ObjectSite:
    """A site under a prefix of an object-store bucket (through obstore)."""

    def __init__(self, store: Any, label: str) -> None:
        self.store = store
        self.label = label

    def _fail(self, what: str, e: BaseException) -> Error:
        status = _status(e)
        reason = _first_line(e)
        if status == 404 or "NoSuchBucket" in str(e) or "ContainerNotFound" in str(e):
            return InputError(f"{self.label}: the bucket does not exist ({what})")
        if status in (401, 403):
            return InputError(f"{self.label}: access denied ({what}); check the credentials")
        return Error(f"{self.label}: cannot {what}: {reason}")

    def listing(self) -> dict[str, int]:
        import obstore

        try:
            return {
                meta["path"]: meta["size"] for chunk in obstore.list(self.store) for meta in chunk
            }
        except Exception as e:  # obstore raises its own tree and builtins for I/O
            raise self._fail("list the site", e) from e

    def read(self, path: str) -> bytes | None:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            return bytes(obstore.get(self.store, path).bytes())
        except (NotFoundError, FileNotFoundError):
            return None
        except Exception as e:
            raise self._fail(f"read {path}", e) from e

    def put(self, path: str, content: bytes | Path, headers: Headers) -> None:
        import obstore

        attributes: Mapping[str, str] = {
            "Content-Type": headers.content_type,
            "Cache-Control": headers.cache_control,
        }
        try:
            # metadata and pages in one PUT; large artifacts in parts
            multipart = None if isinstance(content, Path) else False
            obstore.put(
                self.store, path, content, attributes=dict(attributes), use_multipart=multipart
            )
        except Exception as e:
            raise self._fail(f"upload {path}", e) from e

    def delete(self, paths: list[str]) -> None:
        import obstore

        try:
            for start in range(0, len(paths), 1000):
                obstore.delete(self.store, paths[start : start + 1000])
        except Exception as e:
            raise self._fail("delete pruned files", e) from e


def _check_credentials(scheme: str, env: Mapping[str, str]) -> None:
    if any(all(env.get(name) for name in names) for names in _CREDENTIALS[scheme]):
        return
    first = " + ".join(_CREDENTIALS[scheme][0])
    federated = " + ".join(_CREDENTIALS[scheme][1])
    raise InputError(
        f"no {scheme}:// credentials in the environment (e.g. {first}, or {federated}); "
        "see docs/publishing.md"
    )


def open_object_site(url: str, env: Mapping[str, str] | None = None) -> ObjectSite:
    """The bucket and prefix that ``url`` names, with credentials from the environment.

    Raises:
        InputError: an unknown scheme, no bucket, no credentials in the environment, or the
            optional dependency is missing.
    """
    env = os.environ if env is None else env
    found = _URL.match(url)
    scheme = found.group(1).lower() if found else ""
    if scheme not in SCHEMES:
        raise InputError(
            f"cannot publish to {url.split('://', 1)[0]}:// URLs: give a directory or "
            f"{', '.join(s + '://BUCKET/PREFIX' for s in SCHEMES)}"
        )
    rest = found.group(2) if found else ""
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise InputError(f"{url}: no bucket named")
    _check_credentials(scheme, env)
    try:
        from obstore.store import from_url
    except ImportError as e:
        raise InputError(f"publishing to {scheme}:// needs obstore: pip install '{EXTRA}'") from e
    label = url.rstrip("/")
    try:
        store = from_url(
            label,
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=60)},
        )
    except Exception as e:  # obstore's configuration errors
        raise InputError(f"{url}: {_first_line(e)}") from e
    return ObjectSite(store, label)
