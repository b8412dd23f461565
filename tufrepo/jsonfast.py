"""JSON at the speed of Python's C encoder and decoder, byte for byte as the slow paths.

A flat targets role of 100,000 artifacts is a 14.6 MB file; the pure-Python encoders cost
about a second each time a command reads, signs or writes it. Each function here gives the
same bytes (or the same verdict) as its slow counterpart, falling back to it whenever the
fast path cannot prove that:

* :func:`canonical` is securesystemslib's ``encode_canonical`` (OLPC canonical JSON, what
  signatures are made over) encoded as UTF-8;
* :func:`indented` is ``json.dumps(obj, indent=1, sort_keys=True)`` (tuf-on-ci's files);
* :func:`loads_unique` is ``json.loads`` that refuses a duplicate key.

``tests/test_jsonfast.py`` compares them with the slow paths on tricky values.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any, cast

from securesystemslib.formats import encode_canonical

_COMPACT = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True,
    separators=(",", ":"),
).encode  # fmt: skip
# a float in the compact text after a value's start (OLPC canonical JSON has none:
# encode_canonical refuses it); also matches in a string such as "v:1.5", which only costs
# the slow path. A float at the top level is caught by the text's first character.
_FLOAT = re.compile(r"[:,\[]-?\d+[.eE]")
_ESCAPE = json.encoder.encode_basestring_ascii


def canonical(obj: Any, *, float_free: bool = False) -> bytes:
    """``encode_canonical(obj).encode()``: sorted keys, no whitespace, only ``"`` and
    ``\\`` escaped, other characters as UTF-8, no floats.

    The C encoder writes the same text when no string needs another escape (a control
    character) and there is no float; the text is checked for both, otherwise
    ``encode_canonical`` encodes it (and raises what it raises, e.g. ``FormatError``).
    Dict keys must be strings (JSON's; ``json.dumps`` would turn a number into a string
    where ``encode_canonical`` fails). ``float_free``: the caller has proven that ``obj``
    holds no float, so the text is not searched for one (a twentieth of a second for a
    14.6 MB role).
    """
    try:
        with paused_gc():  # the encoder sorts each dict's items in a new list
            text = _COMPACT(obj)
    except (TypeError, ValueError, RecursionError):
        return _slow_canonical(obj)
    if "\\" in text:
        # every backslash starts an escape: drop the \\ pairs (scanning from the left, as
        # escapes are read), then any backslash left must start \"
        rest = text.replace("\\\\", "")
        if rest.count("\\") != rest.count('\\"'):
            return _slow_canonical(obj)
    top_float = text[0] in "-0123456789" and not text.lstrip("-").isdigit()
    if not float_free and (top_float or _FLOAT.search(text)):
        return _slow_canonical(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: let the slow path fail its way
        return _slow_canonical(obj)


def _slow_canonical(obj: Any) -> bytes:
    return cast(str, encode_canonical(obj)).encode()


class _UnusualError(Exception):
    """A value :func:`indented` leaves to ``json.dumps`` (a float, a tuple, a subclass)."""


def indented(obj: Any) -> bytes:
    """``json.dumps(obj, indent=1, sort_keys=True).encode()`` (ASCII, escapes as JSON's)."""
    out: list[str] = []
    try:
        _write(obj, out, "\n")
    except _UnusualError:
        return json.dumps(obj, indent=1, sort_keys=True).encode()
    return "".join(out).encode()


def _write(obj: Any, out: list[str], newline: str) -> None:  # noqa: PLR0912
    """Append ``obj`` at the indent of ``newline`` (``"\\n"`` and one space a level)."""
    kind = type(obj)
    if kind is str:
        out.append(_ESCAPE(obj))
    elif kind is dict:
        if not obj:
            out.append("{}")
            return
        inner = newline + " "
        sep = "{" + inner
        try:
            keys = sorted(obj)
        except TypeError as e:
            raise _UnusualError from e
        for key in keys:
            if type(key) is not str:
                raise _UnusualError
            value = obj[key]
            out.append(sep)
            out.append(_ESCAPE(key))
            out.append(": ")
            vkind = type(value)
            if vkind is str:
                out.append(_ESCAPE(value))
            elif vkind is int:
                out.append(int.__repr__(value))
            else:
                _write(value, out, inner)
            sep = "," + inner
        out.append(newline + "}")
    elif kind is list:
        if not obj:
            out.append("[]")
            return
        inner = newline + " "
        sep = "[" + inner
        for value in obj:
            out.append(sep)
            _write(value, out, inner)
            sep = "," + inner
        out.append(newline + "]")
    elif kind is int:
        out.append(int.__repr__(obj))
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif obj is None:
        out.append("null")
    else:
        raise _UnusualError


def _pairs_unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


_IS_DICT = dict.__instancecheck__
_IS_LIST = list.__instancecheck__


def _key_count(obj: Any) -> int:
    """How many keys the dicts in ``obj`` hold, level by level (the loops run in C)."""
    count, level = 0, [obj]
    while level:
        dicts = list(filter(_IS_DICT, level))
        count += sum(map(len, dicts))
        level = list(
            chain(
                chain.from_iterable(map(dict.values, dicts)),
                chain.from_iterable(filter(_IS_LIST, level)),
            )
        )
    return count


_SPACES = bytes.maketrans(b"\n\r\t", b"   ")
"""JSON's whitespace as spaces: one search finds whitespace before a colon (each a copy and
a search of 14.6 MB: four searches took twice as long)."""


def loads_unique(data: bytes) -> Any:
    """``json.loads(data)``, refusing a duplicate key (JSON parsers disagree on which value
    wins, so clients could see other metadata than was verified).

    Fast path: with no backslash in ``data`` every ``"`` delimits a string, so each ``":``
    ends a key or opens a string starting with a colon; with no whitespace before any colon
    every key is followed by ``":``. Then ``data.count(b'":')`` is at least the number of
    keys written, which is at least the number parsed, with equality only when no key was
    written twice. Otherwise every object is checked as it is parsed.

    Raises:
        ValueError: not JSON (``json.JSONDecodeError``), or a duplicate key.
    """
    with paused_gc():
        if b"\\" not in data and b" :" not in data.translate(_SPACES):
            obj = json.loads(data)
            if data.count(b'":') == _key_count(obj):
                return obj
        return json.loads(data, object_pairs_hook=_pairs_unique)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cycle collector paused: parsing or encoding a role of 100,000 artifacts
    makes ~500,000 objects and no cycle, and each collection a batch of them triggers walks
    every object alive (a third of the time ``json.loads`` takes for a 14.6 MB role, half
    of a python-tuf parse). Nothing is left to collect."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
