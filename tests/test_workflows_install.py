"""`tufrepo workflows install|check`, and the templates inside a built wheel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import workflows_helpers as h
from click.testing import CliRunner, Result

from tufrepo.cli import main

REPO_SET = {
    f".github/workflows/tufrepo-{p.name}" for p in h.GITHUB_SOURCES if p.name != "app-release.yml"
}
APP = ".github/workflows/tufrepo-app-release.yml"
INCLUDE = ".gitlab/tufrepo.gitlab-ci.yml"
APP_INCLUDE = ".gitlab/tufrepo-app-release.gitlab-ci.yml"


def run(*args: str) -> Result:
    """`tufrepo workflows ARGS`, pinned to TEST_REF unless ARGS give --ref (this editable
    install records no source commit)."""
    ref = [] if "--ref" in args else ["--ref", h.TEST_REF]
    return CliRunner().invoke(main, ["workflows", *args, *ref])


def rendered(path: Path, ref: str = h.TEST_REF) -> bytes:
    return h.render_text(path.read_text(), ref).encode()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def installed(repo: Path) -> set[str]:
    return {
        str(p.relative_to(repo))
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts[:1]
    }


def test_install_github_copies_templates(repo: Path) -> None:
    result = run("install", "--github", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert installed(repo) == REPO_SET
    for path in REPO_SET:
        name = Path(path).name.removeprefix("tufrepo-")
        assert (repo / path).read_bytes() == rendered(h.GITHUB_DIR / name)
    assert sorted(result.output.splitlines()) == sorted(f"created {p}" for p in REPO_SET)

    plain = repo / "plain"
    plain.write_text("")
    modes = {(repo / path).stat().st_mode for path in REPO_SET}
    assert modes == {plain.stat().st_mode}  # like any new file, not mkstemp's 0600
    plain.unlink()

    again = run("install", "--github", "--repo", str(repo))
    assert sorted(again.output.splitlines()) == sorted(f"unchanged {p}" for p in REPO_SET)
    check = run("check", "--repo", str(repo))
    assert check.exit_code == 0, check.output
    assert sorted(check.output.splitlines()) == sorted(f"up-to-date {p}" for p in REPO_SET)


def test_check_reports_outdated_then_install_updates(repo: Path) -> None:
    run("install", "--github", "--repo", str(repo))
    edited = repo / ".github/workflows/tufrepo-online-sign.yml"
    edited.write_text(edited.read_text().replace("cron:", "cron: # an older template\n   ", 1))
    result = run("check", "--json", "--repo", str(repo))
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["up_to_date"] is False
    states = {f["path"]: f["state"] for f in report["files"]}
    assert states.pop(".github/workflows/tufrepo-online-sign.yml") == "outdated"
    assert set(states.values()) == {"up-to-date"}

    update = run("install", "--github", "--repo", str(repo))
    assert "updated .github/workflows/tufrepo-online-sign.yml" in update.output.splitlines()
    assert run("check", "--repo", str(repo)).exit_code == 0


OTHER_REF = "89abcdef" * 5


@pytest.mark.parametrize("platform", ["--github", "--gitlab"])
def test_check_reports_lagging_pins(repo: Path, platform: str) -> None:
    """Copies pinned to another tufrepo commit are `lagging` (with that commit); install
    moves them to this one."""
    assert run("install", platform, "--repo", str(repo), "--ref", OTHER_REF).exit_code == 0
    result = run("check", "--json", "--repo", str(repo))
    assert result.exit_code == 1
    files = json.loads(result.output)["files"]
    assert {f["state"] for f in files} == {"lagging"}
    assert {f["ref"] for f in files} == {OTHER_REF}
    text = run("check", "--repo", str(repo)).output
    assert f"(pins {OTHER_REF})" in text
    assert run("check", "--repo", str(repo), "--ref", OTHER_REF).exit_code == 0

    # an edit beyond the pin is `outdated`, not `lagging`
    first = sorted(repo.glob(".git*/**/tufrepo*.yml"))[0]
    first.write_text(first.read_text().replace("tufrepo", "tufrep0", 1))
    states = {
        f["path"]: f["state"]
        for f in json.loads(run("check", "--json", "--repo", str(repo)).output)["files"]
    }
    assert states[str(first.relative_to(repo))] == "outdated"

    update = run("install", platform, "--repo", str(repo))
    assert update.exit_code == 0
    assert set(update.output.split()) >= {"updated"}
    assert run("check", "--repo", str(repo)).exit_code == 0


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (None, "give the tufrepo commit to pin with --ref SHA"),
        ("main", "--ref must be a full 40-character commit SHA"),
        ("0123abc", "--ref must be a full 40-character commit SHA"),
        (h.TEST_REF.upper(), "--ref must be a full 40-character commit SHA"),
    ],
)
@pytest.mark.parametrize("command", ["install", "check"])
def test_ref_required_and_checked(repo: Path, ref: str | None, message: str, command: str) -> None:
    """No ref (an editable install records no commit) or a bad one: exit 2, nothing written."""
    args = ["workflows", command, "--repo", str(repo)]
    if command == "install":
        args.append("--github")
    result = CliRunner().invoke(main, [*args, *(["--ref", ref] if ref else [])])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert installed(repo) == set()


def test_check_reports_missing_and_obsolete(repo: Path) -> None:
    run("install", "--github", "--repo", str(repo))
    (repo / ".github/workflows/tufrepo-test.yml").unlink()
    (repo / ".github/workflows/tufrepo-retired.yml").write_text("name: old\n")
    (repo / ".github/workflows/other.yml").write_text("name: the user's own\n")
    result = run("check", "--repo", str(repo))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "missing .github/workflows/tufrepo-test.yml" in lines
    assert "obsolete .github/workflows/tufrepo-retired.yml" in lines
    assert not any("other.yml" in line for line in lines)


def test_check_nothing_installed(repo: Path) -> None:
    result = run("check", "--repo", str(repo))
    assert result.exit_code == 1
    assert "no tufrepo workflows installed" in result.output


def test_install_app_release_only(repo: Path) -> None:
    result = run("install", "--github", "--app", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert installed(repo) == {APP}
    check = run("check", "--repo", str(repo))
    assert check.exit_code == 0, check.output
    assert check.output.splitlines() == [f"up-to-date {APP}"]


def test_install_gitlab_creates_include(repo: Path) -> None:
    result = run("install", "--gitlab", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert installed(repo) == {INCLUDE, ".gitlab-ci.yml"}
    assert (repo / INCLUDE).read_bytes() == rendered(
        h.ROOT / "workflows/gitlab/tufrepo.gitlab-ci.yml"
    )
    ci = h.load(repo / ".gitlab-ci.yml")
    assert ci["include"] == [{"local": INCLUDE}]
    assert run("check", "--repo", str(repo)).exit_code == 0

    (repo / ".gitlab-ci.yml").write_text("stages: [test]\n")
    result = run("check", "--repo", str(repo))
    assert result.exit_code == 1
    assert "not-included .gitlab-ci.yml" in result.stdout.splitlines()


def test_install_gitlab_app_release(repo: Path) -> None:
    result = run("install", "--gitlab", "--app", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert installed(repo) == {APP_INCLUDE, ".gitlab-ci.yml"}
    assert (repo / APP_INCLUDE).read_bytes() == rendered(
        h.ROOT / "workflows/gitlab/app-release.gitlab-ci.yml"
    )
    assert h.load(repo / ".gitlab-ci.yml")["include"] == [{"local": APP_INCLUDE}]
    check = run("check", "--repo", str(repo))
    assert check.exit_code == 0, check.output
    assert check.output.splitlines() == [f"up-to-date {APP_INCLUDE}"]


def test_install_gitlab_keeps_existing_ci_file(repo: Path) -> None:
    own = f"include:\n  - local: {INCLUDE}\nmy-job:\n  script: [make]\n"
    (repo / ".gitlab-ci.yml").write_text(own)
    result = run("install", "--gitlab", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert (repo / ".gitlab-ci.yml").read_text() == own
    assert result.output.splitlines() == [f"created {INCLUDE}"]


def test_install_gitlab_refuses_ci_file_without_include(repo: Path) -> None:
    (repo / ".gitlab-ci.yml").write_text("my-job:\n  script: [make]\n")
    result = run("install", "--gitlab", "--repo", str(repo))
    assert result.exit_code == 2
    assert f"does not include {INCLUDE}" in result.output
    assert installed(repo) == {".gitlab-ci.yml"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["install"], "choose one of --github and --gitlab"),
        (["install", "--github", "--gitlab"], "choose one of --github and --gitlab"),
    ],
)
def test_install_bad_usage(repo: Path, args: list[str], message: str) -> None:
    result = run(*args, "--repo", str(repo))
    assert result.exit_code == 2
    assert message in result.output
    assert installed(repo) == set()


@pytest.mark.parametrize("command", [["install", "--github"], ["check"]])
def test_not_a_checkout(tmp_path: Path, command: list[str]) -> None:
    result = run(*command, "--repo", str(tmp_path))
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {tmp_path} is not a git checkout (no .git)"
    assert list(tmp_path.iterdir()) == []

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert run(*command, "--repo", str(a_file)).exit_code == 2


def test_install_is_all_or_nothing(repo: Path) -> None:
    """A destination that cannot be written leaves no file written, no temp file behind."""
    blocker = repo / ".github/workflows/tufrepo-test.yml"
    blocker.mkdir(parents=True)
    result = run("install", "--github", "--repo", str(repo))
    assert result.exit_code == 2
    assert "is a directory" in result.output
    assert installed(repo) == set()
    assert [p.name for p in (repo / ".github/workflows").iterdir()] == ["tufrepo-test.yml"]


def test_command_line_subprocess(repo: Path) -> None:
    """The real entry point (python -m tufrepo), exit codes included."""
    cmd = [sys.executable, "-m", "tufrepo", "workflows"]
    done = subprocess.run(
        [*cmd, "install", "--github", "--ref", h.TEST_REF],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    edited = repo / ".github/workflows/tufrepo-publish.yml"
    edited.write_text(edited.read_text() + "# edited\n")
    done = subprocess.run(
        [*cmd, "check", "--ref", h.TEST_REF], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "outdated .github/workflows/tufrepo-publish.yml" in done.stdout.splitlines()
    assert "tufrepo workflows install" in done.stderr


def test_wheel_ships_the_templates(tmp_path: Path) -> None:
    """`pip wheel .` carries one copy of each template and the commit it was built from; the
    installed package finds them and pins the workflows it installs to that commit."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(h.ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("tufrepo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if n.startswith("tufrepo/workflow_templates/")}
        commit = z.read("tufrepo/data/source-commit").decode().strip()
        z.extractall(tmp_path / "site")
    expected = {f"tufrepo/workflow_templates/github/{p.name}" for p in h.GITHUB_SOURCES}
    expected |= {f"tufrepo/workflow_templates/gitlab/{p.name}" for p in h.GITLAB_INCLUDES}
    assert names == expected
    head = subprocess.run(
        ["git", "-C", str(h.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    assert commit == head.stdout.strip()

    checkout = tmp_path / "checkout"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    code = "import tufrepo, sys; print(tufrepo.__file__); sys.argv[0] = 'tufrepo'; "
    code += "from tufrepo.cli import main; main()"
    for args in (["workflows", "install", "--github"], ["workflows", "check"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].startswith(str(tmp_path / "site"))
    assert installed(checkout) == REPO_SET
    online = (checkout / ".github/workflows/tufrepo-online-sign.yml").read_text()
    assert f"{h.ACTIONS_REPO}online-sign@{commit} # v{h.version()}" in online


@pytest.mark.parametrize("args", [["--github"], ["--github", "--app"], ["--gitlab"]])
def test_every_tufrepo_reference_is_pinned(repo: Path, args: list[str]) -> None:
    """Each call of a tufrepo action or component in what install writes names the commit
    given (none left at another commit, none at a branch or tag)."""
    assert run("install", *args, "--repo", str(repo)).exit_code == 0
    refs = []
    for path in repo.rglob("*.yml"):
        text = path.read_text()
        assert "__TUFREPO_" not in text
        refs += re.findall(r"tufrepo/tufrepo/(?:actions/)?[\w-]+@(\S+) # v(\S+)", text)
        refs += [(r, h.version()) for r in re.findall(r"tufrepo-ref: (\S+)", text)]
    assert refs
    assert set(refs) == {(h.TEST_REF, h.version())}
