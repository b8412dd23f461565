"""End-to-end signing events on real git: a bare upstream and one clone per person."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.git_helpers import World, git

pytestmark = pytest.mark.git


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def status_json(world: World, clone: str, event: str, code: int) -> dict:
    path = world.clone(clone)
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", f"sign/{event}", f"origin/sign/{event}")
    try:
        result = world.tufrepo(clone, "status", "--format", "json", code=code)
    finally:
        git(path, "checkout", "--quiet", "--detach")
    return json.loads(result.stdout)


def test_init_ready_merge_verify(world: World) -> None:
    world.tufrepo("alice", "delegate", "sign/init", "--online-key", world.online_uri, user="@alice")
    status = status_json(world, "ci", "init", 0)
    assert status["ready"] is True
    assert [r["role"] for r in status["roles"]] == ["root", "targets"]
    world.merge("init")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    result = world.tufrepo("ci", "verify", "--json")
    report = json.loads(result.stdout)
    assert report["valid"] is True
    root = json.loads((ci / "metadata/root.json").read_text())
    assert root["signed"]["consistent_snapshot"] is True
    assert root["signed"]["roles"]["timestamp"]["x-tuf-on-ci-expiry-period"] == 2
    assert (ci / "metadata/root_history/1.root.json").read_bytes() == (
        ci / "metadata/root.json"
    ).read_bytes()
    assert not (ci / "metadata/root.json").read_text().endswith("\n")


def test_invited_second_signer_threshold_two(world: World) -> None:
    world.init()
    world.tufrepo(
        "alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
        "--threshold", "2", user="@alice",
    )  # fmt: skip
    status = status_json(world, "ci", "two", 1)
    assert status["invites"] == {"@bob": ["targets"]}
    assert "accept" in status["next"]

    world.tufrepo("bob", "sign", "sign/two", user="@bob")
    status = status_json(world, "ci", "two", 1)
    targets = next(r for r in status["roles"] if r["role"] == "targets")
    assert targets["threshold"] == 2
    assert targets["signed"] == ["@bob"]
    assert targets["missing"] == ["@alice"]

    world.tufrepo("alice", "sign", "sign/two", user="@alice")
    status = status_json(world, "ci", "two", 0)
    assert status["ready"] is True
    world.merge("two")
    main = world.clone("ci")
    git(main, "checkout", "--quiet", "-B", "main", "origin/main")
    assert json.loads(world.tufrepo("ci", "verify", "--json").stdout)["valid"] is True


def test_root_rotation_needs_old_and_new_root(world: World) -> None:
    world.init()
    world.tufrepo("alice", "delegate", "sign/rot", "root", "--signers", "@bob", user="@alice")
    world.tufrepo("bob", "sign", "sign/rot", user="@bob")
    status = status_json(world, "ci", "rot", 1)
    root = next(r for r in status["roles"] if r["role"] == "root")
    assert root["signed"] == ["@bob"]
    assert root["previous_root"] == {"signed": 0, "threshold": 1}
    assert root["missing"] == ["@alice"]

    world.tufrepo("alice", "sign", "sign/rot", user="@alice")
    status = status_json(world, "ci", "rot", 0)
    world.merge("rot")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    assert sorted(p.name for p in (ci / "metadata/root_history").iterdir()) == [
        "1.root.json",
        "2.root.json",
    ]
    assert json.loads(world.tufrepo("ci", "verify", "--json").stdout)["valid"] is True


def test_delegated_role_owns_its_directory_and_app_ci_opens_event(world: World) -> None:
    world.init()
    world.tufrepo("alice", "delegate", "sign/app-role", "app", user="@alice")
    world.merge("app-role")

    artifact = world.root / "artifact.bin"
    artifact.write_bytes(b"release 1.0\n" * 100)
    # app CI: its own clone, no signer; --remote clones into a temporary checkout
    result = world.tufrepo(
        "appci", "event", "open", "rel-1.0", "--remote", str(world.remote),
        "--target", f"app/a/b/c/file.bin={artifact}", "--target", f"top.txt={artifact}",
    )  # fmt: skip
    assert "pushed" in result.stdout
    assert "refs/heads/sign/rel-1.0" in world.remote_refs()
    assert not (world.root / "appci").exists()

    status = status_json(world, "ci", "rel-1.0", 1)
    roles = {r["role"]: r for r in status["roles"]}
    assert set(roles) == {"app", "targets"}
    assert [a["path"] for a in roles["app"]["artifacts"]] == ["app/a/b/c/file.bin"]
    assert roles["app"]["artifacts"][0]["length"] == 1200

    world.tufrepo("alice", "sign", "sign/rel-1.0", user="@alice")
    assert status_json(world, "ci", "rel-1.0", 0)["ready"] is True

    # a file in a directory that no role owns
    result = world.tufrepo(
        "appci", "event", "open", "rel-bad", "--remote", str(world.remote),
        "--target", f"nobody/file.bin={artifact}", code=2,
    )  # fmt: skip
    assert "targets/nobody/file.bin" in result.stderr
    assert "refs/heads/sign/rel-bad" not in world.remote_refs()


def test_update_targets_and_sign_refuses_mismatched_metadata(world: World) -> None:
    world.init()
    alice = world.clone("alice")
    git(alice, "checkout", "--quiet", "-B", "sign/manual", "origin/main")
    (alice / "targets").mkdir(exist_ok=True)
    (alice / "targets/notes.txt").write_text("hello")
    git(alice, "add", "targets")
    git(alice, "commit", "--quiet", "-m", "add an artifact by hand")
    git(alice, "push", "--quiet", "origin", "sign/manual")
    git(alice, "checkout", "--quiet", "--detach")

    # the targets metadata was not updated: signing must refuse
    result = world.tufrepo("alice", "sign", "sign/manual", user="@alice", code=1)
    assert "notes.txt" in result.stderr

    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/manual", "origin/sign/manual")
    world.tufrepo("ci", "update-targets")
    git(ci, "checkout", "--quiet", "--detach")
    world.tufrepo("alice", "sign", "sign/manual", user="@alice")
    status = status_json(world, "ci", "manual", 0)
    assert status["roles"][0]["artifacts"][0]["change"] == "added"


def test_status_markdown_names_missing_signers_and_next_command(world: World) -> None:
    world.init()
    world.tufrepo(
        "alice", "delegate", "sign/md", "targets", "--signers", "@alice,@carol",
        "--threshold", "2", user="@alice",
    )  # fmt: skip
    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/md", "origin/sign/md")
    md = world.tufrepo("ci", "status", "--format", "markdown", code=1).stdout
    assert "❌" in md
    assert "@carol" in md
    assert "tufrepo sign sign/md" in md


def test_status_of_a_branch_without_changes(world: World) -> None:
    world.init()
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/empty", "origin/main")
    result = world.tufrepo("ci", "status", code=1)
    assert "changes no role against main" in result.stdout


def test_one_signer_load_per_command(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """init signs root and targets: the key is imported and the signer loaded once, so a
    password, PIN or Sigstore sign-in is asked for once."""
    import tufrepo.signing

    calls: list[str] = []
    real_load, real_import = tufrepo.signing.load_signer, tufrepo.signing.import_public_key

    def counting_load(uri: str, key: object) -> object:
        calls.append("load")
        return real_load(uri, key)  # type: ignore[arg-type]

    def counting_import(uri: str) -> object:
        calls.append("import")
        return real_import(uri)

    monkeypatch.setattr(tufrepo.signing, "load_signer", counting_load)
    monkeypatch.setattr(tufrepo.signing, "import_public_key", counting_import)
    out = world.tufrepo(
        "alice", "delegate", "sign/init", "--online-key", world.online_uri, user="@alice"
    )
    assert "signed root" in out.stderr
    assert "signed targets" in out.stderr
    assert calls.count("load") == 1
    assert calls.count("import") == 2  # the actor's key once, the online key once
