"""Sigstore keys and signers against the local stand-in, with the network unavailable."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, SigstoreKey
from sigstore_helpers import NetworkGuard, clean_sigstore, no_network, standin, standin_trust
from sigstore_standin import SigstoreStandin
from tuf.api.metadata import Metadata, Root, Targets

from tufrepo.errors import InputError, SignerError
from tufrepo.signers import import_public_key, load_signer
from tufrepo.signers.sigstore import (
    TOKEN_ENV,
    TufrepoSigstoreKey,
    TufrepoSigstoreSigner,
    github_workflow_key,
    set_identity_token,
    signer_uri,
    sigstore_key,
)
from tufrepo.validate import describe_key

__all__ = ["clean_sigstore", "no_network", "standin", "standin_trust"]  # fixtures used here

pytestmark = [pytest.mark.sigstore, pytest.mark.usefixtures("standin_trust")]

ALICE = "alice@example.com"
BOB = "bob@example.com"
REPO = "example/tuf-repo"
WORKFLOW = "online-sign.yml"


def _sign_targets(signer: Any) -> Metadata[Targets]:
    md = Metadata(Targets(expires=datetime.now(UTC) + timedelta(days=7)))
    md.sign(signer)
    return Metadata.from_bytes(md.to_bytes())  # through the on-disk format


@pytest.fixture
def alice(standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch) -> TufrepoSigstoreSigner:
    monkeypatch.setenv(TOKEN_ENV, standin.token(ALICE))
    key = import_public_key(signer_uri(ALICE, standin.issuer))
    signer = load_signer(signer_uri(ALICE, standin.issuer), key)
    assert isinstance(signer, TufrepoSigstoreSigner)
    return signer


@pytest.fixture
def signed(alice: TufrepoSigstoreSigner) -> Metadata[Targets]:
    return _sign_targets(alice)


def test_sign_and_verify_tuf_metadata(
    signed: Metadata[Targets], alice: TufrepoSigstoreSigner, standin: SigstoreStandin
) -> None:
    key = alice.public_key
    root = Root()
    root.add_key(key, "targets")
    root.verify_delegate("targets", signed.signed_bytes, signed.signatures)
    sig = signed.signatures[key.keyid]
    # securesystemslib / tuf-on-ci format: keyid, sig, and the bundle
    assert set(sig.to_dict()) == {"keyid", "sig", "bundle"}
    assert sig.signature == sig.unrecognized_fields["bundle"]["messageSignature"]["signature"]
    assert standin.requests.count("POST /api/v2/signingCert") >= 1


def test_key_format_is_securesystemslib(standin: SigstoreStandin) -> None:
    key = import_public_key(signer_uri(ALICE, standin.issuer))
    assert isinstance(key, TufrepoSigstoreKey)
    as_dict = key.to_dict()
    assert as_dict == {
        "keytype": "sigstore-oidc",
        "scheme": "Fulcio",
        "keyval": {"identity": ALICE, "issuer": standin.issuer},
    }
    stock = SigstoreKey.from_dict(key.keyid, copy.deepcopy(as_dict))
    assert stock.keyval == key.keyval
    parsed = Key.from_dict(key.keyid, copy.deepcopy(as_dict))
    assert type(parsed) is TufrepoSigstoreKey  # registered for ("sigstore-oidc", "Fulcio")
    assert describe_key(key) == f"{ALICE} ({standin.issuer})"


def test_two_roles_one_certificate(alice: TufrepoSigstoreSigner, standin: SigstoreStandin) -> None:
    before = standin.requests.count("POST /api/v2/signingCert")
    first, second = _sign_targets(alice), _sign_targets(alice)
    assert standin.requests.count("POST /api/v2/signingCert") - before <= 1
    for md in (first, second):
        sig = md.signatures[alice.public_key.keyid]
        alice.public_key.verify_signature(sig, md.signed_bytes)


@dataclass(frozen=True)
class BadCase:
    name: str
    key: Callable[[SigstoreStandin], Key]
    signature: Callable[[Signature, SigstoreStandin], Signature]
    data: Callable[[bytes], bytes]
    reason: str


def _same_sig(sig: Signature, _: SigstoreStandin) -> Signature:
    return sig


def _alice_key(s: SigstoreStandin) -> Key:
    return sigstore_key(ALICE, s.issuer)


def _no_bundle(sig: Signature, _: SigstoreStandin) -> Signature:
    return Signature(sig.keyid, sig.signature)


def _broken_bundle(sig: Signature, _: SigstoreStandin) -> Signature:
    return Signature(sig.keyid, sig.signature, {"bundle": {"mediaType": "nonsense"}})


def _other_signature(sig: Signature, _: SigstoreStandin) -> Signature:
    bundle = copy.deepcopy(sig.unrecognized_fields["bundle"])
    bundle["messageSignature"]["signature"] = bundle["messageSignature"]["signature"][::-1]
    return Signature(sig.keyid, sig.signature, {"bundle": bundle})


BAD_CASES = [
    BadCase("wrong identity", lambda s: sigstore_key(BOB, s.issuer), _same_sig, bytes, "SANs"),
    BadCase(
        "wrong issuer", lambda s: sigstore_key(ALICE, s.ci_issuer), _same_sig, bytes, "OIDCIssuer"
    ),
    BadCase("tampered payload", _alice_key, _same_sig, lambda d: d + b" ", "does not verify"),
    BadCase("no bundle", _alice_key, _no_bundle, bytes, "no Sigstore bundle"),
    BadCase("malformed bundle", _alice_key, _broken_bundle, bytes, "does not verify"),
    BadCase("mangled signature", _alice_key, _other_signature, bytes, "does not verify"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.name for c in BAD_CASES])
def test_bad_signatures_do_not_verify(
    case: BadCase, signed: Metadata[Targets], alice: TufrepoSigstoreSigner, standin: SigstoreStandin
) -> None:
    sig = case.signature(signed.signatures[alice.public_key.keyid], standin)
    key = case.key(standin)
    with pytest.raises(UnverifiedSignatureError, match=case.reason):
        key.verify_signature(sig, case.data(signed.signed_bytes))
    # and python-tuf counts it as "not signed", with no crash
    root = Root()
    root.add_key(key, "targets")
    sig = Signature(key.keyid, sig.signature, dict(sig.unrecognized_fields))
    result = root.get_verification_result(
        "targets", case.data(signed.signed_bytes), {key.keyid: sig}
    )
    assert not result.verified
    assert key.keyid in result.unsigned


def test_bundle_from_another_trust_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: NetworkGuard
) -> None:
    from tufrepo import sigstore_trust

    with SigstoreStandin("other-instance") as other:
        other_config = other.write_trust_config(tmp_path / "other.json")
        sigstore_trust.set_trust_config_path(other_config)
        monkeypatch.setenv(TOKEN_ENV, other.token(ALICE))
        key = sigstore_key(ALICE, other.issuer)
        md = _sign_targets(load_signer(signer_uri(ALICE, other.issuer), key))
        sig = md.signatures[key.keyid]
        key.verify_signature(sig, md.signed_bytes)  # fine with its own trust root
    sigstore_trust.set_trust_config_path(tmp_path / "standin-trust-config.json")
    with pytest.raises(UnverifiedSignatureError, match="does not verify"):
        key.verify_signature(sig, md.signed_bytes)


def test_ci_identity_with_ambient_github_credentials(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in standin.github_actions_env(REPO, WORKFLOW).items():
        monkeypatch.setenv(name, value)
    identity = standin.ci_identity(REPO, WORKFLOW)
    uri = signer_uri(identity, standin.ci_issuer)  # the online key's x-tuf-on-ci-online-uri
    key = import_public_key(uri)
    md = _sign_targets(load_signer(uri, key))
    key.verify_signature(md.signatures[key.keyid], md.signed_bytes)
    assert "GET /gha/id-token" in standin.requests
    # tuf-on-ci's online URI "sigstore:" works with the same key
    md = _sign_targets(load_signer("sigstore:", key))
    key.verify_signature(md.signatures[key.keyid], md.signed_bytes)


def test_import_without_identity_uses_the_token(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, standin.token(ALICE))
    key = import_public_key("sigstore:")
    assert key.keyval == {"identity": ALICE, "issuer": standin.issuer}
    set_identity_token(standin.ci_token(REPO, WORKFLOW))  # --identity-token wins over env
    key = import_public_key("sigstore:?ambient=false")
    assert key.keyval == {
        "identity": standin.ci_identity(REPO, WORKFLOW),
        "issuer": standin.ci_issuer,
    }


def test_token_for_another_identity_is_refused(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, standin.token(BOB))
    with pytest.raises(SignerError, match=f"token is for {BOB}"):
        load_signer(signer_uri(ALICE, standin.issuer), sigstore_key(ALICE, standin.issuer))
    with pytest.raises(SignerError, match="but the key is"):
        load_signer("sigstore:", sigstore_key(BOB, standin.ci_issuer))


def test_expired_or_missing_token(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = sigstore_key(ALICE, standin.issuer)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(SignerError, match="no Sigstore identity token"):
        load_signer("sigstore:", key)
    monkeypatch.setenv(TOKEN_ENV, standin.token(ALICE, lifetime=-60))
    with pytest.raises(SignerError, match=TOKEN_ENV):
        load_signer("sigstore:", key)
    monkeypatch.setenv(TOKEN_ENV, standin.token(ALICE, audience="not-sigstore"))
    with pytest.raises(SignerError, match=TOKEN_ENV):
        load_signer("sigstore:", key)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sigstore:?identity=alice@example.com", "both identity and issuer"),
        ("sigstore:?identity=x&issuer=y&color=red", "unknown parameter"),
        ("sigstore:?ambient=maybe", "ambient must be"),
        ("sigstore://host/path", "not a Sigstore signer URI"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        import_public_key(uri)


def test_uri_for_another_identity_is_refused(standin: SigstoreStandin) -> None:
    with pytest.raises(InputError, match="is not the identity of key"):
        load_signer(signer_uri(BOB, standin.issuer), sigstore_key(ALICE, standin.issuer))


def test_rejected_by_fulcio_is_a_signer_error(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a token the stand-in did not issue (signed by another stand-in's key)
    other = SigstoreStandin("forger")
    forged = other.token(ALICE, issuer=standin.issuer)
    monkeypatch.setenv(TOKEN_ENV, forged)
    signer = load_signer("sigstore:", sigstore_key(ALICE, standin.issuer))
    with pytest.raises(SignerError, match="Sigstore signing as"):
        signer.sign(b"payload")


def test_expired_certificate_is_renewed_once(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from freezegun import freeze_time

    monkeypatch.setenv(TOKEN_ENV, standin.token(ALICE, lifetime=3600))
    key = sigstore_key(ALICE, standin.issuer)
    signer = load_signer("sigstore:", key)
    _sign_targets(signer)
    before = standin.requests.count("POST /api/v2/signingCert")
    with freeze_time(datetime.now(UTC) + timedelta(minutes=11), tick=True):
        md = _sign_targets(signer)
        key.verify_signature(md.signatures[key.keyid], md.signed_bytes)
    assert standin.requests.count("POST /api/v2/signingCert") == before + 1


def test_gitlab_shaped_token_signs_as_its_ci_config(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_ref = "gitlab.example/group/project//.gitlab-ci.yml@refs/heads/main"
    token = standin.token(issuer=standin.ci_issuer, sub="project_path:group/project")
    monkeypatch.setenv(TOKEN_ENV, token)
    key = import_public_key("sigstore:")
    assert key.keyval["identity"] == "project_path:group/project"
    monkeypatch.setenv(
        TOKEN_ENV,
        standin.token(
            issuer=standin.ci_issuer, sub="project_path:group/project", ci_config_ref_uri=config_ref
        ),
    )
    key = import_public_key("sigstore:")
    assert key.keyval == {"identity": f"https://{config_ref}", "issuer": standin.ci_issuer}
    md = _sign_targets(load_signer(signer_uri(f"https://{config_ref}", standin.ci_issuer), key))
    key.verify_signature(md.signatures[key.keyid], md.signed_bytes)


def test_interactive_browser_sign_in_happens_once(
    standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal without a token, sigstore-python's browser flow signs the user in."""
    import tufrepo.signers.sigstore as module

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setenv("BROWSER", standin.browser_command())
    monkeypatch.setattr(module, "_interactive", None)
    monkeypatch.setattr(standin, "browser_user", ALICE)
    before = standin.requests.count("GET /oidc/authorize")
    key = import_public_key("sigstore:?ambient=false")  # who are you? sign in
    assert key.keyval == {"identity": ALICE, "issuer": standin.issuer}
    md = _sign_targets(load_signer("sigstore:?ambient=false", key))
    key.verify_signature(md.signatures[key.keyid], md.signed_bytes)
    assert standin.requests.count("GET /oidc/authorize") == before + 1


def test_github_workflow_key_matches_securesystemslib() -> None:
    from securesystemslib.signer import SigstoreSigner

    uri, key = github_workflow_key("OWNER/REPO", "online-sign.yml")
    stock_uri, stock = SigstoreSigner.import_github_actions(
        "OWNER/REPO", ".github/workflows/online-sign.yml"
    )
    assert (key.keyid, key.to_dict()) == (stock.keyid, stock.to_dict())
    assert import_public_key(uri).keyid == key.keyid
    assert stock_uri == "sigstore:"  # tuf-on-ci's online URI; ours names the identity
    assert github_workflow_key("OWNER/REPO")[1].keyval["identity"] == (
        "https://github.com/OWNER/REPO/.github/workflows/tufrepo-online-sign.yml@refs/heads/main"
    )
