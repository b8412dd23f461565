"""How long work reports progress: the library calls a factory the command line supplies
(a bar on a terminal, nothing in CI); None means no progress at all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

__all__ = ["ProgressCallback", "ProgressFactory", "counting", "steps"]

ProgressCallback = Callable[[int], None]
"""Called with how much was done since the last call (bytes received, files hashed...)."""
ProgressFactory = Callable[[str, int], contextlib.AbstractContextManager[ProgressCallback | None]]
"""``(label, total)`` -> a context giving a ProgressCallback, or None for no progress."""
T = TypeVar("T")


def steps(
    progress: ProgressFactory | None, label: str, total: int
) -> contextlib.AbstractContextManager[ProgressCallback | None]:
    """``progress(label, total)``, or a context giving None without a factory."""
    return progress(label, total) if progress is not None else contextlib.nullcontext(None)


def counting(done: Callable[[T], None], step: ProgressCallback | None) -> Callable[[T], None]:
    """``done``, also advancing ``step`` (if any) by one per call."""
    if step is None:
        return done

    def both(item: T) -> None:
        done(item)
        step(1)

    return both
