"""``tufrepo import``: adopt a plain TUF repository built with python-tuf, on real git, then
sign, merge, verify, online-sign, publish and download with python-tuf's ngclient."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from tests.git_helpers import World, git
from tests.site_helpers import ngclient_download, serve
from tufrepo.publish import publish
from tufrepo.roles import delegated_paths

pytestmark = pytest.mark.git

HELLO = "hello.txt"
TOOL = "apps/x/tool.bin"


def signer_of(world: World, name: str) -> CryptoSigner:
    pem = (world.root / "keys" / f"{name}.pem").read_bytes()
    return CryptoSigner(load_pem_private_key(pem, None))


@dataclass
class Plain:
    """Options of the plain repository built by :func:`build_plain`."""

    consistent_snapshot: bool = True
    apps_paths: tuple[str, ...] = ("apps/*", "apps/*/*", "apps/*/*/*", "apps/*/*/*/*")
    apps_name: str = "apps"
    earlier_root: bool = True  # keep 1.root.json next to root.json (v2)


def build_plain(world: World, dest: Path, opts: Plain) -> dict[str, str]:
    """A plain python-tuf repository in ``dest`` (no custom fields, no root_history): root v2
    (alice+bob, threshold 2, rotated from v1 = alice), targets by carol, delegated role
    ``apps`` by bob, snapshot/timestamp by the online key. Returns keyids by user."""
    s = {n: signer_of(world, n) for n in ("alice", "bob", "carol", "online")}
    ids = {f"@{n}": sig.public_key.keyid for n, sig in s.items()}
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    meta, tdir = dest / "metadata", dest / "targets"
    (tdir / "apps/x").mkdir(parents=True)
    meta.mkdir()
    (tdir / HELLO).write_bytes(b"hello world\n")
    (tdir / TOOL).write_bytes(b"\x00tool\x01" * 100)

    def write(name: str, md: Metadata[Any], *signers: CryptoSigner) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        md.to_file(str(meta / name), JSONSerializer(compact=False))

    root = Root(expires=expires, consistent_snapshot=opts.consistent_snapshot)
    root.add_key(s["alice"].public_key, "root")
    root.add_key(s["carol"].public_key, "targets")
    for role in ("snapshot", "timestamp"):
        root.add_key(s["online"].public_key, role)
    root_md = Metadata(root)
    if opts.earlier_root:
        write("1.root.json", root_md, s["alice"])
    root.version = 2
    root.add_key(s["bob"].public_key, "root")
    root.roles["root"].threshold = 2
    write("root.json", root_md, s["alice"], s["bob"])

    apps = Targets(expires=expires)
    apps.targets[TOOL] = TargetFile.from_file(TOOL, str(tdir / TOOL))
    targets = Targets(expires=expires)
    targets.targets[HELLO] = TargetFile.from_file(HELLO, str(tdir / HELLO))
    apps_role = DelegatedRole(
        opts.apps_name, [ids["@bob"]], 1, terminating=True, paths=list(opts.apps_paths)
    )
    targets.delegations = Delegations(
        {ids["@bob"]: s["bob"].public_key}, roles={opts.apps_name: apps_role}
    )
    write(f"{opts.apps_name}.json", Metadata(apps), s["bob"])
    write("targets.json", Metadata(targets), s["carol"])
    snapshot = Snapshot(expires=expires)
    snapshot.meta["apps.json"] = MetaFile(1)
    write("snapshot.json", Metadata(snapshot), s["online"])
    write("timestamp.json", Metadata(Timestamp(expires=expires)), s["online"])
    return ids


def committed(
    world: World, opts: Plain | None = None, change: Callable[[Path], object] | None = None
) -> tuple[Path, dict[str, str]]:
    """Alice's clone with the plain repository committed and pushed as main."""
    path = world.clone("alice")
    ids = build_plain(world, path, opts or Plain())
    if change is not None:
        change(path)
    git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "existing TUF repository")
    git(path, "push", "--quiet", "origin", "main")
    return path, ids


def import_args(
    world: World,
    ids: dict[str, str],
    *extra: str,
    users: tuple[str, ...] = ("@alice", "@bob", "@carol"),
    online: str | None = "",
) -> list[str]:
    owners = [a for u in users for a in ("--owner", f"{ids[u]}={u}")]
    uri = ["--online-key", online or world.online_uri] if online is not None else []
    return ["import", "sign/adopt", *owners, *uri, *extra]


def status(world: World, clone: str, code: int) -> dict[str, Any]:
    path = world.clone(clone)
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", "sign/adopt", "origin/sign/adopt")
    out = world.tufrepo(clone, "status", "--format", "json", code=code).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def test_import_sign_merge_publish_download(tmp_path: Path) -> None:
    world = World(tmp_path)
    alice, ids = committed(world)
    world.tufrepo("alice", *import_args(world, ids), user="@alice")

    st = status(world, "ci", code=1)
    assert not st["problems"], st
    roles = {r["role"]: r for r in st["roles"]}
    assert sorted(roles) == ["apps", "root", "targets"]
    assert roles["root"]["version"] == 3
    assert roles["root"]["signed"] == ["@alice"]
    assert roles["root"]["missing"] == ["@bob"]
    assert roles["targets"]["missing"] == ["@carol"]
    assert roles["apps"]["missing"] == ["@bob"]
    assert all(not r["problems"] for r in roles.values()), roles

    event_root = json.loads((world.clone("ci") / "metadata/root.json").read_bytes())["signed"]
    assert event_root["keys"][ids["@alice"]]["x-tuf-on-ci-keyowner"] == "@alice"
    assert event_root["keys"][ids["@bob"]]["x-tuf-on-ci-keyowner"] == "@bob"
    online = event_root["keys"][event_root["roles"]["timestamp"]["keyids"][0]]
    assert online["x-tuf-on-ci-online-uri"] == world.online_uri
    assert event_root["roles"]["timestamp"]["x-tuf-on-ci-expiry-period"] == 2
    history = sorted(p.name for p in (world.clone("ci") / "metadata/root_history").iterdir())
    assert history == ["1.root.json", "2.root.json", "3.root.json"]

    world.tufrepo("bob", "sign", "sign/adopt", user="@bob")
    world.tufrepo("carol", "sign", "sign/adopt", user="@carol")
    st = status(world, "ci", code=0)
    assert st["ready"], st
    world.merge("adopt")

    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")  # verifies the offline roles first
    verified = world.tufrepo("ci", "verify")
    assert "legacy keyid" in verified.stderr  # keyids kept: warnings, not problems
    site = tmp_path / "site"
    publish(ci, site)
    with serve(site) as server:
        version = ngclient_download(
            server.url, site / "metadata/1.root.json", tmp_path / "c", tmp_path / "o", [TOOL]
        )
    assert version == 3
    assert (tmp_path / "o" / "tool.bin").read_bytes() == (alice / "targets" / TOOL).read_bytes()


def test_chain_starting_at_the_current_root(tmp_path: Path) -> None:
    """No earlier root found: root_history starts at the current root v2 (a verify warning);
    a client bootstraps from that root."""
    world = World(tmp_path)
    _, ids = committed(world, Plain(earlier_root=False))
    world.tufrepo("alice", *import_args(world, ids), user="@alice")
    world.tufrepo("bob", "sign", "sign/adopt", user="@bob")
    world.tufrepo("carol", "sign", "sign/adopt", user="@carol")
    assert status(world, "ci", code=0)["ready"]
    world.merge("adopt")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    assert "root_history starts at v2" in world.tufrepo("ci", "verify").output
    site = tmp_path / "site"
    publish(ci, site)
    with serve(site) as server:
        version = ngclient_download(
            server.url, site / "metadata/2.root.json", tmp_path / "c", tmp_path / "o", [HELLO]
        )
    assert not (site / "metadata/1.root.json").exists()
    assert version == 3


def _assert_refused(world: World, args: list[str], *needles: str) -> None:
    git(world.clone("alice"), "fetch", "--quiet", "origin")
    before = world.snapshot("alice")
    result = world.tufrepo("alice", *args, user="@alice", code=2)
    assert world.snapshot("alice") == before
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _corrupt_targets_sig(path: Path) -> None:
    data = json.loads((path / "metadata/targets.json").read_bytes())
    data["signed"]["version"] = 7
    (path / "metadata/targets.json").write_text(json.dumps(data))


BAD: dict[str, tuple[Plain, Callable[[Path], object] | None, tuple[str, ...]]] = {
    "not a TUF repository": (
        Plain(),
        lambda p: (p / "metadata/root.json").unlink(),
        ("not a TUF repository",),
    ),
    "consistent_snapshot false": (Plain(consistent_snapshot=False), None, ("consistent_snapshot",)),
    "does not verify": (Plain(), _corrupt_targets_sig, ("targets: signed by 0/1",)),
    "delegation not tuf-on-ci shaped": (
        Plain(apps_paths=("apps/*", "other/*")),
        None,
        ("delegation apps",),
    ),
    "delegated role name": (
        Plain(apps_name="Apps", apps_paths=tuple(delegated_paths("Apps"))),
        None,
        ("invalid role name 'Apps'",),
    ),
    "file not in metadata": (
        Plain(),
        lambda p: (p / "targets" / "stray.txt").write_bytes(b"x"),
        ("targets/stray.txt",),
    ),
    "file differs from metadata": (
        Plain(),
        lambda p: (p / "targets" / HELLO).write_bytes(b"changed\n"),
        ("hello.txt",),
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_refuses_what_it_cannot_adopt(tmp_path: Path, case: str) -> None:
    opts, change, needles = BAD[case]
    world = World(tmp_path)
    _, ids = committed(world, opts, change)
    _assert_refused(world, import_args(world, ids), *needles)


def test_refuses_bad_options(tmp_path: Path) -> None:
    world = World(tmp_path)
    _, ids = committed(world)
    no_carol = import_args(world, ids, users=("@alice", "@bob"))
    _assert_refused(world, no_carol, "need an owner", ids["@carol"])
    wrong_online = import_args(world, ids, online=world.signers["@alice"])
    _assert_refused(world, wrong_online, "--online-key is not the snapshot key")
    _assert_refused(world, import_args(world, ids, "--owner", "ffff=@dave"), "ffff: matches no")
    _assert_refused(world, import_args(world, ids, online=None), "--online-key")
    _assert_refused(world, import_args(world, ids, "--owner", "xyz=@dave"), "KEYID=@name")
    _assert_refused(
        world, import_args(world, ids, "--signing-period", "400"), "signing period (400 days)"
    )


def test_event_refuses_changed_key_material_and_forged_history(tmp_path: Path) -> None:
    """The event keeps main's keyids: swapping the key behind a kept keyid, or an earlier
    root that does not lead to main's root, is a problem in the status."""
    world = World(tmp_path)
    _, ids = committed(world)
    world.tufrepo("alice", *import_args(world, ids), user="@alice")
    _assert_refused(world, import_args(world, ids), "sign/adopt exists already")
    mallory = world.clone("mallory")
    git(mallory, "checkout", "--quiet", "-B", "sign/adopt", "origin/sign/adopt")
    root_file = mallory / "metadata/root.json"
    data = json.loads(root_file.read_bytes())
    keys = data["signed"]["keys"]
    keys[ids["@bob"]]["keyval"] = keys[ids["@carol"]]["keyval"]
    root_file.write_text(json.dumps(data, indent=1, sort_keys=True))
    (mallory / "metadata/root_history/3.root.json").write_bytes(root_file.read_bytes())
    (mallory / "metadata/root_history/1.root.json").write_bytes(
        (mallory / "metadata/root_history/2.root.json").read_bytes()
    )
    git(mallory, "commit", "--quiet", "-am", "swap bob's key")
    git(mallory, "push", "--quiet", "origin", "sign/adopt")
    st = status(world, "ci", code=1)
    root = next(r for r in st["roles"] if r["role"] == "root")
    assert any("changed its key material" in p for p in root["problems"]), root
    assert any("1.root.json" in p for p in st["problems"]), st


def test_existing_keyowners_need_no_owner_option(tmp_path: Path) -> None:
    """Pure: keys that already name their owner keep it; the others need --owner."""
    from tufrepo.errors import InputError
    from tufrepo.importer import ImportConfig, adopt
    from tufrepo.signers import import_public_key

    world = World(tmp_path)
    ids = build_plain(world, tmp_path / "plain", Plain())
    meta = tmp_path / "plain/metadata"
    root = Metadata[Root].from_file(str(meta / "root.json")).signed
    targets = Metadata[Targets].from_file(str(meta / "targets.json")).signed
    root.keys[ids["@alice"]].unrecognized_fields["x-tuf-on-ci-keyowner"] = "@alice"
    online = import_public_key(world.online_uri)
    online.unrecognized_fields["x-tuf-on-ci-online-uri"] = world.online_uri
    with pytest.raises(InputError, match=ids["@bob"]):
        adopt(root, targets, {}, ImportConfig({ids["@carol"][:12]: "@carol"}), online)
    cfg = ImportConfig({ids["@carol"][:12]: "@carol", ids["@bob"]: "@bob"})
    adopt(root, targets, {}, cfg, online)
    assert root.keys[ids["@alice"]].unrecognized_fields["x-tuf-on-ci-keyowner"] == "@alice"
    assert targets.unrecognized_fields["x-tuf-on-ci-expiry-period"] == 365
    assert root.roles["snapshot"].unrecognized_fields["x-tuf-on-ci-signing-period"] == 60
