"""Atomic file writes: the one implementation every module uses.

A file is written into a temporary file in the destination's directory (flushed to disk),
then renamed over the destination (or linked to it, for files that must not replace an
existing one). A reader sees the old file or the new one, never half of one; on failure the
temporary file is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tufrepo.errors import InputError


def stage(dest: Path, content: bytes | Path, *, mode: int | None = None) -> Path:
    """Write ``content`` (bytes, or a file to copy) into a new temp file beside ``dest``.

    The caller renames it into place (``Path.replace``) or removes it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(content, bytes):
                out.write(content)
            else:
                with content.open("rb") as src:
                    shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
            if mode is not None:
                os.fchmod(out.fileno(), mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(
    dest: Path, content: bytes | Path, *, mode: int | None = None, exclusive: bool = False
) -> None:
    """Create or replace ``dest`` atomically (``exclusive``: never replace an existing file).

    Raises:
        InputError: ``exclusive`` and ``dest`` exists.
        OSError: the file system refused.
    """
    tmp = stage(dest, content, mode=mode)
    try:
        if exclusive:
            try:
                os.link(tmp, dest)  # fails if dest exists, unlike rename
            except FileExistsError as e:
                raise InputError(f"{dest} exists: refusing to overwrite it") from e
        else:
            tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
