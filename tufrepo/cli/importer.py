"""``tufrepo import EVENT``: adopt an existing plain TUF repository committed on main."""

from __future__ import annotations

from pathlib import Path

import click

from tufrepo.cli._common import (
    checkout_path,
    now,
    print_outcome,
    push_option,
    push_remote_option,
    repo_option,
    require_user,
    user_options,
)


@click.command("import")
@click.argument("event")
@click.option(
    "--owner",
    "owners",
    multiple=True,
    metavar="KEYID=@NAME",
    help="Who holds the key KEYID (or a unique prefix); every offline key needs one.",
)
@click.option(
    "--online-key",
    "online_uri",
    metavar="URI",
    help="Signer URI of the existing snapshot/timestamp key.",
)
@click.option(
    "--expiry-period",
    metavar="DAYS",
    type=click.IntRange(min=1),
    default=365,
    show_default=True,
    help="Days until expiry of the offline roles (kept where already set).",
)
@click.option(
    "--signing-period",
    metavar="DAYS",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Days before expiry to re-sign the offline roles.",
)
@user_options
@push_option
@push_remote_option
@repo_option
def import_command(
    event: str,
    owners: tuple[str, ...],
    online_uri: str | None,
    expiry_period: int,
    signing_period: int,
    user: str | None,
    signer: str | None,
    push: bool,
    push_remote: str | None,
    repo: Path,
) -> None:
    """Open EVENT adopting the TUF repository committed on main (adds tuf-on-ci's fields)."""
    from tufrepo.errors import InputError
    from tufrepo.flows import import_repository
    from tufrepo.importer import ImportConfig, parse_owner
    from tufrepo.signing import Actor
    from tufrepo.workspace import Workspace

    actor = Actor(require_user(user), signer)
    mapping: dict[str, str] = {}
    for value in owners:
        keyid, name = parse_owner(value)
        if keyid in mapping:
            raise InputError(f"--owner {keyid} is given more than once")
        mapping[keyid] = name
    cfg = ImportConfig(mapping, online_uri, expiry_period, signing_period)
    ws = Workspace.open(checkout_path(repo), push_remote=push_remote)
    print_outcome(import_repository(ws, event, cfg, actor, push=push, now=now()))
