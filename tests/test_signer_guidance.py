"""A signer that guides: the config file (flags beat env, env beats the file), pushing to a
fork, event branches with an upstream, refusing a delegation that changes nothing, editing a
role's settings on a terminal, three password attempts, and a review summarised first."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.git_helpers import World, git
from tests.terminal_helpers import on_terminal
from tufrepo.cli import main
from tufrepo.signers.filekey import generate_filekey

pytestmark = pytest.mark.git


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("TUFREPO_CONFIG", str(tmp_path / "home" / "tufrepo.toml"))
    w = World(tmp_path)
    w.init()
    return w


def _config(*args: str) -> str:
    result = CliRunner().invoke(main, ["config", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _last_message(world: World, clone: str, branch: str) -> str:
    path = world.clone(clone)
    git(path, "fetch", "--quiet", "origin")
    return git(path, "log", "-1", "--format=%s", f"origin/{branch}")


def test_config_file_then_env_then_flags(world: World, tmp_path: Path) -> None:
    world.tufrepo(
        "alice", "delegate", "sign/x", "targets", "--signers", "@alice,@bob,@carol",
        "--threshold", "1", user="@alice",
    )  # fmt: skip
    _config("set", "user", "Bob")
    _config("set", "signer", world.signers["@bob"])
    assert _config("get", "user") == "@bob\n"
    assert (tmp_path / "home" / "tufrepo.toml").read_text().startswith('signer = "file2:')
    # only the config file: bob accepts his invitation
    world.tufrepo("bob", "sign", "sign/x")
    assert _last_message(world, "bob", "sign/x") == "Signature from @bob"
    # the environment beats the file
    world.tufrepo("carol", "sign", "sign/x", user="@carol")
    assert _last_message(world, "carol", "sign/x") == "Signature from @carol"
    # flags beat the environment
    world.tufrepo(
        "alice", "sign", "sign/x", "--user", "@alice", "--signer", world.signers["@alice"],
        user="@carol",
    )  # fmt: skip
    assert _last_message(world, "alice", "sign/x") == "Signature from @alice"


def test_bad_config_file_is_bad_input(world: World, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "tufrepo.toml").write_text("user = [\n")
    result = world.tufrepo("bob", "sign", "sign/x", code=2)
    assert "not valid TOML" in result.stderr
    result = CliRunner().invoke(main, ["config", "set", "colour", "red"])
    assert result.exit_code == 2


def test_push_remote_for_a_fork_and_upstream_tracking(world: World, tmp_path: Path) -> None:
    world.tufrepo("alice", "delegate", "sign/f", "targets", "--signers", "@alice,@bob",
                  user="@alice")  # fmt: skip
    alice = world.clone("alice")
    git(alice, "checkout", "--quiet", "sign/f")
    assert git(alice, "rev-parse", "--abbrev-ref", "sign/f@{upstream}") == "origin/sign/f"

    fork = tmp_path / "fork.git"
    git(tmp_path, "init", "--quiet", "--bare", str(fork))
    bob = world.clone("bob")
    git(bob, "remote", "add", "fork", str(fork))
    upstream_before = world.remote_refs()["refs/heads/sign/f"]
    world.tufrepo("bob", "sign", "sign/f", "--push-remote", "fork", user="@bob")
    assert world.remote_refs()["refs/heads/sign/f"] == upstream_before  # upstream untouched
    pushed = git(tmp_path, "--git-dir", str(fork), "log", "-1", "--format=%s", "sign/f")
    assert pushed == "Signature from @bob"
    git(bob, "checkout", "--quiet", "sign/f")
    assert git(bob, "rev-parse", "--abbrev-ref", "sign/f@{upstream}") == "fork/sign/f"
    result = world.tufrepo("bob", "sign", "sign/f", "--push-remote", "nowhere", user="@bob", code=2)
    assert "no git remote named 'nowhere'" in result.stderr


def test_delegate_that_changes_nothing_is_refused(world: World) -> None:
    before = world.snapshot("alice")
    result = world.tufrepo("alice", "delegate", "sign/same", "targets", user="@alice", code=2)
    assert "nothing to change for targets" in result.stderr
    result = world.tufrepo(
        "alice", "delegate", "sign/same", "targets", "--threshold", "1", "--signers", "@alice",
        user="@alice", code=2,
    )  # fmt: skip
    assert "targets already has this configuration" in result.stderr
    assert world.snapshot("alice") == before
    # root's signers from @alice to @bob, whose key root already holds (for targets): only
    # root's keyid list changes, and that is a change
    world.tufrepo("alice", "delegate", "sign/rot", "targets", "--signers", "@alice,@bob",
                  user="@alice")  # fmt: skip
    world.tufrepo("bob", "sign", "sign/rot", user="@bob")
    world.tufrepo("alice", "delegate", "sign/rot", "root", "--signers", "@bob", user="@alice")


def test_delegate_on_a_terminal_offers_the_current_settings(world: World) -> None:
    env: dict[str, str | None] = {
        "TUFREPO_USER": "@alice",
        "TUFREPO_SIGNER": world.signers["@alice"],
    }
    code, screen = on_terminal(
        "delegate", "sign/edit", "targets",
        answers=[("Signers [@alice]", "@alice,@bob"), ("Threshold [1]", ""),
                 ("Expiry period (days) [365]", ""), ("Signing period (days) [60]", "30")],
        cwd=world.clone("alice"), env=env,
    )  # fmt: skip
    assert code == 0, screen
    assert "invited @bob" in screen
    root = git(world.clone("alice"), "show", "origin/sign/edit:metadata/targets.json")
    assert '"x-tuf-on-ci-signing-period": 30' in root


def test_three_password_attempts(tmp_path: Path) -> None:
    key = tmp_path / "me.key"
    generate_filekey(key, "right")
    (tmp_path / "me.key.pub").unlink()  # `key show` must decrypt the key to find its public key
    env: dict[str, str | None] = {"TUFREPO_KEY_PASSWORD": None}
    prompt = "Enter password for filekey:"
    code, screen = on_terminal(
        "key", "show", f"filekey:{key}",
        answers=[(prompt, "wrong"), (prompt, "again wrong"), (prompt, "right")],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0, screen
    assert "Wrong password, try again (2 left)." in screen
    assert "Wrong password, try again (1 left)." in screen
    assert '"keytype": "ecdsa"' in screen
    code, screen = on_terminal(
        "key", "show", f"filekey:{key}",
        answers=[(prompt, "a"), (prompt, "b"), (prompt, "c")],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 2
    assert "Error: wrong password for key file" in screen


def test_review_is_summarised_with_details_on_request(world: World, tmp_path: Path) -> None:
    files = tmp_path / "build"
    files.mkdir()
    specs = []
    for i in range(30):
        (files / f"f{i}.txt").write_text(f"file {i}\n")
        specs += ["--target", f"f{i}.txt={files / f'f{i}.txt'}"]
    world.tufrepo("appci", "event", "open", "docs", "--remote", str(world.remote), *specs)
    env: dict[str, str | None] = {
        "TUFREPO_USER": "@alice",
        "TUFREPO_SIGNER": world.signers["@alice"],
    }
    question = "Sign these changes? [y]es, [n]o, [d]etails"
    code, screen = on_terminal(
        "sign", "sign/docs", answers=[(question, "d"), (question, "y")],
        cwd=world.clone("alice"), env=env,
    )  # fmt: skip
    assert code == 0, screen
    summary, details = screen.split(question)[:2]
    assert "30 artifact changes: 30 added" in summary
    assert "(top level): 30 added" in summary
    assert "f17.txt" not in summary
    assert "added f17.txt" in details
    assert "signed targets" in screen
