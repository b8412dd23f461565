"""hsm: signing TUF metadata with a key on a PKCS#11 token (SoftHSM2 standing in for a YubiKey)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner, Key
from softhsm_helpers import SoftHsmToken, create_token, softhsm_token, unload_module
from tuf.api.metadata import Metadata, Root, Targets

from tufrepo.errors import InputError, SignerError
from tufrepo.signers import import_public_key, load_signer
from tufrepo.signers.hsm import PKCS11Signer, parse_uri

__all__ = ["softhsm_token"]  # the fixture, used by name


def _sign_targets(uri: str, key: Key) -> Metadata[Targets]:
    md = Metadata(Targets(expires=datetime(2030, 1, 1, tzinfo=UTC)))
    md.sign(load_signer(uri, key))
    return md


@pytest.mark.softhsm
def test_sign_metadata_that_python_tuf_verifies(softhsm_token: SoftHsmToken) -> None:
    uri = softhsm_token.uri
    key = import_public_key(uri)
    assert (key.keytype, key.scheme) == ("ecdsa", "ecdsa-sha2-nistp256")
    assert isinstance(load_signer(uri, key), PKCS11Signer)
    md = _sign_targets(uri, key)
    root = Root(expires=datetime(2030, 1, 1, tzinfo=UTC))
    root.add_key(key, "targets")
    root.verify_delegate("targets", md.signed_bytes, md.signatures)
    assert list(md.signatures) == [key.keyid]


@pytest.mark.softhsm
def test_wrong_pin_is_a_signer_error(
    softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = import_public_key(softhsm_token.uri)
    monkeypatch.setenv("TUFREPO_HSM_PIN", "999999")
    with pytest.raises(SignerError, match=r"^wrong PIN for hsm:"):
        load_signer(softhsm_token.uri, key)


@pytest.mark.softhsm
def test_no_pin_and_no_terminal(
    softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = import_public_key(softhsm_token.uri)
    monkeypatch.delenv("TUFREPO_HSM_PIN")
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", softhsm_token.pin)  # not a PIN source
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(SignerError, match="set TUFREPO_HSM_PIN"):
        load_signer(softhsm_token.uri, key)


@pytest.mark.softhsm
def test_token_holding_another_key_is_refused(softhsm_token: SoftHsmToken) -> None:
    other = CryptoSigner.generate_ecdsa().public_key
    with pytest.raises(SignerError, match=f"does not hold key {other.keyid}"):
        load_signer(softhsm_token.uri, other)


@pytest.mark.softhsm
def test_tokens_are_told_apart_by_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = create_token(tmp_path / "hsm", label="alice")
    bob = create_token(tmp_path / "hsm", label="bob")
    assert alice.conf == bob.conf
    for name, value in alice.env.items():
        monkeypatch.setenv(name, value)
    unload_module(alice.module)
    try:
        alice_key = import_public_key(alice.uri)
        bob_key = import_public_key(bob.uri)
        assert alice_key.keyid != bob_key.keyid
        _sign_targets(bob.uri, bob_key)
        with pytest.raises(SignerError, match="does not hold key"):
            load_signer(alice.uri, bob_key)
        with pytest.raises(SignerError, match="No PKCS#11 token found for label carol"):
            import_public_key("hsm:2?label=carol")
    finally:
        unload_module(alice.module)


@pytest.mark.softhsm
def test_missing_module_variable(
    softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYKCS11LIB")
    with pytest.raises(SignerError, match="set PYKCS11LIB"):
        import_public_key(softhsm_token.uri)
    monkeypatch.setenv("PYKCS11LIB", "/nonexistent/libnothing.so")
    with pytest.raises(SignerError, match="does not exist"):
        import_public_key(softhsm_token.uri)


@pytest.mark.softhsm
def test_missing_key_on_token(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(SignerError, match="could not find ECDSA key"):
        import_public_key(f"hsm:7?label={softhsm_token.label}")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("hsm:", (2, None)), ("hsm:3", (3, None)), ("hsm:2?label=My+Key%231", (2, "My Key#1"))],
)
def test_parse_uri(uri: str, expected: tuple[int, str | None]) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize("uri", ["hsm:abc", "hsm:-1", "file2:x"])
def test_parse_bad_uri(uri: str) -> None:
    with pytest.raises(InputError):
        parse_uri(uri)


def test_without_python_pkcs11(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # makes "import pkcs11" fail
    monkeypatch.setenv("PYKCS11LIB", "/usr/lib/softhsm/libsofthsm2.so")
    with pytest.raises(SignerError, match="need python-pkcs11"):
        import_public_key("hsm:")
