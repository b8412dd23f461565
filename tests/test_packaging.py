"""tufrepo as users and CI install it: the hash-locked requirements, and a wheel that stands
alone.

The big test builds the sdist and wheel with the release workflow's own build commands
(.github/workflows/release.yml), installs tufrepo as the composite actions do
(actions/install.sh: every dependency hash-checked from requirements/), then the wheel, into
a fresh virtual environment outside the checkout, and runs the CLI from there. It needs PyPI
(for the dependencies; pip's cache is reused) and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import workflows_helpers as h
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = h.ROOT
LOCKS = ROOT / "requirements"
# what the base install must never pull in (signers' machines and CI stay light)
HEAVY = {"grpcio", "tpm2-pytss", "pytest", "ruff", "mypy", "zizmor", "freezegun", "pyyaml"}


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned(lock: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a lock file."""
    out = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
        if m:
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def header_inputs(lock: Path) -> list[str]:
    return [
        ln.removeprefix("#   ") for ln in lock.read_text().splitlines() if ln.startswith("#   ")
    ]


# --- the lock files ---------------------------------------------------------------------


def test_runtime_lock_lists_pyproject_dependencies() -> None:
    """Offline and instant: the lock was made from exactly pyproject's dependencies, and pins
    a version of each that satisfies it. Adding or changing a dependency without running
    scripts/lock.py fails here."""
    deps = pyproject()["project"]["dependencies"]  # type: ignore[index]
    lock = LOCKS / "runtime.txt"
    assert header_inputs(lock) == deps, "pyproject changed: run python scripts/lock.py"
    versions = pinned(lock)
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in versions, f"{name} is not in {lock.name}"
        assert req.specifier.contains(versions[name], prereleases=True), (dep, versions[name])
    assert not HEAVY & set(versions), HEAVY & set(versions)


def test_build_lock_lists_build_requirements() -> None:
    build = pyproject()["build-system"]["requires"]  # type: ignore[index]
    lock = LOCKS / "build.txt"
    assert header_inputs(lock) == [*build, "build>=1.2"]
    assert {"setuptools", "build"} <= set(pinned(lock))


def test_every_pin_has_hashes() -> None:
    for lock in LOCKS.glob("*.txt"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n\n")[-1])
        for entry in entries:
            if "==" in entry:
                assert "--hash=sha256:" in entry, f"{lock.name}: {entry.splitlines()[0]}"


def test_lock_files_are_reproducible() -> None:
    """Resolving pyproject again (uv, releases before the lock's cut-off date, from PyPI
    with uv's cache) gives the committed files byte for byte."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- the wheel, installed alone -------------------------------------------------------------


def _source_copy(dest: Path) -> str:
    """The checkout's files (tracked and new, not ignored) committed in a fresh repository
    at ``dest``; returns that commit."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel, follow_symlinks=False)
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "source"], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _release_build_lines() -> list[str]:
    """The run: lines of release.yml's build job, as the job runs them."""
    wf = h.load(ROOT / ".github" / "workflows" / "release.yml")
    return h.runs(wf["jobs"]["build"])


class Venv:
    def __init__(self, path: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
        self.path = path
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{path / 'bin'}{os.pathsep}{env['PATH']}"
        self.env = env

    def run(self, args: list[str], cwd: Path, timeout: int = 600) -> str:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout


def _wheel_requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(z.read(meta).decode())
    return [Requirement(r) for r in message.get_all("Requires-Dist") or []]


def _check_dist(dist: Path) -> Path:
    """dist/ holds exactly one sdist and one wheel of pyproject's name and version, and
    twine accepts both; returns the wheel."""
    version = h.version()
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"tufrepo-{version}-py3-none-any.whl", f"tufrepo-{version}.tar.gz"]
    done = subprocess.run(
        [h.tool("twine"), "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dist / names[0]


def _check_light(wheel: Path) -> None:
    """The base requirements hold nothing heavy; extras tpm and kms carry the rest."""
    requires = _wheel_requires(wheel)
    base = {canonicalize_name(r.name) for r in requires if r.marker is None}
    assert base, "no Requires-Dist in the wheel"
    assert not HEAVY & base, HEAVY & base
    by_extra: dict[str, set[str]] = {}
    for r in requires:
        for extra in ("tpm", "kms", "test"):
            if r.marker is not None and r.marker.evaluate({"extra": extra}):
                by_extra.setdefault(extra, set()).add(canonicalize_name(r.name))
    assert {"grpcio", "tpm2-pytss"} <= by_extra["tpm"]
    assert "securesystemslib" in by_extra["kms"]


@pytest.mark.slow
def test_wheel_stands_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    commit = _source_copy(src)
    venv = Venv(tmp_path / "venv")

    # release.yml's build job: hash-checked build tools, then python -m build
    for line in _release_build_lines():
        venv.run(["bash", "-c", line], cwd=src)
    wheel = _check_dist(src / "dist")
    _check_light(wheel)
    with zipfile.ZipFile(wheel) as z:
        assert z.read("tufrepo/data/source-commit").decode().strip() == commit
        assert "tufrepo/data/sigstore/trust-config.json" in z.namelist()

    # the actions' install (hash-checked dependencies, tufrepo from the source), then the
    # wheel in its place: nothing may be missing from it
    started = time.monotonic()
    venv.run(["bash", str(src / "actions" / "install.sh")], cwd=tmp_path)
    install_seconds = time.monotonic() - started
    pip = ["python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    venv.run([*pip, "--force-reinstall", str(wheel)], cwd=tmp_path)
    venv.run(["python", "-m", "pip", "check"], cwd=tmp_path)
    shutil.rmtree(src)  # nothing of the checkout is left to fall back on
    installed = {
        canonicalize_name(line.split("==")[0])
        for line in venv.run(["python", "-m", "pip", "freeze"], cwd=tmp_path).splitlines()
    }
    assert not HEAVY & installed, HEAVY & installed

    work = tmp_path / "work"
    work.mkdir()
    version = venv.run(["tufrepo", "--version"], cwd=work)
    assert version.splitlines() == [f"tufrepo, version {h.version()}", f"source commit {commit}"]
    where = venv.run(["python", "-c", "import tufrepo; print(tufrepo.__file__)"], cwd=work)
    assert where.startswith(str(venv.path))
    demo = venv.run(["tufrepo", "demo", str(work / "demo")], cwd=work, timeout=300)
    assert "download" in demo.lower()

    repo = work / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    out = venv.run(["tufrepo", "workflows", "install", "--github", "--repo", str(repo)], cwd=work)
    assert "created .github/workflows/tufrepo-online-sign.yml" in out.splitlines()
    online = (repo / ".github/workflows/tufrepo-online-sign.yml").read_text()
    assert f"{h.ACTIONS_REPO}online-sign@{commit} # v{h.version()}" in online
    venv.run(["tufrepo", "workflows", "check", "--repo", str(repo)], cwd=work)
    size = sum(f.stat().st_size for f in venv.path.rglob("*") if f.is_file())
    print(f"install.sh: {install_seconds:.1f} s; venv {size / 1e6:.0f} MB")


def test_version_matches_pyproject() -> None:
    from tufrepo import __version__

    assert __version__ == h.version()


def test_release_build_lines_are_the_documented_ones() -> None:
    """What the big test runs is what release.yml runs: hash-checked tools, no isolation
    (no unpinned build backend from an index)."""
    lines = _release_build_lines()
    assert lines == [
        "python -m pip install --require-hashes --only-binary ':all:' -r requirements/build.txt",
        "python -m build --no-isolation --outdir dist/",
    ]
    data = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    assert "dist/" in str(data["jobs"]["build"]["steps"][-1]["with"]["path"])


def test_cli_and_demo_import_no_optional_dependency() -> None:
    """gRPC and tpm2-pytss (extra `tpm`) and the KMS clients (extra `kms`) are imported only
    by the commands that use them: with them made unimportable, the CLI, the demo and the
    signer registry still load (the base install is checked for real in the slow test)."""
    code = """
import sys
BLOCKED = {"grpc", "tpm2_pytss", "google", "boto3", "botocore", "azure"}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Block())
import tufrepo.cli, tufrepo.demo, tufrepo.workflows
from tufrepo.signers import register
register()
print(sorted(BLOCKED & {m.split(".")[0] for m in sys.modules}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
