"""tufrepo's own release workflow (.github/workflows/release.yml) keeps the hardening it
asks of its users. It cannot run here: it is linted (zizmor, actionlint, the template checks
that apply) and its rules are checked on the file and on broken copies. Its build commands
run in tests/test_packaging.py::test_wheel_stands_alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import workflows_helpers as h

RELEASE = h.ROOT / ".github" / "workflows" / "release.yml"
ATTEST = "actions/attest-build-provenance@"
PUBLISH = "pypa/gh-action-pypi-publish@"


def check_release(path: Path) -> list[str]:
    """Build isolated and read-only; the OIDC token only where provenance is attested and
    where PyPI is published to (from the protected environment, after the attestation)."""
    wf = h.load(path)
    jobs = wf["jobs"]
    problems = []
    if wf.get("permissions") != {}:
        problems.append("top-level permissions must be {}")
    if set(h.triggers(wf)) != {"push"} or list(h.triggers(wf)["push"]) != ["tags"]:
        problems.append("runs on anything but pushed tags")
    build = [n for n, j in jobs.items() if any("python -m build" in r for r in h.runs(j))]
    for name, job in jobs.items():
        where = f"{path.name}:{name}"
        perms = h.perms(job)
        steps_uses = h.uses(job)
        attests = any(u.startswith(ATTEST) for u in steps_uses)
        publishes = any(u.startswith(PUBLISH) for u in steps_uses)
        writes = {k for k, v in perms.items() if v == "write"}
        if name in build and (perms != {"contents": "read"} or attests or publishes):
            problems.append(f"{where}: the build job must only read, and only build")
        allowed = {"id-token", "attestations"} if attests else {"id-token"} if publishes else set()
        if writes - allowed:
            problems.append(f"{where}: writes {sorted(writes - allowed)}")
        if publishes:
            env = job.get("environment")
            env_name = env.get("name") if isinstance(env, dict) else env
            if env_name != "pypi":
                problems.append(f"{where}: publishes outside the protected environment pypi")
            needs = job.get("needs") or []
            attest_jobs = {
                n for n, j in jobs.items() if any(u.startswith(ATTEST) for u in h.uses(j))
            }
            if not attest_jobs <= set(needs) or not set(build) <= set(needs):
                problems.append(f"{where}: publishes without waiting for build and attestation")
            if "secrets." in h.job_text(job):
                problems.append(f"{where}: a stored token: use trusted publishing")
    if not build:
        problems.append("no job runs python -m build")
    if not any(any(u.startswith(ATTEST) for u in h.uses(j)) for j in jobs.values()):
        problems.append("no build provenance attestation")
    return problems


CHECKS: list[Callable[[Path], list[str]]] = [
    check_release,
    h.check_pins,
    h.check_triggers_and_caches,
    h.check_checkout_credentials,
    h.check_run_lines,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_release_passes(check: Callable[[Path], list[str]]) -> None:
    assert check(RELEASE) == []


MUTATIONS: list[tuple[str, str, Callable[[Path], list[str]]]] = [
    ("      contents: read # reads the tagged commit\n", "      contents: write\n", check_release),
    (
        "      contents: read # reads the tagged commit\n",
        "      contents: read\n      id-token: write\n",
        check_release,
    ),
    ("permissions: {}\n", "permissions: write-all\n", check_release),
    ("      name: pypi\n", "      name: release\n", check_release),
    ("    needs: [build, attest]\n", "    needs: [build]\n", check_release),
    (
        "          packages-dir: dist/\n",
        "          packages-dir: dist/\n          password: ${{ secrets.PYPI_TOKEN }}\n",
        check_release,
    ),
    (
        "      id-token: write # PyPI trusted publishing (OIDC)\n",
        "      id-token: write\n      contents: write\n",
        check_release,
    ),
    ('    tags: ["v*"]\n', '    tags: ["v*"]\n    branches: [main]\n', check_release),
    ("@dc37677b2e1c63e2034f94d8a5b11f265b73ba33 # v1.14.2", "@release/v1", h.check_pins),
    ("          persist-credentials: false\n", "", h.check_checkout_credentials),
    (
        '          python-version: "3.12"\n',
        '          python-version: "3.12"\n          cache: pip\n',
        h.check_triggers_and_caches,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "check"),
    MUTATIONS,
    ids=[f"{i}-{m[2].__name__}" for i, m in enumerate(MUTATIONS)],
)
def test_release_check_catches(
    tmp_path: Path, old: str, new: str, check: Callable[[Path], list[str]]
) -> None:
    text = RELEASE.read_text()
    assert old in text, f"mutation no longer applies: {old!r}"
    broken = tmp_path / RELEASE.name
    broken.write_text(text.replace(old, new, 1))
    assert check(broken) != []


def _tool_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [h.tool(args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def release_checkout(tmp_path: Path) -> Path:
    wf = tmp_path / ".github" / "workflows"
    wf.mkdir(parents=True)
    shutil.copy(RELEASE, wf / RELEASE.name)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_release_zizmor_zero_findings(release_checkout: Path) -> None:
    result = _tool_run(
        ["zizmor", "--offline", "--format", "json", "--no-progress", str(release_checkout)],
        cwd=release_checkout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_release_zizmor_notices_a_cache(release_checkout: Path) -> None:
    wf = release_checkout / ".github" / "workflows" / RELEASE.name
    setup = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0"
    cached = f"      - uses: {setup}\n        with:\n          cache: pip\n      - uses: pypa/"
    wf.write_text(wf.read_text().replace("      - uses: pypa/", cached))
    result = _tool_run(
        ["zizmor", "--offline", "--format", "json", "--no-progress", str(release_checkout)],
        cwd=release_checkout,
    )
    assert result.returncode != 0
    assert "cache-poisoning" in result.stdout


def test_release_actionlint(release_checkout: Path) -> None:
    result = _tool_run(["actionlint", "-no-color"], cwd=release_checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    wf = release_checkout / ".github" / "workflows" / RELEASE.name
    wf.write_text(wf.read_text().replace("    needs: [build, attest]", "    needs: [build, sign]"))
    result = _tool_run(["actionlint", "-no-color"], cwd=release_checkout)
    assert result.returncode != 0
    assert "sign" in result.stdout


def test_zizmor_on_this_repository() -> None:
    """The repository as it is: release.yml, dependabot.yml and the composite actions."""
    result = _tool_run(
        ["zizmor", "--offline", "--format", "json", "--no-progress", str(h.ROOT)], cwd=h.ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []
    audited = result.stderr
    for rel in (
        ".github/workflows/release.yml",
        ".github/dependabot.yml",
        "actions/status/action.yml",
    ):
        assert rel in audited, audited
