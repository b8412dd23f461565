"""Helpers for the publish/client tests: a tuf-on-ci style repository built with python-tuf,
a static HTTP server on 127.0.0.1 and the tuf-js client.

The repository builder writes what a tufrepo (or tuf-on-ci) checkout holds: metadata/ with
root (three versions, rotated), targets, one delegated role, snapshot and timestamp (meta with
length and hashes), metadata/root_history/<N>.root.json, and targets/ with the artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey
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

from tufrepo.roles import EXPIRY_PERIOD as EXPIRY
from tufrepo.roles import KEYOWNER, ONLINE_URI
from tufrepo.roles import SIGNING_PERIOD as SIGNING

DELEGATED = "R"
TUFJS_DIR = Path(__file__).resolve().parent / "tufjs"


def _signer(fields: dict[str, Any]) -> CryptoSigner:
    """An ed25519 signer whose keyid covers the custom fields (as tuf-on-ci computes it)."""
    base = CryptoSigner.generate_ed25519()
    key = base.public_key
    data = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval, **fields}
    keyid = hashlib.sha256(encode_canonical(data).encode()).hexdigest()
    pub = SSlibKey(keyid, key.keytype, key.scheme, key.keyval, dict(fields))
    return CryptoSigner(base._private_key, pub)  # re-keyed copy of our own key


def _bytes(md: Metadata[Any]) -> bytes:
    return md.to_bytes(JSONSerializer(compact=False))


@dataclass
class RepoBuilder:
    """A small tuf-on-ci style repository on disk; every method writes what it changes.

    Root rotation: v1 {@alice} 1-of-1, v2 {@alice, @bob} 2-of-2, v3 {@bob, @carol} 1-of-2 with
    a new online key, so a client must walk every root version to verify the timestamp.
    """

    path: Path
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    signers: dict[str, CryptoSigner] = field(default_factory=dict)
    roles: dict[str, Metadata[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.now = self.now.replace(microsecond=0)
        for name in ("alice", "bob", "carol"):
            self.signers[name] = _signer({KEYOWNER: f"@{name}"})
        for name in ("online1", "online2"):
            self.signers[name] = _signer({ONLINE_URI: f"file2:{name}.pem"})
        (self.path / "metadata" / "root_history").mkdir(parents=True, exist_ok=True)
        (self.path / "targets").mkdir(exist_ok=True)

    # --- building blocks ---------------------------------------------------------------
    def expires(self, days: float) -> datetime:
        return self.now + timedelta(days=days)

    def write(self, name: str) -> None:
        md = self.roles[name]
        data = _bytes(md)
        (self.path / "metadata" / f"{name}.json").write_bytes(data)
        if name == "root":
            hist = self.path / "metadata" / "root_history" / f"{md.signed.version}.root.json"
            hist.write_bytes(data)

    def sign(self, name: str, *signers: str) -> None:
        md = self.roles[name]
        md.signatures.clear()
        for s in signers:
            md.sign(self.signers[s], append=True)
        self.write(name)

    def root_signed(self) -> Root:
        root: Root = self.roles["root"].signed
        return root

    # --- initial repository -------------------------------------------------------------
    def build(self, *, rotations: bool = True) -> RepoBuilder:
        """Root v1 (then v2, v3 when ``rotations``), targets, role R, snapshot, timestamp."""
        root = Root(expires=self.expires(365), consistent_snapshot=True)
        root.unrecognized_fields.update({EXPIRY: 365, SIGNING: 60})
        self._set_root_keys(root, ["alice"], 1, online="online1")
        self.roles["root"] = Metadata(root)
        self.sign("root", "alice")
        if rotations:
            self.rotate_root(["alice", "bob"], 2, old=["alice"], new=["alice", "bob"])
            self.rotate_root(
                ["bob", "carol"], 1, old=["alice", "bob"], new=["bob"], online="online2"
            )

        targets = Targets(expires=self.expires(365))
        targets.unrecognized_fields.update({EXPIRY: 365, SIGNING: 60})
        targets.delegations = Delegations(keys={}, roles={})
        bob = self.signers["bob"].public_key
        targets.delegations.keys[bob.keyid] = bob
        paths = [f"{DELEGATED}/*", f"{DELEGATED}/*/*", f"{DELEGATED}/*/*/*", f"{DELEGATED}/*/*/*/*"]
        targets.delegations.roles[DELEGATED] = DelegatedRole(
            DELEGATED, [bob.keyid], 1, terminating=True, paths=paths
        )
        self.roles["targets"] = Metadata(targets)
        delegated = Targets(expires=self.expires(200))
        delegated.unrecognized_fields.update({EXPIRY: 200, SIGNING: 30})
        self.roles[DELEGATED] = Metadata(delegated)
        self.set_target("targets", "readme.txt", b"hello, tuf\n")
        self.set_target(DELEGATED, f"{DELEGATED}/a/b/c/app-1.0.tar.gz", b"app 1.0" * 100)
        self.sign("targets", *self.targets_signers())
        self.sign(DELEGATED, "bob")

        self.roles["snapshot"] = Metadata(Snapshot(expires=self.expires(21)))
        self.roles["timestamp"] = Metadata(Timestamp(expires=self.expires(2)))
        self.snapshot_timestamp(bump=False)
        return self

    def add_role(self, name: str, *, expires_days: float = 200) -> None:
        """A new delegated role owned by @bob (tuf-on-ci paths), with no artifacts yet."""
        targets: Targets = self.roles["targets"].signed
        assert targets.delegations is not None
        assert targets.delegations.roles is not None
        bob = self.signers["bob"].public_key
        paths = [f"{name}/*", f"{name}/*/*", f"{name}/*/*/*", f"{name}/*/*/*/*"]
        targets.delegations.roles[name] = DelegatedRole(
            name, [bob.keyid], 1, terminating=True, paths=paths
        )
        role = Targets(expires=self.expires(expires_days))
        role.unrecognized_fields.update({EXPIRY: 200, SIGNING: 30})
        self.roles[name] = Metadata(role)
        self.sign(name, "bob")
        self.bump("targets")

    def targets_signers(self) -> list[str]:
        role = self.root_signed().roles["targets"]
        return [
            n for n in ("alice", "bob", "carol") if self.signers[n].public_key.keyid in role.keyids
        ]

    def _set_root_keys(
        self, root: Root, owners: list[str], threshold: int, online: str | None = None
    ) -> None:
        for keyid in list(root.keys):
            for role in root.roles.values():
                if keyid in role.keyids:
                    role.keyids.remove(keyid)
            del root.keys[keyid]
        for owner in owners:
            for role in ("root", "targets"):
                root.add_key(self.signers[owner].public_key, role)
        root.roles["root"].threshold = threshold
        for role in ("snapshot", "timestamp"):
            root.add_key(self.signers[online or "online1"].public_key, role)
            root.roles[role].unrecognized_fields.update(
                {EXPIRY: 21 if role == "snapshot" else 2, SIGNING: 10 if role == "snapshot" else 1}
            )

    def rotate_root(
        self,
        owners: list[str],
        threshold: int,
        *,
        old: list[str],
        new: list[str],
        online: str | None = None,
    ) -> None:
        """A new root version with ``owners`` (signed by ``old`` and ``new`` signers)."""
        root = self.root_signed()
        current_online = next(
            n
            for n in ("online1", "online2")
            if self.signers[n].public_key.keyid in root.roles["timestamp"].keyids
        )
        self._set_root_keys(root, owners, threshold, online=online or current_online)
        root.version += 1
        self.sign("root", *dict.fromkeys(old + new))

    # --- artifacts and roles ------------------------------------------------------------
    def set_target(self, role: str, target_path: str, data: bytes | None) -> None:
        """Write (or with ``None`` remove) an artifact and its entry in ``role``."""
        signed: Targets = self.roles[role].signed
        file = self.path / "targets" / target_path
        if data is None:
            file.unlink()
            del signed.targets[target_path]
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        signed.targets[target_path] = TargetFile.from_data(target_path, data, ["sha256"])

    def set_descriptor(self, role: str, target_path: str, data: bytes) -> None:
        """A target listed in metadata whose artifact is hosted elsewhere (no file)."""
        signed: Targets = self.roles[role].signed
        signed.targets[target_path] = TargetFile.from_data(target_path, data, ["sha256"])

    def bump(self, role: str, *signers: str) -> None:
        """Version + 1 and re-sign an offline role (default signers: its current ones)."""
        self.roles[role].signed.version += 1
        if not signers:
            signers = tuple(self.targets_signers()) if role == "targets" else ("bob",)
        self.sign(role, *signers)

    def online_signer(self) -> str:
        tkeys = self.root_signed().roles["timestamp"].keyids
        return next(n for n in ("online1", "online2") if self.signers[n].public_key.keyid in tkeys)

    def snapshot_timestamp(
        self,
        *,
        bump: bool = True,
        meta_override: dict[str, int] | None = None,
        timestamp_expires: datetime | None = None,
    ) -> None:
        """New snapshot (listing every targets-type role) and timestamp, both with hashes."""
        snap: Snapshot = self.roles["snapshot"].signed
        for name in self.roles:
            if name in ("root", "snapshot", "timestamp"):
                continue
            data = _bytes(self.roles[name])
            meta = MetaFile.from_data(self.roles[name].signed.version, data, ["sha256"])
            snap.meta[f"{name}.json"] = meta
        for name, version in (meta_override or {}).items():
            snap.meta[name] = MetaFile(version=version)
        if bump:
            snap.version += 1
        snap.expires = self.expires(21)
        online = self.online_signer()
        self.sign("snapshot", online)
        ts: Timestamp = self.roles["timestamp"].signed
        sdata = _bytes(self.roles["snapshot"])
        ts.snapshot_meta = MetaFile.from_data(snap.version, sdata, ["sha256"])
        if bump:
            ts.version += 1
        ts.expires = timestamp_expires or self.expires(2)
        self.sign("timestamp", online)

    def metadata_bytes(self, name: str) -> bytes:
        return (self.path / "metadata" / f"{name}.json").read_bytes()


# --- a static HTTP server --------------------------------------------------------------


class SiteServer:
    """Serves a directory on 127.0.0.1 from a thread; ``before_next`` runs a callback
    right after the next request for ``trigger`` was answered, before any later request
    is answered (so a test can publish "in the middle" of a client's update)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._hook: tuple[str, Callable[[], None]] | None = None
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.directory), **kwargs)

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                    super().do_GET()
                    hook = server._hook
                    if hook and self.path.endswith(hook[0]):
                        server._hook = None
                        self.wfile.flush()
                        hook[1]()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def before_next(self, trigger: str, callback: Callable[[], None]) -> None:
        self._hook = (trigger, callback)

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[SiteServer]:
    with SiteServer(directory) as server:
        yield server


# --- the tuf-js client ------------------------------------------------------------------


def tufjs_available() -> bool:
    return shutil.which("node") is not None and (TUFJS_DIR / "node_modules" / "tuf-js").is_dir()


@dataclass
class TufJsResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data


def run_tufjs(
    url: str, root: Path, cache: Path, out: Path, targets: list[str], *, timeout: float = 60
) -> TufJsResult:
    """Run tests/tufjs/client.js: refresh from ``root`` and download ``targets``."""
    cmd = ["node", str(TUFJS_DIR / "client.js"), "--url", url, "--root", str(root)]
    cmd += ["--cache", str(cache), "--out", str(out), *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return TufJsResult(proc.returncode, proc.stdout, proc.stderr)


# --- a published site and the attacks on it -------------------------------------------------


@dataclass
class Published:
    """A repository published into ``site`` and served by ``server``."""

    repo: RepoBuilder
    site: Path
    server: SiteServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def root1(self) -> Path:
        return self.repo.path / "metadata" / "root_history" / "1.root.json"

    def release(self, new_target: str) -> None:
        """A new artifact in role R (R version + 1), new snapshot and timestamp."""
        self.repo.set_target(DELEGATED, new_target, new_target.encode() * 40)
        self.repo.bump(DELEGATED)
        self.repo.snapshot_timestamp()

    def force_online(self) -> None:
        """Put the repository's snapshot and timestamp on the site as they are, bypassing
        publish's checks (as a broken pipeline or an attacker with the online key would)."""
        version = self.repo.roles["snapshot"].signed.version
        snap = self.site / "metadata" / f"{version}.snapshot.json"
        snap.write_bytes(self.repo.metadata_bytes("snapshot"))
        ts = self.site / "metadata" / "timestamp.json"
        ts.write_bytes(self.repo.metadata_bytes("timestamp"))


APP = f"{DELEGATED}/a/b/c/app-1.0.tar.gz"
APP2 = f"{DELEGATED}/a/b/c/app-2.0.tar.gz"


def tamper_artifact(p: Published) -> None:
    (artifact,) = p.site.glob("targets/R/a/b/c/*.app-1.0.tar.gz")
    data = artifact.read_bytes()
    artifact.write_bytes(b"X" + data[1:])  # same length, other bytes


def replace_with_older_version(p: Published) -> None:
    """metadata/2.R.json served with the content of 1.R.json (both signed, older)."""
    from tufrepo.publish import publish

    p.release(APP2)
    publish(p.repo.path, p.site)
    older = (p.site / "metadata" / "1.R.json").read_bytes()
    (p.site / "metadata" / "2.R.json").write_bytes(older)


def expired_timestamp(p: Published) -> None:
    p.repo.snapshot_timestamp(timestamp_expires=p.repo.now - timedelta(hours=1))
    p.force_online()


def snapshot_names_missing_version(p: Published) -> None:
    p.repo.snapshot_timestamp(meta_override={f"{DELEGATED}.json": 99})
    p.force_online()


ATTACKS: dict[str, Callable[[Published], None]] = {
    "tampered artifact": tamper_artifact,
    "older version under a newer name": replace_with_older_version,
    "expired timestamp": expired_timestamp,
    "snapshot names a missing role version": snapshot_names_missing_version,
}


@contextlib.contextmanager
def published_site(tmp_path: Path) -> Iterator[Published]:
    from tufrepo.publish import publish

    repo = RepoBuilder(tmp_path / "repo").build()
    site = tmp_path / "site"
    publish(repo.path, site)
    with serve(site) as server:
        yield Published(repo, site, server)


def ngclient_download(url: str, root: Path, cache: Path, out: Path, targets: list[str]) -> int:
    """python-tuf's ngclient used directly (not through tufrepo): refresh, download
    ``targets`` into ``out``; returns the trusted root version."""
    from tuf.ngclient import Updater

    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    bootstrap = None if (cache / "root.json").exists() else root.read_bytes()
    updater = Updater(
        str(cache), f"{url}/metadata/", str(out), f"{url}/targets/", bootstrap=bootstrap
    )
    updater.refresh()
    for target in targets:
        info = updater.get_targetinfo(target)
        assert info is not None, target
        updater.download_target(info, str(out / target.rsplit("/", 1)[-1]))
    version: int = Metadata.from_file(str(cache / "root.json")).signed.version
    return version
