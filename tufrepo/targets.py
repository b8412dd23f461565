"""Artifacts under targets/ and the TargetFiles that describe them.

Target paths are relative to ``targets/`` with ``/`` separators. A path is checked before
any file is read: no absolute paths, no ``..``, no symlinks (a symlink could point outside
the repository), only regular files. Names starting with ``.`` (``targets/R/.gitkeep``) are
not artifacts, as in tuf-on-ci, whose target patterns (``*``, ``R/*``, ...) never match them.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import compress
from operator import is_not
from pathlib import Path, PurePosixPath

from tuf.api.metadata import TargetFile

from tufrepo.errors import InputError
from tufrepo.progress import ProgressFactory, steps
from tufrepo.roles import RoleMap

TARGETS_DIR = "targets"
DESCRIPTORS_DIR = "descriptors"
"""Artifacts not stored in git: ``descriptors/<target path>.json`` = {length, hashes, custom}."""
DESCRIPTOR_SUFFIX = ".json"
CONTENT_DIRS = ("metadata", TARGETS_DIR, DESCRIPTORS_DIR)
"""Directories of a checkout that tufrepo writes (and restores when a command fails)."""
HASH_ALGORITHMS = ["sha256"]
_HEX = set("0123456789abcdef")


def is_artifact_path(path: str) -> bool:
    """False for paths with a component starting with ``.``: tuf-on-ci never lists those."""
    return not any(part.startswith(".") for part in path.split("/"))


_URL_SPECIAL = {"#": "starts a URL fragment", "?": "starts a URL query",
                "%": "starts a URL escape", "\\": "is a path separator to URL parsers"}  # fmt: skip
_INVISIBLE = ("Cc", "Cf", "Cs")  # control, format (bidi, zero-width) and surrogate characters


def path_problem(path: str, *, removal: bool = False) -> str | None:
    """Why target ``path`` breaks the artifact path rule, or None when it is fine.

    The rule allows only what every client fetches as it is (python-tuf and tuf-js put the
    path into the download URL unescaped): no ``#``, ``?``, ``%``, ``\\``, control or
    invisible formatting characters; no empty, ``.`` or ``..`` segments (so no absolute
    path); the Unicode NFC form; no hidden names (not artifacts, as in tuf-on-ci). Spaces and
    letters of any script are allowed. Pure: the same answer at every command.

    ``removal``: only what keeps the path inside ``targets/`` (no empty, ``.``, ``..``
    segments, no NUL), so that an artifact named before the rule existed can be removed.
    """
    inside = [
        (not path or "\0" in path, "empty, or with a NUL character"),
        (
            any(part in ("..", ".", "") for part in path.split("/")),
            "must be relative, without empty, '.' or '..' segments",
        ),
    ]
    if removal:
        return next((why for broken, why in inside if broken), None)
    special = next((c for c in path if c in _URL_SPECIAL), None)
    invisible = next((c for c in path if unicodedata.category(c) in _INVISIBLE), None)
    rules = [
        inside[0],
        (special is not None, f"{special!r} {_URL_SPECIAL.get(special or '')}"),
        (invisible is not None, f"control or invisible character U+{ord(invisible or ' '):04X}"),
        inside[1],
        (
            unicodedata.normalize("NFC", path) != path,
            "not in Unicode NFC form (clients on other systems would ask for other bytes)",
        ),
        (
            not is_artifact_path(path),
            "names starting with '.' are not artifacts (tuf-on-ci skips them)",
        ),
    ]
    return next((why for broken, why in rules if broken), None)


def check_target_path(path: str, *, removal: bool = False) -> str:
    """``path`` when it follows the artifact path rule (:func:`path_problem`).

    Raises:
        InputError: one line naming the path and the rule it breaks.
    """
    problem = path_problem(path, removal=removal)
    if problem is not None:
        raise InputError(f"invalid target path {path!r}: {problem}")
    return path


def path_clashes(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(file, other) pairs where target ``file`` is also a directory of target ``other``
    (``app/x`` and ``app/x/inner.txt``): a checkout cannot hold both, nor can a client's
    download directory. Sorted; pure."""
    names = set(paths)
    out = set()
    for path in names:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in names:
                out.add((parent, path))
    return sorted(out)


def check_clashes(paths: Iterable[str]) -> None:
    """Raises InputError naming the first file/directory clash among ``paths``."""
    clashes = path_clashes(paths)
    if clashes:
        file, other = clashes[0]
        raise InputError(
            f"invalid target path {other!r}: {file!r} is an artifact, so it cannot also be "
            "a directory (file/directory clash)"
        )


def local_path(checkout: Path, target: str) -> Path:
    """Where ``target`` lives in a checkout."""
    return checkout / TARGETS_DIR / target


def target_file(checkout: Path, target: str) -> TargetFile:
    """The TargetFile (length, sha256) of ``targets/<target>`` in ``checkout``.

    Raises:
        InputError: the path is unsafe, a symlink, not a regular file, or unreadable.
    """
    target = check_target_path(target)
    path = check_no_symlink(checkout / TARGETS_DIR, target, TARGETS_DIR)
    try:
        mode = path.lstat().st_mode
    except OSError as e:
        raise InputError(f"cannot read targets/{target}: {e.strerror}") from e
    if not stat.S_ISREG(mode):
        raise InputError(f"targets/{target} is not a regular file")
    try:
        return TargetFile.from_file(target, str(path), HASH_ALGORITHMS)
    except OSError as e:
        raise InputError(f"cannot read targets/{target}: {e.strerror}") from e


def descriptor_path(checkout: Path, target: str) -> Path:
    """Where the descriptor of ``target`` lives in a checkout."""
    return checkout / DESCRIPTORS_DIR / f"{target}{DESCRIPTOR_SUFFIX}"


def parse_descriptor(target: str, data: bytes) -> TargetFile:
    """A TargetFile from a descriptor: ``{"length": N, "hashes": {"sha256": HEX}, "custom": {}}``.

    Raises:
        InputError: not JSON, or a missing/invalid length, sha256 or custom field.
    """
    where = f"descriptor of {target}"
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise InputError(f"{where} is not JSON: {e}") from e
    if not isinstance(obj, dict) or set(obj) - {"length", "hashes", "custom"}:
        raise InputError(f"{where} must be an object with length, hashes and optional custom")
    length, hashes, custom = obj.get("length"), obj.get("hashes"), obj.get("custom")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise InputError(f"{where}: length must be a whole number of bytes")
    if not isinstance(hashes, dict) or "sha256" not in hashes:
        raise InputError(f"{where}: hashes must include sha256")
    for alg, value in hashes.items():
        if not isinstance(value, str) or not value or set(value) - _HEX:
            raise InputError(f"{where}: hash {alg} must be lower-case hex")
    if len(hashes["sha256"]) != 64:
        raise InputError(f"{where}: sha256 must be 64 hex digits")
    fields = {"custom": custom} if custom is not None else {}
    if custom is not None and not isinstance(custom, dict):
        raise InputError(f"{where}: custom must be an object")
    return TargetFile(length, dict(hashes), target, fields)


def _present(path: Path) -> bool:
    """Something other than a directory is at ``path`` (a symlink counts: refused later)."""
    return path.is_symlink() or (os.path.lexists(path) and not path.is_dir())


def exists_artifact(checkout: Path, target: str) -> bool:
    """``target`` has a file under targets/ or a descriptor (a directory is not one)."""
    return _present(local_path(checkout, target)) or _present(descriptor_path(checkout, target))


def artifacts_around(checkout: Path, path: str) -> list[str]:
    """Artifacts in ``checkout`` that would clash with a new artifact at ``path``: parent
    directories of ``path`` that are artifacts (files or descriptors), and the first file
    under ``path`` when it is a directory. Work grows with the depth of ``path``."""
    for label in (TARGETS_DIR, DESCRIPTORS_DIR):
        check_no_symlink(checkout / label, path, label)
    out = []
    parts = path.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if local_path(checkout, parent).is_file() or descriptor_path(checkout, parent).is_file():
            out.append(parent)
    for label in (TARGETS_DIR, DESCRIPTORS_DIR):
        base = checkout / label
        inner = next((f for f in (base / path).rglob("*") if not f.is_dir()), None)
        if inner is not None:
            rel = inner.relative_to(base).as_posix()
            out.append(rel if label == TARGETS_DIR else rel.removesuffix(DESCRIPTOR_SUFFIX))
    return out


def check_no_symlink(base: Path, rel: str, label: str) -> Path:
    """``base / rel``, after checking that no existing component of ``rel`` is a symlink (so
    reading or writing it cannot leave the repository).

    Raises:
        InputError: a component is a symlink (``label`` names ``base`` in the message).
    """
    if base.is_symlink():
        raise InputError(f"{label}/ is a symlink: refusing to follow it")
    current = base
    for part in PurePosixPath(rel).parts:
        current = current / part
        if current.is_symlink():
            raise InputError(f"{label}/{rel}: symlinks are not allowed under {label}/")
    return current


def artifact(checkout: Path, target: str) -> TargetFile | None:
    """The TargetFile of ``target``: from its file, or from its descriptor; None if neither.

    Raises:
        InputError: both a file and a descriptor, an unsafe path, a bad descriptor.
    """
    target = check_target_path(target)
    desc = descriptor_path(checkout, target)
    has_file, has_desc = _present(local_path(checkout, target)), _present(desc)
    if has_file and has_desc:
        raise InputError(f"{target} has both a file under targets/ and a descriptor")
    if has_file:
        return target_file(checkout, target)
    if not has_desc:
        return None
    path = check_no_symlink(checkout / DESCRIPTORS_DIR, f"{target}{DESCRIPTOR_SUFFIX}",
                             DESCRIPTORS_DIR)  # fmt: skip
    if not path.is_file():
        raise InputError(f"{DESCRIPTORS_DIR}/{target}{DESCRIPTOR_SUFFIX} is not a regular file")
    return parse_descriptor(target, path.read_bytes())


def descriptor_bytes(target: str, data: bytes) -> bytes:
    """A validated descriptor, normalised (sorted keys, 1-space indent) for storing in git."""
    tf = parse_descriptor(target, data)
    obj: dict[str, object] = {"length": tf.length, "hashes": tf.hashes}
    if "custom" in tf.unrecognized_fields:
        obj["custom"] = tf.unrecognized_fields["custom"]
    return json.dumps(obj, indent=1, sort_keys=True).encode()


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

    @property
    def file(self) -> TargetFile:
        """The artifact as it is after the change (as it was, for a removal)."""
        tf = self.new or self.old
        if tf is None:
            raise ValueError(f"artifact change of {self.path} has neither side")
        return tf


def _as_map(roles: RoleMap | Iterable[str]) -> RoleMap:
    return roles if isinstance(roles, RoleMap) else RoleMap(tuple(roles))


def target_changes_by_role(
    paths: Iterable[str], roles: RoleMap | Iterable[str], *, removed: Iterable[str] = ()
) -> dict[str, list[str]]:
    """Group changed target paths (relative to targets/) by owning role (``roles``: the role
    map, or the names of targets' delegated roles); ``removed`` paths (no longer there) need
    only stay inside targets/ (``path_problem(removal=True)``).

    Raises:
        InputError: a path no role owns (naming it), or one that breaks the path rule.
    """
    gone = set(removed)
    return _as_map(roles).by_owner(check_target_path(p, removal=p in gone) for p in paths)


def apply_changes(
    old: dict[str, TargetFile], checkout: Path, changed: Iterable[str]
) -> dict[str, TargetFile]:
    """``old`` updated with the current state of ``changed`` paths in ``checkout``.

    A changed path that exists is (re)hashed, keeping the old entry's custom fields; one that
    no longer exists is removed. Work is proportional to the number of changed paths.
    """
    new = dict(old)
    for path in changed:
        tf = artifact(checkout, path) if exists_artifact(checkout, path) else None
        if tf is None:
            new.pop(path, None)
            continue
        if path in old and not tf.unrecognized_fields:
            tf.unrecognized_fields = dict(old[path].unrecognized_fields)
        new[path] = tf
    return new


def _same_entry(a: TargetFile, b: TargetFile) -> bool:
    """``a == b`` (python-tuf's TargetFile equality), inlined: called per artifact."""
    return (
        a.length == b.length
        and a.hashes == b.hashes
        and a.path == b.path
        and a.unrecognized_fields == b.unrecognized_fields
    )


def diff_artifacts(
    role: str, old: dict[str, TargetFile], new: dict[str, TargetFile]
) -> list[ArtifactChange]:
    """Artifact changes between two targets dicts, sorted by path."""
    changes: dict[str, ArtifactChange] = {}
    for path in not_shared(new, old):
        if path not in new:
            changes[path] = ArtifactChange(role, path, "removed", None, old[path])
    for path in not_shared(old, new):
        before, after = old.get(path), new[path]
        if before is None:
            changes[path] = ArtifactChange(role, path, "added", after, None)
        elif not _same_entry(before, after):
            changes[path] = ArtifactChange(role, path, "modified", after, before)
    return [changes[p] for p in sorted(changes)]


def not_shared(old: dict[str, TargetFile], new: dict[str, TargetFile]) -> Iterator[str]:
    """The paths of ``new`` whose TargetFile is not ``old``'s very object (two copies of a
    role read in one command share the objects of the entries written the same: see
    ``repository.parse_shared``), compared in C: a flat role lists 100,000."""
    return compress(new, map(is_not, map(old.get, new), new.values()))


def mismatches(expected: dict[str, TargetFile], actual: dict[str, TargetFile]) -> list[str]:
    """Target paths whose metadata differs from the files (missing, extra, or changed),
    sorted by path."""
    problems = {
        p: f"{p} is in the metadata but not under targets/ or descriptors/"
        for p in not_shared(expected, actual)
        if p not in expected
    }
    for path in not_shared(actual, expected):
        want, got = expected[path], actual.get(path)
        if got is None:
            problems[path] = f"targets/{path} is not in the metadata"
            continue
        if want.length == got.length and got.hashes == want.hashes != {}:
            continue  # the same hashes (python-tuf never lists none): the same artifact
        if not same_artifact(want, got):
            problems[path] = f"{path}: metadata length/hash differ from targets/{path}"
    return [problems[p] for p in sorted(problems)]


def _walk(base: Path, label: str) -> list[str]:
    """Relative paths of the artifact files under ``base`` (hidden names skipped)."""
    paths: list[str] = []
    if not base.is_dir():
        return paths
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        rel_dir = Path(dirpath).relative_to(base)
        dirnames[:] = [d for d in dirnames if is_artifact_path(d)]
        for name in dirnames:
            if (Path(dirpath) / name).is_symlink():
                rel = (rel_dir / name).as_posix()
                raise InputError(f"{label}/{rel}: symlinks are not allowed under {label}/")
        paths += [(rel_dir / n).as_posix() for n in filenames if is_artifact_path(n)]
    return paths


def descriptor_target(rel: str) -> str:
    """The target path of ``descriptors/<rel>``.

    Raises:
        InputError: the file does not end in ``.json``.
    """
    if not rel.endswith(DESCRIPTOR_SUFFIX):
        raise InputError(f"{DESCRIPTORS_DIR}/{rel}: descriptors are <target path>.json files")
    return rel.removesuffix(DESCRIPTOR_SUFFIX)


def scan_all(
    checkout: Path, roles: RoleMap | Iterable[str], progress: ProgressFactory | None = None
) -> dict[str, dict[str, TargetFile]]:
    """Every artifact (files under targets/, descriptors under descriptors/), grouped by
    owning role (for ``verify``); ``progress`` counts the artifacts hashed.

    Raises:
        InputError: an unowned file, a symlink, a bad descriptor, an unreadable file, or a
            path that breaks the artifact path rule (including file/directory clashes).
    """
    paths = _walk(checkout / TARGETS_DIR, TARGETS_DIR)
    paths += [descriptor_target(p) for p in _walk(checkout / DESCRIPTORS_DIR, DESCRIPTORS_DIR)]
    grouped = target_changes_by_role(paths, roles)
    check_clashes(paths)
    out: dict[str, dict[str, TargetFile]] = {}
    with steps(progress, "hashing artifacts", len(paths)) as step:
        for role, role_paths in grouped.items():
            found = zip(role_paths, artifacts(checkout, role_paths), strict=True)
            out[role] = {path: tf for path, tf in found if tf is not None}
            if step is not None:
                step(len(role_paths))
    return out


PARALLEL_MIN = 2000
"""From this many artifacts on, :func:`artifacts` hashes them on every core."""


def artifacts(checkout: Path, paths: list[str]) -> list[TargetFile | None]:
    """:func:`artifact` of each path, in order: on every core (worker processes) when there
    are many - ``verify`` reads the whole repository, by design.

    Raises:
        InputError: as :func:`artifact`, for the first path that fails.
    """
    cores = os.cpu_count() or 1
    if len(paths) < PARALLEL_MIN or cores < 2:
        return [artifact(checkout, p) for p in paths]
    from concurrent.futures import ProcessPoolExecutor  # multiprocessing: start-up time

    chunk = max(1, len(paths) // (cores * 8))
    with ProcessPoolExecutor(max_workers=cores) as pool:
        return list(pool.map(functools.partial(artifact, checkout), paths, chunksize=chunk))


def files_under(base: str) -> list[str]:
    """Relative paths (``/``-separated) of the files under ``base``.

    Raises:
        InputError: a symlink (a file or a directory) under ``base``.
    """
    found: list[str] = []
    stack = [("", base)] if Path(base).is_dir() else []
    while stack:
        prefix, directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink():
                    raise InputError(f"targets/{rel}: symlinks are not allowed under targets/")
                if entry.is_dir():
                    stack.append((rel + "/", entry.path))
                else:
                    found.append(rel)
    return found
