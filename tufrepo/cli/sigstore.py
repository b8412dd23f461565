"""``tufrepo sigstore ...``: the Sigstore trust configuration tufrepo verifies and signs with."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tufrepo.cli._common import checkout_path, repo_option

F = TypeVar("F", bound=Callable[..., Any])


def _set_trust_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        from tufrepo.sigstore_trust import set_trust_config_path

        set_trust_config_path(value)


def _set_token(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        from tufrepo.signers.sigstore import set_identity_token

        set_identity_token(value)


def sigstore_options(f: F) -> F:
    """``--sigstore-trust-config`` and ``--identity-token`` for the ``tufrepo`` group.

    They only set process-wide state (no parameters reach the command function).
    """
    f = click.option(
        "--sigstore-trust-config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_set_trust_config,
        help="Sigstore ClientTrustConfig (or TrustedRoot) to verify and sign with "
        "(default: TUFREPO_SIGSTORE_TRUST_CONFIG, the repository's "
        ".tufrepo/sigstore-trust-config.json as committed on main, else the pinned "
        "production root).",
    )(f)
    return click.option(
        "--identity-token",
        metavar="TOKEN",
        expose_value=False,
        callback=_set_token,
        help="OIDC identity token for Sigstore signing (prefer TUFREPO_SIGSTORE_TOKEN: "
        "arguments are visible to other users).",
    )(f)


@click.group("sigstore")
def sigstore_group() -> None:
    """Sigstore trust configuration (pinned production root, private deployments)."""


@sigstore_group.command("trust-config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@repo_option
def show_trust_config(as_json: bool, repo: Path) -> None:
    """Show which Sigstore trust configuration applies here, and where it came from."""
    from tufrepo import sigstore_trust

    checkout_path(repo)
    source = sigstore_trust.resolve_trust_config()
    root = sigstore_trust.load_trusted_root()
    doc = json.loads(source.data if source.data is not None else source.path.read_bytes())
    trusted = doc.get("trustedRoot", doc)
    cas = [str(ca.get("uri")) for ca in trusted["certificateAuthorities"]]
    tlogs = [str(t.get("baseUrl")) for t in trusted["tlogs"]]
    info: dict[str, Any] = {
        "path": str(source.path),
        "origin": source.origin,
        "can_sign": "signingConfig" in doc,
        "certificate_authorities": cas,
        "transparency_logs": tlogs,
        "fulcio_certificates": len(root.get_fulcio_certs()),
    }
    if source.origin == "pinned":
        provenance = sigstore_trust.pinned_provenance()
        info["provenance"] = {k: v for k, v in provenance.items() if k != "history"}
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    click.echo(f"Sigstore trust config: {source}")
    click.echo(f"  certificate authorities: {', '.join(cas)}")
    click.echo(f"  transparency logs: {', '.join(tlogs)}")
    click.echo(f"  can sign: {'yes' if info['can_sign'] else 'no (trusted root only)'}")
    if "provenance" in info:
        p = info["provenance"]
        click.echo(f"  pinned version {p['version']} ({p['updated']}), sha256 {p['sha256']}")
        click.echo(f"  source: {p['source']}")


@sigstore_group.command("update-trust-root")
@click.argument("trust_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signing-config",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="signing_config.json to pin with a bare trusted_root.json (default: keep the current).",
)
@click.option(
    "--source",
    metavar="WHERE",
    required=True,
    help="Where TRUST_FILE came from (URL, TUF repository, version); kept in provenance.json.",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    show_default="tufrepo/data/sigstore of this tufrepo",
    help="Directory of the pinned copy (tufrepo/data/sigstore of a tufrepo checkout).",
)
def update_trust_root(
    trust_file: Path, signing_config: Path | None, source: str, data_dir: Path | None
) -> None:
    """Replace tufrepo's pinned Sigstore trust root with TRUST_FILE and record its provenance.

    TRUST_FILE is a ClientTrustConfig, or a trusted_root.json (with --signing-config, or
    keeping the signing config pinned so far). It is validated before anything is written.
    """
    from tufrepo import sigstore_trust

    data_dir = data_dir or sigstore_trust.PINNED_DIR
    provenance = sigstore_trust.update_pinned(
        trust_file, signing_config=signing_config, source=source, data_dir=data_dir
    )
    click.echo(
        f"Pinned Sigstore trust config version {provenance['version']} "
        f"(sha256 {provenance['sha256']}) in {data_dir}"
    )
