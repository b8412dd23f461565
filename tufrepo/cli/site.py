"""Commands for the published site: ``publish``, ``check-site`` and ``download``."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tufrepo.cli._common import checkout_path, now, repo_option
from tufrepo.errors import InputError

if TYPE_CHECKING:
    from tufrepo.client import ProgressCallback

_LARGE = 1024 * 1024  # artifacts from this size on get a progress bar


def _quiet_http() -> None:
    """urllib3 logs each retry as a warning; the command reports the final error once."""
    if not logging.getLogger("tufrepo").isEnabledFor(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.ERROR)


@click.command()
@click.argument("outdir", metavar="OUTDIR|s3://BUCKET/PREFIX|gs://...|az://...")
@repo_option
@click.option(
    "--previous",
    metavar="DIR|URL",
    help="The earlier site (a directory, or the live site's URL) to carry kept versions "
    "from when OUTDIR is a new directory.",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Keep files of earlier publishes this long after they stopped being current.",
)
@click.option(
    "--max-age",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="Seconds a CDN may cache timestamp.json and other unversioned files "
    "(versioned files are immutable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def publish(
    outdir: str, repo: Path, previous: str | None, keep_days: float, max_age: int, as_json: bool
) -> None:
    """Verify the repository and publish it as a static TUF site: into the directory
    OUTDIR, or into an object-store bucket (credentials from the environment)."""
    from tufrepo.publish import open_site
    from tufrepo.publish import publish as do_publish

    if previous is not None and not previous.strip():
        raise InputError("--previous is empty (in CI: set the site URL variable)")
    if not outdir.strip():
        raise InputError("OUTDIR is empty (in CI: set the bucket URL variable)")
    site = open_site(outdir)
    from tufrepo.git import GitRepo

    checkout = checkout_path(repo)
    with contextlib.suppress(InputError):  # a plain directory is published as it is
        GitRepo(checkout).materialize_all()  # a sparse checkout lacks the artifacts to copy
    result = do_publish(
        checkout,
        site,
        previous=previous,
        keep=timedelta(days=keep_days),
        now=now(),
        max_age=max_age,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "outdir": result.outdir,
                    "timestamp_version": result.timestamp_version,
                    "written": result.written,
                    "unchanged": result.unchanged,
                    "kept": result.kept,
                    "pruned": result.pruned,
                    "hosted_elsewhere": result.hosted_elsewhere,
                },
                indent=1,
            )
        )
        return
    click.echo(
        f"Published timestamp v{result.timestamp_version} to {result.outdir}: "
        f"{len(result.written)} files written, {result.unchanged} unchanged, "
        f"{len(result.kept)} earlier kept, {len(result.pruned)} pruned"
    )
    if result.hosted_elsewhere:
        click.echo(f"{len(result.hosted_elsewhere)} artifacts are hosted elsewhere (not copied)")


def _read_root(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read trusted root {path}: {e.strerror}") from e


@click.command("check-site")
@click.argument("url")
@click.option(
    "--root",
    "root_file",
    type=click.Path(path_type=Path),
    help="The trusted root (default: trust URL/metadata/1.root.json on first use).",
)
@click.option(
    "--valid-for",
    default="0s",
    show_default=True,
    help="Fail when anything expires within this margin (e.g. 12h, 2d).",
)
@click.option("--download-all", is_flag=True, help="Download and verify every artifact.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep trusted metadata here between runs, to refuse a site that goes back in time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_site(
    url: str,
    root_file: Path | None,
    valid_for: str,
    download_all: bool,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Refresh from a trusted root like a TUF client; exit 1 when invalid or expiring."""
    from tufrepo.client import fetch_first_root, inspect_site, parse_duration

    margin = parse_duration(valid_for)
    _quiet_http()
    if root_file is not None:
        root = _read_root(root_file)
    elif cache_dir is not None and (cache_dir / "root.json").exists():
        root = b""  # the cached root, trusted on an earlier run, is the trust anchor
    else:
        click.echo(
            "WARNING: no --root given: TRUSTING WHATEVER "
            f"{url.rstrip('/')}/metadata/1.root.json SERVES NOW (trust on first use; a later "
            "root if python-tuf cannot read it). "
            "Pass --root with a root you obtained securely.",
            err=True,
        )
        root = fetch_first_root(url)
    report = inspect_site(
        url, root, now=now(), valid_for=margin, download_all=download_all, cache_dir=cache_dir
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        for role in report.roles:
            click.echo(f"{role.name} v{role.version} expires {role.expires:%Y-%m-%d %H:%M UTC}")
        click.echo(f"{len(report.targets)} artifacts, {len(report.downloaded)} downloaded")
        if report.hosted_elsewhere:
            click.echo(f"{len(report.hosted_elsewhere)} hosted elsewhere (not checked)")
    for problem in report.problems:
        click.echo(f"Problem: {problem}", err=True)
    if report.problems:
        sys.exit(1)


@contextlib.contextmanager
def _progress(target: str, length: int) -> Iterator[ProgressCallback | None]:
    if length < _LARGE:
        yield None
        return
    with click.progressbar(length=length, label=target, file=sys.stderr) as bar:
        yield bar.update


@click.command()
@click.argument("target")
@click.option("--url", required=True, help="Base URL of the published site.")
@click.option(
    "--root",
    "root_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The trusted root metadata file.",
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    default=".",
    show_default=True,
    help="Directory to save the artifact in.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Where trusted metadata is kept between runs (default: per-user cache).",
)
def download(target: str, url: str, root_file: Path, out_dir: Path, cache_dir: Path | None) -> None:
    """Download TARGET from a site and verify it with TUF."""
    from tufrepo.client import download as do_download

    root = _read_root(root_file)
    _quiet_http()
    dest = do_download(url, target, root, out_dir, cache_dir=cache_dir, progress=_progress)
    click.echo(str(dest))


COMMANDS = (publish, check_site, download)
