"""One release (one artifact added) in a large repository, step by step, as whole processes.

    python benchmarks/bench_scale.py 100000 --layout flat [--runs 3] [--skip-clients]
        [--steps update-targets,status] [--profile DIR] [--code DIR [--sparse]]
    python benchmarks/bench_scale.py 100000 --layout bins --publish-only --runs 5

Uses the cached repository of ``benchmarks/generate.py`` (built on first use). Each run starts
from the generated state: a fresh bare "upstream" sharing the cached objects, a CI clone,
a maintainer's clone and a published site. Then, each step timed with ``/usr/bin/time``
(wall seconds, peak resident memory):

1. ``event open`` (app CI, ``--remote``: it clones the repository itself)
2. ``update-targets`` and 3. ``status`` (CI on the event branch)
4. ``sign`` (the maintainer)
5. the merge (git, not timed), then ``online-sign`` and 6. ``publish`` into the existing site
   (CI on main)

and, for comparison, python-tuf's own minimum for the same change (``pytuf_minimum``: load the
flat targets, add one TargetFile, sign targets, snapshot, timestamp, write them) and a
client's first update of the published site (python-tuf ngclient and tuf-js over HTTP on
127.0.0.1: bytes of metadata downloaded and seconds). Prints one markdown table row per step
(median of the runs).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from generate import GIT_ENV, artifact_path, content, generate, signers  # noqa: E402

from tufrepo.demo import _QuietHandler, serve  # noqa: E402
from tufrepo.git import sparse_clone  # noqa: E402

TUFREPO = [sys.executable, "-m", "tufrepo"]
CODE: dict[str, str] = {}  # --code DIR: PYTHONPATH of the tufrepo measured
SPARSE: list[bool] = []  # --sparse: sparse clones for CI and the maintainer even with --code
PROFILE: list[Path] = []  # --profile DIR: each tufrepo step under cProfile, into DIR/<step>.prof
STEPS = ("event-open", "update-targets", "status", "sign", "online-sign", "publish", "pytuf")
CHAIN = STEPS[:5]  # each needs the ones before it (run, untimed, when not asked for)
TUFJS = HERE.parent / "tests" / "tufjs" / "client.js"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
        env={**os.environ, **GIT_ENV},
    )  # fmt: skip
    return proc.stdout.strip()


def measured_env() -> dict[str, str]:
    """The environment of a measured process: as an installed tufrepo runs, with its modules'
    bytecode compiled (pip compiles it at install; see :func:`compile_code`), so not with
    ``PYTHONDONTWRITEBYTECODE``, which would make every process compile tufrepo again."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_code(code: Path) -> None:
    """Compile the measured tufrepo's modules once, as ``pip install`` does."""
    compileall.compile_dir(str(code / "tufrepo"), quiet=1)


def timed(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of ``cmd`` as a whole process."""
    if PROFILE and cmd[:3] == TUFREPO:
        name = "event-open" if cmd[3] == "event" else cmd[3]
        cmd = [sys.executable, "-m", "cProfile", "-o", str(PROFILE[0] / f"{name}.prof"),
               "-m", "tufrepo", *cmd[3:]]  # fmt: skip
    with tempfile.NamedTemporaryFile("r") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M %U %S", "-o", out.name, *cmd],
            cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
            env={**measured_env(), **GIT_ENV, **CODE, **(env or {})},
        )  # fmt: skip
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        wall, rss, user, system = out.read().split()[-4:]
    cpu = float(user) + float(system)  # steadier than wall time when the machine is shared
    label = " ".join(cmd[2:5])[:60]
    line = f"  {label}: {wall} s, {int(rss) // 1024} MB, cpu {cpu:.2f} s"
    print(line, file=sys.stderr, flush=True)
    return float(wall), int(rss) // 1024


class _CountingHandler(_QuietHandler):
    """Counts the bytes of every file it serves (into the class's ``sent`` list)."""

    sent: list[int]

    def copyfile(self, source: object, outputfile: object) -> None:
        data = source.read()  # type: ignore[attr-defined]
        self.sent.append(len(data))
        outputfile.write(data)  # type: ignore[attr-defined]


NGCLIENT = """
import sys, time
from tuf.ngclient import Updater
start = time.perf_counter()
root = open(sys.argv[2] + "/root.json", "rb").read()
u = Updater(metadata_dir=sys.argv[2], metadata_base_url=sys.argv[1] + "/metadata",
            target_base_url=sys.argv[1] + "/targets", target_dir=sys.argv[3], bootstrap=root)
u.refresh()
info = u.get_targetinfo(sys.argv[4])
assert info is not None, sys.argv[4]
u.download_target(info)
print(round(time.perf_counter() - start, 3))
"""


def client_first_update(
    site: Path, target: str, work: Path, clients: tuple[str, ...]
) -> dict[str, tuple[float, int]]:
    """{client: (seconds, metadata bytes downloaded)} for a fresh client fetching ``target``."""
    root = site / "metadata/1.root.json"
    out: dict[str, tuple[float, int]] = {}
    for name in clients:
        cache = work / f"{name}-cache"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        shutil.copy(root, cache / "root.json")
        sent: list[int] = []
        (work / "dl").mkdir(exist_ok=True)
        handler = type("Counting", (_CountingHandler,), {"sent": sent})
        with serve(site, handler) as url:
            start = time.perf_counter()
            if name == "ngclient":
                cmd = [sys.executable, "-c", NGCLIENT, url, str(cache), str(work / "dl"), target]
            else:
                cmd = ["node", str(TUFJS), "--url", url, "--root", str(root),
                       "--cache", str(cache), "--out", str(work / "dl"), target]  # fmt: skip
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900)
            seconds = time.perf_counter() - start
        if proc.returncode != 0:
            print(f"{name} failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
            continue
        filename = target.rsplit("/", 1)[-1]
        artifact = len(next((site / "targets").rglob(f"*.{filename}")).read_bytes())
        out[name] = (round(seconds, 2), sum(sent) - artifact)
        if name == "ngclient":  # its own timing: without the interpreter's start-up
            out["ngclient, refresh + download only"] = (float(proc.stdout.split()[-1]), 0)
    return out


PYTUF_MINIMUM = """
import hashlib, sys
from securesystemslib.signer import CryptoSigner
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from tuf.api.metadata import Metadata, MetaFile, TargetFile
from tuf.api.serialization.json import JSONSerializer
meta, keys = sys.argv[1], sys.argv[2]
def resign(md, name, key):
    md.signed.version += 1
    md.signatures.clear()
    md.sign(CryptoSigner(load_pem_private_key(open(f"{keys}/{key}.pem", "rb").read(), None)))
    data = md.to_bytes(JSONSerializer())
    open(f"{meta}/{name}.json", "wb").write(data)
    return MetaFile(md.signed.version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})
targets = Metadata.from_file(f"{meta}/targets.json")
targets.signed.targets["new.bin"] = TargetFile.from_data("new.bin", b"new release")
snapshot = Metadata.from_file(f"{meta}/snapshot.json")
snapshot.signed.meta["targets.json"] = resign(targets, "targets", "bench")
timestamp = Metadata.from_file(f"{meta}/timestamp.json")
timestamp.signed.snapshot_meta = resign(snapshot, "snapshot", "online")
resign(timestamp, "timestamp", "online")
"""


def release(meta: Path, base: Path) -> None:
    """One artifact ``new.bin`` added with python-tuf: its role (a bin) re-signed by @bench,
    snapshot and timestamp by the online key (what sign and online-sign would commit)."""
    from tuf.api.metadata import Metadata, MetaFile, TargetFile
    from tuf.api.serialization.json import JSONSerializer

    offline, online = signers(base)

    def resign(md: Metadata, name: str, signer: object) -> MetaFile:  # type: ignore[type-arg]
        md.signed.version += 1
        md.signatures.clear()
        md.sign(signer)  # type: ignore[arg-type]
        data = md.to_bytes(JSONSerializer())
        (meta / f"{name}.json").write_bytes(data)
        return MetaFile(md.signed.version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})

    delegations = Metadata.from_file(str(meta / "targets.json")).signed.delegations
    bins = delegations.succinct_roles if delegations else None
    role = bins.get_role_for_target("new.bin") if bins else "targets"
    md = Metadata.from_file(str(meta / f"{role}.json"))
    md.signed.targets["new.bin"] = TargetFile.from_data("new.bin", b"new release")
    snapshot = Metadata.from_file(str(meta / "snapshot.json"))
    snapshot.signed.meta[f"{role}.json"] = resign(md, role, offline)
    timestamp = Metadata.from_file(str(meta / "timestamp.json"))
    timestamp.signed.snapshot_meta = resign(snapshot, "snapshot", online)
    resign(timestamp, "timestamp", online)


def publish_only(base: Path, runs: int) -> list[tuple[float, int]]:
    """``publish`` alone, ``runs`` times: the one-artifact release made with python-tuf
    (the bin re-signed by @bench, snapshot and timestamp by the online key) and committed in
    a full clone, published into a fresh copy of the seed site after an untimed publish of
    the seed commit by the tufrepo measured."""
    seed, info = seed_site(base), json.loads((base / "info.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="tufrepo-bench-", dir=base))
    try:
        git(work, "clone", "--quiet", str(base / "upstream.git"), "publisher")
        pub = work / "publisher"
        (pub / "targets" / "new.bin").write_bytes(b"new release")
        release(pub / "metadata", base)
        git(pub, "add", "--all")
        git(pub, "commit", "--quiet", "-m", "release new.bin")
        released = git(pub, "rev-parse", "HEAD")
        out = []
        for i in range(runs):
            site = work / f"site-{i}"
            subprocess.run(["cp", "-al", str(seed), str(site)], check=True)
            git(pub, "checkout", "--quiet", info["seed"])
            timed([*TUFREPO, "publish", str(site)], pub)  # the previous publish
            git(pub, "checkout", "--quiet", released)
            out.append(timed([*TUFREPO, "publish", str(site)], pub))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_publish_only(layout: str, n: int, found: list[tuple[float, int]]) -> None:
    secs = statistics.median(f[0] for f in found)
    runs = ", ".join(f"{f[0]:.2f}" for f in found)
    print(f"| {layout} {n:,} | publish (one artifact, {len(found)} runs) | {secs:.2f} s median "
          f"({runs}) | {max(f[1] for f in found)} MB |")  # fmt: skip


def seed_site(base: Path) -> Path:
    """The site published from the generated state (cached; runs start from a hard-linked
    copy, which publishing in place never modifies: it replaces files). Built beside, then
    renamed, so that concurrent runs never see half a site."""
    site = base / "site-seed"
    if not site.exists():
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            git(Path(tmp), "clone", "--quiet", str(base / "upstream.git"), "repo")
            subprocess.run([*TUFREPO, "publish", f"{tmp}/site", "--repo", f"{tmp}/repo"],
                           check=True, capture_output=True)  # fmt: skip
            with contextlib.suppress(OSError):  # another run was first
                Path(tmp, "site").rename(site)
    return site


def metadata_site(base: Path, target: int, layout: str) -> Path:
    """A consistent-snapshot site with every metadata file of the generated state and the
    one artifact ``target`` (what a client's first update reads; cheap at a million)."""
    site = base / "site-metadata"
    if site.exists():
        return site
    seed = json.loads((base / "info.json").read_text())["seed"]
    stage = Path(tempfile.mkdtemp(dir=base))
    archive = subprocess.run(["git", "archive", seed, "metadata"], cwd=base / "upstream.git",
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(stage)], input=archive, check=True)
    meta = stage / "metadata"
    out = stage / "site"
    (out / "metadata").mkdir(parents=True)
    (out / "targets").mkdir()
    shutil.copy(meta / "root.json", out / "metadata/1.root.json")
    shutil.copy(meta / "timestamp.json", out / "metadata/timestamp.json")
    snapshot = json.loads((meta / "snapshot.json").read_text())["signed"]
    shutil.copy(meta / "snapshot.json", out / f"metadata/{snapshot['version']}.snapshot.json")
    for name, info in snapshot["meta"].items():
        shutil.copy(meta / name, out / f"metadata/{info['version']}.{name}")
    data = content(target)
    digest = hashlib.sha256(data).hexdigest()
    path = Path(artifact_path(target, layout))
    dest = out / "targets" / path.parent / f"{digest}.{path.name}"  # consistent snapshot
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    out.rename(site)
    shutil.rmtree(stage)
    return site


def pytuf_minimum(n: int, work: Path) -> tuple[float, int]:
    """python-tuf's own minimum for the release, always on the flat layout of ``n``."""
    flat = generate(n, "flat")
    pytuf = work / "pytuf"
    git(work, "clone", "--quiet", "--no-checkout", str(flat / "upstream.git"), str(pytuf))
    seed = json.loads((flat / "info.json").read_text())["seed"]
    git(pytuf, "checkout", "--quiet", seed, "--", "metadata")
    return timed(
        [sys.executable, "-c", PYTUF_MINIMUM, str(pytuf / "metadata"), str(flat / "keys")], work
    )


DAEMON_ON: list[bool] = []  # --git-daemon
DAEMON: list[subprocess.Popen[bytes]] = []  # its running server


def stop_daemons(grace: float = 5.0) -> None:
    """Stop the git daemons started by :func:`git_daemon`: SIGTERM, then SIGKILL after
    ``grace`` seconds."""
    while DAEMON:
        proc = DAEMON.pop()
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def git_daemon(work: Path, name: str) -> str:
    """Serve the repositories under ``work`` with ``git daemon`` (pushes allowed) in a
    process of its own, so that a step's CPU time and memory are the client's alone (a
    hosted remote does its side on its own machines); the URL of ``name``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
         f"--base-path={work}", "--export-all", "--enable=receive-pack", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    DAEMON.append(proc)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return f"git://127.0.0.1:{port}/{name}"


def one_run(
    base: Path, work: Path, clients: bool, steps: frozenset[str] = frozenset(STEPS)
) -> dict[str, tuple[float, int]]:
    """Times the ``steps`` asked for (and runs, untimed, the steps of the chain they need)."""
    last = max((CHAIN.index(s) for s in steps if s in CHAIN), default=-1)
    chain = CHAIN[: last + 1]
    info = json.loads((base / "info.json").read_text())
    upstream = work / "upstream.git"
    git(work, "clone", "--quiet", "--bare", "--shared", str(base / "upstream.git"), str(upstream))
    git(upstream, "config", "uploadpack.allowFilter", "true")
    # --git-daemon: the remote's side (upload-pack, receive-pack) in a process not timed
    url = git_daemon(work, "upstream.git") if DAEMON_ON else upstream.as_uri()
    for name in ("ci", "alice"):  # CI and the maintainer: sparse, partial clones
        if CODE and not SPARSE:  # another tufrepo (e.g. before sparse clones): full clones
            git(work, "clone", "--quiet", url, name)
        else:
            sparse_clone(url, work / name)
    env = {"TUFREPO_USER": "@bench", "TUFREPO_SIGNER": f"file2:{base / 'keys/bench.pem'}"}
    site = work / "site"
    subprocess.run(["cp", "-al", str(seed_site(base)), str(site)], check=True)
    if "publish" in steps:  # a full checkout of every artifact: minutes at a million
        git(work, "clone", "--quiet", url, "publisher")
        # the previous publish, by the tufrepo measured (not timed): its record is what the
        # timed publish starts from (a seed made by another version may record less)
        timed([*TUFREPO, "publish", str(site)], work / "publisher")
    release = work / "new.bin"
    release.write_bytes(b"new release")
    res: dict[str, tuple[float, int]] = {}

    def step(key: str, name: str, run: Callable[[], tuple[float, int]]) -> None:
        if name in steps:
            res[key] = run()
        elif name in chain:  # needed by a later step: run, untimed
            run()

    step("event open (--remote: clones)", "event-open", lambda: timed(
        [*TUFREPO, "event", "open", "rel", "--remote", url,
         "--target", f"new.bin={release}"], work,
    ))  # fmt: skip
    ci = work / "ci"
    if "update-targets" in chain:
        git(ci, "fetch", "--quiet", "origin")
        git(ci, "checkout", "--quiet", "-B", "sign/rel", "origin/sign/rel")
    step("update-targets", "update-targets", lambda: timed([*TUFREPO, "update-targets"], ci))
    step("status", "status", lambda: timed(
        [*TUFREPO, "status"], ci, {"TUFREPO_USER": ""}, ok=(0, 1)
    ))  # fmt: skip
    step("sign", "sign", lambda: timed(
        [*TUFREPO, "sign", "sign/rel", "--yes"], work / "alice", env
    ))  # fmt: skip
    if "online-sign" in chain:
        git(ci, "fetch", "--quiet", "origin")
        git(ci, "checkout", "--quiet", "main")
        git(ci, "merge", "--quiet", "--no-ff", "-m", "merge sign/rel", "origin/sign/rel")
        git(ci, "push", "--quiet", "origin", "main")
    step("online-sign", "online-sign", lambda: timed([*TUFREPO, "online-sign"], ci))
    if "publish" in steps:
        if "online-sign" not in chain:
            raise SystemExit("--steps publish needs the steps before it")
        # the publishing job keeps a full checkout (publish copies artifacts): like CI, a
        # clone made before the release, brought to main's head (not timed)
        git(work / "publisher", "pull", "--quiet", "--ff-only", "origin", "main")
        res["publish (into the existing site)"] = timed(
            [*TUFREPO, "publish", str(site)], work / "publisher"
        )
    if "pytuf" in steps and info["n"] <= 100_000:  # a flat million: git fast-import hours
        res["python-tuf minimum (flat)"] = pytuf_minimum(info["n"], work)
    if clients and "publish" in steps:
        # tuf-js parses targets in O(n^2): a flat role of more than a few thousand entries
        # takes minutes (10,000: ~86 s), so it is measured on bins only
        names = ("ngclient", "tuf-js") if info["layout"] == "bins" else ("ngclient",)
        for name, (secs, nbytes) in client_first_update(site, "new.bin", work, names).items():
            res[f"first update: {name}"] = (secs, nbytes)
    return res


def main() -> None:  # noqa: PLR0915 - one option after another
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--layout", choices=["flat", "bins"], default="flat")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-clients", action="store_true")
    parser.add_argument(
        "--clients-only", action="store_true", help="only a client's first update of the site"
    )
    parser.add_argument("--code", type=Path, help="measure the tufrepo in this directory")
    parser.add_argument(
        "--sparse", action="store_true", help="with --code: sparse clones all the same"
    )
    parser.add_argument(
        "--git-daemon",
        action="store_true",
        help="serve the remote with git daemon: time the client's side alone",
    )
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated steps to time (default: all of {','.join(STEPS)}); the steps "
        "a later one needs run untimed",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the last run's directory (for profiling)"
    )
    parser.add_argument(
        "--profile", type=Path, help="run each tufrepo step under cProfile into DIR/<step>.prof"
    )
    parser.add_argument(
        "--publish-only", action="store_true",
        help="only publish: a release made with python-tuf, published --runs times",
    )  # fmt: skip
    args = parser.parse_args()
    steps = frozenset(args.steps.split(","))
    if not steps <= set(STEPS):
        parser.error(f"--steps: unknown {', '.join(sorted(steps - set(STEPS)))}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE.append(args.profile.resolve())
    if args.code is not None:
        CODE["PYTHONPATH"] = str(args.code.resolve())
    compile_code(args.code.resolve() if args.code is not None else HERE.parent)
    SPARSE.extend([True] * args.sparse)
    DAEMON_ON.extend([True] * args.git_daemon)
    base = generate(args.n, args.layout)
    if args.publish_only:
        print_publish_only(args.layout, args.n, publish_only(base, args.runs))
        return
    if args.clients_only:
        names = ("ngclient", "tuf-js") if args.layout == "bins" else ("ngclient",)
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            site = metadata_site(base, 7, args.layout)
            found = client_first_update(site, artifact_path(7, args.layout), Path(tmp), names)
        for name, (secs, nbytes) in found.items():
            row = f"first update: {name} | {secs:.2f} s | {nbytes:,} bytes"
            print(f"| {args.layout} {args.n:,} | {row} |")
        return
    runs = []
    for _ in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="tufrepo-bench-", dir=base))
        try:
            runs.append(one_run(base, work, not args.skip_clients, steps))
        finally:
            stop_daemons()
            if args.keep:
                print(f"kept {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    print(f"| {args.layout} {args.n:,} | step | seconds (median of {args.runs}) | peak MB |")
    print("|---|---|---|---|")
    four_steps = ["update-targets", "status", "online-sign", "publish (into the existing site)"]
    for step in runs[0]:
        secs = statistics.median(r[step][0] for r in runs)
        second = statistics.median(r[step][1] for r in runs)
        unit = "bytes" if step.startswith("first update") else "MB"
        print(f"| | {step} | {secs:.2f} | {second:,} {unit} |")
    if all(s in runs[0] for s in four_steps):
        four = statistics.median(sum(r[s][0] for s in four_steps) for r in runs)
        print(f"| | update-targets + status + online-sign + publish | {four:.2f} | |")


if __name__ == "__main__":
    main()
