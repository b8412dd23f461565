"""Three-way merge of a role's ``signed`` part: an event's changes replayed on main's (pure).

When main changed a role that a signing event also changes, bringing the event up to date
keeps both: the result is main's version with the event's changes (against the point where
the event left main) applied. Dicts merge key by key; lists of names (key ids, paths) as
sets (main's entries, plus those the event added, minus those it removed); lists of named
objects (delegated roles) by name. A value both sides changed differently keeps the event's
value and is reported, so that the people who sign the rebuilt role see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ABSENT: Any = object()


@dataclass(frozen=True)
class Override:
    """A value main and the event both changed: the event's is kept."""

    path: str
    main: Any
    event: Any

    def describe(self) -> str:
        return f"{self.path}: main has {_show(self.main)}, kept the event's {_show(self.event)}"


def _show(value: Any) -> str:
    return "nothing" if value is _ABSENT else repr(value)


def merge_signed(
    base: dict[str, Any],
    main: dict[str, Any],
    event: dict[str, Any],
    *,
    main_only: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[Override]]:
    """Main's ``signed`` dict with the event's changes since ``base``; the top-level keys in
    ``main_only`` are main's as they are (e.g. ``targets``, recomputed from the files)."""
    overrides: list[Override] = []
    merged = _merge_dict((base, main, event), "", overrides, main_only=main_only)
    return merged, overrides


def _merge(base: Any, main: Any, event: Any, path: str, out: list[Override]) -> Any:
    if event in (base, main):
        return main
    if main == base:
        return event
    if all(isinstance(v, dict) for v in (base, main, event)):
        return _merge_dict((base, main, event), path, out)
    if all(isinstance(v, list) for v in (base, main, event)):
        merged = _merge_list(base, main, event, path, out)
        if merged is not _ABSENT:
            return merged
    out.append(Override(path, main, event))
    return event


def _merge_dict(
    sides: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    path: str,
    out: list[Override],
    *,
    main_only: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    base, main, event = sides
    result: dict[str, Any] = {}
    for key in [*main, *(k for k in event if k not in main)]:
        if key in main_only:
            value = main.get(key, _ABSENT)
        else:
            sub = f"{path}.{key}" if path else key
            value = _merge(
                base.get(key, _ABSENT), main.get(key, _ABSENT), event.get(key, _ABSENT), sub, out
            )
        if value is not _ABSENT:
            result[key] = value
    return result


def _merge_list(
    base: list[Any], main: list[Any], event: list[Any], path: str, out: list[Any]
) -> Any:
    """Lists of strings as sets; lists of ``{"name": ...}`` objects by name; else _ABSENT."""
    if all(isinstance(x, str) for x in (*base, *main, *event)):
        added = [x for x in event if x not in base]
        removed = {x for x in base if x not in event}
        return [x for x in main if x not in removed] + [x for x in added if x not in main]
    items = (*base, *main, *event)
    if not all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in items):
        return _ABSENT
    b, m, e = ({x["name"]: x for x in side} for side in (base, main, event))
    if (len(b), len(m), len(e)) != (len(base), len(main), len(event)):
        return _ABSENT  # duplicate names: no way to pair the entries
    merged = _merge_dict((b, m, e), path, out)
    return list(merged.values())
