"""How signing-event work grows: repository size vs the size of the change.

Builds repositories with R delegated roles of A artifacts each (metadata written directly with
python-tuf and committed to a real git repository), then opens an event that changes ONE
artifact and times `status` (the signing-event automation) and `update-targets`, and times a
full `verify` for comparison (which by design reads everything).

    python benchmarks/bench_event.py            # prints a markdown table
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, TargetFile, Targets

from tufrepo.flows import update_targets, verify
from tufrepo.repository import serialize
from tufrepo.roles import (
    EXPIRY_PERIOD,
    KEYOWNER,
    ONLINE_ROLES,
    ONLINE_URI,
    SIGNING_PERIOD,
    ensure_delegations,
    new_delegated_role,
    with_keyid,
)
from tufrepo.workspace import Workspace

ENV = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *ENV, *args], cwd=cwd, check=True, capture_output=True)


def build(base: Path, roles: int, artifacts: int) -> Path:
    """A committed repository on main with ``roles`` x ``artifacts`` files."""
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    signer = CryptoSigner.generate_ed25519()
    key = signer.public_key
    key.unrecognized_fields[KEYOWNER] = "@bench"
    key = with_keyid(key)
    signer = CryptoSigner(signer._private_key, key)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=300)
    root = Root(expires=expires, consistent_snapshot=True)
    online = with_keyid(type(key).from_dict("x", {**key.to_dict(), ONLINE_URI: "file2:/dev/null"}))
    for name in ("root", "targets"):
        root.add_key(key, name)
    for name in ONLINE_ROLES:
        root.add_key(online, name)
        root.roles[name].unrecognized_fields.update({EXPIRY_PERIOD: 365, SIGNING_PERIOD: 60})
    top = Targets(expires=expires)
    delegations = ensure_delegations(top)
    files: dict[str, Targets] = {}
    (repo / "targets").mkdir()
    for r in range(roles):
        name = f"role{r}"
        delegations.keys[key.keyid] = key
        assert delegations.roles is not None
        delegations.roles[name] = new_delegated_role(name, [key.keyid], 1)
        md = Targets(expires=expires)
        md.unrecognized_fields.update({EXPIRY_PERIOD: 365, SIGNING_PERIOD: 60})
        for a in range(artifacts):
            rel = f"{name}/d/{a}.bin"
            path = repo / "targets" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{rel}\n".encode() * 20)
            md.targets[rel] = TargetFile.from_file(rel, str(path), ["sha256"])
        files[name] = md
    for signed in (root, top):
        signed.unrecognized_fields.update({EXPIRY_PERIOD: 365, SIGNING_PERIOD: 60})
    meta = repo / "metadata"
    (meta / "root_history").mkdir(parents=True)
    for name, signed in [("root", root), ("targets", top), *files.items()]:
        md = Metadata(signed)
        md.sign(signer)
        data = serialize(md)
        (meta / f"{name}.json").write_bytes(data)
        if name == "root":
            (meta / "root_history/1.root.json").write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "bench repository")
    return repo


def timed(fn: object, *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start


def measure(roles: int, artifacts: int) -> tuple[float, float, float]:
    base = Path(tempfile.mkdtemp(prefix="tufrepo-bench-"))
    try:
        repo = build(base, roles, artifacts)
        git(repo, "checkout", "--quiet", "-b", "sign/bench")
        (repo / "targets/role0/d/0.bin").write_bytes(b"changed")
        git(repo, "commit", "--quiet", "-am", "change one artifact")
        now = datetime.now(UTC)
        ws = Workspace.open(repo, fetch=False)
        t_status = timed(ws.status, "sign/bench", now)
        t_update = timed(update_targets, Workspace.open(repo, fetch=False), push=False, now=now)
        git(repo, "checkout", "--quiet", "main")
        t_verify = timed(verify, repo, None, now)
        return t_status, t_update, t_verify
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    print("| roles x artifacts | status (1 changed) | update-targets | verify (all) |")
    print("|---|---|---|---|")
    for roles, artifacts in [(10, 10), (100, 10), (10, 500), (200, 50)]:
        s, u, v = measure(roles, artifacts)
        print(f"| {roles} x {artifacts} | {s:.3f} s | {u:.3f} s | {v:.3f} s |")


if __name__ == "__main__":
    main()
