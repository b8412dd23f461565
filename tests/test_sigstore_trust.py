"""Resolution of the Sigstore trust configuration, and updating the pinned copy."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sigstore_helpers import NONET_MARKER, clean_sigstore, no_network, no_network_env, standin
from sigstore_standin import SigstoreStandin

from tufrepo import sigstore_trust
from tufrepo.cli import main
from tufrepo.errors import InputError

__all__ = ["clean_sigstore", "no_network", "standin"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("clean_sigstore", "no_network")


@pytest.fixture
def standin_file(standin: SigstoreStandin, tmp_path: Path) -> Path:
    return standin.write_trust_config(tmp_path / "standin.json")


def _fulcio_uris() -> list[str]:
    root = sigstore_trust.load_trusted_root()
    return [ca.uri for ca in root._inner.certificate_authorities]


def test_default_is_the_pinned_production_root() -> None:
    source = sigstore_trust.resolve_trust_config()
    assert (source.path, source.origin) == (
        sigstore_trust.PINNED_DIR / "trust-config.json",
        "pinned",
    )
    assert "https://fulcio.sigstore.dev" in _fulcio_uris()
    config = sigstore_trust.load_trust_config()
    assert config.signing_config.get_oidc_url() == "https://oauth2.sigstore.dev/auth"


@pytest.mark.sigstore
def test_precedence_option_env_repository_pinned(
    standin_file: Path, standin: SigstoreStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sigstore_trust.set_repository_trust_config(standin_file.read_bytes(), "main's copy")
    assert sigstore_trust.resolve_trust_config().origin == "repository"
    assert _fulcio_uris() == [standin.url]

    pinned = sigstore_trust.PINNED_DIR / "trust-config.json"
    monkeypatch.setenv(sigstore_trust.TRUST_CONFIG_ENV, str(pinned))
    assert sigstore_trust.resolve_trust_config().origin == "environment"
    assert "https://fulcio.sigstore.dev" in _fulcio_uris()

    sigstore_trust.set_trust_config_path(standin_file)
    assert sigstore_trust.resolve_trust_config() == sigstore_trust.TrustConfigSource(
        standin_file, "option"
    )
    assert _fulcio_uris() == [standin.url]


@pytest.mark.sigstore
def test_trusted_root_only_verifies_but_cannot_sign(standin_file: Path, tmp_path: Path) -> None:
    root_only = tmp_path / "trusted_root.json"
    root_only.write_text(json.dumps(json.loads(standin_file.read_text())["trustedRoot"]))
    sigstore_trust.set_trust_config_path(root_only)
    assert sigstore_trust.verifier() is not None
    with pytest.raises(InputError, match="trusted root only"):
        sigstore_trust.load_trust_config()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json", "not a JSON object"),
        ('{"mediaType": "application/x-nothing"}', "unknown mediaType"),
        (
            (
                '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",'
                ' "tlogs": "nope"}'
            ),
            "not valid",
        ),
    ],
)
def test_bad_trust_config_files(content: str | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    if content is not None:
        path.write_text(content)
    sigstore_trust.set_trust_config_path(path)
    with pytest.raises(InputError, match=message):
        sigstore_trust.verifier()


def test_missing_env_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(sigstore_trust.TRUST_CONFIG_ENV, str(tmp_path / "nope.json"))
    with pytest.raises(InputError, match=sigstore_trust.TRUST_CONFIG_ENV):
        sigstore_trust.resolve_trust_config()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(sigstore_trust.PINNED_DIR, data)
    return data


@pytest.mark.sigstore
def test_update_trust_root_command(standin_file: Path, data_dir: Path) -> None:
    before = json.loads((data_dir / "provenance.json").read_text())
    result = CliRunner().invoke(
        main,
        [
            "sigstore",
            "update-trust-root",
            str(standin_file),
            "--source",
            "the test stand-in",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    provenance = json.loads((data_dir / "provenance.json").read_text())
    pinned = (data_dir / "trust-config.json").read_bytes()
    assert provenance["version"] == before["version"] + 1
    assert provenance["source"] == "the test stand-in"
    assert provenance["sha256"] == hashlib.sha256(pinned).hexdigest()
    assert provenance["inputs"] == {
        "standin.json": hashlib.sha256(standin_file.read_bytes()).hexdigest()
    }
    assert provenance["history"][-1]["sha256"] == before["sha256"]
    assert json.loads(pinned)["trustedRoot"] == json.loads(standin_file.read_text())["trustedRoot"]


def test_update_with_a_bare_trusted_root_keeps_the_signing_config(data_dir: Path) -> None:
    pinned = json.loads((data_dir / "trust-config.json").read_text())
    root_file = data_dir.parent / "trusted_root.json"
    root_file.write_text(json.dumps(pinned["trustedRoot"]))
    provenance = sigstore_trust.update_pinned(root_file, source="same root", data_dir=data_dir)
    assert provenance["version"] == 2
    assert json.loads((data_dir / "trust-config.json").read_text()) == pinned


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "not a JSON object"),
        ('{"mediaType": "text/plain"}', "unknown mediaType"),
        (
            (
                '{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",'
                ' "trustedRoot": {}, "signingConfig": {}}'
            ),
            "not valid",
        ),
    ],
)
def test_bad_update_changes_nothing(content: str, message: str, data_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    bad = data_dir.parent / "bad.json"
    bad.write_text(content)
    with pytest.raises(InputError, match=message):
        sigstore_trust.update_pinned(bad, source="bad", data_dir=data_dir)
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"mediaType": "text/plain"}')
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "tufrepo", "sigstore", "update-trust-root", str(bad)),
            *("--source", "x", "--data-dir", str(tmp_path / "data")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"Error: {bad}: unknown mediaType 'text/plain'"]
    assert not (tmp_path / "data").exists()


def test_show_trust_config() -> None:
    result = CliRunner().invoke(main, ["sigstore", "trust-config", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["origin"] == "pinned"
    assert info["can_sign"] is True
    assert info["provenance"]["version"] >= 1


def test_subprocess_network_guard(tmp_path: Path) -> None:
    """The guard used for CLI subprocesses refuses non-loopback addresses, and reports it."""
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 443), timeout=5)\n"
        "except OSError as e:\n"
        "    print('refused', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=no_network_env(),
    )
    assert "refused network disabled in tests" in proc.stdout
    assert NONET_MARKER in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "tufrepo", "sigstore", "trust-config", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=no_network_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert NONET_MARKER not in proc.stderr


@pytest.mark.sigstore
def test_global_options_in_a_real_process(standin: SigstoreStandin, standin_file: Path) -> None:
    """``--sigstore-trust-config`` and ``--identity-token`` reach the Sigstore signer."""
    env = no_network_env()
    env.pop(sigstore_trust.TRUST_CONFIG_ENV, None)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "tufrepo", "--sigstore-trust-config", str(standin_file)),
            *("--identity-token", standin.token("carol@example.com"), "key", "show", "sigstore:"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    key = json.loads(proc.stdout)
    assert key["keyval"] == {"identity": "carol@example.com", "issuer": standin.issuer}
    assert NONET_MARKER not in proc.stderr

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tufrepo",
            "--sigstore-trust-config",
            str(standin_file),
            "sigstore",
            "trust-config",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert json.loads(proc.stdout)["origin"] == "option"
