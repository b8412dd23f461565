"""Checks of the GitLab CI/CD components (templates/), as functions that return a list of
problems (empty: fine); run on the real components and on broken copies of them. And the
jobs of a component run as GitLab's runner runs them, against a stand-in project."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from workflows_helpers import UNTRUSTED_GITLAB_VARS, component_spec, keys, load, unquoted_expansions


def gitlab_jobs(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each job with its templates (extends) merged in, as GitLab would."""
    for name, job in data.items():
        if name.startswith(".") or not isinstance(job, dict) or name in ("variables", "default"):
            continue
        yield name, _resolve(data, job)


def _resolve(data: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    ext = job.get("extends") or []
    ext = [ext] if isinstance(ext, str) else ext
    merged: dict[str, Any] = {}
    for e in ext:
        merged = _merge(merged, _resolve(data, data[e]))
    return _merge(merged, {k: v for k, v in job.items() if k != "extends"})


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def script_lines(job: dict[str, Any]) -> list[str]:
    return [*job.get("before_script", []), *job.get("script", [])]


def _rules_text(job: dict[str, Any]) -> str:
    return " ".join(str(r.get("if", "")) for r in job.get("rules", []))


def check_gitlab_needs(path: Path) -> list[str]:
    """Every job a job needs exists and runs under the same rules (else GitLab refuses the
    pipeline: "needs ... is not defined in a prior stage" or the needed job is absent)."""
    jobs = dict(gitlab_jobs(load(path)))
    problems = []
    for name, job in jobs.items():
        for need in job.get("needs", []):
            need_name = need if isinstance(need, str) else need["job"]
            if need_name not in jobs:
                problems.append(f"{path.name}:{name}: needs unknown job {need_name}")
            elif [r.get("if") for r in _narrowed(job, jobs[need_name])] != [
                r.get("if") for r in jobs[need_name].get("rules", [])
            ]:
                problems.append(f"{path.name}:{name}: rules differ from those of {need_name}")
    return problems


def _narrowed(job: dict[str, Any], needed: dict[str, Any]) -> list[dict[str, Any]]:
    """``job``'s rules without the ``when: never`` rules that ``needed`` lacks: extra
    exclusions only narrow when a job runs, so the job it needs still runs whenever it does."""
    theirs = needed.get("rules", [])
    return [r for r in job.get("rules", []) if r.get("when") != "never" or r in theirs]


def _gitlab_script_problems(where: str, lines: list[str]) -> list[str]:
    """Quoted expansions (untrusted ones above all) and the pinned tufrepo install."""
    problems = []
    for line in lines:
        unquoted = unquoted_expansions(line)
        problems += [f"{where}: unquoted {e} in {line!r}" for e in unquoted]
        problems += [
            f"{where}: untrusted {m.group(0)} unquoted"
            for m in UNTRUSTED_GITLAB_VARS.finditer(line)
            if m.group(0) in unquoted
        ]
        if "pip" in line.split():
            problems.append(f"{where}: installs with pip outside install.sh: {line!r}")
    return problems


GITLAB_INSTALL = [
    "git init --quiet /tmp/tufrepo-source",
    (
        "GIT_CONFIG_COUNT=0 git -C /tmp/tufrepo-source fetch --quiet --depth 1"
        ' "$TUFREPO_SOURCE" "$TUFREPO_REF"'
    ),
    "git -C /tmp/tufrepo-source checkout --quiet --detach FETCH_HEAD",
    "bash /tmp/tufrepo-source/actions/install.sh",
]


def check_gitlab_install(path: Path, job: dict[str, Any], where: str) -> list[str]:
    """A job that runs tufrepo installs it first (the pinned install lines, together, before
    its first tufrepo line), from the source at the component's pinned commit (a spec input
    that must be a full SHA)."""
    lines = script_lines(job)
    first = next((i for i, ln in enumerate(lines) if ln.startswith("tufrepo ")), None)
    if first is None:
        return []
    problems = []
    n = len(GITLAB_INSTALL)
    if not any(lines[i : i + n] == GITLAB_INSTALL for i in range(first - n + 1)):
        problems.append(f"{where}: tufrepo not installed by the pinned install lines first")
    variables = job.get("variables") or {}
    if variables.get("TUFREPO_REF") != "$[[ inputs.tufrepo-ref ]]":
        problems.append(f"{where}: TUFREPO_REF is not the component's tufrepo-ref input")
    ref = component_spec(path).get("inputs", {}).get("tufrepo-ref", {})
    if ref.get("regex") != "^[0-9a-f]{40}$" or "default" in ref:
        problems.append(f"{path.name}: input tufrepo-ref is not a required full commit SHA")
    return problems


def check_gitlab(path: Path) -> list[str]:
    data = load(path)
    problems = check_gitlab_needs(path)
    if "cache" in keys(data):
        problems.append(f"{path.name}: uses a cache")
    protected = ("TUFREPO_MAIN_TOKEN", "TUFREPO_ONLINE_KEY_PASSWORD")
    for name, job in gitlab_jobs(data):
        where = f"{path.name}:{name}"
        rules = _rules_text(job)
        lines = script_lines(job)
        problems += _gitlab_script_problems(where, lines)
        problems += check_gitlab_install(path, job, where)
        text = yaml.safe_dump(job)
        signs = any(ln.startswith("tufrepo online-sign") for ln in lines)
        publishes = any(ln.startswith("tufrepo publish") for ln in lines) or name == "pages"
        if "sign\\/" in rules or "sign/" in rules:
            if any(p in text for p in protected):
                problems.append(f"{where}: a sign/** job can read a protected variable")
            if "environment" in job or "id_tokens" in job:
                problems.append(f"{where}: a sign/** job has an environment or id_tokens")
        if "TUFREPO_PUSH_TOKEN" in text and '$CI_COMMIT_REF_PROTECTED == "true"' not in rules:
            problems.append(f"{where}: the push token outside protected refs")
        bucket = any(ln.startswith('tufrepo publish "$TUFREPO_BUCKET_URL"') for ln in lines)
        if "TUFREPO_ONLINE_KEY_PASSWORD" in text and not signs:
            problems.append(f"{where}: online key without online signing")
        if "id_tokens" in job and not (signs or bucket):
            problems.append(f"{where}: OIDC token without online signing nor bucket publishing")
        if bucket and (job.get("environment") or {}).get("name") != "tufrepo-publish":
            problems.append(f"{where}: publishes to a bucket outside its protected environment")
        if signs and (job.get("environment") or {}).get("name") != "tufrepo-online-signing":
            problems.append(f"{where}: online signing outside the protected environment")
        if (signs or publishes) and not all(
            "$CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH" in str(r.get("if"))
            and r.get("when") == "never"
            for r in job.get("rules", [])[:1]
        ):
            problems.append(f"{where}: signs or publishes without a default-branch-only rule")
    return problems


# --- running a job as GitLab's runner does (tests that play the components' jobs) ---


def run_job(
    job: dict[str, Any], cwd: Path, env: dict[str, str], probe: tuple[str, ...] = ()
) -> int:
    """The job as GitLab's runner runs it: its before_script lines, then ``probe`` (the
    test's own lines), then its script lines, in one ``bash -eo pipefail``, in the project
    directory ``cwd`` ($CI_PROJECT_DIR), so a ``cd`` carries over; the lines that install
    tufrepo are left out (it is installed here). The exit code: that of the first failing
    line, else 0."""
    setup = [ln for ln in job.get("before_script", []) if ln not in GITLAB_INSTALL]
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", "\n".join([*setup, *probe, *job.get("script", [])])],
        cwd=cwd, env={**env, "CI_PROJECT_DIR": str(cwd)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.returncode


def gitlab_project(repo: Path, tmp_path: Path, branch: str) -> dict[str, str]:
    """``repo`` (a bare repository) as the project on a stand-in GitLab server, at
    $CI_SERVER_URL/$CI_PROJECT_PATH.git over file:// (partial clones allowed, as GitLab
    does); the job's variables for a pipeline of ``branch``."""
    server = tmp_path / "gitlab-server"
    (server / "group").mkdir(parents=True)
    (server / "group" / "tuf.git").symlink_to(repo)
    subprocess.run(["git", "-C", str(repo), "config", "uploadpack.allowFilter", "true"], check=True)
    jobs_tmp = tmp_path / "runner-tmp"
    jobs_tmp.mkdir()
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(jobs_tmp),
        "CI_SERVER_URL": server.as_uri(),
        "CI_PROJECT_PATH": "group/tuf",
        "CI_COMMIT_BRANCH": branch,
        "CI_DEFAULT_BRANCH": "main",
        "CI_JOB_TOKEN": "job-token",  # file:// asks for none
    }


def as_gitlab_project(repo: Path, tmp_path: Path) -> dict[str, str]:
    """A repository that is no git repository yet (the published site's) committed to a
    bare one on main, as a GitLab project; the job's variables."""
    bare = tmp_path / "project.git"
    for args in (
        ["init", "--quiet", "--initial-branch=main", str(repo)],
        ["-C", str(repo), "add", "--all"],
        ["-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost",
         "commit", "--quiet", "-m", "repository"],
        ["clone", "--quiet", "--bare", str(repo), str(bare)],
    ):  # fmt: skip
        subprocess.run(["git", *args], check=True, capture_output=True)
    return gitlab_project(bare, tmp_path, "main")
