"""Counters for the proportional-work tests: what python-tuf is asked to hash or build from
here on (every path in tufrepo that hashes an artifact or reads an entry goes through them)."""

from __future__ import annotations

from typing import Any

import pytest
from tuf.api.metadata import TargetFile


def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The target paths hashed from here on: every artifact tufrepo hashes goes through
    python-tuf's ``TargetFile.from_file`` (via ``targets.target_file`` or directly)."""
    hashed: list[str] = []
    real = TargetFile.from_file.__func__  # type: ignore[attr-defined]

    def counting(cls: type[TargetFile], target: str, *args: Any, **kwargs: Any) -> Any:
        hashed.append(target)
        return real(cls, target, *args, **kwargs)

    monkeypatch.setattr(TargetFile, "from_file", classmethod(counting))
    return hashed


def count_target_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the TargetFile objects built from metadata (``TargetFile.from_dict``)."""
    built: list[str] = []
    real = TargetFile.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[TargetFile], entry: dict[str, Any], path: str) -> Any:
        built.append(path)
        return real(cls, entry, path)

    monkeypatch.setattr(TargetFile, "from_dict", classmethod(counting))
    return built
