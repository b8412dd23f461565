"""A delegated role in hash bins beside a named role, and attacks on bins refused by
python-tuf, tuf-js, check-site and online-sign."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater

from tests.git_helpers import World, git
from tests.site_helpers import ngclient_download, run_tufjs, serve, tufjs_available
from tufrepo.client import inspect_site
from tufrepo.publish import publish

pytestmark = pytest.mark.git

ARTIFACTS = [f"rr/rel/{i}/app-{i}.tar.gz" for i in range(16)]


@dataclass
class Built:
    world: World
    ci: Path
    site: Path

    @property
    def meta(self) -> Path:
        return self.ci / "metadata"

    @property
    def root1(self) -> Path:
        return self.meta / "root_history" / "1.root.json"

    def bins(self) -> Any:
        return Metadata.from_file(str(self.meta / "rr.json")).signed.delegations.succinct_roles


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("binned")
    world = World(tmp)
    world.init()
    world.tufrepo("alice", "delegate", "sign/roles", "rr", user="@alice")
    world.tufrepo(
        "alice", "delegate", "sign/roles", "ss", "--signers", "@alice,@carol", user="@alice"
    )
    world.tufrepo("carol", "sign", "sign/roles", user="@carol")
    world.tufrepo("alice", "sign", "sign/roles", user="@alice")
    world.merge("roles")
    src = tmp / "files"
    src.mkdir()
    args = []
    for i, path in enumerate([*ARTIFACTS, "ss/s.txt"]):
        (src / str(i)).write_text(f"{path}\n")
        args += ["--target", f"{path}={src / str(i)}"]
    world.tufrepo("appci", "event", "open", "rel", "--repo", str(world.clone("appci")), *args)
    world.tufrepo("alice", "sign", "sign/rel", user="@alice")
    world.tufrepo("carol", "sign", "sign/rel", user="@carol")
    world.merge("rel")
    # R in bins, the number chosen from its artifact count (16 artifacts: 16 bins)
    world.tufrepo("alice", "delegate", "sign/bins", "rr", "--bins", user="@alice")
    world.merge("bins")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    world.tufrepo("ci", "verify")
    site = tmp / "site"
    publish(ci, site)
    return Built(world, ci, site)


def test_delegated_role_in_bins_downloads(built: Built, tmp_path: Path) -> None:
    bins = built.bins()
    assert bins.number_of_bins == 16
    assert bins.name_prefix == "rr-bins"
    several = ARTIFACTS[:5]
    assert len({bins.get_role_for_target(p) for p in several}) > 1
    with serve(built.site) as server:
        ngclient_download(server.url, built.root1, tmp_path / "c", tmp_path / "o", several)
        if tufjs_available():
            result = run_tufjs(server.url, built.root1, tmp_path / "j", tmp_path / "jo", several)
            assert result.returncode == 0, result.stderr
        report = inspect_site(server.url, built.root1.read_bytes())
    assert report, report.problems
    assert set(bins.get_roles()) | {"rr", "ss"} <= {r.name for r in report.roles}


# --- attacks ---------------------------------------------------------------------------------


def _signer(world: World, user: str, keys: dict[str, Key]) -> CryptoSigner:
    uri = world.online_uri if user == "online" else world.signers[user]
    private = load_pem_private_key(Path(uri.removeprefix("file2:")).read_bytes(), None)
    public = CryptoSigner(private).public_key  # type: ignore[arg-type]
    key = next(k for k in keys.values() if k.keyval == public.keyval)
    return CryptoSigner(private, key)  # type: ignore[arg-type]


def _sign(md: Metadata[Any], signer: CryptoSigner) -> bytes:
    md.signatures.clear()
    md.sign(signer)
    data: bytes = md.to_bytes(JSONSerializer())
    return data


@dataclass
class Edit:
    """A tampered state: bins re-signed by ``user``, snapshot without ``dropped``."""

    b: Built
    files: dict[str, bytes]

    def load(self, role: str) -> Metadata[Any]:
        data = self.files.get(role) or (self.b.meta / f"{role}.json").read_bytes()
        return Metadata.from_bytes(data)

    def resign(self, role: str, md: Metadata[Any], user: str) -> None:
        md.signed.version += 1
        keys = {**self.load("rr").signed.delegations.keys, **self.load("root").signed.keys}
        keys.update(self.load("targets").signed.delegations.keys)
        self.files[role] = _sign(md, _signer(self.b.world, user, keys))


def _wrong_bin(e: Edit) -> str:
    bins = e.b.bins()
    path = ARTIFACTS[0]
    right = bins.get_role_for_target(path)
    wrong = next(r for r in bins.get_roles() if r != right)
    src, dst = e.load(right), e.load(wrong)
    dst.signed.targets[path] = src.signed.targets.pop(path)
    e.resign(right, src, "@alice")
    e.resign(wrong, dst, "@alice")
    return path


def _other_roles_key(e: Edit) -> str:
    path = ARTIFACTS[0]
    role = e.b.bins().get_role_for_target(path)
    md = e.load(role)
    e.resign(role, md, "@carol")  # carol signs ss, not rr's bins
    return path


def _missing_from_snapshot(e: Edit) -> str:
    path = ARTIFACTS[0]
    e.files["-drop"] = e.b.bins().get_role_for_target(path).encode()
    return path


ATTACKS: dict[str, Callable[[Edit], str]] = {
    "artifact in the wrong bin": _wrong_bin,
    "bin signed by another role's key": _other_roles_key,
    "bin missing from snapshot": _missing_from_snapshot,
}


CHECK_SITE_SAYS = {
    "artifact in the wrong bin": "(clients never find it)",
    "bin signed by another role's key": "was signed by 0/1 keys",
    "bin missing from snapshot": "is not part of snapshot",
}
ONLINE_SIGN_SAYS = {
    "artifact in the wrong bin": "lists rr/rel/0/app-0.tar.gz, which belongs to rr-bins-",
    "bin signed by another role's key": "signature by unknown key",
    "bin missing from snapshot": ".json is missing",
}


def _republish(e: Edit, site: Path) -> None:
    """Write the tampered bins, a snapshot listing them (minus a dropped bin) and a timestamp,
    signed with the real online key, over a copy of the site."""
    meta = site / "metadata"
    ts = Metadata[Timestamp].from_file(str(meta / "timestamp.json"))
    snap = Metadata[Snapshot].from_file(
        str(meta / f"{ts.signed.snapshot_meta.version}.snapshot.json")
    )
    drop = e.files.pop("-drop", b"").decode()
    for role, data in e.files.items():
        version = Metadata.from_bytes(data).signed.version
        (meta / f"{version}.{role}.json").write_bytes(data)
        snap.signed.meta[f"{role}.json"] = MetaFile(version)
    snap.signed.meta.pop(f"{drop}.json", None)
    root = e.load("root").signed
    snap.signed.version += 1
    snap_bytes = _sign(snap, _signer(e.b.world, "online", root.keys))
    (meta / f"{snap.signed.version}.snapshot.json").write_bytes(snap_bytes)
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(snap.signed.version)
    (meta / "timestamp.json").write_bytes(_sign(ts, _signer(e.b.world, "online", root.keys)))


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_clients_refuse_bin_attacks(built: Built, tmp_path: Path, attack: str) -> None:
    site = tmp_path / "site"
    shutil.copytree(built.site, site)
    edit = Edit(built, {})
    path = ATTACKS[attack](edit)
    _republish(edit, site)
    with serve(site) as server:
        (tmp_path / "py").mkdir()
        updater = Updater(str(tmp_path / "py"), f"{server.url}/metadata/", str(tmp_path),
                          f"{server.url}/targets/", bootstrap=built.root1.read_bytes())  # fmt: skip
        try:
            found = updater.get_targetinfo(path)
        except RepositoryError:
            found = None
        assert found is None  # python-tuf: not found, or the bin is refused
        if tufjs_available():
            result = run_tufjs(server.url, built.root1, tmp_path / "j", tmp_path / "jo", [path])
            assert result.returncode == 1, result.stdout
        report = inspect_site(server.url, built.root1.read_bytes())
    assert not report
    bin_name = built.bins().get_role_for_target(path)
    assert any(CHECK_SITE_SAYS[attack] in p and bin_name in p for p in report.problems)


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_online_sign_refuses_bin_attacks(built: Built, tmp_path: Path, attack: str) -> None:
    clone = tmp_path / "main"
    git(built.world.root, "clone", "--quiet", str(built.world.remote), str(clone))
    edit = Edit(built, {})
    ATTACKS[attack](edit)
    drop = edit.files.pop("-drop", b"").decode()
    for role, data in edit.files.items():
        (clone / "metadata" / f"{role}.json").write_bytes(data)
    if drop:  # its file gone: snapshot cannot list it
        (clone / "metadata" / f"{drop}.json").unlink()
    git(clone, "commit", "--quiet", "-am", "attack")
    head = git(clone, "rev-parse", "HEAD")
    result = built.world.tufrepo("x", "online-sign", "--no-push", "--repo", str(clone), code=1)
    assert ONLINE_SIGN_SAYS[attack] in result.stderr
    assert git(clone, "rev-parse", "HEAD") == head
    assert not git(clone, "status", "--porcelain")
