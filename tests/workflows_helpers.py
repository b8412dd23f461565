"""Checks of the CI templates, as functions that return a list of problems (empty: fine).

They are run on the real templates (tests/test_workflows_hardening.py) and on broken copies
of them, so that every check is shown to catch what it is there to catch.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB_DIR = ROOT / "workflows" / "github"
GITLAB_FILE = ROOT / "workflows" / "gitlab" / "tufrepo.gitlab-ci.yml"
GITLAB_APP_FILE = ROOT / "workflows" / "gitlab" / "app-release.gitlab-ci.yml"
GITLAB_FILES = sorted((ROOT / "workflows" / "gitlab").glob("*.yml"))
GITHUB_FILES = sorted(GITHUB_DIR.glob("*.yml"))

PIN_RE = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT_RE = re.compile(r"#\s*v\d+(\.\d+)*\s*$")
UNTRUSTED_CONTEXTS = ("github.event.", "github.head_ref", "github.ref_name", "inputs.")
# on GitLab, the values a pusher chooses (branch, tag, commit text, merge request text)
UNTRUSTED_GITLAB_VARS = re.compile(
    r"\$\{?(CI_COMMIT_(BRANCH|REF_NAME|REF_SLUG|TAG|MESSAGE|TITLE|DESCRIPTION)|CI_MERGE_REQUEST_\w+)"
)
DEPLOY_PAGES = "actions/deploy-pages"


def version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def triggers(wf: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` mapping (YAML 1.1 reads the key ``on`` as True)."""
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict)
    return on


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def runs(job: dict[str, Any]) -> list[str]:
    return [s["run"] for s in steps(job) if "run" in s]


def uses(job: dict[str, Any]) -> list[str]:
    return [s["uses"] for s in steps(job) if "uses" in s]


def pushes(job: dict[str, Any]) -> bool:
    """The job pushes to this repository (``--push`` without another ``--remote``)."""
    return any(
        "--push" in (w := shlex.split(r)) and not any(x.startswith("--remote") for x in w)
        for r in runs(job)
    )


def keys(data: Any) -> Iterator[str]:
    """Every mapping key in a parsed YAML document, at any depth."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield str(k)
            yield from keys(v)
    elif isinstance(data, list):
        for v in data:
            yield from keys(v)


def job_text(job: dict[str, Any]) -> str:
    return yaml.safe_dump(job)


def perms(job: dict[str, Any]) -> dict[str, str]:
    p = job.get("permissions")
    return p if isinstance(p, dict) else {}


# --- shell quoting -------------------------------------------------------------------------


def unquoted_expansions(line: str) -> list[str]:
    """``$NAME`` / ``${NAME}`` expansions of a shell line that are not inside double quotes.

    Single-quoted text is literal (jq programs, the credential helper) and skipped.
    """
    found = []
    in_single = in_double = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and not in_single:
            i += 2
            continue
        if c == "'" and not in_double:
            in_single = not in_single
        elif c == '"' and not in_single:
            in_double = not in_double
        elif c == "$" and not in_single:
            m = re.match(r"\$(\{?\w+\}?|\()", line[i:])
            if m and not in_double:
                found.append(m.group(0))
        i += 1
    return found


# --- GitHub checks -------------------------------------------------------------------------


def check_pins(path: Path) -> list[str]:
    """Every action is pinned to a full commit SHA with its version in a comment."""
    problems = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
        if not m:
            continue
        ref, rest = m.groups()
        if ref.startswith("./"):
            problems.append(f"{path.name}:{n}: local reusable workflow/action {ref}")
        elif not PIN_RE.match(ref):
            problems.append(f"{path.name}:{n}: {ref} is not pinned to a full commit SHA")
        elif not VERSION_COMMENT_RE.search(rest):
            problems.append(f"{path.name}:{n}: {ref} has no '# vX.Y.Z' comment")
    wf = load(path)
    count = sum(len(uses(j)) + ("uses" in j) for j in wf["jobs"].values())
    lines = sum(1 for ln in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", ln))
    if count != lines:
        problems.append(f"{path.name}: {count} uses in YAML but {lines} 'uses:' lines")
    return problems


def _write_problem(path: Path, job: dict[str, Any], scope: str) -> str | None:
    """Why ``scope: write`` is more than this job needs (None: it needs it)."""
    deploys = any(u.startswith(DEPLOY_PAGES + "@") for u in uses(job))
    signs_online = _runs_prefix(job, ["tufrepo", "online-sign"])
    needed = {
        "contents": (pushes(job), "the job never pushes"),
        "id-token": (deploys or signs_online, "no online signing nor Pages deployment"),
        "pages": (
            deploys and path.stem in ("publish", "online-sign"),
            "no Pages deployment in a publishing workflow",
        ),
        "pull-requests": (_runs_prefix(job, ["gh", "pr"]), "no gh pr command"),
        "issues": (_runs_prefix(job, ["gh", "issue"]), "no gh issue command"),
    }
    ok, why = needed.get(scope, (False, "never needed"))
    return None if ok else f"{scope}: write but {why}"


def check_permissions(path: Path) -> list[str]:
    """permissions: {} at the top; each job asks only for what its steps need."""
    wf = load(path)
    problems = []
    if wf.get("permissions") != {}:
        problems.append(f"{path.name}: top-level permissions must be {{}}")
    for name, job in wf["jobs"].items():
        where = f"{path.name}:{name}"
        p = job.get("permissions")
        if not isinstance(p, dict):
            problems.append(f"{where}: no explicit permissions mapping")
            continue
        for scope, level in p.items():
            if level not in ("read", "write", "none"):
                problems.append(f"{where}: {scope}: {level}")
            elif level == "write" and (why := _write_problem(path, job, scope)):
                problems.append(f"{where}: {why}")
        if pushes(job) and p.get("contents") != "write":
            problems.append(f"{where}: pushes without contents: write")
    return problems


def _runs_prefix(job: dict[str, Any], prefix: list[str]) -> bool:
    return any(shlex.split(r)[: len(prefix)] == prefix for r in runs(job))


def check_triggers_and_caches(path: Path) -> list[str]:
    """No dangerous triggers, no caches of any kind."""
    wf = load(path)
    problems = []
    for bad in ("pull_request_target", "workflow_run"):
        if bad in triggers(wf):
            problems.append(f"{path.name}: triggered by {bad}")
    for name, job in wf["jobs"].items():
        for s in steps(job):
            u = s.get("uses", "")
            if u.startswith(("actions/cache@", "actions/cache/")):
                problems.append(f"{path.name}:{name}: uses actions/cache")
            with_ = s.get("with") or {}
            if any("cache" in str(k) for k in with_):
                problems.append(f"{path.name}:{name}: {u} with a cache option")
    return problems


def check_checkout_credentials(path: Path) -> list[str]:
    """persist-credentials is false on every checkout, except in jobs that push."""
    wf = load(path)
    problems = []
    for name, job in wf["jobs"].items():
        for s in steps(job):
            if not s.get("uses", "").startswith("actions/checkout@"):
                continue
            persist = (s.get("with") or {}).get("persist-credentials")
            if persist is not False and not pushes(job):
                problems.append(f"{path.name}:{name}: checkout keeps credentials, never pushes")
            if persist is not True and pushes(job):
                problems.append(f"{path.name}:{name}: say persist-credentials: true explicitly")
    return problems


def check_run_lines(path: Path) -> list[str]:
    """No ${{ }} in run: at all (values come through env:), and every $VAR is quoted."""
    wf = load(path)
    problems = []
    for name, job in wf["jobs"].items():
        for r in runs(job):
            if "${{" in r:
                problems.append(f"{path.name}:{name}: expression in run: {r!r}")
            problems += [
                f"{path.name}:{name}: unquoted {e} in {r!r}" for e in unquoted_expansions(r)
            ]
            if "\n" in r.strip():
                problems.append(f"{path.name}:{name}: multi-line script in run: {r!r}")
    text = path.read_text()
    for ctx in UNTRUSTED_CONTEXTS:
        for m in re.finditer(r"\$\{\{[^}]*" + re.escape(ctx), text):
            line = text[: m.start()].rsplit("\n", 1)[-1]
            if not re.match(r"^\s+[A-Z_][A-Z0-9_]*:\s*$", line):
                problems.append(f"{path.name}: {ctx} used outside an env: value: {line!r}")
    return problems


def check_install_pin(path: Path) -> list[str]:
    """tufrepo is installed with pip at exactly this version."""
    wf = load(path)
    want = ["pip", "install", f"tufrepo=={version()}"]
    problems = []
    for name, job in wf["jobs"].items():
        for r in runs(job):
            if "pip" in shlex.split(r)[:1] and shlex.split(r) != want:
                problems.append(f"{path.name}:{name}: {r!r} is not {shlex.join(want)}")
    return problems


def check_secrets_need_environment(path: Path) -> list[str]:
    """A job that reads secrets runs in a (protected) environment."""
    wf = load(path)
    return [
        f"{path.name}:{name}: reads secrets outside an environment"
        for name, job in wf["jobs"].items()
        if "secrets." in job_text(job) and not job.get("environment")
    ]


def _push_branches(wf: dict[str, Any]) -> list[str] | None:
    push = triggers(wf).get("push", "absent")
    if push == "absent":
        return None
    return list((push or {}).get("branches", ["**"]))


def check_online_and_publish_only_from_main(path: Path) -> list[str]:
    """Online signing and deployment run only for main, in their protected environments;
    a workflow triggered by pushes to other branches can neither sign online nor publish."""
    wf = load(path)
    problems = []
    branches = _push_branches(wf)
    for name, job in wf["jobs"].items():
        where = f"{path.name}:{name}"
        signs = any(shlex.split(r)[:2] == ["tufrepo", "online-sign"] for r in runs(job))
        deploys = any(u.startswith(DEPLOY_PAGES + "@") for u in uses(job))
        publishes = any(shlex.split(r)[:2] == ["tufrepo", "publish"] for r in runs(job))
        if not (signs or deploys or publishes):
            continue
        if branches is not None and branches != ["main"]:
            problems.append(f"{where}: signs or publishes, but runs on pushes to {branches}")
        env = job.get("environment")
        env_name = env.get("name") if isinstance(env, dict) else env
        if signs and env_name != "tufrepo-online-signing":
            problems.append(f"{where}: online signing outside the protected environment")
        if deploys and env_name != "github-pages":
            problems.append(f"{where}: deploys outside the github-pages environment")
        if (signs or publishes or deploys) and not _main_only(wf, name):
            problems.append(f"{where}: not guarded by github.ref == 'refs/heads/main'")
    return problems


def _guarded(wf: dict[str, Any], name: str, condition: str) -> bool:
    """The job, or a job it needs (transitively), runs only when ``condition`` holds."""
    job = wf["jobs"][name]
    if job.get("if") == condition:
        return True
    needs = job.get("needs") or []
    needs = [needs] if isinstance(needs, str) else needs
    return any(_guarded(wf, n, condition) for n in needs)


def _main_only(wf: dict[str, Any], name: str) -> bool:
    return _guarded(wf, name, "github.ref == 'refs/heads/main'")


def check_signing_event_isolated(path: Path) -> list[str]:
    """The workflow that sign/** pushes run holds no secret, no environment, no OIDC token."""
    wf = load(path)
    branches = _push_branches(wf) or []
    if not any(b.startswith("sign/") for b in branches):
        return []
    problems = []
    text = path.read_text()
    if "secrets." in text:
        problems.append(f"{path.name}: a sign/** workflow reads secrets")
    for name, job in wf["jobs"].items():
        if job.get("environment"):
            problems.append(f"{path.name}:{name}: a sign/** job runs in an environment")
        if perms(job).get("id-token", "none") != "none":
            problems.append(f"{path.name}:{name}: a sign/** job can get an OIDC token")
        if "pages" in perms(job):
            problems.append(f"{path.name}:{name}: a sign/** job has pages permission")
        sign_only = "startsWith(github.ref, 'refs/heads/sign/')"
        if set(triggers(wf)) != {"push"} and not _guarded(wf, name, sign_only):
            problems.append(f"{path.name}:{name}: can run on refs other than sign/**")
    return problems


GITHUB_CHECKS = (
    check_pins,
    check_permissions,
    check_triggers_and_caches,
    check_checkout_credentials,
    check_run_lines,
    check_install_pin,
    check_secrets_need_environment,
    check_online_and_publish_only_from_main,
    check_signing_event_isolated,
)


# --- GitLab checks -------------------------------------------------------------------------


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
            elif [r.get("if") for r in job.get("rules", [])] != [
                r.get("if") for r in jobs[need_name].get("rules", [])
            ]:
                problems.append(f"{path.name}:{name}: rules differ from those of {need_name}")
    return problems


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
        words = shlex.split(line) if line.startswith("pip") else []
        if words and words != ["pip", "install", f"tufrepo=={version()}"]:
            problems.append(f"{where}: {line!r} does not pin tufrepo=={version()}")
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
        if ("id_tokens" in job or "TUFREPO_ONLINE_KEY_PASSWORD" in text) and not signs:
            problems.append(f"{where}: OIDC token or online key without online signing")
        if signs and (job.get("environment") or {}).get("name") != "tufrepo-online-signing":
            problems.append(f"{where}: online signing outside the protected environment")
        if (signs or publishes) and not all(
            "$CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH" in str(r.get("if"))
            and r.get("when") == "never"
            for r in job.get("rules", [])[:1]
        ):
            problems.append(f"{where}: signs or publishes without a default-branch-only rule")
    return problems
