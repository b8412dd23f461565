"""Bad input: a clear one-line error, exit 2 (or 1), and nothing changed locally or upstream."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.git_helpers import World, git
from tufrepo.cli import main
from tufrepo.signers.filekey import generate_filekey

pytestmark = pytest.mark.git


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.init()
    return w


def push_event(world: World, event: str, change: Callable[[Path], None]) -> None:
    """Someone pushes ``sign/<event>`` made by hand (``change`` edits the checkout)."""
    path = world.clone("mallory")
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", f"sign/{event}", "origin/main")
    change(path)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", f"hand-made {event}")
    git(path, "push", "--quiet", "origin", f"sign/{event}")


def assert_one_line_error(stderr: str, *needles: str) -> None:
    """The error is one line, the last one (``sign`` prints its review summary before)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    assert lines[-1] == errors[0], stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in errors[0]


def run_unchanged(world: World, clone: str, *args: str, code: int, user: str | None) -> str:
    """Run a failing command; assert nothing changed locally or on the remote."""
    git(world.clone(clone), "fetch", "--quiet", "origin")
    before = world.snapshot(clone)
    result = world.tufrepo(clone, *args, user=user, code=code)
    git(world.clone(clone), "fetch", "--quiet", "origin")
    assert world.snapshot(clone) == before
    return result.stderr


def test_corrupt_json_in_metadata(world: World) -> None:
    push_event(world, "corrupt", lambda p: (p / "metadata/targets.json").write_text("{ nope"))
    err = run_unchanged(world, "alice", "sign", "sign/corrupt", code=2, user="@alice")
    assert_one_line_error(err, "metadata/targets.json", "not valid TUF metadata")


def test_signature_by_unknown_key(world: World) -> None:
    def add_foreign_signature(path: Path) -> None:
        from securesystemslib.signer import CryptoSigner
        from tuf.api.metadata import Metadata

        from tufrepo.repository import serialize

        md = Metadata.from_file(str(path / "metadata/targets.json"))
        md.signed.version += 1
        carol = world.signers["@carol"].removeprefix("file2:")
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        signer = CryptoSigner(load_pem_private_key(Path(carol).read_bytes(), None))  # type: ignore[arg-type]
        md.sign(signer, append=True)
        (path / "metadata/targets.json").write_bytes(serialize(md))

    push_event(world, "foreign", add_foreign_signature)
    err = run_unchanged(world, "alice", "sign", "sign/foreign", code=1, user="@alice")
    assert_one_line_error(err, "refusing to sign", "signature by unknown key")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/foreign", "origin/sign/foreign")
    status = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    assert any("unknown key" in p for r in status["roles"] for p in r["problems"])


@pytest.mark.parametrize("path", ["../evil.txt", "/etc/passwd", "a/../../b", "./x", "a//b"])
def test_target_path_escaping_targets(world: World, path: str) -> None:
    artifact = world.root / "a.bin"
    artifact.write_bytes(b"x")
    err = run_unchanged(
        world, "appci", "event", "open", "rel", "--repo", str(world.clone("appci")),
        "--target", f"{path}={artifact}", code=2, user=None,
    )  # fmt: skip
    assert_one_line_error(err, "invalid target path")


def test_symlink_under_targets_pointing_outside(world: World) -> None:
    def add_symlink(path: Path) -> None:
        (path / "targets").mkdir(exist_ok=True)
        (path / "targets/passwd").symlink_to("/etc/passwd")

    push_event(world, "link", add_symlink)
    err = run_unchanged(world, "alice", "sign", "sign/link", code=2, user="@alice")
    assert_one_line_error(err, "targets/passwd", "symlink")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/link", "origin/sign/link")
    err = run_unchanged(world, "ci", "update-targets", code=2, user=None)
    assert_one_line_error(err, "symlink")


@pytest.mark.parametrize("name", ["x; rm -rf ~", "a b", "$(id)", "x.lock", "a..b", "x/y", "_x\n"])
def test_event_name_with_shell_metacharacters(world: World, name: str) -> None:
    artifact = world.root / "a.bin"
    artifact.write_bytes(b"x")
    err = run_unchanged(
        world, "appci", "event", "open", name, "--repo", str(world.clone("appci")),
        "--target", f"a.bin={artifact}", code=2, user=None,
    )  # fmt: skip
    assert_one_line_error(err, "invalid signing event name")
    err = run_unchanged(world, "alice", "delegate", name, "targets", code=2, user="@alice")
    assert_one_line_error(err, "invalid signing event name")


def test_wrong_key_password(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    key_path = world.root / "keys/dave.key"
    generate_filekey(key_path, "correct horse")
    world.signers["@dave"] = f"filekey:{key_path}"
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", "correct horse")
    world.tufrepo(
        "alice", "delegate", "sign/dave", "targets", "--signers", "@alice,@dave", user="@alice"
    )
    monkeypatch.setenv("TUFREPO_KEY_PASSWORD", "wrong")
    # accepting the invitation reads the .pub sidecar; signing needs the password
    err = run_unchanged(world, "dave", "sign", "sign/dave", code=2, user="@dave")
    assert_one_line_error(err, "wrong password")


def test_remote_rejects_the_push(world: World) -> None:
    world.tufrepo("alice", "delegate", "sign/race", "targets", "--signers", "@alice,@bob",
                  "--threshold", "2", user="@alice")  # fmt: skip
    hook = world.remote / "hooks/pre-receive"
    hook.write_text("#!/bin/sh\necho 'someone pushed first' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    err = run_unchanged(world, "bob", "sign", "sign/race", code=1, user="@bob")
    assert_one_line_error(err, "the remote refused the push to sign/race", "someone pushed first")
    # the local branch is not left behind either
    assert not git(world.clone("bob"), "branch", "--list", "sign/race")


def test_subprocess_exit_code_and_no_traceback(world: World) -> None:
    proc = world.subprocess(world.clone("alice"), "sign", "sign/nope", env={"TUFREPO_USER": "@a"})
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "sign/nope does not exist")
    assert "Traceback" not in proc.stderr


def test_no_user_is_a_usage_error(world: World) -> None:
    result = CliRunner().invoke(
        main, ["delegate", "sign/x", "targets", "--repo", str(world.clone("alice"))],
        env={"TUFREPO_USER": "", "TUFREPO_SIGNER": ""},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--user" in result.stderr


def test_event_open_never_writes_through_a_symlinked_directory(world: World) -> None:
    outside = world.root / "outside"
    outside.mkdir()

    def add_dir_link(path: Path) -> None:
        (path / "targets").mkdir(exist_ok=True)
        (path / "targets/app").symlink_to(outside)

    push_event(world, "dirlink", add_dir_link)
    world.merge("dirlink")  # the link reached main by mistake
    artifact = world.root / "a.bin"
    artifact.write_bytes(b"x")
    err = run_unchanged(
        world, "appci", "event", "open", "rel", "--repo", str(world.clone("appci")),
        "--target", f"app/a.bin={artifact}", code=2, user=None,
    )  # fmt: skip
    assert_one_line_error(err, "targets/app", "symlink")
    assert list(outside.iterdir()) == []
