"""``online-sign`` after one release in a large repository, as a whole process.

    python benchmarks/bench_online.py 1000000 [--layout bins] [--runs 3] [--code DIR] [--git-daemon]

Uses the cached repository of ``benchmarks/generate.py`` (as ``bench_scale.py`` does). Each
run: a fresh bare "upstream" sharing the cached objects, sparse partial clones for CI and
the maintainer; app CI opens an event adding one artifact (``event open --remote``), the
maintainer signs it, it is merged (none of this timed); then CI's ``online-sign`` (timed
with ``/usr/bin/time``: wall seconds, CPU seconds, peak resident memory), and a second
``online-sign`` with nothing to do. Prints one markdown table row per step (median of the
runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_scale import CODE, GIT_ENV, TUFREPO, git, git_daemon, stop_daemons  # noqa: E402
from generate import generate  # noqa: E402

from tufrepo.git import sparse_clone  # noqa: E402


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, ...]:
    """(wall seconds, CPU seconds: user + system, git's included, peak RSS in MB) of ``cmd``
    as a whole process (CPU time is the steadier figure on a shared machine)."""
    with tempfile.NamedTemporaryFile("r") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", out.name, *cmd],
            cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
            env={**os.environ, **GIT_ENV, **CODE, **(env or {})},
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        wall, user, system, rss = out.read().split()[-4:]
    cpu = float(user) + float(system)
    print(f"  {' '.join(cmd[2:4])}: {wall} s, CPU {cpu:.2f} s, {int(rss) // 1024} MB",
          file=sys.stderr, flush=True)  # fmt: skip
    return float(wall), cpu, int(rss) // 1024


def one_run(base: Path, work: Path, *, daemon: bool = False) -> dict[str, tuple[float, ...]]:
    upstream = work / "upstream.git"
    git(work, "clone", "--quiet", "--bare", "--shared", str(base / "upstream.git"), str(upstream))
    git(upstream, "config", "uploadpack.allowFilter", "true")
    # --git-daemon: the remote's side (upload-pack, receive-pack) in a process not timed
    url = git_daemon(work, "upstream.git") if daemon else upstream.as_uri()
    for name in ("ci", "alice"):
        sparse_clone(url, work / name)
    env = {"TUFREPO_USER": "@bench", "TUFREPO_SIGNER": f"file2:{base / 'keys/bench.pem'}"}
    release = work / "new.bin"
    release.write_bytes(b"new release")
    timed([*TUFREPO, "event", "open", "rel", "--remote", url, "--target", f"new.bin={release}"],
          work)  # fmt: skip
    timed([*TUFREPO, "sign", "sign/rel", "--yes"], work / "alice", env)
    ci = work / "ci"
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "merge", "--quiet", "--no-ff", "-m", "merge sign/rel", "origin/sign/rel")
    git(ci, "push", "--quiet", "origin", "main")
    res = {"online-sign (one release)": timed([*TUFREPO, "online-sign"], ci)}
    res["online-sign (nothing to do)"] = timed([*TUFREPO, "online-sign"], ci)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--layout", choices=["flat", "bins"], default="bins")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, help="measure the tufrepo in this directory")
    parser.add_argument(
        "--git-daemon",
        action="store_true",
        help="serve the remote with git daemon: time the client's side alone",
    )
    args = parser.parse_args()
    if args.code is not None:
        CODE["PYTHONPATH"] = str(args.code.resolve())
    base = generate(args.n, args.layout)
    runs = []
    for _ in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="tufrepo-bench-online-", dir=base))
        try:
            runs.append(one_run(base, work, daemon=args.git_daemon))
        finally:
            stop_daemons()
            shutil.rmtree(work, ignore_errors=True)
    info = json.loads((base / "info.json").read_text())
    print(f"| {info['layout']} {info['n']:,} (median of {args.runs}) | seconds | CPU s | peak MB |")
    print("|---|---|---|---|")
    for step in runs[0]:
        wall, cpu, peak = (statistics.median(r[step][i] for r in runs) for i in range(3))
        print(f"| {step} | {wall:.2f} | {cpu:.2f} | {peak:,.0f} |")


if __name__ == "__main__":
    main()
