"""Options and helpers shared by the command modules (one definition each)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tufrepo.errors import InputError

if TYPE_CHECKING:
    from tufrepo.flows import Outcome

F = TypeVar("F", bound=Callable[..., Any])


SECRETS_HELP = (
    "Secrets never go in arguments: TUFREPO_KEY_PASSWORD (file keys), TUFREPO_HSM_PIN "
    "(PKCS#11), TUFREPO_SIGSTORE_TOKEN (Sigstore), else a prompt on a terminal."
)


def now() -> datetime:
    """The current time (UTC); the only clock the commands read."""
    return datetime.now(UTC)


def repo_option(f: F) -> F:
    return click.option(
        "--repo",
        "repo",
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(),
        show_default="current directory",
        help="The git checkout of the TUF repository.",
    )(f)


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal (advanced by the callback yielded);
    None otherwise, so CI logs stay quiet and line-oriented."""
    if total <= 0 or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def site_url(url: str) -> str:
    """``url`` checked as a published site's base URL (http or https).

    Raises:
        InputError: no scheme, another scheme, or no host.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(
            f"not a site URL: {url!r} (give the site's base URL with http:// or https://, "
            "e.g. https://example.org/tuf)"
        )
    return url


def url_option(*, required: bool) -> Callable[[F], F]:
    return click.option(
        "--url",
        "url_opt",
        metavar="URL",
        required=required,
        help="The published site's base URL (the directory holding metadata/ and targets/).",
    )


def root_option(*, required: bool) -> Callable[[F], F]:
    default = "" if required else " (default: trust URL/metadata/1.root.json on first use)"
    return click.option(
        "--root",
        "root_file",
        metavar="FILE",
        required=required,
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"The trusted root metadata file{default}.",
    )


def push_option(f: F) -> F:
    return click.option(
        "--push/--no-push", default=True, show_default=True, help="Push the result to the remote."
    )(f)


def configured(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Fill an option given neither as a flag nor by its variable from the config file."""

    def fill(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == "":
            from tufrepo.config import load

            return load().get(key)
        return value

    return fill


def _config_help(key: str, what: str | None = None) -> str:
    """``what`` (default: the config key's description), then where else it comes from."""
    from tufrepo.config import ENV, KEYS

    return f"{what or KEYS[key]} Env {ENV[key]}, else `tufrepo config set {key}`."


def user_option(f: F, what: str | None = None) -> F:
    """--user: flag, else environment variable, else the config file (``what``: the help's
    first sentence, when it is not the config key's)."""
    return click.option(
        "--user",
        metavar="@NAME",
        envvar="TUFREPO_USER",
        callback=configured("user"),
        help=_config_help("user", what),
    )(f)


def user_options(f: F) -> F:
    """--user and --signer: flag, else environment variable, else the config file."""
    f = click.option(
        "--signer",
        metavar="URI",
        envvar="TUFREPO_SIGNER",
        callback=configured("signer"),
        help=_config_help("signer") + " " + SECRETS_HELP,
    )(f)
    return user_option(f)


def push_remote_option(f: F) -> F:
    return click.option(
        "--push-remote",
        metavar="REMOTE",
        envvar="TUFREPO_PUSH_REMOTE",
        callback=configured("push-remote"),
        help=_config_help("push-remote"),
    )(f)


def _not_empty(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise InputError("--previous is empty (in CI: set the site URL variable)")
    return value


def published_option(f: F) -> F:
    return click.option(
        "--previous",
        metavar="URL|DIR",
        callback=_not_empty,
        help="The published site: versions lower than its timestamp's and snapshot's are a "
        "rollback too (what a fresh clone needs to notice a forced push of older history).",
    )(f)


def format_option(help_text: str) -> Callable[[F], F]:
    """``--format text|markdown|json`` (status and check-site)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "markdown", "json"]),
        default="text",
        show_default=True,
        help=help_text,
    )


def yes_option(f: F) -> F:
    return click.option(
        "--yes",
        "-y",
        is_flag=True,
        help="Do not ask: take the answer that goes ahead (also when stdin is not a terminal).",
    )(f)


def require_user(user: str | None) -> str:
    from tufrepo.roles import normalize_user

    if not user:
        raise InputError(
            "who are you? pass --user @name, set TUFREPO_USER, or `tufrepo config set user @name`"
        )
    return normalize_user(user)


def interactive(yes: bool) -> bool:
    """Prompts happen only on a terminal and without --yes."""
    return not yes and sys.stdin.isatty()


def checkout_path(repo: Path) -> Path:
    path = repo.resolve()
    if not path.is_dir():
        raise InputError(f"{repo} is not a directory")
    _use_main_trust_config(path)
    return path


def _use_main_trust_config(path: Path) -> None:
    """Hand the Sigstore trust configuration committed on main (if any) to the verifier.

    Read from git objects of main (or, in a repository without main, of HEAD): a signing
    event branch or an uncommitted file never decides which Sigstore instance is trusted.
    """
    from tufrepo.git import GitRepo
    from tufrepo.sigstore_trust import REPOSITORY_TRUST_CONFIG, set_repository_trust_config

    try:
        repo = GitRepo(path)
    except InputError:
        set_repository_trust_config(None)
        return
    commit = repo.main_commit() or repo.head()
    data = repo.read_blob(commit, REPOSITORY_TRUST_CONFIG.as_posix())
    label = f"{REPOSITORY_TRUST_CONFIG.as_posix()} at {commit[:10] if commit else '-'}"
    set_repository_trust_config(data, label)


def print_outcome(out: Outcome) -> None:
    """What a command that commits did: messages on stderr, the commit on stdout."""
    for msg in out.messages:
        click.echo(msg, err=True)
    if out.commit:
        where = "pushed to the remote" if out.pushed else "local branch only (--no-push)"
        click.echo(f"{out.branch}: committed {out.commit[:10]}, {where}")
    else:
        click.echo(f"{out.branch}: nothing to commit")
