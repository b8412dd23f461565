"""Checks of the CI templates, as functions that return a list of problems (empty: fine).

They are run on the real templates (tests/test_workflows_hardening.py) and on broken copies
of them, so that every check is shown to catch what it is there to catch.
"""

from __future__ import annotations

import atexit
import re
import shlex
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tufrepo.workflows import Pin, render

ROOT = Path(__file__).resolve().parent.parent
GITHUB_DIR = ROOT / "workflows" / "github"
GITHUB_SOURCES = sorted(GITHUB_DIR.glob("*.yml"))
# GitLab: the CI/CD components (templates/) and the includes that install them
GITLAB_FILE = ROOT / "templates" / "repository.yml"
GITLAB_APP_FILE = ROOT / "templates" / "app-release.yml"
GITLAB_FILES = sorted((ROOT / "templates").glob("*.yml"))
GITLAB_INCLUDES = sorted((ROOT / "workflows" / "gitlab").glob("*.yml"))
ACTIONS_DIR = ROOT / "actions"
ACTION_FILES = sorted(ACTIONS_DIR.glob("*/action.yml"))
ACTIONS_REPO = "tufrepo/tufrepo/actions/"
INSTALL_RUN = 'bash "$GITHUB_ACTION_PATH/../install.sh"'
TEST_REF = "0123456789abcdef0123456789abcdef01234567"

PIN_RE = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT_RE = re.compile(r"#\s*v\d+(\.\d+)*\s*$")
UNTRUSTED_CONTEXTS = ("github.event.", "github.head_ref", "github.ref_name", "inputs.")
# on GitLab, the values a pusher chooses (branch, tag, commit text, merge request text)
UNTRUSTED_GITLAB_VARS = re.compile(
    r"\$\{?(CI_COMMIT_(BRANCH|REF_NAME|REF_SLUG|TAG|MESSAGE|TITLE|DESCRIPTION)|CI_MERGE_REQUEST_\w+)"
)
DEPLOY_PAGES = "actions/deploy-pages"


def tool(name: str) -> str:
    """A command-line tool of the test extra: on PATH, or beside this Python."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed: pip install -e '.[test]' (scripts/dev.sh)"
    return path


def version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def render_text(text: str, ref: str = TEST_REF) -> str:
    """A template as `tufrepo workflows install --ref REF` writes it."""
    return render(text.encode(), Pin(ref=ref, version=version())).decode()


def _rendered_github_files() -> list[Path]:
    """The GitHub templates rendered at TEST_REF, in a directory removed at exit."""
    out = Path(tempfile.mkdtemp(prefix="tufrepo-rendered-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    for src in GITHUB_SOURCES:
        (out / src.name).write_text(render_text(src.read_text()))
    return sorted(out.glob("*.yml"))


GITHUB_FILES = _rendered_github_files()


def load(path: Path) -> dict[str, Any]:
    """A YAML file; of a CI/CD component (a spec header, ---, the jobs), the jobs."""
    docs = list(yaml.safe_load_all(path.read_text()))
    data = docs[-1]
    assert isinstance(data, dict)
    return data


def component_spec(path: Path) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 2, f"{path.name}: a component is a spec header, ---, then the jobs"
    spec = docs[0]["spec"]
    assert isinstance(spec, dict)
    return spec


def action_of(uses_ref: str) -> Path | None:
    """The action.yml of one of tufrepo's own actions (None: another action)."""
    if not uses_ref.startswith(ACTIONS_REPO):
        return None
    return ACTIONS_DIR / uses_ref.removeprefix(ACTIONS_REPO).split("@")[0] / "action.yml"


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
    """The job's run: lines, with those of the tufrepo actions it calls in their place."""
    lines = []
    for s in steps(job):
        if "run" in s:
            lines.append(s["run"])
        elif (action := action_of(s.get("uses", ""))) is not None and action.is_file():
            lines += [a["run"] for a in load(action)["runs"]["steps"] if "run" in a]
    return lines


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
    problems = check_pins_lines(path)
    wf = load(path)
    count = sum(len(uses(j)) + ("uses" in j) for j in wf["jobs"].values())
    lines = sum(1 for ln in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", ln))
    if count != lines:
        problems.append(f"{path.name}: {count} uses in YAML but {lines} 'uses:' lines")
    return problems


def check_pins_lines(path: Path) -> list[str]:
    """Each `uses:` line names a full commit SHA and has a '# vX.Y.Z' comment."""
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
    """tufrepo runs only through its own actions, each one that exists, all at one commit
    (never `pip install` from a package index)."""
    wf = load(path)
    problems = []
    refs = set()
    for name, job in wf["jobs"].items():
        for s in steps(job):
            if "pip" in str(s.get("run", "")).split():
                problems.append(f"{path.name}:{name}: installs with pip: {s['run']!r}")
            uses_ref = str(s.get("uses", ""))
            action = action_of(uses_ref)
            if action is None:
                continue
            refs.add(uses_ref.rsplit("@", maxsplit=1)[-1])
            if not action.is_file():
                problems.append(f"{path.name}:{name}: {uses_ref}: no such action in actions/")
    if len(refs) > 1:
        problems.append(f"{path.name}: tufrepo actions at several commits: {sorted(refs)}")
    return problems


def check_action(path: Path) -> list[str]:
    """A tufrepo composite action: pinned actions, tufrepo installed from the action's own
    commit by install.sh first, then single-line run steps whose values come through env:."""
    where = f"{path.parent.name}/{path.name}"
    data = load(path)
    problems = [p.replace(path.name, where, 1) for p in check_pins_lines(path)]
    action_steps = list(data.get("runs", {}).get("steps", []))
    if data.get("runs", {}).get("using") != "composite":
        problems.append(f"{where}: not a composite action")
    runs_ = [s["run"] for s in action_steps if "run" in s]
    if not runs_ or runs_[0] != INSTALL_RUN:
        problems.append(f"{where}: the first run step is not {INSTALL_RUN}")
    for s in action_steps:
        r = str(s.get("run", ""))
        if "${{" in r or "\n" in r.strip():
            problems.append(f"{where}: expression or several lines in run: {r!r}")
        problems += [f"{where}: unquoted {e} in {r!r}" for e in unquoted_expansions(r)]
        if "pip" in r.split():
            problems.append(f"{where}: installs with pip outside install.sh: {r!r}")
        if "run" in s and s.get("shell") != "bash":
            problems.append(f"{where}: a run step without shell: bash")
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
