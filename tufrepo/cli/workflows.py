"""``tufrepo workflows install|check``: the CI templates in a user's repository."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tufrepo.cli._common import repo_option

_REPO = repo_option
_REF = click.option(
    "--ref",
    metavar="SHA",
    help="The tufrepo commit (full SHA) the workflows call actions/components at "
    "[default: the commit this tufrepo was built from].",
)


@click.group("workflows")
def workflows() -> None:
    """Install the CI workflows into a repository, or check installed copies."""


@workflows.command("install")
@click.option("--github", is_flag=True, help="GitHub Actions (.github/workflows/).")
@click.option("--gitlab", is_flag=True, help="GitLab CI (.gitlab-ci.yml and an include).")
@click.option(
    "--app",
    is_flag=True,
    help="The app-release workflow, for an application's repository (not the TUF one).",
)
@_REF
@_REPO
def install_cmd(github: bool, gitlab: bool, app: bool, ref: str | None, repo: Path) -> None:
    """Write this version's workflow templates into the repository (overwrites old copies).

    The workflows call tufrepo's composite actions (GitHub) or CI/CD components (GitLab) at
    one commit: the one this tufrepo was built from, or --ref.

    GitHub: .github/workflows/tufrepo-*.yml. GitLab: .gitlab/tufrepo.gitlab-ci.yml (with
    --app: .gitlab/tufrepo-app-release.gitlab-ci.yml), included from .gitlab-ci.yml (created
    when absent). Commit the result; see docs/ci.md for the
    settings (secrets, variables, protected branches and environments) they need.
    """
    from tufrepo.workflows import Platform, install, pin

    if github == gitlab:
        raise click.UsageError("choose one of --github and --gitlab")
    platform = Platform.GITHUB if github else Platform.GITLAB
    for action, path in install(repo, platform, at=pin(ref), app=app):
        click.echo(f"{action} {path}")


@workflows.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_REF
@_REPO
def check_cmd(as_json: bool, ref: str | None, repo: Path) -> None:
    """Report installed workflows that differ from this version's templates.

    Exit 0 when every installed copy is up to date, 1 when any is outdated, lagging (pinned
    to another tufrepo commit than this one's, or --ref), missing, obsolete or not included,
    or when no tufrepo workflow is installed at all.
    """
    from tufrepo.workflows import State, check, pin

    results = check(repo, at=pin(ref))
    ok = bool(results) and all(results)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "up_to_date": ok,
                    "files": [
                        {"path": str(r.path), "state": r.state.value}
                        | ({"ref": r.ref} if r.ref else {})
                        for r in results
                    ],
                },
                indent=1,
                sort_keys=True,
            )
        )
    else:
        for r in results:
            pinned = f" (pins {r.ref})" if r.ref else ""
            click.echo(f"{r.state.value} {r.path}{pinned}")
        if not results:
            click.echo("no tufrepo workflows installed (tufrepo workflows install --github)")
        elif not ok:
            click.echo(
                "run `tufrepo workflows install` again to replace outdated copies"
                + (
                    " and delete obsolete ones"
                    if any(r.state is State.OBSOLETE for r in results)
                    else ""
                ),
                err=True,
            )
    if not ok:
        click.get_current_context().exit(1)
