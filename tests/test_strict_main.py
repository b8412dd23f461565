"""Metadata on main is read strictly (issue 11, finding 2): a targets.json that is valid but
not what clients see - a duplicate JSON key, a field outside ``signed``, or a field inside
``signed`` re-signed at the same version - is an error naming the file in ``verify``,
``online-sign`` and ``status``, and nothing is signed or pushed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from tuf.api.metadata import Metadata

from tests.git_helpers import World, git
from tufrepo.repository import serialize
from tufrepo.signers import load_signer

pytestmark = pytest.mark.git

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TARGETS = "metadata/targets.json"


def duplicate_version(world: World, path: Path) -> None:
    """A second "version" key: Python keeps the last, other parsers the first."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"signed": {', b'"signed": {\n  "version": 99,', 1))


def field_outside_signed(world: World, path: Path) -> None:
    """A field no signature covers."""
    obj = json.loads(path.read_bytes())
    obj["x-note"] = "added without any key"
    path.write_bytes(json.dumps(obj, indent=1, sort_keys=True).encode())


def resigned_same_version(world: World, path: Path) -> None:
    """A field inside ``signed``, validly re-signed by the targets signer, same version."""
    md = Metadata.from_bytes(path.read_bytes())
    root = Metadata.from_bytes((path.parent / "root.json").read_bytes()).signed
    (keyid,) = root.roles["targets"].keyids
    signer = load_signer(world.signers["@alice"], root.keys[keyid])
    md.signed.unrecognized_fields["x-extra"] = "same version, other content"
    md.signatures.clear()
    md.sign(signer)
    path.write_bytes(serialize(md))


# variant -> (change, exit code of status: 2 = main's file cannot be read, 1 = not ready,
#             what verify says about metadata/targets.json)
VARIANTS: dict[str, tuple[Callable[[World, Path], None], int, list[str]]] = {
    "duplicate version key": (duplicate_version, 2, ["duplicate key 'version'"]),
    "field outside signed": (field_outside_signed, 2, ["fields outside signed/signatures: x-note"]),
    "field inside signed re-signed at the same version": (
        resigned_same_version,
        1,
        ["is not the file snapshot records for v1", "its version 1 is not higher than 1"],
    ),
}


@pytest.fixture
def world(tmp_path: Path) -> World:
    with freeze_time(T0):
        w = World(tmp_path)
        w.init()
        w.ci()
        w.tufrepo("ci", "online-sign")
        # a signing event opened before main is tampered with
        w.tufrepo("alice", "delegate", "sign/period", "targets", "--expiry-period", "90",
                  user="@alice")  # fmt: skip
    return w


def push_to_main(world: World, change: Callable[[World, Path], None]) -> None:
    """A committer who can push to main (but holds no online key) changes targets.json."""
    path = world.clone("mallory")
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", "main", "origin/main")
    change(world, path / TARGETS)
    git(path, "commit", "--quiet", "-am", "tamper")
    git(path, "push", "--quiet", "origin", "main")
    world.ci()


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_canonical_targets_on_main(world: World, variant: str) -> None:
    later = T0 + timedelta(hours=1)
    with freeze_time(later):
        assert world.tufrepo("ci", "verify").exit_code == 0  # the state before
    change, status_code, said = VARIANTS[variant]
    push_to_main(world, change)

    with freeze_time(later):
        out = world.tufrepo("ci", "verify", code=1).stdout
    lines = [line for line in out.splitlines() if TARGETS in line]
    for text in said:
        assert any(text in line for line in lines), out

    before = world.remote_refs()
    ci = world.clone("ci")
    head = git(ci, "rev-parse", "HEAD")
    with freeze_time(T0 + timedelta(days=2)):  # the timestamp is due: online-sign would sign
        result = world.tufrepo("ci", "online-sign", code=1)
    assert "refusing to sign online" in result.stderr
    assert TARGETS in result.stderr
    assert world.remote_refs() == before
    assert git(ci, "rev-parse", "HEAD") == head
    assert not git(ci, "status", "--porcelain")

    alice = world.clone("alice")
    git(alice, "checkout", "--quiet", "sign/period")
    with freeze_time(later):
        result = world.tufrepo("alice", "status", code=status_code)
    assert TARGETS in result.stdout + result.stderr
