"""Real production Sigstore signatures verify offline with the pinned trust root.

The metadata comes from a public tuf-on-ci repository signed only by Sigstore identities
(``<repo>/../shared/fixtures/sigstore-real/``, read in place, never copied). Every test runs
with non-loopback connections forbidden.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import SigstoreKey
from sigstore_helpers import NetworkGuard, clean_sigstore, no_network, serve_directory, shared_dir
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Signed
from tuf.ngclient import Updater

from tufrepo import sigstore_trust
from tufrepo.signers.sigstore import TufrepoSigstoreKey
from tufrepo.validate import describe_key

__all__ = ["clean_sigstore", "no_network"]  # fixtures used here

SHARED = shared_dir()
FIXTURE = SHARED / "fixtures" / "sigstore-real" if SHARED else None
FROZEN = "2025-05-29T12:00:00Z"

pytestmark = [
    pytest.mark.skipif(
        FIXTURE is None or not FIXTURE.is_dir(),
        reason="shared fixtures not found (expected <repo>/../shared/fixtures/sigstore-real)",
    ),
    pytest.mark.usefixtures("clean_sigstore", "no_network"),
]


def _load(name: str) -> Metadata[Any]:
    assert FIXTURE is not None
    return Metadata.from_file(str(FIXTURE / "metadata" / name))


def test_pinned_trust_config_is_in_use_and_matches_provenance() -> None:
    source = sigstore_trust.resolve_trust_config()
    assert source.origin == "pinned"
    provenance = sigstore_trust.pinned_provenance()
    assert hashlib.sha256(source.path.read_bytes()).hexdigest() == provenance["sha256"]
    assert provenance["version"] >= 1
    assert "tuf-repo-cdn.sigstore.dev" in provenance["source"]


def test_keys_are_tufrepo_sigstore_keys() -> None:
    root = _load("root.json")
    assert all(type(k) is TufrepoSigstoreKey for k in root.signed.keys.values())
    online = root.signed.keys["abcd"]  # tuf-on-ci's keyid for its online Sigstore key
    assert online.unrecognized_fields["x-tuf-on-ci-online-uri"] == "sigstore:"
    assert describe_key(online) == (
        "https://github.com/jku/tuf-on-ci-sigstore-test/.github/workflows/online-sign.yml"
        "@refs/heads/main (https://token.actions.githubusercontent.com)"
    )


def test_root_chain_verifies() -> None:
    v1, v2 = _load("root_history/1.root.json"), _load("root_history/2.root.json")
    v1.signed.verify_delegate("root", v1.signed_bytes, v1.signatures)
    v1.signed.verify_delegate("root", v2.signed_bytes, v2.signatures)
    v2.signed.verify_delegate("root", v2.signed_bytes, v2.signatures)
    assert _load("root.json").to_bytes() == v2.to_bytes()


@pytest.mark.parametrize("role", ["targets", "snapshot", "timestamp"])
def test_roles_verify_and_are_valid_at_fixture_time(role: str) -> None:
    root: Root = _load("root.json").signed
    md = _load(f"{role}.json")
    root.verify_delegate(role, md.signed_bytes, md.signatures)
    with freeze_time(FROZEN):
        # verification works at the frozen time too (trust root validity periods)
        root.verify_delegate(role, md.signed_bytes, md.signatures)
        assert not md.signed.is_expired()
        assert not root.is_expired()


def test_targets_has_lapsed_now() -> None:
    assert _load("targets.json").signed.is_expired()  # expired 2025-05-30


def _bump_version(doc: dict[str, Any]) -> None:
    doc["signed"]["version"] += 1


def _add_target(doc: dict[str, Any]) -> None:
    doc["signed"]["targets"]["evil.txt"] = {"length": 1, "hashes": {"sha256": "00" * 32}}


def _mangle_bundle_signature(doc: dict[str, Any]) -> None:
    for sig in doc["signatures"]:
        raw = bytearray(base64.b64decode(sig["bundle"]["messageSignature"]["signature"]))
        raw[-1] ^= 1
        sig["bundle"]["messageSignature"]["signature"] = base64.b64encode(raw).decode()


def _drop_bundle(doc: dict[str, Any]) -> None:
    for sig in doc["signatures"]:
        del sig["bundle"]


def _swap_bundle_from_other_role(doc: dict[str, Any]) -> None:
    assert FIXTURE is not None
    other = json.loads((FIXTURE / "metadata" / "root.json").read_text())
    for sig in doc["signatures"]:
        sig["bundle"] = copy.deepcopy(other["signatures"][0]["bundle"])


TAMPERINGS: list[Callable[[dict[str, Any]], None]] = [
    _bump_version,
    _add_target,
    _mangle_bundle_signature,
    _drop_bundle,
    _swap_bundle_from_other_role,
]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__.strip("_"))
def test_tampered_copy_fails(tamper: Callable[[dict[str, Any]], None], tmp_path: Path) -> None:
    assert FIXTURE is not None
    root: Root = _load("root.json").signed
    doc = json.loads((FIXTURE / "metadata" / "targets.json").read_text())
    tamper(doc)
    copy_path = tmp_path / "targets.json"
    copy_path.write_text(json.dumps(doc))
    md: Metadata[Signed] = Metadata.from_file(str(copy_path))
    with pytest.raises(UnsignedMetadataError):
        root.verify_delegate("targets", md.signed_bytes, md.signatures)
    for keyid, sig in md.signatures.items():
        with pytest.raises(UnverifiedSignatureError):
            root.keys[keyid].verify_signature(sig, md.signed_bytes)


def test_another_trust_root_rejects_production_signatures(tmp_path: Path) -> None:
    """With a private deployment's trust config, production bundles must not verify."""
    from sigstore_standin import SigstoreStandin

    with SigstoreStandin("private") as other:
        path = other.write_trust_config(tmp_path / "private.json")
    sigstore_trust.set_trust_config_path(path)
    root: Root = _load("root.json").signed
    md = _load("targets.json")
    with pytest.raises(UnsignedMetadataError):
        root.verify_delegate("targets", md.signed_bytes, md.signatures)


def test_network_guard_blocks_stock_securesystemslib(
    no_network: NetworkGuard, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Stock SigstoreKey fetches the trust root online: the guard stops it (and it fails)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # sigstore-python's TUF cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _load("root.json")
    md = _load("timestamp.json")
    key = root.signed.keys["abcd"]
    stock = SigstoreKey(key.keyid, key.keytype, key.scheme, dict(key.keyval))
    sig = next(iter(md.signatures.values()))
    try:
        with pytest.raises(UnverifiedSignatureError):
            stock.verify_signature(sig, md.signed_bytes)
        assert no_network.blocked, "the stock key should have tried the network"
    finally:
        no_network.blocked.clear()
    # ours verifies the same signature with no network at all
    key.verify_signature(sig, md.signed_bytes)


@pytest.fixture
def fixture_site(tmp_path: Path) -> Iterator[str]:
    """The fixture repository laid out as a consistent-snapshot site, served on 127.0.0.1."""
    assert FIXTURE is not None
    site = tmp_path / "site"
    (site / "metadata").mkdir(parents=True)
    (site / "targets").mkdir()
    for n in (1, 2):
        shutil.copy(FIXTURE / "metadata" / "root_history" / f"{n}.root.json", site / "metadata")
    shutil.copy(FIXTURE / "metadata" / "timestamp.json", site / "metadata")
    for role in ("snapshot", "targets"):
        version = _load(f"{role}.json").signed.version
        shutil.copy(
            FIXTURE / "metadata" / f"{role}.json", site / "metadata" / f"{version}.{role}.json"
        )
    for target in (FIXTURE / "targets").iterdir():
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        shutil.copy(target, site / "targets" / f"{digest}.{target.name}")
    with serve_directory(site) as url:
        yield url


def test_python_tuf_client_downloads_from_the_fixture_site(
    fixture_site: str, tmp_path: Path
) -> None:
    """A real TUF client (python-tuf ngclient) walks 1.root → 2.root and downloads a target."""
    assert FIXTURE is not None
    client = tmp_path / "client"
    client.mkdir()
    trusted_root = (FIXTURE / "metadata" / "root_history" / "1.root.json").read_bytes()
    with freeze_time(FROZEN):
        updater = Updater(
            metadata_dir=str(client),
            metadata_base_url=f"{fixture_site}/metadata/",
            target_base_url=f"{fixture_site}/targets/",
            target_dir=str(tmp_path),
            bootstrap=trusted_root,
        )
        updater.refresh()
        info = updater.get_targetinfo("newfile.txt")
        assert info is not None
        path = updater.download_target(info)
    assert Path(path).read_bytes() == (FIXTURE / "targets" / "newfile.txt").read_bytes()
    assert json.loads((client / "root.json").read_bytes())["signed"]["version"] == 2


@pytest.mark.git
def test_tufrepo_verify_on_the_fixture_repository(tmp_path: Path) -> None:
    """``tufrepo verify`` on a git checkout of the tuf-on-ci repository, offline."""
    from click.testing import CliRunner

    from tests.git_helpers import git
    from tufrepo.cli import main

    assert FIXTURE is not None
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git(checkout, "init", "--quiet", "--initial-branch=main")
    for part in ("metadata", "targets"):
        shutil.copytree(FIXTURE / part, checkout / part)
    for path in checkout.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copy is read-only
    git(checkout, "add", "-A")
    git(checkout, "commit", "--quiet", "-m", "tuf-on-ci repository")

    with freeze_time(FROZEN):
        result = CliRunner().invoke(main, ["verify", "--json", "--repo", str(checkout)])
    report = json.loads(result.stdout)
    assert (result.exit_code, report["problems"]) == (0, [])

    # after 2026-06-29 every role has expired, but every signature still verifies
    with freeze_time("2026-07-01T00:00:00Z"):
        result = CliRunner().invoke(main, ["verify", "--json", "--repo", str(checkout)])
    problems = json.loads(result.stdout)["problems"]
    assert result.exit_code == 1
    assert problems
    assert all("expired" in p for p in problems), problems
