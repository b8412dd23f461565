"""Metadata in a directory or a git commit, and the event repository that edits it.

* :class:`MetadataView` reads metadata lazily from a source: the working tree of a checkout
  (``dir_view``) or a commit's objects (``git_view`` - main is always read this way, never
  from a temporary clone), parsing each file once and only when asked for.
* :class:`EventRepository` is a ``tuf.repository.Repository``: roles are changed inside
  ``edit_*()`` and closed the tuf-on-ci way (version = main's + 1, expiry from the role's
  period, signatures cleared to placeholders). Writes are buffered and flushed together by
  :meth:`EventRepository.flush`, each file written atomically, after everything verified.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from securesystemslib.exceptions import FormatError
from securesystemslib.formats import encode_canonical
from tuf.api.metadata import (
    Key,
    Metadata,
    MetaFile,
    Root,
    Signature,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
)
from tuf.api.serialization import DeserializationError, SignedSerializer
from tuf.repository import Repository

from tufrepo import entries, jsonfast
from tufrepo.errors import CorruptMetadataError, MetadataError
from tufrepo.files import atomic_write
from tufrepo.listing import TargetListing, parse_listing
from tufrepo.roles import (
    ONLINE_ROLES,
    STATE_FILE,
    TOP_LEVEL,
    EventState,
    RoleMap,
    canonical_keyid,
    keys_of,
    periods,
    role_map,
)

METADATA_DIR = "metadata"
HISTORY_DIR = "root_history"
ENVELOPE = frozenset({"signed", "signatures"})

_EXPIRES = re.compile(rb'^[^"]*"signatures": \[[^\]]*\],\s*"signed": \{\s*"_type": "targets",\s*'
                      rb'"expires": "([0-9T:Z-]{20})"')  # fmt: skip
"""The start of a targets role whose ``signed`` begins with ``_type`` then ``expires``."""

Reader = Callable[[str], bytes | None]
HeadReader = Callable[[str, int], bytes | None]
_HEAD = 4096
"""Bytes read for :meth:`MetadataView.expires` (a few signatures, then ``expires``)."""
Lister = Callable[[str], list[str]]


def serialize(md: Metadata[Any]) -> bytes:
    """tuf-on-ci's on-disk form: 1-space indent, sorted keys, no trailing newline (what
    ``md.to_bytes(JSONSerializer())`` writes, at the C encoder's speed)."""
    signatures = [sig.to_dict() for sig in md.signatures.values()]
    # what md.to_dict() is, without python-tuf's own to_dict of each artifact
    with jsonfast.paused_gc():
        signed = signed_dict(md.signed)
        return jsonfast.indented(
            {"signatures": signatures, "signed": signed, **md.unrecognized_fields}
        )


def signed_bytes(md: Metadata[Any]) -> bytes:
    """``md.signed_bytes`` (the canonical JSON signatures are made over), at the C encoder's
    speed: compute it once per command and verify every signature over it. A role parsed
    with ``lazy`` (see :mod:`tufrepo.listing`) is encoded from its parsed JSON when that is
    provably the same bytes."""
    listing = getattr(md.signed, "targets", None)
    if isinstance(listing, TargetListing) and (payload := listing.payload(md.signed)):
        return payload
    with jsonfast.paused_gc():
        return jsonfast.canonical(signed_dict(md.signed))


def signed_dict(signed: Signed) -> dict[str, Any]:
    """``signed.to_dict()``, with a targets role's artifacts listed in one comprehension
    instead of a method call each (100,000 of them in a flat role)."""
    if not isinstance(signed, Targets):
        return signed.to_dict()
    targets, signed.targets = signed.targets, {}
    try:
        out = signed.to_dict()
    finally:
        signed.targets = targets
    out["targets"] = {
        path: {"length": tf.length, "hashes": tf.hashes, **tf.unrecognized_fields}
        for path, tf in targets.items()
    }
    return out


class SignedPayload(SignedSerializer):
    """For ``Metadata.sign(signed_serializer=...)``: ``md``'s canonical bytes, encoded once
    here (then the new signature is verified over :attr:`payload`, the same bytes)."""

    def __init__(self, md: Metadata[Any]) -> None:
        self.signed = md.signed
        self.payload = signed_bytes(md)

    def serialize(self, signed_obj: Signed) -> bytes:
        if signed_obj is self.signed:
            return self.payload
        return jsonfast.canonical(signed_obj.to_dict())


def load_json(name: str, data: bytes, where: str = "") -> dict[str, Any]:
    """The JSON object in ``metadata/<name>``; a duplicate key is an error (JSON parsers
    disagree on which value wins, so clients could see other metadata than we verified).

    Raises:
        CorruptMetadataError: not a JSON object, or a duplicate key.
    """
    file = f"metadata/{name}" + (f" ({where})" if where else "")
    try:
        obj = jsonfast.loads_unique(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptMetadataError(f"{file} is not valid TUF metadata: {e}") from e
    if not isinstance(obj, dict):
        raise CorruptMetadataError(f"{file} is not valid TUF metadata: not a JSON object")
    return obj


def parse(
    name: str,
    data: bytes,
    where: str = "",
    *,
    like: Metadata[Any] | None = None,
    lazy: bool = False,
    layout: list[entries.Layout] | None = None,
) -> Metadata[Any]:
    """Parse metadata file ``name`` strictly, as main's metadata is read. ``like``: another
    copy of the role (main's, for the event's), whose TargetFile objects are taken for the
    entries written the same (see :func:`_target_files`). ``lazy``: a targets role's
    TargetFile objects are built when asked for (:func:`tufrepo.listing.parse_listing`;
    the same checks, the same objects). ``layout``: where the role's entries are is
    appended to it when they all have the form :mod:`tufrepo.entries` reads.

    Raises:
        CorruptMetadataError: (one line naming the file) not metadata, a duplicate JSON key,
            or fields outside ``signed``/``signatures`` (no key covers them).
    """
    with jsonfast.paused_gc():
        md, found = _parse(name, data, where, like, lazy=lazy)
    if layout is not None and found is not None:
        layout.append(found)
    return md


def _parse(
    name: str, data: bytes, where: str, like: Metadata[Any] | None, *, lazy: bool = False
) -> tuple[Metadata[Any], entries.Layout | None]:
    """``parse``, and where the role's entries are when they all have the form
    :mod:`tufrepo.entries` reads."""
    obj, found = _load_role(name, data, where)
    file = f"metadata/{name}" + (f" ({where})" if where else "")
    extra = sorted(set(obj) - ENVELOPE)
    if extra:
        raise CorruptMetadataError(
            f"{file} has fields outside signed/signatures: {', '.join(extra)}"
        )
    try:
        if lazy and (listed := parse_listing(obj)) is not None:
            return listed, found
        signed = obj.get("signed")
        raw = signed.get("targets") if isinstance(signed, dict) else None
        if (
            like is None
            or not isinstance(like.signed, Targets)
            or not isinstance(signed, dict)
            or signed.get("_type") != Targets.type  # what Metadata.from_dict goes by
            or not isinstance(raw, dict)
        ):
            return Metadata.from_dict(obj), found
        signed["targets"] = {}
        md: Metadata[Targets] = Metadata.from_dict(obj)
        md.signed.targets = _target_files(raw, like.signed.targets)
    except (ValueError, KeyError, TypeError, AttributeError, DeserializationError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CorruptMetadataError(f"{file} is not valid TUF metadata: {detail}") from e
    return md, found


def _load_role(name: str, data: bytes, where: str) -> tuple[dict[str, Any], entries.Layout | None]:
    """``load_json(name, data, where)``; for a targets role whose entries all have the form
    :mod:`tufrepo.entries` reads, with its duplicate-key check done on the rest of the file
    (its entries' form allows no duplicate key inside one; no path listed twice is counted),
    and where the entries are."""
    found = entries.layout(data)
    if found is None or not entries.well_formed(found) or _rest(name, found.rest, where) is None:
        return load_json(name, data, where), None
    try:
        obj = json.loads(data)  # the rest is JSON, the entries are of their form: so is this
    except ValueError:
        return load_json(name, data, where), None
    if len(obj["signed"]["targets"]) != entries.count(found):  # a path listed twice
        return load_json(name, data, where), None
    return obj, found


@dataclass
class _Parsed:
    """A file parsed in this command: its bytes, a pristine copy of it, and (found when
    another copy of the role is parsed) its entries' layout (:mod:`tufrepo.entries`)."""

    name: str
    data: bytes
    lazy: bool  # parsed with ``lazy`` (see :func:`parse`): its targets a TargetListing
    md: Metadata[Any]
    _layout: entries.Layout | None = None
    _checked: bool = False

    def layout(self) -> entries.Layout | None:
        """Where its entries are, when they are all of :mod:`tufrepo.entries`' form."""
        if not self._checked and isinstance(self.md.signed, Targets):
            found = entries.layout(self.data)
            if (
                found is not None
                and entries.marked(json.loads(found.rest))
                and entries.well_formed(found)
            ):
                self._layout = found
        self._checked = True
        return self._layout if isinstance(self.md.signed, Targets) else None


_SHARED: list[_Parsed] = []
"""Pristine copies of files parsed in this command, with their bytes: see :func:`parse_shared`."""
_SHARED_MAX = 8


def parse_shared(name: str, data: bytes, where: str = "", *, lazy: bool = False) -> Metadata[Any]:
    """``parse(name, data, where, lazy=lazy)``, parsed once per command for the same bytes:
    main's copy of a role and an event's unchanged copy are the same file, and a flat
    targets role of 100,000 artifacts costs 0.4 s to parse. A second copy of a role (the
    event's beside main's) is read entry by entry as bytes where it can be
    (:func:`_parse_beside`). Each call returns its own copy (views edit theirs)."""
    like = None
    for known in _SHARED:
        if known.name == name and known.lazy == lazy and (known.data is data or known.data == data):
            return copy_metadata(known.md)
        like = known if known.name == name and not known.lazy else like
    beside: tuple[Metadata[Any], entries.Layout | None] | None = None
    if like is not None and not lazy:
        beside = _parse_beside(name, data, where, like)
    if beside is None:
        proven: list[entries.Layout] = []
        like_md = None if lazy or like is None else like.md
        md = parse(name, data, where, like=like_md, lazy=lazy, layout=proven)
        beside = md, proven[0] if proven else None
    md, found = beside  # found: its layout was proven (when it has tufrepo.entries' form)
    parsed = _Parsed(name, data, lazy, copy_metadata(md), found, _checked=found is not None)
    del _SHARED[: max(0, len(_SHARED) + 1 - _SHARED_MAX)]
    _SHARED.append(parsed)
    return md


def _parse_beside(
    name: str, data: bytes, where: str, like: _Parsed
) -> tuple[Metadata[Any], entries.Layout] | None:
    """Targets role ``name`` parsed beside ``like`` (another copy of it), without parsing
    its entries as JSON: those written byte for byte as ``like``'s are ``like``'s, the
    others are read on their own (see :mod:`tufrepo.entries` for why that is the role its
    bytes say). None when that cannot be proven: then the caller parses it whole (and
    reports what is wrong with it). Also returns where its entries are."""
    if not isinstance(like.md.signed, Targets):
        return None
    with jsonfast.paused_gc():
        found = entries.layout(data)
        old = like.layout() if found is not None else None
        if found is None or old is None:
            return None
        targets = entries.beside(found, old, list(like.md.signed.targets.items()))
        obj = _rest(name, found.rest, where) if targets is not None else None
        if obj is None or targets is None:
            return None
        obj["signed"]["targets"] = {}
        try:
            md: Metadata[Targets] = Metadata.from_dict(obj)
        except (ValueError, KeyError, TypeError, AttributeError, DeserializationError):
            return None
        md.signed.targets = targets
        return md, found


def _rest(name: str, rest: bytes, where: str) -> dict[str, Any] | None:
    """``rest`` (a targets role with its entries replaced by the marker) parsed strictly,
    when it is a role's envelope whose ``signed.targets`` is the marker alone."""
    try:
        obj = load_json(name, rest, where)
    except CorruptMetadataError:
        return None
    signed = obj.get("signed")
    if set(obj) - ENVELOPE or not entries.marked(obj) or not isinstance(signed, dict):
        return None
    return obj if signed.get("_type") == Targets.type else None


def forget_parsed() -> None:
    """Empty :func:`parse_shared`'s store (a command ends)."""
    _SHARED.clear()


def copy_metadata(md: Metadata[Any]) -> Metadata[Any]:
    """A copy of ``md`` that can be edited without changing ``md``, made in milliseconds for
    a role of 100,000 artifacts or a snapshot of a thousand bins: its ``targets`` (its
    ``meta``) is a new dict of the same TargetFile (MetaFile) objects, which nothing edits
    in place (entries are replaced: python-tuf's ``do_snapshot`` too), everything else is
    copied."""
    signed = md.signed
    if isinstance(signed, Snapshot):
        meta, signed.meta = signed.meta, {}
        try:
            out = copy.deepcopy(md)
        finally:
            signed.meta = meta
        cast(Snapshot, out.signed).meta = dict(meta)
        return out
    if not isinstance(signed, Targets):
        return copy.deepcopy(md)
    targets, signed.targets = signed.targets, {}
    try:
        out = copy.deepcopy(md)
    finally:
        signed.targets = targets
    listing: Any = targets  # a TargetListing (lazy) is not a dict
    copied: Any = listing.copy() if isinstance(listing, TargetListing) else dict(targets)
    cast(Targets, out.signed).targets = copied
    return out


def _target_files(raw: dict[str, Any], known: dict[str, TargetFile]) -> dict[str, TargetFile]:
    """``{path: TargetFile.from_dict(entry, path)}`` for a targets role's ``raw`` entries,
    taking the object in ``known`` (another copy's) for an entry written exactly as it: a
    length that is an int (JSON's ``true`` and ``1.0`` equal ``1`` in Python, and would be
    re-encoded differently) and equal hashes (strings, as ``known``'s were checked to be), no
    other field. Work per unchanged entry: a few comparisons, not a new object.

    Raises:
        ValueError, KeyError, TypeError, AttributeError: an entry python-tuf refuses.
    """
    out = {}
    for path, entry in raw.items():
        old = known.get(path)
        if (
            old is not None
            and type(entry) is dict
            and len(entry) == 2
            and type(entry.get("length")) is int
            and type(old.length) is int
            and entry["length"] == old.length
            and entry.get("hashes") == old.hashes
            and not old.unrecognized_fields
        ):
            out[path] = old
        else:
            out[path] = TargetFile.from_dict(entry, path)
    return out


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z"
)
_TUF_TIME = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(text: object) -> datetime:
    """A TUF ``expires`` in any RFC 3339 form (fractions, offsets), in UTC.

    Raises:
        ValueError: not an RFC 3339 date-time.
    """
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None or not isinstance(text, str):
        raise ValueError(f"expires {text!r} is not an RFC 3339 time")
    offset = match[8].upper().replace("Z", "+00:00")
    fraction = (match[7] or "")[:7]  # microseconds at most (Go writes nanoseconds)
    try:
        when = datetime.fromisoformat(f"{text[:10]}T{text[11:19]}{fraction}{offset}")
    except ValueError as e:
        raise ValueError(f"expires {text!r} is not an RFC 3339 time: {e}") from e
    return when.astimezone(UTC)


@dataclass(frozen=True)
class HistoryRoot:
    """A root_history entry read the way the TUF spec allows (older tools wrote some).

    ``payload`` is the canonical JSON of ``signed`` exactly as it is in the file: what its
    signers signed. ``notes`` are what python-tuf's strict reader or tuf-on-ci's format would
    not accept; ``strict_problem`` says why python-tuf's ngclient cannot use the entry (None
    when it can).
    """

    file: str
    root: Root
    payload: bytes
    signatures: dict[str, Signature]
    notes: tuple[str, ...]
    strict_problem: str | None


def read_history_root(name: str, data: bytes) -> HistoryRoot:
    """Read root_history entry ``name`` tolerantly (see :class:`HistoryRoot`).

    Raises:
        CorruptMetadataError: what no TUF client reads (not JSON, duplicate keys, no
            RFC 3339 expiry, not root metadata, malformed signatures).
    """
    obj = load_json(name, data)
    signed, sigs = obj.get("signed"), obj.get("signatures")
    file = f"metadata/{name}"
    if not isinstance(signed, dict) or not isinstance(sigs, list):
        raise CorruptMetadataError(f"{file} is not TUF metadata (signed/signatures)")
    notes = [f"fields outside signed/signatures: {', '.join(sorted(set(obj) - ENVELOPE))}"]
    notes = notes if set(obj) - ENVELOPE else []
    try:
        payload = cast(str, encode_canonical(signed)).encode()
        signatures = {s["keyid"]: Signature.from_dict(dict(s)) for s in sigs}
        when = rfc3339(signed.get("expires"))
        fixed = copy.deepcopy(signed)
        fixed["expires"] = normal = when.strftime(_TUF_TIME)
        root = Root.from_dict(fixed)
    except (ValueError, KeyError, TypeError, AttributeError, FormatError) as e:
        raise CorruptMetadataError(f"{file} is not root metadata a client reads: {e}") from e
    if signed["expires"] != normal:
        notes.append(f"expires {signed['expires']} is not in the form YYYY-MM-DDTHH:MM:SSZ")
    if not root.consistent_snapshot:
        notes.append("consistent_snapshot is false")
    notes += [
        f"keyid {keyid[:16]} is not the sha256 of its key (legacy keyid)"
        for keyid, key in root.keys.items()
        if canonical_keyid(key) != keyid
    ]
    if json.dumps(obj, indent=1, sort_keys=True).encode() != data:
        notes.append("not in tuf-on-ci's JSON layout (1-space indent, sorted keys)")
    return HistoryRoot(file, root, payload, signatures, tuple(notes), python_tuf_problem(data))


def python_tuf_problem(data: bytes) -> str | None:
    """Why python-tuf (ngclient) cannot use root ``data`` (None: it can): it cannot parse
    it, or re-serialises ``signed`` into other bytes than were signed."""
    try:
        md = Metadata.from_bytes(data)
        payload = encode_canonical(json.loads(data)["signed"])
    except DeserializationError as e:
        cause = e.__cause__ or e
        return f"python-tuf cannot parse it ({str(cause).splitlines()[0] if str(cause) else e})"
    except (ValueError, KeyError, TypeError, FormatError) as e:
        return f"not metadata ({e})"
    if md.signed_bytes != cast(str, payload).encode():
        return "python-tuf re-serialises its signed part differently (signatures fail)"
    return None


class MetadataView:
    """Read-only metadata of one repository state, parsed lazily and cached."""

    def __init__(
        self,
        reader: Reader,
        lister: Lister,
        label: str,
        head: HeadReader | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        self.lazy = lazy  # targets roles' TargetFile objects built when asked for
        self._read = reader
        self._head = head  # the first bytes of a file, where reading them alone is cheaper
        self._list = lister
        self.label = label
        self._cache: dict[str, Metadata[Any] | None] = {}
        self._bytes: dict[str, bytes | None] = {}
        self._digests: dict[str, str | None] = {}
        self.proven_versions: dict[str, int] = {}  # see online.proven_roles

        self._map: RoleMap | None = None

    def raw(self, name: str) -> bytes | None:
        """The bytes of ``metadata/<name>`` (None when absent), read once."""
        if name not in self._bytes:
            self._bytes[name] = self._read(name)
        return self._bytes[name]

    def version(self, role: str) -> int | None:
        """The version of ``role`` (None when absent): from :attr:`proven_versions` when the
        file is one online-sign verified before (its snapshot then recorded the version),
        else from the parsed file."""
        if role in self.proven_versions:
            return self.proven_versions[role]
        md = self.get(role)
        return None if md is None else int(md.signed.version)

    def sha256(self, name: str) -> str | None:
        """The sha256 of ``metadata/<name>`` (None when absent), computed once."""
        if name not in self._digests:
            data = self.raw(name)
            self._digests[name] = None if data is None else hashlib.sha256(data).hexdigest()
        return self._digests[name]

    def expires(self, role: str) -> datetime:
        """When ``role`` expires, without parsing the whole file when it has tuf-on-ci's
        layout with nothing before ``expires`` (hash bins, named roles without delegations).

        Raises:
            MetadataError: the role is missing.
        """
        md, name = self._cache.get(role), f"{role}.json"
        data = self._bytes.get(name)  # read without keeping it: its start is enough
        if name not in self._bytes:
            data = self._head(name, _HEAD) if self._head is not None else None
            data = data if data and _EXPIRES.match(data) else self._read(name)
        if md is None and data is not None and (found := _EXPIRES.match(data)) is not None:
            with contextlib.suppress(ValueError):
                return datetime.strptime(found[1].decode(), "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=UTC
                )
        expires: datetime = self.require(role).signed.expires
        return expires

    def get(self, role: str) -> Metadata[Any] | None:
        """The metadata of ``role`` or None when the file does not exist (parsed once, and
        once per process for the same bytes: see :func:`parse_shared`)."""
        if role not in self._cache:
            data = self.raw(f"{role}.json")
            self._cache[role] = (
                None
                if data is None
                else parse_shared(f"{role}.json", data, self.label, lazy=self.lazy)
            )
        return self._cache[role]

    def require(self, role: str) -> Metadata[Any]:
        md = self.get(role)
        if md is None:
            raise MetadataError(f"metadata/{role}.json is missing ({self.label})")
        return md

    def root(self) -> Root:
        return cast(Root, self._typed("root", Root).signed)

    def targets(self, role: str = "targets") -> Targets:
        return cast(Targets, self._typed(role, Targets).signed)

    def _typed(self, role: str, kind: type[Signed]) -> Metadata[Any]:
        md = self.require(role)
        if not isinstance(md.signed, kind):
            raise CorruptMetadataError(f"metadata/{role}.json is not {kind.type} metadata")
        return md

    def role_map(self) -> RoleMap:
        """Who delegates which role and owns which path, here (built once)."""
        if self._map is None:
            top = self.targets() if self.get("targets") is not None else None
            self._map = role_map(top, self._targets_or_none)
        return self._map

    def _targets_or_none(self, role: str) -> Targets | None:
        """``role``'s Targets for the role map, which asks only whether it delegates: a
        file that cannot hold a ``delegations`` key (the name appears nowhere, nor any
        ``\\u`` escape that could spell it) is answered without parsing it."""
        data = self.raw(f"{role}.json") if role not in self._cache else None
        if data is not None and b'"delegations"' not in data and b"\\u" not in data:
            return Targets()
        md = self.get(role)
        return md.signed if md is not None and isinstance(md.signed, Targets) else None

    def delegator(self, role: str) -> Root | Targets | None:
        """The delegating role's signed part (None when it does not exist here, or nothing
        delegates ``role``)."""
        if role not in TOP_LEVEL and role not in self.role_map():
            return None
        name = self.role_map().delegator(role)
        if self.get(name) is None:
            return None
        return self.root() if name == "root" else self.targets(name)

    def history_versions(self) -> list[int]:
        """Versions found in ``metadata/root_history`` (``N.root.json``), sorted."""
        versions = []
        for name in self._list(HISTORY_DIR):
            stem = name.removesuffix(".root.json")
            if name.endswith(".root.json") and stem.isdigit():
                versions.append(int(stem))
        return sorted(versions)

    def history(self, version: int) -> bytes | None:
        return self.raw(f"{HISTORY_DIR}/{version}.root.json")

    def state(self) -> EventState:
        return EventState.from_bytes(self.raw(STATE_FILE))


def memory_view(files: dict[str, bytes], label: str = "memory") -> MetadataView:
    """Metadata given as ``{name under metadata/: bytes}`` (e.g. ``"root.json"``)."""

    def lister(sub: str) -> list[str]:
        prefix = f"{sub}/" if sub else ""
        names = [n.removeprefix(prefix) for n in files if n.startswith(prefix)]
        return sorted(n for n in names if "/" not in n)

    return MetadataView(files.get, lister, label)


def dir_view(checkout: Path, *, lazy: bool = False) -> MetadataView:
    """Metadata in the working tree of ``checkout`` (``lazy``: see :class:`MetadataView`)."""
    base = checkout / METADATA_DIR

    def reader(name: str) -> bytes | None:
        path = base / name
        if path.is_symlink() or not path.is_file():
            return None
        return path.read_bytes()

    def head(name: str, size: int) -> bytes | None:
        path = base / name
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as f:
            return f.read(size)

    def lister(sub: str) -> list[str]:
        d = base / sub if sub else base
        return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []

    return MetadataView(reader, lister, "working tree", head, lazy=lazy)


def git_view(
    read_blob: Callable[[str], bytes | None], list_dir: Lister, label: str, *, lazy: bool = False
) -> MetadataView:
    """Metadata read from git objects (``read_blob(path)`` relative to the repository;
    ``lazy``: see :class:`MetadataView`)."""
    return MetadataView(
        lambda name: read_blob(f"{METADATA_DIR}/{name}"),
        lambda sub: list_dir(f"{METADATA_DIR}/{sub}".rstrip("/")),
        label,
        lazy=lazy,
    )


class EventRepository(Repository):
    """The metadata of a signing event, edited in the working tree of a checkout.

    ``base`` is main's metadata (the known-good state): versions are main's + 1 and the
    previous root's keys also get signature placeholders when root changes.
    """

    def __init__(
        self, checkout: Path, base: MetadataView, now: datetime, view: MetadataView | None = None
    ) -> None:
        self.checkout = checkout
        self.dir = checkout / METADATA_DIR
        self.view = view or dir_view(checkout)  # what is in the working tree (is written to)
        self.base = base
        self.now = now
        self.pending: dict[str, bytes | None] = {}
        self._open: dict[str, Metadata[Any]] = {}
        self.event_state = self.view.state()

    # -- tuf.repository.Repository -------------------------------------------------------
    def open(self, role: str) -> Metadata[Any]:
        if role in self._open:
            return self._open[role]
        md = self.view.get(role)
        if md is None:
            if role in ONLINE_ROLES:
                raise MetadataError(f"{role} is an online role: online-sign creates it")
            md = Metadata(Root()) if role == "root" else Metadata(Targets())
            md.signed.version = 0
        self._open[role] = md
        return md

    def close(self, role: str, md: Metadata[Any]) -> None:
        base_md = self.base.get(role)
        md.signed.version = (base_md.signed.version if base_md else 0) + 1
        root = md.signed if role == "root" else cast(Root, self.open("root").signed)
        expiry, _ = periods(role, root, md.signed)
        md.signed.expires = (self.now + timedelta(days=expiry)).replace(microsecond=0)
        self.set_placeholders(role, md)
        self._open[role] = md
        self.stage(role, md)

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        raise NotImplementedError("snapshots are made by online-sign, not in signing events")

    @property
    def snapshot_info(self) -> MetaFile:
        raise NotImplementedError("timestamps are made by online-sign, not in signing events")

    # -- helpers -------------------------------------------------------------------------
    def exists(self, role: str) -> bool:
        """The role has metadata in this event (on disk or created in this session)."""
        return role in self._open or self.view.get(role) is not None

    def role_map(self) -> RoleMap:
        """The role map of the event as edited so far (not cached: edits change it)."""
        if not self.exists("targets"):
            return RoleMap()
        top = cast(Targets, self.open("targets").signed)
        return role_map(top, lambda r: self.open(r) if self.exists(r) else None)

    def delegator_name(self, role: str) -> str:
        """Who delegates ``role`` in this event: root, targets or a binned role.

        Raises:
            InputError: nothing delegates ``role``.
        """
        return "root" if role in TOP_LEVEL else self.role_map().delegator(role)

    def delegator(self, role: str) -> Root | Targets:
        """The signed part of the role delegating ``role``, as edited in this event.

        Raises:
            InputError: nothing delegates ``role``.
        """
        signed = self.open(self.delegator_name(role)).signed
        return cast(Root | Targets, signed)

    def signing_keys(self, role: str) -> list[Key]:
        """Keys whose signatures count for ``role`` in this event (root: old and new)."""
        keys = keys_of(self.delegator(role), role)
        if role == "root":
            base_root = self.base.get("root")
            if base_root is not None:
                ids = {k.keyid for k in keys}
                keys += [k for k in keys_of(base_root.signed, "root") if k.keyid not in ids]
        return keys

    def set_placeholders(self, role: str, md: Metadata[Any]) -> None:
        """Clear signatures: one empty placeholder per key expected to sign."""
        md.signatures.clear()
        for key in self.signing_keys(role):
            md.signatures[key.keyid] = Signature(key.keyid, "")

    def stage(self, role: str, md: Metadata[Any]) -> None:
        """Queue ``md`` to be written by flush() (root also into root_history)."""
        data = serialize(md)
        self.pending[f"{role}.json"] = data
        if role == "root":
            self.pending[f"{HISTORY_DIR}/{md.signed.version}.root.json"] = data

    def retire(self, role: str) -> None:
        """Remove ``role``'s file (an old hash bin after re-binning). Snapshot keeps its last
        version: clients refuse a snapshot that drops a role it listed."""
        self._open.pop(role, None)
        self.pending[f"{role}.json"] = None

    def stage_state(self) -> None:
        self.pending[STATE_FILE] = self.event_state.to_bytes()

    def flush(self) -> list[str]:
        """Write every staged file atomically; returns their paths relative to the checkout."""
        written = []
        for name, data in sorted(self.pending.items()):
            path = self.dir / name
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data)
            written.append(f"{METADATA_DIR}/{name}")
        self.pending.clear()
        return written
