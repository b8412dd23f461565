"""``tufrepo demo``: the whole lifecycle on this machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click


@click.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--serve", is_flag=True, help="Keep serving the site until Ctrl-C.")
def demo(directory: Path | None, serve: bool) -> None:
    """Run init, an app release, signing, online signing, publishing and a client download
    in DIRECTORY (default: a new temporary directory), printing each step."""
    from tufrepo.demo import run_demo

    base = directory or Path(tempfile.mkdtemp(prefix="tufrepo-demo-"))

    def keep_serving(url: str) -> None:
        click.echo(f"Serving {url} - press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return

    run_demo(base.resolve(), click.echo, keep_serving=keep_serving if serve else None)
    click.echo(f"\nEverything is in {base}")
