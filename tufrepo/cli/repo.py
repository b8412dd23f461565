"""Commands that change or inspect signing events: delegate, sign, event open, update-targets,
status, verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tufrepo.cli._common import (
    checkout_path,
    format_option,
    interactive,
    now,
    print_outcome,
    progress_bar,
    published_option,
    push_option,
    push_remote_option,
    repo_option,
    require_user,
    user_options,
    yes_option,
)
from tufrepo.errors import Error, InputError

if TYPE_CHECKING:
    from tufrepo.event import EventStatus
    from tufrepo.signing import RoleConfig


def _signers(value: str | None) -> list[str] | None:
    from tufrepo.roles import normalize_user

    if value is None:
        return None
    names = [normalize_user(v) for v in value.split(",") if v.strip()]
    if not names:
        raise InputError("--signers needs at least one @name")
    return names


def _edit(role: str, current: RoleConfig) -> RoleConfig:
    """Ask for each setting of ``role`` with its current value as the default; only the
    settings changed are returned."""
    from tufrepo.signing import RoleConfig

    click.echo(f"No change given: edit {role} (Enter keeps a value).", err=True)
    names = ",".join(current.signers or [])
    signers = click.prompt("Signers", default=names, err=True) if current.signers else names
    ints = [
        click.prompt(label, default=value, type=click.IntRange(min=1), err=True)
        if value is not None
        else None
        for label, value in (
            ("Threshold", current.threshold),
            ("Expiry period (days)", current.expiry_period),
            ("Signing period (days)", current.signing_period),
        )
    ]
    new_signers = _signers(signers) if signers != names else None
    olds = (current.threshold, current.expiry_period, current.signing_period)
    changed = [n if n != o else None for n, o in zip(ints, olds, strict=True)]
    return RoleConfig(new_signers, changed[0], changed[1], changed[2], None)


@click.command()
@click.argument("event")
@click.argument("role", required=False)
@click.option(
    "--signers",
    metavar="@A,@B",
    help="Comma-separated @names who sign the role. [new role: you]",
)
@click.option(
    "--threshold",
    metavar="N",
    type=click.IntRange(min=1),
    help="Signatures required. [new role: 1]",
)
@click.option(
    "--expiry-period",
    metavar="DAYS",
    type=click.IntRange(min=1),
    help="Days from signing to expiry. [new role: 365; timestamp 2]",
)
@click.option(
    "--signing-period",
    metavar="DAYS",
    type=click.IntRange(min=1),
    help="Days before expiry when re-signing is due. [new role: 60; timestamp 1]",
)
@click.option(
    "--online-key", metavar="URI", help="Signer URI of the online key (snapshot, timestamp)."
)
@click.option(
    "--bins",
    metavar="[N]",
    type=click.IntRange(min=0),
    is_flag=False,
    flag_value=0,
    help="Delegate ROLE's artifacts to N hash bins (a power of 2; without N: chosen from the "
    "artifact count). Again with another N: re-bin.",
)
@user_options
@yes_option
@push_option
@push_remote_option
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
    yes: bool,
    push: bool,
    push_remote: str | None,
    repo: Path,
) -> None:
    """Initialise the repository or change ROLE's signers, threshold and periods in EVENT.

    A change that changes nothing is refused (exit 2); on a terminal, without options and
    without --yes, the role's current settings are offered for editing."""
    from tufrepo.flows import delegate as run
    from tufrepo.flows import role_settings
    from tufrepo.signing import Actor, RoleConfig
    from tufrepo.workspace import Workspace

    actor = Actor(require_user(user), signer)
    cfg = RoleConfig(
        _signers(signers), threshold, expiry_period, signing_period, online_key, bins=bins
    )
    ws = Workspace.open(checkout_path(repo), push_remote=push_remote)
    if cfg == RoleConfig() and role is not None and interactive(yes):
        current = role_settings(ws, event, role)
        if current is not None:
            cfg = _edit(role, current)
    print_outcome(run(ws, event, role, cfg, actor, push=push, now=now()))


@click.command()
@click.argument("event")
@user_options
@yes_option
@push_option
@push_remote_option
@repo_option
def sign(
    event: str,
    user: str | None,
    signer: str | None,
    yes: bool,
    push: bool,
    push_remote: str | None,
    repo: Path,
) -> None:
    """Review EVENT, accept invitations and sign every changed role you sign for.

    The review summarises many artifact changes per directory; answer d to list them all."""
    from tufrepo.flows import sign as run
    from tufrepo.report import render_text
    from tufrepo.signing import Actor
    from tufrepo.workspace import Workspace

    actor = Actor(require_user(user), signer)

    def review(status: EventStatus) -> bool:
        click.echo(render_text(status), err=True)
        while interactive(yes):
            answer = click.prompt(
                "Sign these changes? [y]es, [n]o, [d]etails",
                default="n",
                show_default=False,
                type=click.Choice(["y", "n", "d"], case_sensitive=False),
                show_choices=False,
                err=True,
            )
            if answer.lower() != "d":
                return bool(answer.lower() == "y")
            click.echo(render_text(status, details=True), err=True)
        return True

    ws = Workspace.open(checkout_path(repo), push_remote=push_remote)
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
@click.option("--remove", "removals", multiple=True, metavar="TARGET", help="Remove an artifact.")
@click.option(
    "--remote",
    "remote_url",
    metavar="GIT-URL",
    help="Clone this git repository into a temporary checkout first.",
)
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
@format_option("markdown stays under 60,000 characters (a pull-request comment); json is complete.")
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
@click.option(
    "--at", "ref", metavar="REF", help="Verify this git ref's objects instead of the working tree."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (also on exit 2).")
@published_option
@repo_option
@click.pass_context
def verify(
    ctx: click.Context, ref: str | None, as_json: bool, previous: str | None, repo: Path
) -> None:
    """Validate the whole repository; exit 1 with one line per problem."""
    from tufrepo.flows import verify as run

    try:
        report = run(checkout_path(repo), ref, now(), previous=previous, progress=progress_bar)
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
