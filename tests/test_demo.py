"""``tufrepo demo`` runs the whole lifecycle, and the example repository it built stays valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tufrepo.repository import dir_view
from tufrepo.roles import delegated_role_names
from tufrepo.targets import scan_all
from tufrepo.validate import verify_repository

pytestmark = pytest.mark.git


def test_demo_runs_the_whole_lifecycle(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUFREPO_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tufrepo", "demo", str(tmp_path / "demo")],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for step in ("status: ready to merge", "check-site: valid", "downloaded and verified"):
        assert step in out
    assert "127.0.0.1" in out
    site = tmp_path / "demo/site"
    assert (site / "metadata/1.root.json").is_file()
    assert (site / "metadata/timestamp.json").is_file()
    timestamp = json.loads((site / "metadata/timestamp.json").read_text())["signed"]
    assert timestamp["version"] == 2  # after init, and after the release
    artifacts = list((site / "targets").glob("*.app-1.0.tar.gz"))
    assert len(artifacts) == 1
    assert (tmp_path / "demo/downloads/app-1.0.tar.gz").read_bytes() == (
        tmp_path / "demo/app-build/app-1.0.tar.gz"
    ).read_bytes()
    _run_next_steps(out, env)


def _run_next_steps(out: str, env: dict[str, str]) -> None:
    """The commands the demo prints work on what it leaves (those that need no server)."""
    cwd = None
    ran = []
    for line in out.splitlines():
        if not line.startswith("  $ "):
            continue
        command = line.removeprefix("  $ ")
        if command.startswith("export "):
            env.update(dict(v.split("=", 1) for v in command.split()[1:]))
        elif command.startswith("cd "):
            cwd = command.removeprefix("cd ")
        elif "check-site" not in command and "download" not in command and "http" not in command:
            for part in command.split(" && "):
                args = part.split()
                if args[0] == "tufrepo":
                    args = [sys.executable, "-m", "tufrepo", *args[1:]]
                proc = subprocess.run(
                    args, cwd=cwd, env=env, capture_output=True, text=True,
                    stdin=subprocess.DEVNULL, timeout=120, check=False,
                )  # fmt: skip
                assert proc.returncode == 0, f"{part}: {proc.stdout}{proc.stderr}"
                ran.append(part)
    assert any("delegate" in c for c in ran)
    assert any("status" in c for c in ran)
    assert any("verify" in c for c in ran)
    assert "python3 -m http.server" in out  # how to serve the site after the demo


def test_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("mine")
    proc = subprocess.run(
        [sys.executable, "-m", "tufrepo", "demo", str(tmp_path)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "not empty" in proc.stderr
    assert (tmp_path / "x").read_text() == "mine"


def test_example_repository_verifies() -> None:
    """metadata/ and targets/ at the top of this project: the repository the demo built.

    Checked at the time it was signed online (its timestamp lives 2 days), so it stays a
    valid example: every signature, the root chain, and targets equal to the files.
    """
    view = dir_view(ROOT)
    signed_at = view.require("timestamp").signed.expires - timedelta(days=1)
    scanned = scan_all(ROOT, delegated_role_names(view.targets()))
    report = verify_repository(view, signed_at, scanned, [])
    assert report.problems == []
    assert report.warnings == []
