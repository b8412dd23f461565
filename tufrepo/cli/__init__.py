"""The ``tufrepo`` command line: one click group, one module per area.

Commands parse options, call the library and format output. Errors from the library
(``tufrepo.errors.Error``) are turned into one line on stderr and an exit code here, and
nowhere else; a traceback is shown only with ``-v``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tufrepo import lazy_signers

lazy_signers.install()  # before anything imports securesystemslib (start-up time)

import click  # noqa: E402

from tufrepo.cli.sigstore import sigstore_options  # noqa: E402
from tufrepo.errors import Error  # noqa: E402

log = logging.getLogger("tufrepo")


_VERBOSE = {"-v", "--verbose", "-vv", "-vvv"}


class _Group(click.Group):
    """A group that renders tufrepo errors as one line and an exit code, and takes ``-v``
    after the subcommand too (``tufrepo verify -v``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            head, tail = args[: args.index("--")], args[args.index("--") :]
        else:
            head, tail = args, []
        hoisted = [a for a in head if a in _VERBOSE]
        rest = [a for a in head if a not in _VERBOSE]
        return super().parse_args(ctx, [*hoisted, *rest, *tail])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Error as e:
            if log.isEnabledFor(logging.DEBUG):
                log.exception("command failed")
            click.echo(f"Error: {e.diagnostics()}", err=True)
            ctx.exit(e.exit_code)
        finally:  # files parsed once per command (tests run many in one process)
            repository = sys.modules.get("tufrepo.repository")
            if repository is not None:
                repository.forget_parsed()


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version, and the commit the installed workflows are pinned to."""
    if not value or ctx.resilient_parsing:
        return
    from tufrepo import __version__
    from tufrepo.workflows import source_commit

    click.echo(f"tufrepo, version {__version__}")
    click.echo(f"source commit {source_commit() or 'unknown (not built from a git checkout)'}")
    ctx.exit(0)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v: debug, tracebacks).")
@sigstore_options
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the source commit, then exit.",
)
def main(verbose: int) -> None:
    """Keep a TUF repository in git and run it from CI."""
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    from tufrepo.signers import register

    register()


def _add_commands() -> None:
    """Import the command modules and add them to the group (explicit, in one place)."""
    from tufrepo.cli import ci, repo, site
    from tufrepo.cli.config import config
    from tufrepo.cli.demo import demo
    from tufrepo.cli.hsm import hsm
    from tufrepo.cli.importer import import_command
    from tufrepo.cli.key import key
    from tufrepo.cli.sigstore import sigstore_group
    from tufrepo.cli.workflows import workflows

    for command in [*repo.COMMANDS, *ci.COMMANDS, *site.COMMANDS]:
        main.add_command(command)
    for group in (key, hsm, sigstore_group, workflows, demo, import_command, config):
        main.add_command(group)


_add_commands()
