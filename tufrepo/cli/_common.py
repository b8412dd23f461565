"""Options and helpers shared by the command modules (one definition each)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from tufrepo.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def now() -> datetime:
    """The current time (UTC); the only clock the commands read."""
    return datetime.now(UTC)


def repo_option(f: F) -> F:
    return click.option(
        "--repo",
        "repo",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(),
        show_default="current directory",
        help="The git checkout of the TUF repository.",
    )(f)


def push_option(f: F) -> F:
    return click.option(
        "--push/--no-push", default=True, show_default=True, help="Push the result to the remote."
    )(f)


def user_options(f: F) -> F:
    f = click.option(
        "--signer",
        envvar="TUFREPO_SIGNER",
        help="Your signer URI (file2:, filekey:, hsm:, sigstore:, tpmhsm:); env TUFREPO_SIGNER.",
    )(f)
    return click.option(
        "--user", envvar="TUFREPO_USER", help="Who you are: @name (env TUFREPO_USER)."
    )(f)


def yes_option(f: F) -> F:
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(f)


def require_user(user: str | None) -> str:
    from tufrepo.roles import normalize_user

    if not user:
        raise InputError("who are you? pass --user @name or set TUFREPO_USER")
    return normalize_user(user)


def interactive(yes: bool) -> bool:
    """Prompts happen only on a terminal and without --yes."""
    return not yes and sys.stdin.isatty()


def checkout_path(repo: Path) -> Path:
    path = repo.resolve()
    if not path.is_dir():
        raise InputError(f"{repo} is not a directory")
    return path


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
