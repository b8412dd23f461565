"""Generate (once) and cache large tufrepo repositories for the benchmarks.

    python benchmarks/generate.py 100000 --layout flat     # or --layout bins
    python benchmarks/generate.py 1000000 --layout bins

A repository of N tiny artifacts (``targets/<i>.bin``) in tuf-on-ci's format, on ``main`` of
a bare repository under ``~/.cache/tufrepo-bench/<layout>-<N>/`` (``$TUFREPO_BENCH_CACHE``
overrides), with the keys that sign it (``keys/bench.pem``: the offline signer of @bench;
``keys/online.pem``: snapshot/timestamp). ``flat``: the top-level targets role lists every
artifact. ``bins``: targets delegates to succinct hash bins (TAP 15, python-tuf's
``SuccinctRoles``, named ``targets-bins-<hex>``), as many as ``tufrepo delegate --bins``
would choose (``roles.bins_for``: 256 for 100,000, 1,024 for a million); the metadata is
written directly with python-tuf.

The git objects are written with ``git fast-import`` (no work tree), so generating a million
artifacts takes minutes once; every later run reuses the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner, Key
from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

from tufrepo.repository import serialize
from tufrepo.roles import (
    EXPIRY_PERIOD,
    KEYOWNER,
    ONLINE_ROLES,
    ONLINE_URI,
    SIGNING_PERIOD,
    bins_for,
    bit_length_for,
)

PERIODS = {EXPIRY_PERIOD: 365, SIGNING_PERIOD: 60}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def cache_root() -> Path:
    return Path(os.environ.get("TUFREPO_BENCH_CACHE", Path.home() / ".cache/tufrepo-bench"))


def content(i: int) -> bytes:
    """The bytes of artifact ``i`` (tiny and distinct)."""
    return b"artifact %d\n" % i


def artifact_path(i: int, layout: str = "flat") -> str:
    """``<i>.bin``; in bins, ``<i // 1000>/<i>.bin`` (the top-level targets role owns every
    path when it delegates to bins; a directory of a million entries would make every git
    tree operation, and ``git fast-import`` itself, quadratic)."""
    return f"{i}.bin" if layout == "flat" else f"{i // 1000}/{i}.bin"


def _pem_key(path: Path) -> CryptoSigner:
    if not path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    private = serialization.load_pem_private_key(path.read_bytes(), None)
    return CryptoSigner(private)


def signers(base: Path) -> tuple[CryptoSigner, CryptoSigner]:
    """(@bench's offline signer, the online signer), their keys carrying tuf-on-ci's fields."""
    from tufrepo.roles import with_keyid

    out = []
    for name, field, value in (
        ("bench", KEYOWNER, "@bench"),
        ("online", ONLINE_URI, f"file2:{base / 'keys/online.pem'}"),
    ):
        signer = _pem_key(base / f"keys/{name}.pem")
        key: Key = signer.public_key
        key.unrecognized_fields[field] = value
        key = with_keyid(key)
        out.append(CryptoSigner(signer._private_key, key))  # type: ignore[arg-type]
    return out[0], out[1]


def bits_for(n: int) -> int:
    """The bins ``tufrepo delegate --bins`` would choose for ``n`` artifacts."""
    return bit_length_for(bins_for(n))


def build_metadata(
    n: int, layout: str, offline: CryptoSigner, online: CryptoSigner
) -> dict[str, bytes]:
    """Every metadata file (``metadata/<name>``) of the repository, signed."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
    root = Root(expires=expires, consistent_snapshot=True)
    root.unrecognized_fields.update(PERIODS)
    for role in ("root", "targets"):
        root.add_key(offline.public_key, role)
    for role in ONLINE_ROLES:
        root.add_key(online.public_key, role)
        root.roles[role].unrecognized_fields.update(PERIODS)
    top = Targets(expires=expires)
    top.unrecognized_fields.update(PERIODS)
    roles: dict[str, Targets] = {"targets": top}
    entries = (
        TargetFile(len(content(i)), {"sha256": hashlib.sha256(content(i)).hexdigest()},
                   artifact_path(i, layout))
        for i in range(n)
    )  # fmt: skip
    if layout == "flat":
        top.targets = {tf.path: tf for tf in entries}
    else:
        succinct = SuccinctRoles([offline.public_key.keyid], 1, bits_for(n), "targets-bins")
        top.delegations = Delegations(
            {offline.public_key.keyid: offline.public_key}, succinct_roles=succinct
        )
        for name in succinct.get_roles():
            roles[name] = Targets(expires=expires)
            roles[name].unrecognized_fields.update(PERIODS)
        for tf in entries:
            roles[succinct.get_role_for_target(tf.path)].targets[tf.path] = tf
    files: dict[str, bytes] = {}
    for name, signed in [("root", root), *roles.items()]:
        md: Metadata[Any] = Metadata(signed)
        md.sign(offline)
        files[f"{name}.json"] = serialize(md)
    files["root_history/1.root.json"] = files["root.json"]
    snapshot = Snapshot(expires=expires)
    for name, signed in roles.items():  # as online-sign writes them: version and length
        snapshot.meta[f"{name}.json"] = MetaFile(signed.version, len(files[f"{name}.json"]))
    snap_md: Metadata[Any] = Metadata(snapshot)
    snap_md.sign(online)
    files["snapshot.json"] = serialize(snap_md)
    data = files["snapshot.json"]
    ts: Metadata[Any] = Metadata(
        Timestamp(
            expires=expires,
            snapshot_meta=MetaFile(1, len(data), {"sha256": hashlib.sha256(data).hexdigest()}),
        )
    )
    ts.sign(online)
    files["timestamp.json"] = serialize(ts)
    return files


def _blob(out: Any, data: bytes) -> None:
    out.write(b"data %d\n" % len(data))
    out.write(data)
    out.write(b"\n")


def write_git(bare: Path, n: int, layout: str, metadata: dict[str, bytes]) -> str:
    """One commit on ``main`` of ``bare`` holding the metadata and the artifacts."""
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)],
                   check=True)  # fmt: skip
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet"], cwd=bare, stdin=subprocess.PIPE,
        env={**os.environ, **GIT_ENV},
    )  # fmt: skip
    assert proc.stdin is not None
    out = proc.stdin
    stamp = int(time.time())
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer bench <bench@localhost> %d +0000\n" % stamp)
    _blob(out, b"Generated benchmark repository\n")
    for name, data in sorted(metadata.items()):
        out.write(f"M 100644 inline metadata/{name}\n".encode())
        _blob(out, data)
    for i in range(n):
        out.write(f"M 100644 inline targets/{artifact_path(i, layout)}\n".encode())
        _blob(out, content(i))
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "gc", "--quiet"], cwd=bare, check=True)
    return subprocess.run(
        ["git", "rev-parse", "main"], cwd=bare, check=True, capture_output=True, text=True
    ).stdout.strip()


def generate(n: int, layout: str) -> Path:
    """The cached repository directory for ``n`` artifacts in ``layout`` (built if missing)."""
    base = cache_root() / f"{layout}-{n}"
    info = base / "info.json"
    if info.exists():
        return base
    base.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    offline, online = signers(base)
    metadata = build_metadata(n, layout, offline, online)
    seed = write_git(base / "upstream.git", n, layout, metadata)
    info.write_text(json.dumps({"n": n, "layout": layout, "seed": seed,
                                "seconds": round(time.perf_counter() - start, 1)}))  # fmt: skip
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--layout", choices=["flat", "bins"], default="flat")
    args = parser.parse_args()
    base = generate(args.n, args.layout)
    print(base, (base / "info.json").read_text())


if __name__ == "__main__":
    main()
