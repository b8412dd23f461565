"""The on-disk format is tuf-on-ci's: the real tuf-on-ci-sign (PyPI) and tufrepo work on
the same repositories, in both directions, on real git with SoftHSM2 standing in for YubiKeys
(docs/tuf-on-ci-compat.md).

- tufrepo opens signing events (an invitation to targets or to a delegated role, an app
  release, a root rotation, a scheduled version bump); tuf-on-ci-sign accepts invitations
  (YubiKey menu) and signs with an HSM key or a file key, asked for exactly the roles tufrepo
  changed; tufrepo finds the events ready, signs the online roles after the merge, verifies.
- tuf-on-ci-delegate initialises a repository (inviting a second targets signer, who accepts
  with tufrepo); tufrepo finds it ready, signs its online roles with tuf-on-ci's published
  test online key, verifies it, and continues it with the YubiKey URI tuf-on-ci recorded.
  tuf-on-ci's default setup (a Sigstore online key) needs tufrepo's Sigstore key support.
- a role created by tuf-on-ci-delegate in a tufrepo repository owns ``targets/<role>/...``;
  hidden files under targets/ are not artifacts, as in tuf-on-ci.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from freezegun import freeze_time

from tests.git_helpers import World, git
from tests.softhsm_helpers import SoftHsmToken, create_token, missing_tools, unload_module
from tests.tuf_on_ci_helpers import (
    TEST_KEY_ENV,
    TufOnCi,
    requested_roles,
    tool,
    write_test_online_key,
)

pytestmark = pytest.mark.git
T = TypeVar("T", bound=Callable[..., object])


def needs_tools(test: T) -> T:
    """Mark a test that runs tuf-on-ci's tools with SoftHSM2 tokens as YubiKeys."""
    marks = [
        pytest.mark.softhsm,
        pytest.mark.skipif(
            not tool("tuf-on-ci-sign").exists(), reason="tuf-on-ci-sign (PyPI) is not installed"
        ),
        pytest.mark.skipif(bool(missing_tools()), reason=f"SoftHSM2 missing: {missing_tools()}"),
    ]
    for mark in marks:
        test = mark(test)
    return test


KEYOWNER = "x-tuf-on-ci-keyowner"
ONLINE_URI = "x-tuf-on-ci-online-uri"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def toc(world: World) -> TufOnCi:
    return TufOnCi(world)


def hsm_token(world: World, user: str, monkeypatch: pytest.MonkeyPatch) -> SoftHsmToken:
    """``user``'s YubiKey: a SoftHSM2 token alone in its own configuration (tuf-on-ci's
    YubiKey import takes the only token there is)."""
    token = create_token(world.root / f"{user}-yubikey", label=user)
    for name, value in token.env.items():
        monkeypatch.setenv(name, value)
    unload_module(token.module)
    return token


@pytest.fixture(autouse=True)
def _unload_pkcs11() -> Iterator[None]:
    yield
    from tests.softhsm_helpers import softhsm_module

    module = softhsm_module()
    if module is not None:
        unload_module(module)


def checkout(world: World, clone: str, ref: str) -> Path:
    path = world.clone(clone)
    git(path, "fetch", "--quiet", "--prune", "origin")
    git(path, "checkout", "--quiet", "-B", ref, f"origin/{ref}")
    return path


def status(world: World, event: str, code: int) -> dict[str, Any]:
    """``tufrepo status --format json`` of ``sign/<event>`` in the CI clone."""
    checkout(world, "ci", f"sign/{event}")
    result = world.tufrepo("ci", "status", "--format", "json", code=code)
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["event"] == f"sign/{event}"
    return report


def role(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in report["roles"] if r["role"] == name)
    return found


def metadata(world: World, ref: str, name: str) -> dict[str, Any]:
    path = checkout(world, "ci", ref)
    data: dict[str, Any] = json.loads((path / "metadata" / f"{name}.json").read_text())
    return data


def merge_online_sign_verify(world: World, event: str, *, refresh: bool = True) -> None:
    """Merge ``sign/<event>``; CI signs snapshot and timestamp on main when ``refresh``
    (online-sign refuses offline roles that do not verify); then the whole repository
    verifies."""
    world.merge(event)
    ci = checkout(world, "ci", "main")
    before = git(ci, "rev-parse", "HEAD")
    world.tufrepo("ci", "online-sign")
    git(ci, "fetch", "--quiet", "origin")
    assert (git(ci, "rev-parse", "origin/main") != before) is refresh
    timestamp = metadata(world, "main", "timestamp")
    assert timestamp["signatures"]
    assert all(s["sig"] for s in timestamp["signatures"])
    report = json.loads(world.tufrepo("ci", "verify", "--json").stdout)
    assert report["valid"] is True, report


def keyid_of(root: dict[str, Any], owner: str) -> str:
    keyids = [str(k) for k, v in root["signed"]["keys"].items() if v.get(KEYOWNER) == owner]
    assert len(keyids) == 1, keyids
    return keyids[0]


def assert_clean(world: World, clone: str) -> None:
    """tuf-on-ci's settings file is git-excluded: the clone stays clean for tufrepo."""
    assert git(world.clone(clone), "status", "--porcelain", "--untracked-files=all") == ""


@needs_tools
def test_tufrepo_events_signed_with_tuf_on_ci_sign(
    world: World, toc: TufOnCi, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.init("@alice")
    bob = hsm_token(world, "bob", monkeypatch)

    # tufrepo: targets needs @alice and @bob (invited, no key yet)
    world.tufrepo(
        "alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
        "--threshold", "2", user="@alice",
    )  # fmt: skip
    assert status(world, "two", 1)["invites"] == {"@bob": ["targets"]}

    # tuf-on-ci-sign: bob accepts with his YubiKey (menu 2) and signs with its PIN
    toc.configure("bob", "@bob")
    out = toc.run(
        "bob", "tuf-on-ci-sign", "sign/two", answers=["2", "", bob.pin, ""], token=bob
    ).stdout
    assert "You have been invited to become a signer for role(s) ['targets']" in out
    assert_clean(world, "bob")
    report = status(world, "two", 1)
    assert report["invites"] == {}
    # targets did not change when bob's key was added to root: alice's signature holds
    assert role(report, "targets")["signed"] == ["@alice", "@bob"]
    assert role(report, "targets")["ready"] is True
    assert role(report, "root")["missing"] == ["@alice"]
    root = metadata(world, "sign/two", "root")
    bob_key = root["signed"]["keys"][keyid_of(root, "@bob")]
    assert bob_key["keytype"] == "ecdsa"
    assert not (world.clone("ci") / "metadata/.signing-event-state").exists()

    # tuf-on-ci-sign: alice signs root and targets with her file key, named by keyid
    alice_keyid = keyid_of(root, "@alice")
    toc.configure("alice", "@alice", {alice_keyid: world.signers["@alice"]})
    out = toc.run("alice", "tuf-on-ci-sign", "sign/two", answers=[""]).stdout
    # alice's signature of targets still holds: tuf-on-ci asks her for root only
    assert requested_roles(out) == {"root"}
    assert_clean(world, "alice")
    report = status(world, "two", 0)
    assert report["ready"] is True
    assert sorted(role(report, "targets")["signed"]) == ["@alice", "@bob"]
    merge_online_sign_verify(world, "two")

    # app CI opens a release with tufrepo; both sign with tuf-on-ci-sign, no more menus
    artifact = world.root / "app.tar.gz"
    artifact.write_bytes(b"release 2.0\n" * 50)
    world.tufrepo(
        "appci", "event", "open", "rel-2.0", "--remote", str(world.remote),
        "--target", f"app.tar.gz={artifact}",
    )  # fmt: skip
    report = status(world, "rel-2.0", 1)
    assert [a["path"] for a in role(report, "targets")["artifacts"]] == ["app.tar.gz"]
    out = toc.run("bob", "tuf-on-ci-sign", "sign/rel-2.0", answers=[bob.pin, ""], token=bob).stdout
    assert requested_roles(out) == {"targets"}
    assert role(status(world, "rel-2.0", 1), "targets")["signed"] == ["@bob"]
    assert requested_roles(
        toc.run("alice", "tuf-on-ci-sign", "sign/rel-2.0", answers=[""]).stdout
    ) == {"targets"}
    assert status(world, "rel-2.0", 0)["ready"] is True
    merge_online_sign_verify(world, "rel-2.0")
    targets = metadata(world, "main", "targets")
    assert targets["signed"]["targets"]["app.tar.gz"]["length"] == 600
    assert targets["signed"]["version"] == 3

    # root rotation from @alice to @bob, opened by carol (no role, signs nothing): bob signs
    # as the new root signer, alice as the previous one, both with tuf-on-ci-sign
    world.tufrepo("carol", "delegate", "sign/rot", "root", "--signers", "@bob", user="@carol")
    report = status(world, "rot", 1)
    assert role(report, "root")["missing"] == ["@bob", "@alice"]
    assert role(report, "root")["previous_root"] == {"signed": 0, "threshold": 1}
    out = toc.run("bob", "tuf-on-ci-sign", "sign/rot", answers=[bob.pin, ""], token=bob).stdout
    assert requested_roles(out) == {"root"}
    report = status(world, "rot", 1)
    assert role(report, "root")["signed"] == ["@bob"]
    assert role(report, "root")["missing"] == ["@alice"]
    assert requested_roles(toc.run("alice", "tuf-on-ci-sign", "sign/rot", answers=[""]).stdout) == {
        "root"
    }
    report = status(world, "rot", 0)
    assert role(report, "root")["previous_root"] == {"signed": 1, "threshold": 1}
    # (the online keys did not change: snapshot and timestamp stay as they are)
    merge_online_sign_verify(world, "rot", refresh=False)
    history = sorted(p.name for p in (world.clone("ci") / "metadata/root_history").iterdir())
    assert history == ["1.root.json", "2.root.json", "3.root.json"]


@needs_tools
def test_tuf_on_ci_delegate_repository_is_accepted_and_continued(
    world: World, toc: TufOnCi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tuf-on-ci repository starts from a template: main exists before the init event
    setup = world.clone("setup")
    (setup / "README.md").write_text("TUF repository\n")
    git(setup, "add", "README.md")
    git(setup, "commit", "--quiet", "-m", "Initial commit")
    git(setup, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    alice = hsm_token(world, "alice", monkeypatch)
    online_pem = write_test_online_key(world.root / "keys" / "tuf-on-ci-test-key.pem")
    toc.configure("alice", "@alice")
    git(world.clone("alice"), "fetch", "--quiet", "origin")

    # root: @alice (default); targets: menu 1, offline signers (1) "@alice, @bob", threshold
    # 2; online key: menu 1, hidden entry 0 (test key); alice's key: YubiKey (menu 2); her
    # PIN for root and for targets; push
    answers = ["", "1", "1", "@alice, @bob", "2", "", "1", "0", ""]
    answers += ["2", "", alice.pin, alice.pin, ""]
    env = {TEST_KEY_ENV: str(online_pem)}
    toc.run("alice", "tuf-on-ci-delegate", "sign/init", answers=answers, token=alice, env=env)
    assert_clean(world, "alice")
    root = metadata(world, "sign/init", "root")
    online_keyid = root["signed"]["roles"]["timestamp"]["keyids"][0]
    assert root["signed"]["keys"][online_keyid][ONLINE_URI] == f"file2:{online_pem}"
    # tuf-on-ci's invitation (its .signing-event-state) is tufrepo's
    report = status(world, "init", 1)
    assert report["invites"] == {"@bob": ["targets"]}
    # the test key's keyid is hard-coded in tuf-on-ci, not the sha256 of the key: tufrepo
    # does not accept a new key without its canonical keyid ...
    assert any("does not have its canonical keyid" in e for e in role(report, "root")["problems"])

    # ... and neither does tuf-on-ci itself: its repair command gives keys canonical keyids
    toc.run(
        "alice", "tuf-on-ci-delegate", "--force-compliant-keyids", "sign/init", "root",
        answers=[alice.pin, ""], token=alice,
    )  # fmt: skip
    report = status(world, "init", 1)
    assert report["problems"] == []
    assert all(r["problems"] == [] for r in report["roles"])
    assert report["invites"] == {"@bob": ["targets"]}

    # bob accepts tuf-on-ci's invitation with tufrepo (his file key) and signs targets
    world.tufrepo("bob", "sign", "sign/init", user="@bob")
    report = status(world, "init", 1)
    assert report["invites"] == {}
    assert not (world.clone("ci") / "metadata" / ".signing-event-state").exists()
    assert role(report, "targets")["signed"] == ["@bob"]
    # tufrepo closed root (bob's key) and targets again: alice signs both with tuf-on-ci-sign
    assert role(report, "root")["missing"] == role(report, "targets")["missing"] == ["@alice"]
    answers = [alice.pin, alice.pin, ""]
    out = toc.run("alice", "tuf-on-ci-sign", "sign/init", answers=answers, token=alice).stdout
    assert requested_roles(out) == {"root", "targets"}
    report = status(world, "init", 0)
    assert report["ready"] is True
    assert [r["role"] for r in report["roles"]] == ["root", "targets"]
    root = metadata(world, "sign/init", "root")
    assert root["signed"]["keys"][keyid_of(root, "@alice")]["keytype"] == "ecdsa"
    merge_online_sign_verify(world, "init")
    timestamp = metadata(world, "main", "timestamp")
    online_keyids = root["signed"]["roles"]["timestamp"]["keyids"]
    assert [s["keyid"] for s in timestamp["signatures"]] == online_keyids

    # tufrepo continues the repository: an app release, signed by bob and by alice with the
    # YubiKey URI that tuf-on-ci recorded for her
    saved = (world.root / "xdg-data/alice/tuf-on-ci-sign/signing-keys.ini").read_text()
    assert f"{keyid_of(root, '@alice')} = {alice.uri}" in saved
    world.signers["@alice"] = alice.uri
    artifact = world.root / "tool.bin"
    artifact.write_bytes(b"tool 1.0\n" * 10)
    world.tufrepo(
        "appci", "event", "open", "tool-1.0", "--remote", str(world.remote),
        "--target", f"tool.bin={artifact}",
    )  # fmt: skip
    status(world, "tool-1.0", 1)
    world.tufrepo("bob", "sign", "sign/tool-1.0", user="@bob")
    status(world, "tool-1.0", 1)
    world.tufrepo("alice", "sign", "sign/tool-1.0", user="@alice")
    assert status(world, "tool-1.0", 0)["ready"] is True
    merge_online_sign_verify(world, "tool-1.0")


@needs_tools
def test_role_delegated_with_tuf_on_ci_delegate_owns_its_artifacts_in_tufrepo(
    world: World, toc: TufOnCi, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.init("@alice")
    yubikey = hsm_token(world, "alice", monkeypatch)
    root = metadata(world, "main", "root")
    toc.configure("alice", "@alice", {keyid_of(root, "@alice"): world.signers["@alice"]})

    # tuf-on-ci-delegate creates role "app" (signers: [@alice], defaults) in tufrepo's
    # repository; alice's key for it is her YubiKey (menu 2); her file key signs targets
    answers = ["", "2", "", yubikey.pin, ""]
    args = ("sign/app", "app")
    out = toc.run("alice", "tuf-on-ci-delegate", *args, answers=answers, token=yubikey).stdout
    assert "Creating a new delegation for app" in out
    assert requested_roles(out) == {"app", "targets"}
    report = status(world, "app", 0)
    assert sorted(r["role"] for r in report["roles"]) == ["app", "targets"]
    delegation = metadata(world, "sign/app", "targets")["signed"]["delegations"]["roles"][0]
    assert delegation["name"] == "app"
    assert delegation["terminating"] is True
    merge_online_sign_verify(world, "app")

    # tufrepo's app CI puts an artifact under targets/app/...: role "app" owns it
    artifact = world.root / "app.bin"
    artifact.write_bytes(b"app 1.0\n" * 20)
    world.tufrepo(
        "appci", "event", "open", "app-1.0", "--remote", str(world.remote),
        "--target", f"app/x/y/z/app.bin={artifact}",
    )  # fmt: skip
    report = status(world, "app-1.0", 1)
    assert [r["role"] for r in report["roles"]] == ["app"]
    assert role(report, "app")["missing"] == ["@alice"]
    answers = [yubikey.pin, ""]
    out = toc.run("alice", "tuf-on-ci-sign", "sign/app-1.0", answers=answers, token=yubikey).stdout
    assert requested_roles(out) == {"app"}
    assert status(world, "app-1.0", 0)["ready"] is True
    merge_online_sign_verify(world, "app-1.0")
    app = metadata(world, "main", "app")["signed"]
    assert app["targets"]["app/x/y/z/app.bin"]["length"] == 160
    assert app["version"] == 2


@needs_tools
def test_tuf_on_ci_default_setup_with_sigstore_online_key(
    world: World, toc: TufOnCi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tuf-on-ci's default setup: every menu answered with enter, so the online key is the
    GitHub workflow's Sigstore identity. tufrepo reads and verifies it; online signing with
    that identity needs GitHub's OIDC, so the online key is rotated (with tufrepo) to one CI
    here holds, and tufrepo's CI signs with it."""
    pytest.importorskip("tufrepo.signers.sigstore", reason="tufrepo without Sigstore keys")
    setup = world.clone("setup")
    (setup / "README.md").write_text("TUF repository\n")
    git(setup, "add", "README.md")
    git(setup, "commit", "--quiet", "-m", "Initial commit")
    git(setup, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    alice = hsm_token(world, "alice", monkeypatch)
    toc.configure("alice", "@alice")
    git(world.clone("alice"), "fetch", "--quiet", "origin")

    answers = ["", "", "", "2", "", alice.pin, alice.pin, ""]
    toc.run("alice", "tuf-on-ci-delegate", "sign/init", answers=answers, token=alice)
    root = metadata(world, "sign/init", "root")
    online = root["signed"]["keys"][root["signed"]["roles"]["timestamp"]["keyids"][0]]
    assert online["keytype"] == "sigstore-oidc"
    assert online[ONLINE_URI] == "sigstore:"
    assert status(world, "init", 0)["ready"] is True
    world.merge("init")
    checkout(world, "ci", "main")
    report = json.loads(world.tufrepo("ci", "verify", "--json").stdout)
    assert report["valid"] is True, report

    # alice moves the online key to a file key with tufrepo and her YubiKey
    world.signers["@alice"] = alice.uri
    world.tufrepo(
        "alice", "delegate", "sign/online", "root", "--online-key", world.online_uri,
        user="@alice",
    )  # fmt: skip
    assert status(world, "online", 0)["ready"] is True
    merge_online_sign_verify(world, "online")


@needs_tools
def test_tufrepo_role_invitation_accepted_with_tuf_on_ci_sign(
    world: World, toc: TufOnCi, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.init("@alice")
    bob = hsm_token(world, "bob", monkeypatch)
    # tufrepo creates role "app" signed by @bob alone: it has no key until bob accepts
    world.tufrepo("alice", "delegate", "sign/app", "app", "--signers", "@bob", user="@alice")
    assert status(world, "app", 1)["invites"] == {"@bob": ["app"]}

    toc.configure("bob", "@bob")
    answers = ["2", "", bob.pin, ""]
    out = toc.run("bob", "tuf-on-ci-sign", "sign/app", answers=answers, token=bob).stdout
    assert "invited to become a signer for role(s) ['app']" in out
    assert requested_roles(out) == {"app"}
    report = status(world, "app", 1)
    assert report["invites"] == {}
    assert role(report, "app")["signed"] == ["@bob"]
    assert role(report, "targets")["missing"] == ["@alice"]
    world.tufrepo("alice", "sign", "sign/app", user="@alice")
    assert status(world, "app", 0)["ready"] is True
    merge_online_sign_verify(world, "app")
    targets = metadata(world, "main", "targets")["signed"]
    app = targets["delegations"]["roles"][0]
    assert targets["delegations"]["keys"][app["keyids"][0]][KEYOWNER] == "@bob"


def test_hidden_files_under_targets_are_not_artifacts(world: World) -> None:
    """tuf-on-ci lists the files its glob patterns (``*``, ``R/*`` ... ``R/*/*/*/*``) match,
    and those never match names starting with '.': a tuf-on-ci repository may keep
    ``targets/R/.gitkeep`` and must still verify; tufrepo never makes such a file a target."""
    world.init("@alice")
    world.tufrepo("alice", "delegate", "sign/app", "app", user="@alice")
    world.merge("app")
    setup = checkout(world, "setup", "main")
    for hidden in ("app/.gitkeep", "app/x/.cache/file", ".well-known/x", "app/.config"):
        (setup / "targets" / hidden).parent.mkdir(parents=True, exist_ok=True)
        (setup / "targets" / hidden).write_text("not an artifact\n")
    git(setup, "add", "targets")
    git(setup, "commit", "--quiet", "-m", "Keep the app directory")
    git(setup, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    checkout(world, "ci", "main")
    world.tufrepo("ci", "online-sign")
    report = json.loads(world.tufrepo("ci", "verify", "--json").stdout)
    assert report["valid"] is True, report

    artifact = world.root / "file.bin"
    artifact.write_bytes(b"data\n")
    before = world.remote_refs()
    for path in ("app/.hidden", ".env", "app/.x/file"):
        result = world.tufrepo(
            "appci", "event", "open", "hidden", "--remote", str(world.remote),
            "--target", f"{path}={artifact}", code=2,
        )  # fmt: skip
        assert f"invalid target path {path!r}: names starting with '.'" in result.stderr
    assert world.remote_refs() == before

    # a signing event that adds a hidden file next to an artifact: only the artifact counts
    event = checkout(world, "alice", "main")
    git(event, "checkout", "--quiet", "-B", "sign/rel", "origin/main")
    (event / "targets/app/a").mkdir(parents=True)
    (event / "targets/app/a/file.bin").write_bytes(b"data\n")
    (event / "targets/app/a/.gitkeep").write_text("")
    git(event, "add", "targets")
    git(event, "commit", "--quiet", "-m", "Release")
    git(event, "push", "--quiet", "origin", "sign/rel")
    world.tufrepo("alice", "update-targets")
    report = status(world, "rel", 1)
    assert [a["path"] for a in role(report, "app")["artifacts"]] == ["app/a/file.bin"]


@needs_tools
def test_tufrepo_expiry_event_signed_with_tuf_on_ci_sign(world: World, toc: TufOnCi) -> None:
    """tufrepo's scheduled version bump (tuf-on-ci's create-signing-events) is signed with
    tuf-on-ci-sign; tufrepo signs the online roles and verifies at that later time."""
    world.init("@alice")
    checkout(world, "ci", "main")
    world.tufrepo("ci", "online-sign")
    later = datetime.now(UTC) + timedelta(days=310)
    with freeze_time(later):
        out = world.tufrepo("ci", "expiry-events", "--single-event", "yearly").stdout
    assert "root, targets" in out
    root = metadata(world, "main", "root")
    toc.configure("alice", "@alice", {keyid_of(root, "@alice"): world.signers["@alice"]})
    out = toc.run("alice", "tuf-on-ci-sign", "sign/yearly", answers=[""]).stdout
    assert requested_roles(out) == {"root", "targets"}
    with freeze_time(later):
        report = status(world, "yearly", 0)
        assert [(r["role"], r["version"]) for r in report["roles"]] == [
            ("root", 2),
            ("targets", 2),
        ]
        merge_online_sign_verify(world, "yearly")
    history = sorted(p.name for p in (world.clone("ci") / "metadata/root_history").iterdir())
    assert history == ["1.root.json", "2.root.json"]
