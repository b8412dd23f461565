"""A targets role's artifacts kept as parsed, each ``TargetFile`` built when first asked for.

A flat targets role of 100,000 artifacts is a 14.6 MB file: ``json.loads`` takes ~0.2 s,
python-tuf's ``Metadata.from_dict`` 0.2 s more for the 100,000 ``TargetFile`` objects, and
encoding them back through ``to_dict`` for the signature check ~0.3 s. ``online-sign`` reads
such a role to check its signatures, its size, its delegations and the few entries that
changed since it last signed: :func:`parse_listing` gives it a ``Metadata`` whose
``signed.targets`` is a :class:`TargetListing` over the parsed entries, and
:meth:`TargetListing.payload` the canonical bytes of ``signed`` encoded from the parsed JSON.

Both are exactly what python-tuf's strict parse gives, or they are not used:

* every entry is checked, as a whole (loops in C), to be one that ``TargetFile.from_dict``
  accepts and ``TargetFile.to_dict`` writes back as it was (a ``length`` that is an ``int``
  of at least 0, non-empty ``hashes`` of strings; any other field is kept as it is), else
  :func:`parse_listing` returns None and the caller parses the role the strict way;
* the rest of ``signed`` goes through python-tuf (``Targets.from_dict``), and the payload is
  the parsed JSON's own canonical encoding only when that rest, encoded back, is the same
  canonical bytes (python-tuf normalises some values, e.g. a one-digit month in
  ``expires``) and the listing was not edited; otherwise it is python-tuf's own encoding.

Nothing edits a ``TargetFile`` in place here (entries are replaced), as elsewhere in
tufrepo (see ``repository.copy_metadata``): the objects built are shared by copies.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, MutableMapping
from itertools import chain, compress
from operator import itemgetter, ne
from typing import Any, cast

from tuf.api.metadata import Metadata, Signed, TargetFile, Targets

from tufrepo import jsonfast

_LENGTH = itemgetter("length")
_HASHES = itemgetter("hashes")


class TargetListing(MutableMapping[str, TargetFile]):
    """``{path: TargetFile}`` over a targets role's parsed entries, built one by one on
    access (and kept); an edit turns it into a plain dict of every entry first."""

    def __init__(
        self, signed: dict[str, Any], bare: bool, built: dict[str, TargetFile] | None = None
    ) -> None:
        self.signed = signed  # the parsed JSON of ``signed``: never modified
        self.entries: dict[str, Any] = signed["targets"]
        self.bare = bare  # every entry has a length and hashes alone: no float in any
        self._built = {} if built is None else built  # shared by copies
        self._own: dict[str, TargetFile] | None = None  # after an edit
        self._payload: tuple[bytes, bytes] | None = None  # (rest, payload) once encoded

    @property
    def edited(self) -> bool:
        return self._own is not None

    def __getitem__(self, path: str) -> TargetFile:
        if self._own is not None:
            return self._own[path]
        tf = self._built.get(path)
        if tf is None:
            entry = self.entries[path]
            tf = TargetFile.from_dict({**entry, "hashes": dict(entry["hashes"])}, path)
            self._built[path] = tf
        return tf

    def __contains__(self, path: object) -> bool:
        return path in (self.entries if self._own is None else self._own)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries if self._own is None else self._own)

    def __len__(self) -> int:
        return len(self.entries if self._own is None else self._own)

    def __setitem__(self, path: str, tf: TargetFile) -> None:
        self._materialize()[path] = tf

    def __delitem__(self, path: str) -> None:
        del self._materialize()[path]

    def _materialize(self) -> dict[str, TargetFile]:
        if self._own is None:
            self._own = {path: self[path] for path in self.entries}
        return self._own

    def copy(self) -> TargetListing | dict[str, TargetFile]:
        """A copy that can be edited without changing this one (sharing what was built)."""
        if self._own is not None:
            return dict(self._own)
        out = TargetListing(self.signed, self.bare, self._built)
        out._payload = self._payload
        return out

    def payload(self, signed: Signed) -> bytes | None:
        """The canonical JSON of ``signed`` (whose listing this is), encoded from the parsed
        JSON when that is provably python-tuf's encoding; None when it is not (the listing
        was edited, or python-tuf writes the rest of ``signed`` differently)."""
        if self._own is not None:
            return None
        listing = cast(Targets, signed).targets
        cast(Targets, signed).targets = {}
        try:
            rest = jsonfast.canonical(signed.to_dict())
        finally:
            cast(Targets, signed).targets = listing
        if self._payload is not None and self._payload[0] == rest:
            return self._payload[1]
        if rest != jsonfast.canonical({**self.signed, "targets": {}}):  # floats refused here
            return None
        self._payload = (rest, jsonfast.canonical(self.signed, float_free=self.bare))
        return self._payload[1]


def plain_entries(entries: dict[str, Any]) -> bool | None:
    """Whether every entry is one ``TargetFile.from_dict`` accepts and ``to_dict`` writes back
    as it is: a dict with an ``int`` ``length`` of at least 0 and non-empty ``hashes`` of
    strings, other fields kept as they are. True: yes, and no entry has another field (so
    none holds a float); False: yes; None: not proven so (which does not mean invalid)."""
    values = list(entries.values())
    if set(map(type, values)) - {dict}:
        return None
    try:
        lengths = list(map(_LENGTH, values))
        hashes = list(map(_HASHES, values))
    except KeyError:
        return None
    if set(map(type, lengths)) - {int} or (lengths and min(lengths) < 0):
        return None
    if set(map(type, hashes)) - {dict} or not all(hashes):
        return None
    pairs = chain.from_iterable(map(dict.items, hashes))
    if set(map(type, chain.from_iterable(pairs))) - {str}:
        return None
    return not set(map(len, values)) - {2}


def parse_listing(obj: dict[str, Any]) -> Metadata[Targets] | None:
    """``Metadata.from_dict(obj)`` of a targets role, its artifacts a :class:`TargetListing`
    over ``obj``'s entries (``obj`` is not changed); None when ``obj`` is not a targets role
    whose every entry :func:`plain_entries` proves (parse it the strict way then).

    Raises:
        ValueError, KeyError, TypeError, AttributeError, DeserializationError: what
            ``Metadata.from_dict`` raises for the rest of ``obj``.
    """
    signed = obj.get("signed")
    if not isinstance(signed, dict) or signed.get("_type") != Targets.type:
        return None
    entries = signed.get("targets")
    bare = plain_entries(entries) if type(entries) is dict else None
    if bare is None:
        return None
    rest = {key: value for key, value in signed.items() if key != "targets"}
    shell = copy.deepcopy({**obj, "signed": rest})  # python-tuf pops what it reads
    shell["signed"]["targets"] = {}
    md: Metadata[Targets] = Metadata.from_dict(shell)
    md.signed.targets = cast(dict[str, TargetFile], TargetListing(signed, bare))
    return md


def changed_entries(old: Mapping[str, TargetFile], new: Mapping[str, TargetFile]) -> set[str]:
    """Paths added, removed or written differently between two listings of a role (equal
    as python-tuf's ``TargetFile`` compares them); two :class:`TargetListing` are compared
    entry by entry as parsed, without building any ``TargetFile``."""
    a: Mapping[str, Any] = old
    b: Mapping[str, Any] = new
    both = isinstance(old, TargetListing) and isinstance(new, TargetListing)
    if both and not cast(TargetListing, old).edited and not cast(TargetListing, new).edited:
        a, b = cast(TargetListing, old).entries, cast(TargetListing, new).entries
    paths = list(b)
    found = set(compress(paths, map(ne, map(a.get, paths), map(b.__getitem__, paths))))
    return found | (a.keys() - b.keys())
