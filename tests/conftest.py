"""Shared test configuration.

Subprocesses run ``python -m tufrepo`` from this checkout, whether or not it is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

# never read the developer's own tufrepo configuration file (tests set TUFREPO_CONFIG to use one)
os.environ["TUFREPO_CONFIG"] = str(ROOT / ".no-such-dir" / "config.toml")
