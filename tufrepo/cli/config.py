"""``tufrepo config``: the per-user configuration file (user name, signer URI, push remote)."""

from __future__ import annotations

import json

import click

from tufrepo.config import ENV, KEYS, config_path, load, save_value
from tufrepo.errors import InputError

_KEY = click.Choice(sorted(KEYS))


def _checked(key: str, value: str) -> str:
    from tufrepo.roles import normalize_user
    from tufrepo.signers import scheme_of

    value = value.strip()
    if key == "user":
        return normalize_user(value)
    if key == "signer":
        scheme_of(value)
        return value
    if not value or value.startswith("-") or any(c.isspace() for c in value):
        raise InputError(f"invalid git remote name {value!r}")
    return value


@click.group("config")
def config() -> None:
    """Your settings: user, signer, push-remote.

    \b
    The file is $TUFREPO_CONFIG, else $XDG_CONFIG_HOME/tufrepo/config.toml
    (~/.config/tufrepo/config.toml). A flag beats its environment variable
    (TUFREPO_USER, TUFREPO_SIGNER, TUFREPO_PUSH_REMOTE), which beats the file.
    """


@config.command("show")
def show() -> None:
    """Print the file's path and every value set in it."""
    path = config_path()
    click.echo(f"# {path}{'' if path.exists() else ' (not created yet)'}")
    values = load(path)
    for key in sorted(KEYS):
        value = values.get(key)
        click.echo(f"{key} = {json.dumps(value)}" if value is not None else f"# {key}: not set")


@config.command("get")
@click.argument("key", type=_KEY)
@click.pass_context
def get(ctx: click.Context, key: str) -> None:
    """Print KEY's value from the file (exit 1 when it is not set)."""
    value = load().get(key)
    if value is None:
        click.echo(f"{key} is not set in {config_path()} (env {ENV[key]} may still be)", err=True)
        ctx.exit(1)
    click.echo(value)


@config.command("set")
@click.argument("key", type=_KEY)
@click.argument("value")
def set_(key: str, value: str) -> None:
    """Set KEY to VALUE (user: @name; signer: a signer URI; push-remote: a git remote)."""
    path = save_value(key, _checked(key, value))
    click.echo(f"{key} set in {path}", err=True)


@config.command("unset")
@click.argument("key", type=_KEY)
def unset(key: str) -> None:
    """Remove KEY from the file."""
    path = save_value(key, None)
    click.echo(f"{key} removed from {path}", err=True)
