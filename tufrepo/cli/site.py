"""Commands for the published site: ``publish``, ``check-site`` and ``download``."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tufrepo.cli._common import (
    checkout_path,
    format_option,
    now,
    progress_bar,
    repo_option,
    root_option,
    site_url,
    url_option,
)
from tufrepo.errors import Error, InputError
from tufrepo.text import plural

if TYPE_CHECKING:
    from tufrepo.client import SiteReport

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
    metavar="URL|DIR",
    help="The earlier site (a directory, or the live site's URL) to carry kept versions "
    "from when OUTDIR is a new directory.",
)
@click.option(
    "--keep-days",
    metavar="DAYS",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Keep files of earlier publishes this long after they stopped being current.",
)
@click.option(
    "--max-age",
    metavar="SECONDS",
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
    result = do_publish(
        checkout_path(repo),
        site,
        previous=previous,
        keep=timedelta(days=keep_days),
        now=now(),
        max_age=max_age,
        progress=progress_bar,
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


def _metadata_hint(url: str, report_problems: list[str]) -> None:
    if report_problems and url.rstrip("/").endswith("/metadata"):
        base = url.rstrip("/").removesuffix("/metadata")
        click.echo(f"Hint: URL is the site's base, without /metadata: try {base}", err=True)


def _inspect(
    url: str | None,
    url_opt: str | None,
    root_file: Path | None,
    valid_for: str,
    download_all: bool,
    cache_dir: Path | None,
) -> SiteReport:
    from tufrepo.client import fetch_first_root, inspect_site, parse_duration

    if (url is None) == (url_opt is None):
        raise InputError("give the site's URL once: check-site URL, or check-site --url URL")
    url = site_url(url or url_opt or "")
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
    return inspect_site(
        url, root, now=now(), valid_for=margin, download_all=download_all,
        cache_dir=cache_dir, progress=progress_bar,
    )  # fmt: skip


@click.command("check-site")
@click.argument("url", required=False)
@url_option(required=False)
@root_option(required=False)
@click.option(
    "--valid-for",
    metavar="DURATION",
    default="0s",
    show_default=True,
    help="Fail when anything expires within this margin (90s, 30m, 12h, 2d, 1w, 1d12h).",
)
@click.option("--download-all", is_flag=True, help="Download and verify every artifact.")
@click.option(
    "--cache-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep trusted metadata here between runs, to refuse a site that goes back in time.",
)
@format_option("markdown: for a CI summary page or a failure issue (mentions who can fix it).")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="--format json.")
def check_site(
    url: str | None,
    url_opt: str | None,
    root_file: Path | None,
    valid_for: str,
    download_all: bool,
    cache_dir: Path | None,
    fmt: str,
    as_json: bool,
) -> None:
    """Refresh from a trusted root like a TUF client; exit 1 when invalid or expiring.

    The site is URL or --url URL (the same option as download's). The json and markdown
    reports are printed in every case, also for bad input (exit 2)."""
    from tufrepo.client import SiteReport
    from tufrepo.report import render_site_markdown

    fmt = "json" if as_json else fmt
    try:
        report = _inspect(url, url_opt, root_file, valid_for, download_all, cache_dir)
    except Error as e:
        failed = SiteReport(url or url_opt or "", problems=[e.diagnostics()])
        if fmt == "json":
            click.echo(json.dumps({**failed.to_json(), "error": e.diagnostics()}, indent=1))
        elif fmt == "markdown":
            click.echo(render_site_markdown(failed))
        raise
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=1))
    elif fmt == "markdown":
        click.echo(render_site_markdown(report))
    elif report.roles:  # the site could be read
        for role in report.roles:
            click.echo(f"{role.name} v{role.version} expires {role.expires:%Y-%m-%d %H:%M UTC}")
        downloaded = f", {len(report.downloaded)} downloaded" if download_all else ""
        click.echo(f"{plural(len(report.targets), 'artifact')}{downloaded}")
        if report.hosted_elsewhere:
            click.echo(f"{len(report.hosted_elsewhere)} hosted elsewhere (not checked)")
    for problem in report.problems:
        click.echo(f"Problem: {problem}", err=True)
    if report.fixers:
        click.echo(f"Who can fix it: {', '.join(report.fixers)}", err=True)
    _metadata_hint(report.url, report.problems)
    if report.problems:
        sys.exit(1)


def _progress(target: str, length: int) -> contextlib.AbstractContextManager[Any]:
    """A bar for artifacts of a megabyte or more."""
    return progress_bar(target, length if length >= _LARGE else 0)


@click.command()
@click.argument("target")
@url_option(required=True)
@root_option(required=True)
@click.option(
    "-o",
    "--output",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default="current directory",
    help="Directory to save the artifact in.",
)
@click.option(
    "--cache-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where trusted metadata is kept between runs (default: a per-user cache).",
)
def download(
    target: str, url_opt: str, root_file: Path, out_dir: Path, cache_dir: Path | None
) -> None:
    """Download TARGET from a site and verify it with TUF."""
    from tufrepo.client import download as do_download

    url = site_url(url_opt)
    root = _read_root(root_file)
    _quiet_http()
    dest = do_download(url, target, root, out_dir, cache_dir=cache_dir, progress=_progress)
    click.echo(str(dest))


COMMANDS = (publish, check_site, download)
