"""Artifacts under targets/ and the TargetFiles that describe them.

Target paths are relative to ``targets/`` with ``/`` separators. A path is checked before
any file is read: no absolute paths, no ``..``, no symlinks (a symlink could point outside
the repository), only regular files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tuf.api.metadata import TargetFile

from tufrepo.errors import InputError
from tufrepo.roles import role_for_target

TARGETS_DIR = "targets"
HASH_ALGORITHMS = ["sha256"]


def check_target_path(path: str) -> str:
    """``path`` normalised to a safe relative target path.

    Raises:
        InputError: absolute, empty, with ``..`` / ``.`` components, or control characters.
    """
    if not path or "\0" in path or "\\" in path or any(ord(c) < 32 for c in path):
        raise InputError(f"invalid target path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", ".", "") for part in path.split("/")):
        raise InputError(f"invalid target path {path!r}: must be relative, without '..'")
    return str(pure)


def local_path(checkout: Path, target: str) -> Path:
    """Where ``target`` lives in a checkout."""
    return checkout / TARGETS_DIR / target


def target_file(checkout: Path, target: str) -> TargetFile:
    """The TargetFile (length, sha256) of ``targets/<target>`` in ``checkout``.

    Raises:
        InputError: the path is unsafe, a symlink, not a regular file, or unreadable.
    """
    target = check_target_path(target)
    path = local_path(checkout, target)
    # every component must be a real directory (no symlinked directories either)
    current = checkout / TARGETS_DIR
    for part in PurePosixPath(target).parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError as e:
            raise InputError(f"cannot read targets/{target}: {e.strerror}") from e
        if stat.S_ISLNK(mode):
            raise InputError(f"targets/{target}: symlinks are not allowed under targets/")
    if not stat.S_ISREG(path.lstat().st_mode):
        raise InputError(f"targets/{target} is not a regular file")
    try:
        return TargetFile.from_file(target, str(path), HASH_ALGORITHMS)
    except OSError as e:
        raise InputError(f"cannot read targets/{target}: {e.strerror}") from e


def same_artifact(a: TargetFile, b: TargetFile) -> bool:
    """Same length and same hashes for every algorithm both name (custom fields ignored)."""
    if a.length != b.length:
        return False
    common = set(a.hashes) & set(b.hashes)
    return bool(common) and all(a.hashes[alg] == b.hashes[alg] for alg in common)


@dataclass(frozen=True)
class ArtifactChange:
    """One artifact added, modified or removed by a signing event."""

    role: str
    path: str
    kind: str  # "added" | "modified" | "removed"
    new: TargetFile | None
    old: TargetFile | None


def target_changes_by_role(paths: Iterable[str], delegated: Iterable[str]) -> dict[str, list[str]]:
    """Group changed target paths (relative to targets/) by owning role.

    Raises:
        InputError: a path no role owns (naming it), or an unsafe path.
    """
    roles = set(delegated)
    grouped: dict[str, list[str]] = {}
    for raw in paths:
        path = check_target_path(raw)
        grouped.setdefault(role_for_target(path, roles), []).append(path)
    return grouped


def apply_changes(
    old: dict[str, TargetFile], checkout: Path, changed: Iterable[str]
) -> dict[str, TargetFile]:
    """``old`` updated with the current state of ``changed`` paths in ``checkout``.

    A changed path that exists is (re)hashed, keeping the old entry's custom fields; one that
    no longer exists is removed. Work is proportional to the number of changed paths.
    """
    new = dict(old)
    for path in changed:
        p = local_path(checkout, path)
        if not os.path.lexists(p):
            new.pop(path, None)
            continue
        tf = target_file(checkout, path)
        if path in old:
            tf.unrecognized_fields = dict(old[path].unrecognized_fields)
        new[path] = tf
    return new


def diff_artifacts(
    role: str, old: dict[str, TargetFile], new: dict[str, TargetFile]
) -> list[ArtifactChange]:
    """Artifact changes between two targets dicts, sorted by path."""
    out = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before is None and after is not None:
            out.append(ArtifactChange(role, path, "added", after, None))
        elif after is None and before is not None:
            out.append(ArtifactChange(role, path, "removed", None, before))
        elif before is not None and after is not None and before != after:
            out.append(ArtifactChange(role, path, "modified", after, before))
    return out


def mismatches(expected: dict[str, TargetFile], actual: dict[str, TargetFile]) -> list[str]:
    """Target paths whose metadata differs from the files (missing, extra, or changed)."""
    problems = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            problems.append(f"targets/{path} is not in the metadata")
        elif path not in expected:
            problems.append(f"{path} is in the metadata but not under targets/")
        elif not same_artifact(expected[path], actual[path]):
            problems.append(f"{path}: metadata length/hash differ from targets/{path}")
    return problems


def scan_all(checkout: Path, delegated: Iterable[str]) -> dict[str, dict[str, TargetFile]]:
    """Every artifact under targets/, hashed and grouped by owning role (for ``verify``).

    Raises:
        InputError: an unowned file, a symlink, or an unreadable file.
    """
    base = checkout / TARGETS_DIR
    paths: list[str] = []
    if base.is_dir():
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            rel_dir = Path(dirpath).relative_to(base)
            for name in dirnames:
                if (Path(dirpath) / name).is_symlink():
                    rel = (rel_dir / name).as_posix()
                    raise InputError(f"targets/{rel}: symlinks are not allowed under targets/")
            for name in filenames:
                rel = (rel_dir / name).as_posix()
                if rel == ".gitkeep":
                    continue
                paths.append(rel)
    grouped = target_changes_by_role(paths, delegated)
    return {
        role: {path: target_file(checkout, path) for path in role_paths}
        for role, role_paths in grouped.items()
    }
