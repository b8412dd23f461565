"""``tufrepo hsm …``: run the TPM HSM service and manage its keys and registry."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tufrepo.errors import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

SERVER_ENV = "TUFREPO_HSM_SERVER"
DEFAULT_SERVER = "127.0.0.1:50051"
CA_ENV = "TUFREPO_HSM_CA"

server_option = click.option(
    "--server",
    metavar="HOST:PORT",
    envvar=SERVER_ENV,
    default=DEFAULT_SERVER,
    show_default=True,
    help=f"The address of `tufrepo hsm serve` (env {SERVER_ENV}).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
ca_option = click.option(
    "--ca",
    metavar="FILE",
    envvar=CA_ENV,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=f"Use TLS, trusting these PEM root certificates (env {CA_ENV}).",
)


def _read_public(path: Path) -> ec.EllipticCurvePublicKey:
    from tufrepo.hsm.policy import load_pem_public

    try:
        pem = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as e:
        raise InputError(f"cannot read public key {path}: {e}") from e
    try:
        return load_pem_public(pem)
    except InputError as e:
        raise InputError(f"{path}: {e}") from e


def _unlock(paths: tuple[Path, ...]) -> list[ec.EllipticCurvePrivateKey]:
    from tufrepo.signers import password_handler
    from tufrepo.signers.filekey import PASSWORD_SECRET, unlock_filekey

    secret = f"{PASSWORD_SECRET} of file key"
    return [unlock_filekey(p, password_handler(str(p)), secret) for p in paths]


def _out(data: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=1, sort_keys=True) if as_json else text)


def _key_summary(info: Any, server: str) -> dict[str, Any]:
    from tufrepo.hsm.registry import pem_of

    return {
        "key_id": info.key_id,
        "imported": info.imported,
        "public_key": pem_of(info.public_key),
        "policies": [{"signers": s, "threshold": t} for s, t in info.policies],
        "uri": f"tpmhsm://{server}/{info.key_id}?filekey=PATH",
    }


def _key_text(d: dict[str, Any]) -> str:
    lines = [f"key id: {d['key_id']}", f"signer URI: {d['uri']}"]
    for i, p in enumerate(d["policies"]):
        lines.append(f"policy {i}: {p['threshold']} of {len(p['signers'])} file keys")
    return "\n".join([*lines, d["public_key"].rstrip()])


@click.group()
def hsm() -> None:
    """The TPM HSM: signing keys kept in a TPM, authorised by file keys."""


@hsm.command()
@click.option(
    "--tcti",
    metavar="TCTI",
    required=True,
    help="TPM to use: device:/dev/tpmrm0, swtpm:host=H,port=P",
)
@click.option(
    "--state",
    "state_dir",
    metavar="DIR",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (key blobs, policies, registry).",
)
@click.option(
    "--host",
    metavar="ADDRESS",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
@click.option(
    "--port", metavar="PORT", default=50051, show_default=True, type=click.IntRange(0, 65535)
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Serve TLS with this PEM certificate chain (with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The PEM private key of --tls-cert.",
)
def serve(
    *,
    tcti: str,
    state_dir: Path,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve the TPM HSM over gRPC until SIGINT/SIGTERM."""
    from tufrepo.hsm import start_service
    from tufrepo.hsm.policy import sha256

    if host not in ("127.0.0.1", "::1", "localhost") and tls_cert is None:
        log.warning("listening on %s without TLS: use --tls-cert/--tls-key or a VPN", host)
    running = start_service(
        tcti=tcti,
        state_dir=state_dir,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    storage = bytes.fromhex(running.service.storage_public()["storage_public"])
    click.echo(
        f"TPM HSM listening on {host}:{running.port} (storage key sha256 {sha256(storage).hex()})",
        err=True,
    )
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        pass
    running.stop()


@hsm.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keygen(path: Path) -> None:
    """Create a file key at PATH (and PATH.pub), encrypted with TUFREPO_KEY_PASSWORD or
    a prompted password."""
    from tufrepo.signers import PASSWORD_ENV, password_handler
    from tufrepo.signers.filekey import PASSWORD_SECRET, generate_filekey, public_key_path

    ask = password_handler(f"new file key {path}")
    password = ask(PASSWORD_SECRET)
    if PASSWORD_ENV not in os.environ and password != ask(f"{PASSWORD_SECRET} again"):
        raise InputError("the passwords do not match")
    key = generate_filekey(path, password)
    click.echo(f"file key {path} (public key {public_key_path(path)}), keyid {key.keyid}")


signer_option = click.option(
    "--signer",
    "signers",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file key's public key (PATH.pub); repeat for a quorum.",
)
threshold_option = click.option(
    "--threshold",
    metavar="N",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="File keys needed (M of N).",
)


@hsm.command("create-key")
@server_option
@ca_option
@signer_option
@threshold_option
@json_option
def create_key(
    server: str, ca: Path | None, signers: tuple[Path, ...], threshold: int, as_json: bool
) -> None:
    """Create a signing key inside the TPM, usable by THRESHOLD of the SIGNER file keys."""
    from tufrepo.hsm.client import HsmClient

    pubs = [_read_public(p) for p in signers]
    with HsmClient(server, ca=ca) as client:
        info = client.create_key(pubs, threshold)
    d = _key_summary(info, server)
    _out(d, as_json, _key_text(d))


@hsm.command("import")
@server_option
@ca_option
@click.argument("key_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@signer_option
@threshold_option
@click.option(
    "--storage-key-sha256",
    metavar="HEX",
    help="Refuse unless the TPM's storage key has this SHA-256 (as `hsm serve` prints).",
)
@json_option
def import_(
    *,
    server: str,
    ca: Path | None,
    key_file: Path,
    signers: tuple[Path, ...],
    threshold: int,
    storage_key_sha256: str | None,
    as_json: bool,
) -> None:
    """Import the P-256 private key in KEY_FILE (PEM), wrapped here to the TPM's storage
    key: the plaintext never reaches the service. The key may still exist elsewhere."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tufrepo.hsm.client import HsmClient
    from tufrepo.signers import password_handler

    data = key_file.read_bytes()
    password = None
    if b"ENCRYPTED" in data:
        password = password_handler(str(key_file))("password").encode()
    try:
        private = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as e:
        raise InputError(f"{key_file} is not a readable PEM private key") from e
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise InputError(f"{key_file} is not an ECDSA P-256 key")
    pubs = [_read_public(p) for p in signers]
    with HsmClient(server, ca=ca) as client:
        info = client.import_key(private, pubs, threshold, storage_key_sha256)
    d = _key_summary(info, server)
    _out(d, as_json, _key_text(d))


@hsm.command()
@server_option
@ca_option
@click.argument("key_id")
@json_option
def info(server: str, ca: Path | None, key_id: str, as_json: bool) -> None:
    """Show a key: its public key, its signer URI and its policies."""
    from tufrepo.hsm.client import HsmClient

    with HsmClient(server, ca=ca) as client:
        key = client.key_info(key_id)
    key.check()
    d = _key_summary(key, server)
    _out(d, as_json, _key_text(d))


@hsm.command("add-trusted")
@server_option
@ca_option
@click.argument("key_id")
@click.argument("new_signer", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--filekey",
    "filekeys",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="An initial signer's file key approving the change; repeat to meet the quorum "
    "(passwords: TUFREPO_KEY_PASSWORD, else a prompt).",
)
@click.option(
    "--threshold",
    metavar="N",
    type=click.IntRange(min=1),
    help="Threshold of the new policy (default: unchanged).",
)
def add_trusted(
    server: str,
    ca: Path | None,
    key_id: str,
    new_signer: Path,
    filekeys: tuple[Path, ...],
    threshold: int | None,
) -> None:
    """Trust NEW_SIGNER (a file key's public key) for KEY_ID, keeping the TPM key.

    The new policy is the latest one plus NEW_SIGNER; the TPM only accepts it with an
    approval signed by a quorum of the key's initial signers (PolicyAuthorize)."""
    from tufrepo.hsm.client import HsmClient
    from tufrepo.hsm.policy import load_pem_public

    new = _read_public(new_signer)
    keys = _unlock(filekeys)
    with HsmClient(server, ca=ca) as client:
        current = client.key_info(key_id)
        signers_pem, current_threshold = current.policies[-1]
        signers = [load_pem_public(p) for p in signers_pem] + [new]
        index = client.add_trusted(key_id, signers, threshold or current_threshold, keys)
    click.echo(f"key {key_id}: policy {index} approved ({len(signers)} file keys)")


@hsm.group()
def registry() -> None:
    """Public keys and verification certificates (checked client-side)."""


@registry.command("add")
@server_option
@ca_option
@click.argument("public_key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--label", metavar="NAME", default="", help="A name for people (not authenticated).")
def registry_add(server: str, ca: Path | None, public_key: Path, label: str) -> None:
    """Store PUBLIC_KEY (PEM) in the registry; print its fingerprint."""
    from tufrepo.hsm.client import HsmClient
    from tufrepo.hsm.registry import pem_of

    key = _read_public(public_key)
    with HsmClient(server, ca=ca) as client:
        r = client.call("RegistryPut", {"pem": pem_of(key), "label": label})
    click.echo(r["fingerprint"])


@registry.command("vouch")
@server_option
@ca_option
@click.option(
    "--filekey",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The vouching file key (password: TUFREPO_KEY_PASSWORD, else a prompt).",
)
@click.argument("subject", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def registry_vouch(server: str, ca: Path | None, filekey: Path, subject: Path) -> None:
    """Sign SUBJECT's public key with FILEKEY and store the certificate (both keys are
    added to the registry if missing)."""
    from tufrepo.hsm.client import HsmClient
    from tufrepo.hsm.registry import make_certificate, pem_of

    (issuer,) = _unlock((filekey,))
    sub = _read_public(subject)
    cert = make_certificate(issuer, sub)
    with HsmClient(server, ca=ca) as client:
        for k in (issuer.public_key(), sub):
            client.call("RegistryPut", {"pem": pem_of(k)})
        client.call("RegistryCertify", cert)
    click.echo(f"{cert['issuer']} vouches for {cert['subject']}")


@registry.command("list")
@server_option
@ca_option
@json_option
def registry_list(server: str, ca: Path | None, as_json: bool) -> None:
    """List the registry's keys and certificates (unverified)."""
    from tufrepo.hsm.client import HsmClient

    with HsmClient(server, ca=ca) as client:
        reg = client.call("RegistryList", {})
    lines = [f"{fp} {k.get('label', '')}".rstrip() for fp, k in sorted(reg["keys"].items())]
    lines += [f"{c['issuer'][:16]}… vouches for {c['subject'][:16]}…" for c in reg["certificates"]]
    _out(reg, as_json, "\n".join(lines))


@registry.command("verify")
@server_option
@ca_option
@click.argument("subject", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A public key you trust (PEM); repeat for several.",
)
def registry_verify(server: str, ca: Path | None, subject: Path, trust: tuple[Path, ...]) -> None:
    """Check, here, that a chain of valid certificates leads from SUBJECT to a trusted key."""
    from tufrepo.hsm.client import HsmClient
    from tufrepo.hsm.registry import fingerprint, verify_chain

    trusted = {fingerprint(_read_public(p)) for p in trust}
    with HsmClient(server, ca=ca) as client:
        reg = client.call("RegistryList", {})
    chain = verify_chain(reg, fingerprint(_read_public(subject)), trusted)
    click.echo(" <- ".join(fp[:16] for fp in chain))


__all__ = ["hsm"]
