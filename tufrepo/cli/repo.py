"""Commands that change or inspect signing events: delegate, sign, event open, update-targets,
status, verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from tufrepo.cli._common import (
    checkout_path,
    interactive,
    now,
    print_outcome,
    push_option,
    repo_option,
    require_user,
    user_options,
    yes_option,
)
from tufrepo.errors import Error, InputError
from tufrepo.event import EventStatus
from tufrepo.roles import normalize_user


def _signers(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [normalize_user(v) for v in value.split(",") if v.strip()]
    if not names:
        raise InputError("--signers needs at least one @name")
    return names


@click.command()
@click.argument("event")
@click.argument("role", required=False)
@click.option("--signers", help="Comma-separated @names who sign the role.")
@click.option("--threshold", type=click.IntRange(min=1), help="Signatures required.")
@click.option("--expiry-period", type=click.IntRange(min=1), help="Days until expiry.")
@click.option("--signing-period", type=click.IntRange(min=1), help="Days before expiry to re-sign.")
@click.option("--online-key", help="Signer URI of the online key (snapshot, timestamp).")
@user_options
@push_option
@repo_option
def delegate(
    event: str,
    role: str | None,
    signers: str | None,
    threshold: int | None,
    expiry_period: int | None,
    signing_period: int | None,
    online_key: str | None,
    user: str | None,
    signer: str | None,
    push: bool,
    repo: Path,
) -> None:
    """Initialise the repository or change ROLE's signers, threshold and periods in EVENT."""
    from tufrepo.flows import delegate as run
    from tufrepo.signing import Actor, RoleConfig
    from tufrepo.workspace import Workspace

    actor = Actor(require_user(user), signer)
    cfg = RoleConfig(_signers(signers), threshold, expiry_period, signing_period, online_key)
    ws = Workspace.open(checkout_path(repo))
    print_outcome(run(ws, event, role, cfg, actor, push=push, now=now()))


@click.command()
@click.argument("event")
@user_options
@yes_option
@push_option
@repo_option
def sign(
    event: str, user: str | None, signer: str | None, yes: bool, push: bool, repo: Path
) -> None:
    """Review EVENT, accept invitations and sign every changed role you sign for."""
    from tufrepo.flows import sign as run
    from tufrepo.report import render_text
    from tufrepo.signing import Actor
    from tufrepo.workspace import Workspace

    actor = Actor(require_user(user), signer)

    def review(status: EventStatus) -> bool:
        click.echo(render_text(status), err=True)
        if interactive(yes):
            return click.confirm("Sign these changes?", default=False)
        return True

    ws = Workspace.open(checkout_path(repo))
    print_outcome(run(ws, event, actor, push=push, now=now(), review=review))


@click.group()
def event() -> None:
    """Signing events opened by automation (app CI)."""


@event.command("open")
@click.argument("name")
@click.option("--target", "targets", multiple=True, metavar="PATH=FILE", help="Add or replace.")
@click.option(
    "--descriptor",
    "descriptors",
    multiple=True,
    metavar="PATH=JSON",
    help="An artifact hosted elsewhere: a JSON file {length, hashes: {sha256}, custom}.",
)
@click.option("--remove", "removals", multiple=True, metavar="PATH", help="Remove an artifact.")
@click.option("--remote", "remote_url", help="Clone this URL into a temporary checkout first.")
@push_option
@repo_option
def event_open(
    name: str,
    targets: tuple[str, ...],
    descriptors: tuple[str, ...],
    removals: tuple[str, ...],
    remote_url: str | None,
    push: bool,
    repo: Path,
) -> None:
    """Open or update sign/NAME with artifact changes (never signs)."""
    from tufrepo.flows import open_event

    artifacts = [(path, Path(file)) for path, file in map(_pair("--target"), targets)]
    descs = []
    for path, file in map(_pair("--descriptor"), descriptors):
        try:
            descs.append((path, Path(file).read_bytes()))
        except OSError as e:
            raise InputError(f"cannot read descriptor {file}: {e.strerror}") from e
    if not artifacts and not descs and not removals:
        raise InputError("nothing to do: give --target, --descriptor or --remove")
    base = repo.resolve() if remote_url else checkout_path(repo)
    out = open_event(
        base, name, artifacts, list(removals), descriptors=descs,
        remote_url=remote_url, push=push, now=now(),
    )  # fmt: skip
    print_outcome(out)


def _pair(option: str) -> Callable[[str], tuple[str, str]]:
    def split(spec: str) -> tuple[str, str]:
        path, sep, value = spec.partition("=")
        if not sep or not path or not value:
            raise InputError(f"{option} takes PATH=FILE, not {spec!r}")
        return path, value

    return split


@click.command("update-targets")
@push_option
@repo_option
def update_targets(push: bool, repo: Path) -> None:
    """Rewrite targets metadata of roles whose artifacts changed (CI, on sign/* branches)."""
    from tufrepo.flows import update_targets as run
    from tufrepo.workspace import Workspace

    print_outcome(run(Workspace.open(checkout_path(repo)), push=push, now=now()))


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="markdown stays under 60,000 characters (a pull-request comment); json is complete.",
)
@click.option("--details", is_flag=True, help="text: list every artifact change.")
@click.option(
    "--fetch/--no-fetch",
    default=True,
    show_default=True,
    help="Fetch main and the event from the remote first (a clean event branch is fast-forwarded).",
)
@repo_option
@click.pass_context
def status(ctx: click.Context, fmt: str, details: bool, fetch: bool, repo: Path) -> None:
    """State of the signing event checked out; exit 0 only when it is ready to merge.

    The report is printed in every case, also when the event cannot be checked (exit 2)."""
    from tufrepo.flows import event_status_of, on_main
    from tufrepo.report import render, render_error, render_not_event
    from tufrepo.workspace import Workspace

    name, commit = "HEAD", None
    try:
        ws = Workspace.open(checkout_path(repo), fetch=fetch)
        name, commit = ws.git.current_branch() or "HEAD", ws.git.head()
        if on_main(ws):
            click.echo(render_not_event(name, ws.git.event_branches(), fmt), nl=fmt != "markdown")
            ctx.exit(1)
        result = event_status_of(ws, now(), update=fetch)
        commit = ws.git.head()
    except Error as e:
        click.echo(render_error(name, e.diagnostics(), fmt, commit=commit), nl=fmt != "markdown")
        raise
    click.echo(render(result, fmt, commit=commit, details=details), nl=fmt != "markdown")
    ctx.exit(0 if result.ready else 1)


def _verify_json(
    *, valid: bool, problems: list[str], warnings: list[str], error: str | None
) -> str:
    data = {"valid": valid, "problems": problems, "warnings": warnings, "error": error}
    return json.dumps(data, indent=1, sort_keys=True)


@click.command()
@click.option("--at", "ref", metavar="REF", help="Verify this git ref's objects instead of "
              "the working tree.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (also on exit 2).")
@repo_option
@click.pass_context
def verify(ctx: click.Context, ref: str | None, as_json: bool, repo: Path) -> None:
    """Validate the whole repository; exit 1 with one line per problem."""
    from tufrepo.flows import verify as run

    try:
        report = run(checkout_path(repo), ref, now())
    except Error as e:
        if as_json:
            click.echo(
                _verify_json(
                    valid=False, problems=[e.diagnostics()], warnings=[], error=e.diagnostics()
                )
            )
        raise
    if as_json:
        click.echo(
            _verify_json(
                valid=bool(report), problems=report.problems, warnings=report.warnings, error=None
            )
        )
    else:
        for w in report.warnings:
            click.echo(f"warning: {w}", err=True)
        for p in report.problems:
            click.echo(p)
        if report:
            click.echo("repository is valid", err=True)
    ctx.exit(0 if report else 1)


COMMANDS = [delegate, sign, event, update_targets, status, verify]
