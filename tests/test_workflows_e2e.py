"""Plays the GitHub workflows' own ``tufrepo`` command lines for a whole release, on local
bare remotes, and checks that each job pushes only what its permissions allow.

The command lines are read from workflows/github/*.yml and from the run steps of the
tufrepo actions (actions/<name>/action.yml) they call, with the inputs each call passes, so
a workflow or an action that changes its commands changes what this test runs.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import workflows_helpers as h
import yaml
from click.testing import CliRunner

from tests.conftest import ROOT
from tests.git_helpers import World, git
from tests.site_helpers import serve
from tufrepo.cli import main

pytestmark = pytest.mark.git

WORKFLOWS = ROOT / "workflows/github"


@dataclass
class Step:
    argv: list[str]
    redirect: str | None


def _expression(value: str, variables: dict[str, str], where: str) -> str:
    """A workflow value with its ${{ env.X }} / ${{ runner.temp }} expressions resolved."""

    def resolve(m: re.Match[str]) -> str:
        expr = m.group(1)
        name = "RUNNER_TEMP" if expr == "runner.temp" else expr.removeprefix("env.")
        assert name in variables, f"{where} uses ${{{{ {expr} }}}}; the test must give it"
        return variables[name]

    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", resolve, value)


def _condition(expr: str, inputs: dict[str, str]) -> bool:
    """A step's ``if:`` over the action's inputs, for the forms the tufrepo actions use:
    ``startsWith(inputs.X, 'p')``, ``inputs.X != ''``, ``||``, ``&&`` and ``!( )``."""
    text = expr.strip().removeprefix("${{").removesuffix("}}")
    text = re.sub(
        r"startsWith\(inputs\.([\w-]+), '([^']*)'\)",
        lambda m: str(inputs[m.group(1)].startswith(m.group(2))),
        text,
    )
    text = re.sub(r"inputs\.([\w-]+)", lambda m: repr(inputs[m.group(1)]), text)
    text = text.replace("||", " or ").replace("&&", " and ").replace("!(", " not (")
    assert re.fullmatch(r"[\sA-Za-z'()!=:/.,-]*", text), f"unsupported if: {expr}"
    return bool(eval(text, {"__builtins__": {}}))  # noqa: S307 - our own action files


def _action_lines(
    step: dict[str, Any], variables: dict[str, str], where: str
) -> list[tuple[str, dict[str, str]]]:
    """The run lines of the tufrepo action ``step`` calls, each with the env: its inputs
    give it (from the step's with:, or the action's defaults)."""
    action = h.action_of(step["uses"])
    assert action is not None
    data = yaml.safe_load(action.read_text())
    given = step.get("with") or {}
    inputs = {
        name: _expression(str(given.get(name, spec.get("default", ""))), variables, where)
        for name, spec in (data.get("inputs") or {}).items()
    }
    assert set(given) <= set(inputs), f"{where}: unknown inputs {set(given) - set(inputs)}"
    lines = []
    for s in data["runs"]["steps"]:
        if "if" in s and not _condition(s["if"], inputs):
            continue
        env = {
            k: re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], v)
            for k, v in (s.get("env") or {}).items()
        }
        lines.append((s.get("run", ""), env))
    return lines


def tufrepo_steps(workflow: str, job: str, variables: dict[str, str]) -> list[Step]:
    """The job's ``tufrepo`` run lines, those of the tufrepo actions it calls included, with
    $VARS expanded from the action step's env and from ``variables`` (which must name every
    other variable the lines use: an unknown one fails the test)."""
    data = yaml.safe_load((WORKFLOWS / workflow).read_text())
    where = f"{workflow}:{job}"
    lines: list[tuple[str, dict[str, str]]] = []
    for step in data["jobs"][job]["steps"]:
        if h.action_of(step.get("uses", "")) is not None:
            lines += _action_lines(step, variables, where)
        else:
            lines.append((step.get("run", ""), {}))
    steps = []
    # a line may wrap its tufrepo command (`rc=0; tufrepo ... > F || rc=$?; cat F ...`)
    commands = [
        (part, env)
        for run, env in lines
        for part in re.split(r"\s*(?:;|\|\||&&)\s*", run)
        if part.startswith("tufrepo ")
    ]
    for run, env in commands:

        def expand(m: re.Match[str], env: dict[str, str] = env) -> str:
            name = m.group(1) or m.group(2)
            known = {**variables, **env}
            assert name in known, f"{where} uses ${name}; the test must give it"
            return known[name]

        line = re.sub(r"\$\{(\w+)\}|\$(\w+)", expand, run)
        argv = shlex.split(line)
        redirect = None
        if ">" in argv:
            redirect = argv[argv.index(">") + 1]
            argv = argv[: argv.index(">")]
        steps.append(Step(argv[1:], redirect))
    assert steps, f"{where} runs no tufrepo command"
    return steps


def run_job(
    cwd: Path,
    workflow: str,
    job: str,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str] | None = None,
) -> list[int]:
    """Run the job's tufrepo steps in ``cwd``; returns their exit codes."""
    monkeypatch.chdir(cwd)
    codes = []
    for step in tufrepo_steps(workflow, job, variables or {}):
        result = CliRunner().invoke(main, step.argv, catch_exceptions=False)
        assert result.exit_code in (0, 1), result.stderr
        if step.redirect:
            Path(step.redirect).write_text(result.stdout)
        codes.append(result.exit_code)
    return codes


def pushed(world: World, before: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    after = world.remote_refs()
    return {
        ref: (before.get(ref), after.get(ref))
        for ref in set(before) | set(after)
        if before.get(ref) != after.get(ref)
    }


def changed_files(world: World, old: str, new: str) -> set[str]:
    out = git(world.remote, "diff", "--name-only", old, new)
    return set(out.splitlines())


def ci_checkout(world: World, name: str, branch: str, workflow: str, job: str) -> Path:
    """What the job's actions/checkout step gives it: a fresh clone with ``branch`` checked
    out, of the history, blobs and work tree its ``with:`` asks for (``fetch-depth``,
    ``filter``, ``sparse-checkout`` in cone mode, as the action does), so that the jobs run
    in the kind of clone the workflows declare."""
    data = yaml.safe_load((WORKFLOWS / workflow).read_text())
    checkout = next(
        s for s in data["jobs"][job]["steps"] if s.get("uses", "").startswith("actions/checkout@")
    )
    given = checkout.get("with") or {}
    path = world.root / f"runner-{name}"
    args = ["clone", "--quiet", "--no-checkout", "--no-single-branch"]
    if int(given.get("fetch-depth", 1)):
        args += ["--depth", str(given.get("fetch-depth", 1))]
    if "filter" in given:
        git(world.remote, "config", "uploadpack.allowFilter", "true")
        args.append(f"--filter={given['filter']}")
    git(world.root, *args, world.remote.as_uri(), path.name)
    if "sparse-checkout" in given:
        git(path, "sparse-checkout", "set", "--cone", *given["sparse-checkout"].split())
    git(path, "checkout", "--quiet", "-B", branch, f"origin/{branch}")
    return path


def test_release_through_the_workflows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(tmp_path)
    world.init()
    # two maintainers sign targets, threshold 2 (an ordinary signing event)
    world.tufrepo("alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
                  "--threshold", "2", user="@alice")  # fmt: skip
    world.tufrepo("bob", "sign", "sign/two", user="@bob")
    world.tufrepo("alice", "sign", "sign/two", user="@alice")
    world.merge("two")
    world.tufrepo("alice", "delegate", "sign/app", "app", "--signers", "@alice,@bob",
                  "--threshold", "2", user="@alice")  # fmt: skip
    world.tufrepo("bob", "sign", "sign/app", user="@bob")
    world.merge("app")
    runner_temp = tmp_path / "runner-temp"
    (runner_temp / "release").mkdir(parents=True)

    # app CI (app-release.yml): may only create sign/* branches
    (runner_temp / "release/app.tar.gz").write_bytes(b"app 1.0\n" * 500)
    before = world.remote_refs()
    app = tmp_path / "app-repo"
    app.mkdir()
    run_job(app, "app-release.yml", "open-signing-event", monkeypatch, {
        "TAG": "v1.0", "TARGET_DIR": "app", "ASSET": "app.tar.gz",
        "RUNNER_TEMP": str(runner_temp), "TUF_REPO_URL": str(world.remote),
    })  # fmt: skip
    moved = pushed(world, before)
    assert list(moved) == ["refs/heads/sign/release-v1.0"]
    assert moved["refs/heads/sign/release-v1.0"][0] is None
    event_sha = moved["refs/heads/sign/release-v1.0"][1]
    assert event_sha is not None
    assert changed_files(world, before["refs/heads/main"], event_sha) == {
        "metadata/app.json", "targets/app/v1.0/app.tar.gz",
    }  # fmt: skip

    def signing_event_workflow() -> int:
        """signing-event.yml on a push to the event: may only push to that branch."""
        before = world.remote_refs()
        runner = ci_checkout(
            world,
            f"se-{len(before)}-{id(before)}",
            "sign/release-v1.0",
            "signing-event.yml",
            "update-targets",
        )
        run_job(runner, "signing-event.yml", "update-targets", monkeypatch)
        assert set(pushed(world, before)) <= {"refs/heads/sign/release-v1.0"}
        git(runner, "fetch", "--quiet", "origin")
        git(runner, "reset", "--quiet", "--hard", "origin/sign/release-v1.0")
        codes = run_job(runner, "signing-event.yml", "status", monkeypatch,
                        {"RUNNER_TEMP": str(runner_temp)})  # fmt: skip
        assert pushed(world, before).keys() <= {"refs/heads/sign/release-v1.0"}
        return codes[0]

    assert signing_event_workflow() == 1
    comment = (runner_temp / "tufrepo-status.md").read_text()
    assert "app/v1.0/app.tar.gz" in comment
    assert "@alice" in comment
    assert "@bob" in comment

    # two maintainers sign on their own machines; the automation runs after each push
    world.tufrepo("alice", "sign", "sign/release-v1.0", user="@alice")
    assert signing_event_workflow() == 1
    world.tufrepo("bob", "sign", "sign/release-v1.0", user="@bob")
    assert signing_event_workflow() == 0
    assert "ready to merge" in (runner_temp / "tufrepo-status.md").read_text()
    world.merge("release-v1.0")

    # online-sign.yml on main: may only push main, and only snapshot/timestamp
    before = world.remote_refs()
    runner = ci_checkout(world, "online", "main", "online-sign.yml", "online-sign")
    assert git(runner, "config", "remote.origin.promisor") == "true"  # a partial clone
    assert not (runner / "targets").exists()  # metadata/ only, as the workflow asks
    empty = tmp_path / "no-site-yet"
    empty.mkdir()
    with serve(empty) as live:  # the live site: none yet (404)
        run_job(runner, "online-sign.yml", "online-sign", monkeypatch, {"SITE_URL": live.url})
    moved = pushed(world, before)
    assert list(moved) == ["refs/heads/main"]
    old, new = moved["refs/heads/main"]
    assert old is not None
    assert new is not None
    assert changed_files(world, old, new) == {"metadata/snapshot.json", "metadata/timestamp.json"}

    # build-site (same jobs in publish.yml): pushes nothing; the live site (none yet: 404)
    # is where earlier versions come from
    before = world.remote_refs()
    runner = ci_checkout(world, "build", "main", "online-sign.yml", "build-site")
    with serve(empty) as live:
        codes = run_job(runner, "online-sign.yml", "build-site", monkeypatch,
                        {"RUNNER_TEMP": str(runner_temp), "SITE_URL": live.url})  # fmt: skip
    assert codes == [0, 0]
    assert pushed(world, before) == {}
    site = runner_temp / "site"
    assert (site / "metadata/timestamp.json").is_file()

    # test.yml (scheduled): a real client against the served site; pushes nothing
    runner = ci_checkout(world, "test", "main", "test.yml", "check-site")
    with serve(site) as server:
        codes = run_job(runner, "test.yml", "check-site", monkeypatch,
                        {"SITE_URL": server.url, "MARGIN": "12h",
                         "RUNNER_TEMP": str(runner_temp)})  # fmt: skip
    assert codes == [0]
    report = (runner_temp / "tufrepo-check-site.md").read_text()  # summary and failure issue
    assert report.startswith(f"### Published TUF site `{server.url}`: valid")
    assert pushed(world, before) == {}
    timestamp = json.loads((site / "metadata/timestamp.json").read_text())
    assert timestamp["signed"]["version"] == 1  # the first online signing of this repository
