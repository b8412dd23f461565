"""People sign real signing events with a "YubiKey" (SoftHSM2 via hsm:) and a filekey."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from git_helpers import World, git
from softhsm_helpers import SoftHsmToken, softhsm_token

from tufrepo.signers import import_public_key
from tufrepo.signers.filekey import generate_filekey

__all__ = ["softhsm_token"]  # the fixture, used by name

BOB_PASSWORD = "bob's password"


@pytest.mark.git
@pytest.mark.softhsm
def test_hsm_and_filekey_signers_through_signing_events(
    tmp_path: Path, softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "world").mkdir()
    world = World(tmp_path / "world")
    world.signers["@alice"] = softhsm_token.uri
    bob_key = tmp_path / "bob.key"
    generate_filekey(bob_key, BOB_PASSWORD)
    world.signers["@bob"] = f"filekey:{bob_key}"
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", BOB_PASSWORD)

    world.init("@alice")  # root and targets signed on the token
    world.tufrepo(
        "alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
        "--threshold", "2", user="@alice",
    )  # fmt: skip

    # bob, in a real process without a terminal, with a wrong password: nothing changes
    bob = world.clone("bob")
    before = world.snapshot("bob")
    env = {"TUFREPO_USER": "@bob", "TUFREPO_SIGNER": world.signers["@bob"]}
    out = world.subprocess(bob, "sign", "sign/two", env={**env, "TUFREPO_KEY_PASSWORD": "nope"})
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: wrong password for key file {bob_key}"]
    assert world.snapshot("bob") == before

    out = world.subprocess(bob, "sign", "sign/two", env=env)
    assert out.returncode == 0, out.stderr
    # alice with a wrong PIN: exit 2, one error line, nothing changed locally or upstream
    git(world.clone("alice"), "fetch", "--quiet", "origin")  # sign fetches: do it first
    before = world.snapshot("alice")
    monkeypatch.setenv("TUFREPO_HSM_PIN", "000000")
    result = world.tufrepo("alice", "sign", "sign/two", user="@alice", code=2)
    assert f"Error: wrong PIN for {softhsm_token.uri}" in result.stderr.splitlines()
    assert world.snapshot("alice") == before
    monkeypatch.setenv("TUFREPO_HSM_PIN", softhsm_token.pin)

    world.tufrepo("alice", "sign", "sign/two", user="@alice")
    world.merge("two")

    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    assert json.loads(world.tufrepo("ci", "verify", "--json").stdout)["valid"] is True
    targets = json.loads((ci / "metadata/targets.json").read_text())
    root = json.loads((ci / "metadata/root.json").read_text())
    keys = root["signed"]["keys"]
    owners = {k.get("x-tuf-on-ci-keyowner"): k["keyval"]["public"] for k in keys.values()}
    assert owners["@alice"] == import_public_key(softhsm_token.uri).keyval["public"]
    assert owners["@bob"] == import_public_key(f"filekey:{bob_key}").keyval["public"]
    signed_by = {
        keys[s["keyid"]]["x-tuf-on-ci-keyowner"] for s in targets["signatures"] if s["sig"]
    }
    assert signed_by == {"@alice", "@bob"}
