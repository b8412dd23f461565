"""``tufrepo key``: create signing key files and show the public key of any signer URI."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tufrepo.cli._common import require_user, user_option
from tufrepo.errors import InputError

if TYPE_CHECKING:
    from securesystemslib.signer import Key


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


def _owner_options(f: Any) -> Any:
    f = click.option(
        "--online",
        is_flag=True,
        help="An online key: the keyid covers the signer URI as given (use the same URI in "
        "delegate --online-key).",
    )(f)
    return user_option(f, "Whose key this is: the keyowner the repository records.")


_NO_OWNER = (
    "note: pass --user @name (or set TUFREPO_USER), or --online, to see the keyid the "
    "repository will use: it covers the keyowner or online URI field"
)


def repository_key(public: Key, uri: str, user: str | None, online: bool) -> Key | None:
    """``public`` as the repository will record it, with the keyid it will use (None when
    neither a user nor --online says which custom field it will carry)."""
    from tufrepo.signing import online_key, owned_key

    if online:
        return online_key(uri, public)
    if not user:
        return None
    return owned_key(public, require_user(user))


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
@_owner_options
def generate(path: Path, key_type: str, user: str | None, online: bool) -> None:
    """Create a new key file at PATH and print its signer URI and the keyid the repository
    will use for it (with your keyowner field, or the online URI with --online).

    The filekey password comes from TUFREPO_KEY_PASSWORD or is asked twice on a terminal.
    An existing file is never overwritten.
    """
    if user and not online:
        require_user(user)  # a bad name is an error before anything is written
    from tufrepo.signers.filekey import check_new_key_path, generate_file2, generate_filekey

    if key_type == "filekey":
        check_new_key_path(path, with_public=True)  # before asking for a password
        public = generate_filekey(path, _new_password(path))
        uri = f"filekey:{path}"
    else:
        public = generate_file2(path)
        uri = f"file2:{path}"
    recorded = repository_key(public, uri, user, online)
    click.echo(f"uri: {uri}")
    if recorded is None:
        click.echo(_NO_OWNER, err=True)
        return
    click.echo(f"keyid: {recorded.keyid}")
    from tufrepo.roles import KEYOWNER, ONLINE_URI

    owner = recorded.unrecognized_fields.get(KEYOWNER)
    click.echo(f"keyowner: {owner}" if owner else f"{ONLINE_URI}: {uri}")


@key.command("show")
@click.argument("uri")
@_owner_options
def show(uri: str, user: str | None, online: bool) -> None:
    """Print the public key that the signer at URI signs for, as JSON, exactly as the
    repository records it: with your keyowner field (--user) or the online URI (--online),
    and the keyid computed over it (its first 8 characters are the short form status and
    index.html show). Without either, the key is shown without a keyid.

    Examples: filekey:alice.key --user @alice, file2:online.pem --online, hsm:2?label=alice.
    A filekey without PATH.pub is decrypted (TUFREPO_KEY_PASSWORD, else a prompt); hsm:
    reads TUFREPO_HSM_PIN.
    """
    from tufrepo.signers import import_public_key

    public = import_public_key(uri)
    recorded = repository_key(public, uri, user, online)
    if recorded is None:
        click.echo(_NO_OWNER, err=True)
        data = public.to_dict()
    else:
        data = {"keyid": recorded.keyid, **recorded.to_dict()}
    click.echo(json.dumps(data, indent=2, sort_keys=True))
