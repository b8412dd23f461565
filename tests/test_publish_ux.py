"""What people see of ``tufrepo publish``: progress on a terminal (nothing extra in CI), and a
problem in the same words as ``tufrepo verify``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.git_helpers import git
from tests.git_helpers import run_tufrepo as tufrepo
from tests.site_helpers import DELEGATED, RepoBuilder
from tests.terminal_helpers import on_terminal


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo").build()


def test_progress_on_a_terminal_only(repo: RepoBuilder, tmp_path: Path) -> None:
    for i in range(30):
        repo.set_target(DELEGATED, f"{DELEGATED}/a/b/c/lib-{i}.so", b"lib %d" % i)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()
    code, screen = on_terminal(
        "publish", str(tmp_path / "tty-site"), "--repo", str(repo.path), answers=[], cwd=tmp_path
    )
    assert code == 0, screen
    assert "checking artifacts  [" in screen  # the artifacts hashed before anything is written
    assert "writing site files  [" in screen
    assert "100%" in screen
    assert "Published timestamp" in screen
    result = tufrepo("publish", str(tmp_path / "ci-site"), "--repo", str(repo.path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # CI logs: no bar, no control characters
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith("Published timestamp")


def _append(data: bytes) -> bytes:
    return data + b"\n"


def _change_signed(data: bytes) -> bytes:
    at = data.index(b'"expires": "') + len(b'"expires": "') + 3  # the year's last digit
    return data[:at] + (b"8" if data[at : at + 1] == b"9" else b"9") + data[at + 1 :]


def _break_signature(data: bytes) -> bytes:
    match = re.search(rb'"sig": "([0-9a-f])', data)
    assert match is not None
    at = match.start(1)
    return data[:at] + (b"1" if data[at : at + 1] == b"0" else b"0") + data[at + 1 :]


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "byte appended": _append,
    "signed byte changed": _change_signed,
    "signature broken": _break_signature,
}


@pytest.mark.parametrize("case", TAMPERS, ids=list(TAMPERS))
def test_tampered_role_is_one_problem_in_verify_and_publish(
    repo: RepoBuilder, tmp_path: Path, case: str
) -> None:
    git(repo.path, "init", "--quiet")
    targets = repo.path / "metadata" / "targets.json"
    targets.write_bytes(TAMPERS[case](targets.read_bytes()))
    verify = tufrepo("verify", "--repo", str(repo.path))
    assert verify.returncode == 1, verify.stderr
    problem = verify.stdout.splitlines()[0]
    assert problem.startswith("targets: ")
    site = tmp_path / "site"
    result = tufrepo("publish", str(site), "--repo", str(repo.path))
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: the repository does not verify: {problem}")
    assert "refresh failed" not in line  # not the client's words for the same problem
    assert not site.exists()
