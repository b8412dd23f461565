"""A repository made by the real tufrepo commands (init, delegated role, app CI release event,
signature, merges on a bare remote), published and consumed by ngclient and tuf-js."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp
from tuf.api.serialization.json import JSONSerializer

from tests.git_helpers import World, git
from tests.site_helpers import ngclient_download, run_tufjs, serve, tufjs_available
from tufrepo.cli import main
from tufrepo.publish import publish

pytestmark = pytest.mark.git

ARTIFACT = "app/a/b/c/file.bin"


def online_sign(world: World, checkout: Path) -> None:
    """``tufrepo online-sign`` once it exists; until then the same result made here with
    python-tuf and the repository's online key (snapshot and timestamp, length + hashes)."""
    if "online-sign" in main.commands:
        world.tufrepo("ci", "online-sign", "--no-push")
        return
    meta = checkout / "metadata"
    root = Metadata.from_file(str(meta / "root.json")).signed
    keyid = root.roles["timestamp"].keyids[0]
    signer = Signer.from_priv_key_uri(world.online_uri, root.keys[keyid])
    now = datetime.now(UTC).replace(microsecond=0)
    snapshot = Snapshot(expires=now + timedelta(days=21))
    for f in sorted(meta.glob("*.json")):
        name = f.name.removesuffix(".json")
        if name not in ("root", "snapshot", "timestamp"):
            data = f.read_bytes()
            version = Metadata.from_bytes(data).signed.version
            snapshot.meta[f.name] = MetaFile.from_data(version, data, ["sha256"])
    snap_md = Metadata(snapshot)
    snap_md.sign(signer)
    snap_bytes = snap_md.to_bytes(JSONSerializer(compact=False))
    (meta / "snapshot.json").write_bytes(snap_bytes)
    timestamp = Timestamp(expires=now + timedelta(days=2))
    timestamp.snapshot_meta = MetaFile.from_data(1, snap_bytes, ["sha256"])
    ts_md = Metadata(timestamp)
    ts_md.sign(signer)
    ts_md.to_file(str(meta / "timestamp.json"), JSONSerializer(compact=False))


def test_repository_from_tufrepo_commands(tmp_path: Path) -> None:
    (tmp_path / "world").mkdir()
    world = World(tmp_path / "world")
    world.init()
    world.tufrepo("alice", "delegate", "sign/app-role", "app", user="@alice")
    world.merge("app-role")
    artifact = world.root / "artifact.bin"
    artifact.write_bytes(b"release 1.0\n" * 100)
    world.tufrepo(
        "appci", "event", "open", "rel-1.0", "--remote", str(world.remote),
        "--target", f"{ARTIFACT}={artifact}",
    )  # fmt: skip
    world.tufrepo("alice", "sign", "sign/rel-1.0", user="@alice")
    world.merge("rel-1.0")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    online_sign(world, ci)

    site = tmp_path / "site"
    result = publish(ci, site)
    assert result.hosted_elsewhere == []
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert "metadata/1.root.json" in files
    app_version = Metadata.from_file(str(ci / "metadata" / "app.json")).signed.version
    assert f"metadata/{app_version}.app.json" in files
    assert any(f.startswith("targets/app/a/b/c/") and f.endswith(".file.bin") for f in files)
    page = (site / "index.html").read_text()
    assert "@alice" in page
    with serve(site) as server:
        root1 = ci / "metadata" / "root_history" / "1.root.json"
        ngclient_download(server.url, root1, tmp_path / "c1", tmp_path / "o1", [ARTIFACT])
        assert (tmp_path / "o1" / "file.bin").read_bytes() == artifact.read_bytes()
        check = world.subprocess(
            tmp_path, "check-site", server.url, "--root", str(root1), "--download-all", "--json"
        )
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["downloaded"] == [ARTIFACT]
        if tufjs_available():
            js = run_tufjs(server.url, root1, tmp_path / "c2", tmp_path / "o2", [ARTIFACT])
            assert js.returncode == 0, js.stderr
            assert (tmp_path / "o2" / "file.bin").read_bytes() == artifact.read_bytes()
