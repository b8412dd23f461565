"""Build hook: record the git commit a package is built from.

``tufrepo workflows install`` pins the installed workflows to the composite actions (GitHub)
and components (GitLab) of that commit. The commit is written to
``tufrepo/data/source-commit`` in the sdist (built from a git checkout) and in the wheel
(built from the checkout or from that sdist). Without git and without a recorded commit,
nothing is written and ``workflows install`` asks for ``--ref``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
RECORD = Path("tufrepo", "data", "source-commit")


def _git_commit() -> str | None:
    """HEAD of the checkout this file is in (None outside a checkout of its own)."""
    if not (HERE / ".git").exists():  # never the commit of an enclosing repository
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--verify", "HEAD^{commit}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _record(root: Path) -> None:
    sha = _git_commit()
    if sha is not None:
        dest = root / RECORD
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(sha + "\n", encoding="ascii")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            _record(Path(self.build_lib))


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        _record(Path(base_dir))


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
