"""Artifacts not stored in git: descriptors (length, hashes, custom) under descriptors/."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.git_helpers import World, git, world_with_app_role
from tufrepo.publish import publish

pytestmark = pytest.mark.git

IMAGE = b"a large container image that is not stored in git\n" * 100


def descriptor(tmp: Path, data: bytes = IMAGE, **extra: object) -> Path:
    path = tmp / f"desc-{len(list(tmp.glob('desc-*')))}.json"
    body = {
        "length": len(data),
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
        "custom": {"oci": {"digest": "sha256:" + hashlib.sha256(data).hexdigest()}},
        **extra,
    }
    path.write_text(json.dumps(body))
    return path


@pytest.fixture
def world(tmp_path: Path) -> World:
    return world_with_app_role(tmp_path)


def open_event(world: World, name: str, *args: str, code: int = 0) -> str:
    appci = world.clone("appci")
    git(appci, "fetch", "--quiet", "origin")
    result = world.tufrepo("appci", "event", "open", name, "--repo", str(appci), *args, code=code)
    return result.stderr


def test_descriptor_release_is_signed_verified_and_published(world: World) -> None:
    desc = descriptor(world.root)
    open_event(world, "img-1", "--descriptor", f"app/images/app-1.0.oci={desc}")
    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/img-1", "origin/sign/img-1")
    stored = json.loads((ci / "descriptors/app/images/app-1.0.oci.json").read_text())
    assert stored["length"] == len(IMAGE)
    assert not (ci / "targets/app/images/app-1.0.oci").exists()
    status = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    app = next(r for r in status["roles"] if r["role"] == "app")
    assert app["artifacts"] == [
        {"path": "app/images/app-1.0.oci", "change": "added", "length": len(IMAGE),
         "sha256": hashlib.sha256(IMAGE).hexdigest()}
    ]  # fmt: skip
    git(ci, "checkout", "--quiet", "--detach")
    world.tufrepo("alice", "sign", "sign/img-1", user="@alice")
    world.merge("img-1")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    assert json.loads(world.tufrepo("ci", "verify", "--json").stdout)["valid"] is True
    app_md = json.loads((ci / "metadata/app.json").read_text())["signed"]
    assert app_md["targets"]["app/images/app-1.0.oci"]["custom"]["oci"]["digest"].startswith(
        "sha256:"
    )
    result = publish(ci, world.root / "site")
    assert result.hosted_elsewhere == ["app/images/app-1.0.oci"]

    # replacing it by a real file removes the descriptor
    real = world.root / "real.bin"
    real.write_bytes(b"now in git")
    open_event(world, "img-2", "--target", f"app/images/app-1.0.oci={real}")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/img-2", "origin/sign/img-2")
    assert not (ci / "descriptors/app/images/app-1.0.oci.json").exists()
    assert (ci / "targets/app/images/app-1.0.oci").read_bytes() == b"now in git"
    status = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    app = next(r for r in status["roles"] if r["role"] == "app")
    assert app["artifacts"][0]["change"] == "modified"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not JSON"),
        ('{"length": 3}', "sha256"),
        ('{"length": -1, "hashes": {"sha256": "' + "a" * 64 + '"}}', "length"),
        ('{"length": 3, "hashes": {"sha256": "XYZ"}}', "hex"),
        ('{"length": 3, "hashes": {"sha256": "' + "a" * 64 + '"}, "evil": 1}', "object"),
    ],
)
def test_bad_descriptor_changes_nothing(world: World, body: str, message: str) -> None:
    desc = world.root / "bad.json"
    desc.write_text(body)
    before = world.remote_refs()
    err = open_event(world, "bad", "--descriptor", f"app/x.oci={desc}", code=2)
    assert message in err
    assert world.remote_refs() == before


def test_file_and_descriptor_for_one_path_is_refused(world: World) -> None:
    alice = world.clone("alice")
    git(alice, "fetch", "--quiet", "origin")
    git(alice, "checkout", "--quiet", "-B", "sign/both", "origin/main")
    (alice / "targets/app").mkdir(parents=True)
    (alice / "targets/app/x.bin").write_bytes(b"x")
    (alice / "descriptors/app").mkdir(parents=True)
    (alice / "descriptors/app/x.bin.json").write_text(json.loads(json.dumps("{}")))
    git(alice, "add", "--all")
    git(alice, "commit", "--quiet", "-m", "both")
    git(alice, "push", "--quiet", "origin", "sign/both")
    git(alice, "checkout", "--quiet", "--detach")
    result = world.tufrepo("alice", "sign", "sign/both", user="@alice", code=2)
    assert "both a file under targets/ and a descriptor" in result.stderr
