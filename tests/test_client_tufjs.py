"""The published site consumed by tuf-js (npm's client) over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.site_helpers import (
    APP,
    APP2,
    ATTACKS,
    Published,
    published_site,
    run_tufjs,
    tufjs_available,
)
from tufrepo.publish import publish

pytestmark = [
    pytest.mark.tufjs,
    pytest.mark.skipif(
        not tufjs_available(), reason="needs node and tests/tufjs/node_modules (npm ci)"
    ),
]


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Published]:
    with published_site(tmp_path) as p:
        yield p


def test_tufjs_walks_every_root_and_downloads(pub: Published, tmp_path: Path) -> None:
    result = run_tufjs(
        pub.url, pub.root1, tmp_path / "cache", tmp_path / "out", [APP, "readme.txt"]
    )
    assert result.returncode == 0, result.stderr
    summary = result.json()
    assert summary["root_version"] == 3
    assert (tmp_path / "out" / "app-1.0.tar.gz").read_bytes() == (
        pub.repo.path / "targets" / APP
    ).read_bytes()
    for v in (2, 3, 4):
        assert f"/metadata/{v}.root.json" in pub.server.requests


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_tufjs_refuses_attacks(pub: Published, tmp_path: Path, attack: str) -> None:
    ATTACKS[attack](pub)
    targets = [APP2] if attack == "older version under a newer name" else [APP]
    result = run_tufjs(pub.url, pub.root1, tmp_path / "cache", tmp_path / "out", targets)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("tuf-js:")
    assert not list((tmp_path / "out").iterdir())


def test_tufjs_refuses_timestamp_rollback(pub: Published, tmp_path: Path) -> None:
    old_timestamp = (pub.site / "metadata" / "timestamp.json").read_bytes()
    pub.release(APP2)
    publish(pub.repo.path, pub.site)
    cache = tmp_path / "cache"
    first = run_tufjs(pub.url, pub.root1, cache, tmp_path / "out", [APP2])
    assert first.returncode == 0, first.stderr
    (pub.site / "metadata" / "timestamp.json").write_bytes(old_timestamp)
    rolled = run_tufjs(pub.url, pub.root1, cache, tmp_path / "out2", [APP])
    assert rolled.returncode == 1
    assert "timestamp" in rolled.stderr.lower()


@pytest.mark.parametrize("keep_days", [7, 0])
def test_tufjs_publish_between_timestamp_and_snapshot(
    pub: Published, tmp_path: Path, keep_days: int
) -> None:
    pub.release(APP2)
    pub.server.before_next(
        "/metadata/timestamp.json",
        lambda: publish(pub.repo.path, pub.site, keep=timedelta(days=keep_days)),
    )
    result = run_tufjs(pub.url, pub.root1, tmp_path / "cache", tmp_path / "out", [APP])
    after = pub.server.requests[pub.server.requests.index("/metadata/timestamp.json") + 1 :]
    assert after[0] == "/metadata/1.snapshot.json"
    if keep_days:
        assert result.returncode == 0, result.stderr
        assert result.json()["timestamp_version"] == 1
    else:
        assert result.returncode == 1
        assert "Unable to load snapshot" in result.stderr
