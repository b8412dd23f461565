"""A targets role read beside another copy of it, entry by entry as bytes.

An event's copy of a flat role of 100,000 artifacts differs from main's in a few entries
(and its version, expiry and signatures); parsing it whole again cost as much as the first
copy (``json.loads`` of 14.6 MB, its duplicate-key check, a comparison per entry). In
tuf-on-ci's layout (``json.dumps(indent=1, sort_keys=True)``) each artifact of the role's
``targets`` is one piece of text, ``"<path>": {`` ... ``\\n   }``, that says everything
about it, so a piece written byte for byte as one of the other copy's is that copy's entry.

What is trusted is still what the bytes say, proven piece by piece:

* the other copy's ``targets`` text is a list of entries of exactly this form (one regular
  expression over it, :data:`_BODY`), so its pieces are its entries, in its order;
* each piece of the new copy is byte for byte one of those, or matches the form on its own
  (:data:`_PIECE`: a path of printable ASCII without ``"`` or ``\\``, one lowercase sha256,
  a non-negative integer length, no other field): anything else, and the caller parses
  the whole file as before;
* the rest of the file, with the entries replaced by one marker member, parses as JSON
  whose ``signed.targets`` is that marker alone, and the marker's bytes appear once in it,
  with no backslash (no escape could spell the marker elsewhere): so the entries are the
  members of ``signed.targets``, and nothing else is;
* no path is listed twice (a duplicate key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuf.api.metadata import TargetFile

_OPEN = b'\n  "targets": {'
_FIRST = b'\n   "'  # each entry starts so; the first right after _OPEN
_SEP = b"," + _FIRST  # between two entries (an entry has no line of 3 spaces then ")
_CLOSE = b"\n  }"  # the first after _OPEN ends the entries (an entry has no such line)
_PATH = rb"[\x20\x21\x23-\x5b\x5d-\x7e]*"
_PIECE_TEXT = (
    rb"(" + _PATH + rb')": \{\n    "hashes": \{\n     "sha256": "([0-9a-f]{64})"\n    \},'
    rb'\n    "length": (0|[1-9][0-9]*)\n   \}'
)
_PIECE = re.compile(_PIECE_TEXT)
"""One entry after its opening ``\\n   "``: groups path, sha256, length."""
_BODY = re.compile(
    _FIRST
    + _PIECE_TEXT.replace(b"(", b"(?:")
    + rb"(?:"
    + _SEP
    + _PIECE_TEXT.replace(b"(", b"(?:")
    + rb")*"
)
MARKER = "tufrepo:entries"
_MEMBER = b'"' + MARKER.encode() + b'": 0'
_BLOCK = 1 << 16  # bytes compared at a time while looking for the first difference

Entry = tuple[str, TargetFile]


@dataclass(frozen=True)
class Layout:
    """Where a role's entries are in its bytes: ``data[start:end]`` (``_FIRST`` and pieces
    joined by ``_SEP``), and the file with them replaced by one marker member."""

    data: bytes
    start: int
    end: int
    rest: bytes

    def pieces(self, begin: int, end: int) -> list[bytes]:
        """The pieces between offsets ``begin`` and ``end`` (each at ``_FIRST`` or
        ``_SEP``, or ``end`` itself) of the entries."""
        if begin == end:
            return []
        lead = len(_FIRST) if begin == self.start else len(_SEP)
        return self.data[begin + lead : end].split(_SEP)


def layout(data: bytes) -> Layout | None:
    """Where ``data``'s entries are, if it looks like tuf-on-ci's layout of a targets role
    with at least one artifact (None: it does not; nothing is proven yet)."""
    open_at = data.find(_OPEN)
    if open_at < 0:
        return None
    start = open_at + len(_OPEN)
    end = data.find(_CLOSE, start)
    if end < 0 or not data.startswith(_FIRST, start):
        return None
    rest = data[:start] + _MEMBER + data[end:]
    if rest.count(MARKER.encode()) != 1 or b"\\" in rest:
        return None
    return Layout(data, start, end, rest)


def marked(obj: object) -> bool:
    """``obj`` (the parsed :attr:`Layout.rest`) has the marker, alone, as its
    ``signed.targets``: the pieces were the members of ``signed.targets``."""
    signed = obj.get("signed") if isinstance(obj, dict) else None
    return isinstance(signed, dict) and signed.get("targets") == {MARKER: 0}


def well_formed(found: Layout) -> bool:
    """Every entry of ``found`` (a copy parsed whole) has the form of :data:`_PIECE`, so
    that its pieces are its entries, in order."""
    return _BODY.fullmatch(found.data, found.start, found.end) is not None


def count(found: Layout) -> int:
    """How many entries ``found`` has (when :func:`well_formed`)."""
    return found.data.count(_SEP, found.start, found.end) + 1


def beside(new: Layout, old: Layout, old_entries: list[Entry]) -> dict[str, TargetFile] | None:
    """The TargetFile of every entry of ``new``, where ``old`` is another copy of the role,
    :func:`well_formed` with ``old_entries`` (its entries in order): the entries before the
    first and after the last difference of the two texts are ``old``'s objects; those between
    are ``old``'s for a piece written byte for byte as one of its own there, else new ones
    (python-tuf's ``TargetFile.from_dict``) for a piece of the form of :data:`_PIECE`.
    None when a piece is neither or a path is listed twice."""
    limit = min(old.end - old.start, new.end - new.start)
    same = _common_prefix(old.data, old.start, new.data, new.start, limit)
    cut = old.data.rfind(_SEP, old.start, old.start + same)  # a separator both have whole
    head = 0 if cut < 0 else old.data.count(_SEP, old.start, cut) + 1
    cut = max(cut - old.start, 0)  # offset in both bodies of the first piece not shared
    tail_len = _common_suffix(old.data, old.end, new.data, new.end, limit - cut)
    back = old.data.find(_SEP, old.end - tail_len, old.end)
    tail = 0 if back < 0 else old.data.count(_SEP, back, old.end)
    back_len = 0 if back < 0 else old.end - back  # bytes of the shared last pieces
    middle = new.pieces(new.start + cut, new.end - back_len)
    old_middle = old.pieces(old.start + cut, old.end - back_len)
    if len(old_middle) != len(old_entries) - head - tail:  # not well_formed with them
        return None
    known = dict(zip(old_middle, old_entries[head : len(old_entries) - tail], strict=True))
    out = dict(old_entries[:head])
    for piece in middle:
        hit = known.get(piece) or _entry(piece)
        if hit is None:
            return None
        out[hit[0]] = hit[1]
    out.update(old_entries[len(old_entries) - tail :])
    return out if len(out) == head + len(middle) + tail else None


def _entry(piece: bytes) -> Entry | None:
    match = _PIECE.fullmatch(piece)
    if match is None:
        return None
    path = match[1].decode("ascii")
    entry = {"length": int(match[3]), "hashes": {"sha256": match[2].decode("ascii")}}
    return path, TargetFile.from_dict(entry, path)


def _common_prefix(x: bytes, xs: int, y: bytes, ys: int, limit: int) -> int:
    """The length of the longest common prefix of ``x[xs:xs + limit]`` and
    ``y[ys:ys + limit]`` (a block at a time, then by halves: memory comparisons)."""
    view, n = memoryview(x), 0
    while n + _BLOCK <= limit and y.startswith(view[xs + n : xs + n + _BLOCK], ys + n):
        n += _BLOCK
    low, high = n, min(n + _BLOCK, limit)
    while low < high:
        mid = (low + high + 1) // 2
        if y.startswith(view[xs + low : xs + mid], ys + low):
            low = mid
        else:
            high = mid - 1
    return low


def _common_suffix(x: bytes, xe: int, y: bytes, ye: int, limit: int) -> int:
    """The length of the longest common suffix of ``x[xe - limit:xe]`` and
    ``y[ye - limit:ye]``."""
    view, n = memoryview(x), 0
    while n + _BLOCK <= limit and y.endswith(view[xe - n - _BLOCK : xe - n], 0, ye - n):
        n += _BLOCK
    low, high = n, min(n + _BLOCK, limit)
    while low < high:
        mid = (low + high + 1) // 2
        if y.endswith(view[xe - mid : xe - low], 0, ye - low):
            low = mid
        else:
            high = mid - 1
    return low
