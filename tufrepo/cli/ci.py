"""Commands CI runs on main: online-sign and expiry-events."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tufrepo.cli._common import (
    checkout_path,
    now,
    published_option,
    push_option,
    repo_option,
)


@click.command("online-sign")
@push_option
@published_option
@repo_option
def online_sign(push: bool, previous: str | None, repo: Path) -> None:
    """On main: verify every offline role, then refresh snapshot/timestamp when needed.

    The online key is root's (its x-tuf-on-ci-online-uri). Its secrets: TUFREPO_KEY_PASSWORD
    (file keys), TUFREPO_HSM_PIN (PKCS#11), TUFREPO_SIGSTORE_TOKEN or the CI's ambient
    credentials (Sigstore)."""
    from tufrepo.ci_flows import online_sign as run

    out = run(checkout_path(repo), push=push, now=now(), previous=previous)
    for msg in out.messages:
        click.echo(msg, err=True)
    if out.commit:
        click.echo(f"main: committed {out.commit[:10]}{', pushed' if out.pushed else ''}")


@click.command("expiry-events")
@click.option("--single-event", metavar="NAME", help="Put every expiring role in sign/NAME.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@push_option
@repo_option
def expiry_events(single_event: str | None, as_json: bool, push: bool, repo: Path) -> None:
    """Open signing events for offline roles inside their signing period."""
    from tufrepo.ci_flows import expiry_events as run

    outcomes = run(checkout_path(repo), push=push, now=now(), single_event=single_event)
    if as_json:
        events = [
            {"branch": o.branch, "roles": o.roles, "opened": o.commit is not None,
             "pushed": o.pushed}
            for o in outcomes
        ]  # fmt: skip
        click.echo(json.dumps({"events": events}, indent=1, sort_keys=True))
        return
    for out in outcomes:
        click.echo(f"{out.branch}: {'; '.join(out.messages)}")


COMMANDS = [online_sign, expiry_events]
