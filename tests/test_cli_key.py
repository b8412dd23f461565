"""``tufrepo key generate|show`` as a user runs them: ``python -m tufrepo`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from securesystemslib.signer import Key
from softhsm_helpers import create_token

from tests.git_helpers import World
from tests.terminal_helpers import on_terminal
from tufrepo.signers import load_signer
from tufrepo.signers.filekey import load_filekey

PASSWORD = "s3cret pass"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TUFREPO_KEY_PASSWORD", "TUFREPO_USER")}
    return {**env, **extra}


def tufrepo(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tufrepo", *args],
        env=_env() if env is None else env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _parse_generate(stdout: str) -> tuple[str, str]:
    fields = dict(line.split(": ", 1) for line in stdout.strip().splitlines())
    return fields["uri"], fields["keyid"]


def _show(uri: str, *owner: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = tufrepo("key", "show", uri, *owner, env=env)
    assert out.returncode == 0, out.stderr
    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_generate_filekey_then_show_and_sign(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    env = _env(TUFREPO_KEY_PASSWORD=PASSWORD, TUFREPO_USER="@alice")
    out = tufrepo("key", "generate", str(path), env=env)
    assert out.returncode == 0, out.stderr
    uri, keyid = _parse_generate(out.stdout)
    assert uri == f"filekey:{path}"
    assert "keyowner: @alice" in out.stdout
    shown = _show(uri, "--user", "alice")  # from the .pub sidecar: no password needed
    assert shown["keyid"] == keyid
    assert shown["x-tuf-on-ci-keyowner"] == "@alice"
    assert (shown["keytype"], shown["scheme"]) == ("ecdsa", "ecdsa-sha2-nistp256")
    key = Key.from_dict(keyid, {k: v for k, v in shown.items() if k != "keyid"})
    assert key.keyid == keyid
    load_filekey(path, PASSWORD)  # encrypted with the password from the environment


@pytest.mark.git
def test_key_show_keyid_is_the_keyid_in_root(tmp_path: Path) -> None:
    """One keyid everywhere: what ``key show`` prints is what root.json records (the
    keyid covers the keyowner / online URI field) and its prefix is what status shows."""
    world = World(tmp_path)
    world.init("@alice")
    root = json.loads((world.clone("ci") / "metadata" / "root.json").read_bytes())["signed"]
    alice = _show(world.signers["@alice"], "--user", "@alice")
    online = _show(world.online_uri, "--online")
    assert root["roles"]["root"]["keyids"] == [alice["keyid"]]
    assert root["roles"]["timestamp"]["keyids"] == [online["keyid"]]
    for shown in (alice, online):
        recorded = root["keys"][shown["keyid"]]
        assert recorded == {k: v for k, v in shown.items() if k != "keyid"}
    world.ci()
    world.tufrepo("ci", "online-sign")
    world.tufrepo("ci", "publish", str(tmp_path / "site"))
    index = (tmp_path / "site" / "index.html").read_text()
    assert f"@alice [ed25519 {str(alice['keyid'])[:8]}]" in index
    assert f"online key {str(online['keyid'])[:8]}" in index


def test_generate_ed25519_is_a_file2_key(tmp_path: Path) -> None:
    path = tmp_path / "online.pem"
    out = tufrepo("key", "generate", "--type", "ed25519", "--online", str(path))
    assert out.returncode == 0, out.stderr
    uri, keyid = _parse_generate(out.stdout)
    assert uri == f"file2:{path}"
    shown = _show(uri, "--online")
    assert shown["x-tuf-on-ci-online-uri"] == uri
    assert (shown["keyid"], shown["keytype"]) == (keyid, "ed25519")
    key = Key.from_dict(keyid, {k: v for k, v in shown.items() if k != "keyid"})
    signer = load_signer(uri, key)
    key.verify_signature(signer.sign(b"payload"), b"payload")


@pytest.mark.parametrize(
    ("key_type", "existing"), [("filekey", ""), ("filekey", ".pub"), ("ed25519", "")]
)
def test_generate_refuses_existing_file(tmp_path: Path, key_type: str, existing: str) -> None:
    path = tmp_path / "k.key"
    Path(f"{path}{existing}").write_text("keep me")
    out = tufrepo(
        "key", "generate", "--type", key_type, str(path),
        env=_env(TUFREPO_KEY_PASSWORD=PASSWORD),
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"Error: {path}{existing} exists: refusing to overwrite it"]
    assert [p.name for p in tmp_path.iterdir()] == [f"k.key{existing}"]
    assert Path(f"{path}{existing}").read_text() == "keep me"


def test_show_with_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    out = tufrepo("key", "generate", str(path), env=_env(TUFREPO_KEY_PASSWORD=PASSWORD))
    assert out.returncode == 0, out.stderr
    Path(f"{path}.pub").unlink()  # the public key must now come from the encrypted file
    out = tufrepo("key", "show", f"filekey:{path}", env=_env(TUFREPO_KEY_PASSWORD="wrong"))
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"Error: wrong password for key file {path}"]
    shown = _show(f"filekey:{path}", env=_env(TUFREPO_KEY_PASSWORD=PASSWORD))
    assert shown["keytype"] == "ecdsa"
    assert "keyid" not in shown  # no owner given: no keyid that the repository would not use


def test_no_password_and_no_terminal(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    out = tufrepo("key", "generate", str(path))
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert "TUFREPO_KEY_PASSWORD" in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("nope:x", "unknown signer scheme 'nope'"),
        ("filekey:/nonexistent/k.key", "key file /nonexistent/k.key not found"),
        ("file2:/nonexistent/k.pem", "cannot read key file /nonexistent/k.pem"),
    ],
)
def test_show_bad_uri(uri: str, message: str) -> None:
    out = tufrepo("key", "show", uri)
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert message in out.stderr


def test_password_prompted_twice_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    new, again = "New password for", "Repeat the password"
    no_password: dict[str, str | None] = {"TUFREPO_KEY_PASSWORD": None}
    code, output = on_terminal(
        "key", "generate", str(path), answers=[(new, "typed pw"), (again, "typed pw")],
        cwd=tmp_path, env=no_password,
    )  # fmt: skip
    assert code == 0, output
    assert "typed pw" not in output  # not echoed
    load_filekey(path, "typed pw")

    other = tmp_path / "bob.key"
    code, output = on_terminal(
        "key", "generate", str(other), answers=[(new, "one"), (again, "two")],
        cwd=tmp_path, env=no_password,
    )  # fmt: skip
    assert code == 2
    assert "the passwords do not match" in output
    assert not other.exists()


@pytest.mark.softhsm
def test_show_hsm_key(tmp_path: Path) -> None:
    token = create_token(tmp_path / "yubikey", label="alice")
    shown = _show(token.uri, env=token.run_env(_env()))
    assert (shown["keytype"], shown["scheme"]) == ("ecdsa", "ecdsa-sha2-nistp256")
    out = tufrepo("key", "show", "hsm:2?label=bob", env=token.run_env(_env()))
    assert out.returncode == 2
    reason = "No PKCS#11 token found for label bob"
    assert out.stderr.splitlines() == [
        f"Error: cannot read the public key with hsm:2?label=bob: {reason}"
    ]
