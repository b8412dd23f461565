"""Small helpers for words shown to people (one place for plurals and caps on lists)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["cap_lines", "plural"]


def plural(count: int, word: str, words: str | None = None) -> str:
    """``"1 day"``, ``"2 days"``; ``words`` for an irregular plural."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def cap_lines(lines: list[str], budget: int, more: Callable[[int], str]) -> list[str]:
    """``lines`` while they fit in ``budget`` characters (newlines counted), then ``more(n)``
    for the ``n`` lines left out."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > budget:
            return [*out, more(len(lines) - i)]
        out.append(line)
        used += len(line) + 1
    return out
