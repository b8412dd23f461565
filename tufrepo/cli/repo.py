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
    published_option,
    push_option,
    repo_option,
    require_user,
    user_options,
    yes_option,
)
from tufrepo.errors import InputError
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
@click.option(
    "--bins",
    type=click.IntRange(min=0),
    is_flag=False,
    flag_value=0,
    help="Delegate ROLE's artifacts to N hash bins (a power of 2; without N: chosen from the "
    "artifact count). Again with another N: re-bin.",
)
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
    bins: int | None,
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
    cfg = RoleConfig(
        _signers(signers), threshold, expiry_period, signing_period, online_key, bins=bins
    )
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


@event.command("update")
@click.argument("name")
@push_option
@repo_option
def event_update(name: str, push: bool, repo: Path) -> None:
    """Bring sign/NAME up to date with main: merge main into it (roles that both changed are
    rebuilt on main's with the event's changes and must be signed again)."""
    from tufrepo.flows import update_event_branch
    from tufrepo.workspace import Workspace

    ws = Workspace.open(checkout_path(repo))
    print_outcome(update_event_branch(ws, name, push=push, now=now()))


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
)
@click.option("--fetch/--no-fetch", default=True, help="Fetch main from the remote first.")
@repo_option
@click.pass_context
def status(ctx: click.Context, fmt: str, fetch: bool, repo: Path) -> None:
    """State of the signing event checked out; exit 0 only when it is ready to merge."""
    from tufrepo.flows import event_status_of
    from tufrepo.report import render
    from tufrepo.workspace import Workspace

    ws = Workspace.open(checkout_path(repo), fetch=fetch)
    result = event_status_of(ws, now())
    click.echo(render(result, fmt), nl=fmt != "markdown")
    ctx.exit(0 if result.ready else 1)


@click.command()
@click.option("--at", "ref", help="Verify this git ref's objects instead of the working tree.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@published_option
@repo_option
@click.pass_context
def verify(
    ctx: click.Context, ref: str | None, as_json: bool, previous: str | None, repo: Path
) -> None:
    """Validate the whole repository; exit 1 with one line per problem."""
    from tufrepo.flows import verify as run

    report = run(checkout_path(repo), ref, now(), previous=previous)
    if as_json:
        data = {"valid": bool(report), "problems": report.problems, "warnings": report.warnings}
        click.echo(json.dumps(data, indent=1, sort_keys=True))
    else:
        for w in report.warnings:
            click.echo(f"warning: {w}", err=True)
        for p in report.problems:
            click.echo(p)
        if report:
            click.echo("repository is valid", err=True)
    ctx.exit(0 if report else 1)


COMMANDS = [delegate, sign, event, update_targets, status, verify]
