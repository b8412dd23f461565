"""``tufrepo key``: create signing key files and show the public key of any signer URI."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from tufrepo.errors import InputError


def _new_password(path: Path) -> str:
    """The password for a new key file: ``TUFREPO_KEY_PASSWORD``, else asked twice on a tty."""
    from tufrepo.signers import PASSWORD_ENV

    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise InputError(f"a password is needed for {path}: set {PASSWORD_ENV} (no terminal)")
    first = getpass.getpass(f"New password for {path}: ")
    second = getpass.getpass("Repeat the password: ")
    if first != second:
        raise InputError("the passwords do not match")
    return first


@click.group("key")
def key() -> None:
    """Create signing key files; show the public key of a signer."""


@key.command("generate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--type",
    "key_type",
    type=click.Choice(["filekey", "ed25519"]),
    default="filekey",
    show_default=True,
    help="filekey: ECDSA P-256 encrypted with a password (PATH.pub holds the public key); "
    "ed25519: an unencrypted PEM key for file2: (tests, CI online keys).",
)
def generate(path: Path, key_type: str) -> None:
    """Create a new key file at PATH and print its signer URI and keyid.

    The filekey password comes from TUFREPO_KEY_PASSWORD or is asked twice on a terminal.
    An existing file is never overwritten.
    """
    from tufrepo.signers.filekey import check_new_key_path, generate_file2, generate_filekey

    if key_type == "filekey":
        check_new_key_path(path, with_public=True)  # before asking for a password
        public = generate_filekey(path, _new_password(path))
        uri = f"filekey:{path}"
    else:
        public = generate_file2(path)
        uri = f"file2:{path}"
    click.echo(f"uri: {uri}")
    click.echo(f"keyid: {public.keyid}")


@key.command("show")
@click.argument("uri")
def show(uri: str) -> None:
    """Print the public key that the signer at URI signs for, as JSON (with its keyid).

    Examples: filekey:alice.key, file2:online.pem, hsm:2?label=alice. A filekey without
    PATH.pub is decrypted (TUFREPO_KEY_PASSWORD, else a prompt); hsm: reads TUFREPO_HSM_PIN.
    """
    from tufrepo.signers import import_public_key

    public = import_public_key(uri)
    data = {"keyid": public.keyid, **public.to_dict()}
    click.echo(json.dumps(data, indent=2, sort_keys=True))
