"""The published site consumed over HTTP on 127.0.0.1 by python-tuf's ngclient: directly,
through ``tufrepo check-site`` and through ``tufrepo download``; attacks and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadError, RepositoryError

from tests.git_helpers import run_tufrepo as tufrepo
from tests.site_helpers import (
    APP,
    APP2,
    ATTACKS,
    DELEGATED,
    Published,
    RepoBuilder,
    ngclient_download,
    published_site,
    serve,
)
from tests.terminal_helpers import on_terminal
from tufrepo.client import inspect_site, parse_duration, probe_paths
from tufrepo.errors import InputError
from tufrepo.publish import publish


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Published]:
    with published_site(tmp_path) as p:
        yield p


def test_ngclient_walks_every_root_and_downloads(pub: Published, tmp_path: Path) -> None:
    version = ngclient_download(
        pub.url, pub.root1, tmp_path / "cache", tmp_path / "out", [APP, "readme.txt"]
    )
    assert version == 3
    assert (tmp_path / "out" / "app-1.0.tar.gz").read_bytes() == (
        pub.repo.path / "targets" / APP
    ).read_bytes()
    for v in (2, 3, 4):  # 4 is the 404 that ends the root walk
        assert f"/metadata/{v}.root.json" in pub.server.requests


def test_check_site_ok_json(pub: Published) -> None:
    result = tufrepo("check-site", pub.url, "--root", str(pub.root1), "--download-all", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {r["name"]: r["version"] for r in report["roles"]} == {
        name: pub.repo.roles[name].signed.version for name in pub.repo.roles
    }
    assert report["roles"][0] == {
        "name": "root",
        "version": 3,
        "expires": report["roles"][0]["expires"],
    }
    assert sorted(report["downloaded"]) == sorted([APP, "readme.txt"])
    assert "trust on first use" not in result.stderr


def test_check_site_expiry_margin(pub: Published) -> None:
    # the timestamp expires in 2 days
    result = tufrepo("check-site", pub.url, "--root", str(pub.root1), "--valid-for", "3d")
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("Problem:")]
    assert len(problems) == 1
    assert "timestamp v1 expires" in problems[0]
    ok = tufrepo("check-site", pub.url, "--root", str(pub.root1), "--valid-for", "36h")
    assert ok.returncode == 0, ok.stderr


def test_check_site_trust_on_first_use_is_loud(pub: Published) -> None:
    result = tufrepo("check-site", pub.url)
    assert result.returncode == 0, result.stderr
    assert "trust on first use" in result.stderr
    assert "WARNING" in result.stderr


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_attacks_refused(pub: Published, tmp_path: Path, attack: str) -> None:
    ATTACKS[attack](pub)
    result = tufrepo("check-site", pub.url, "--root", str(pub.root1), "--download-all")
    assert result.returncode == 1, result.stdout
    assert "Problem:" in result.stderr
    with pytest.raises((RepositoryError, DownloadError)):
        ngclient_download(pub.url, pub.root1, tmp_path / "c", tmp_path / "o", [APP, APP2])
    dl = tufrepo(
        "download",
        APP,
        "--url",
        pub.url,
        "--root",
        str(pub.root1),
        "-o",
        str(tmp_path / "dl"),
        "--cache-dir",
        str(tmp_path / "dlcache"),
    )
    if attack != "older version under a newer name":  # APP is still reachable through R v1
        assert dl.returncode != 0
        assert not (tmp_path / "dl" / "app-1.0.tar.gz").exists()


def test_timestamp_rollback_refused_by_clients_with_state(pub: Published, tmp_path: Path) -> None:
    old_timestamp = (pub.site / "metadata" / "timestamp.json").read_bytes()
    cache = tmp_path / "cache"
    ngclient_download(pub.url, pub.root1, cache, tmp_path / "o", [])
    dl_args = ["--url", pub.url, "--root", str(pub.root1), "-o", str(tmp_path / "dl")]
    dl_args += ["--cache-dir", str(tmp_path / "dlcache")]
    pub.release(APP2)
    publish(pub.repo.path, pub.site)
    ngclient_download(pub.url, pub.root1, cache, tmp_path / "o", [APP2])
    assert tufrepo("download", APP2, *dl_args).returncode == 0
    (pub.site / "metadata" / "timestamp.json").write_bytes(old_timestamp)
    with pytest.raises(RepositoryError, match="must be >= 2"):
        ngclient_download(pub.url, pub.root1, cache, tmp_path / "o", [APP])
    rolled = tufrepo("download", APP, *dl_args)
    assert rolled.returncode == 1
    assert "does not verify" in rolled.stderr
    # check-site is stateless unless given a cache: a fresh check sees a valid older site
    assert tufrepo("check-site", pub.url, "--root", str(pub.root1)).returncode == 0
    with_state = tufrepo("check-site", pub.url, "--cache-dir", str(cache))
    assert with_state.returncode == 1
    assert "must be >= 2" in with_state.stderr
    assert "trust on first use" not in with_state.stderr


@pytest.mark.parametrize("keep_days", [7, 0])
def test_publish_between_timestamp_and_snapshot(pub: Published, keep_days: int) -> None:
    """A client fetches timestamp.json, then a publish happens, then it fetches the rest."""
    pub.release(APP2)
    published: list[int] = []

    def publish_now() -> None:
        result = publish(pub.repo.path, pub.site, keep=timedelta(days=keep_days))
        published.append(result.timestamp_version)

    pub.server.before_next("/metadata/timestamp.json", publish_now)
    report = inspect_site(pub.url, pub.root1.read_bytes(), download_all=True)
    assert published == [2]
    after = pub.server.requests[pub.server.requests.index("/metadata/timestamp.json") + 1 :]
    assert after[0] == "/metadata/1.snapshot.json"  # the version the old timestamp names
    if keep_days:
        assert report, report.problems
        assert APP in report.downloaded
    else:  # without kept versions the same client meets a 404
        assert not report
        assert "1.snapshot.json: HTTP 404" in report.problems[0]


def test_download_with_progress(pub: Published, tmp_path: Path) -> None:
    big = f"{DELEGATED}/a/b/c/big.bin"
    data = bytes(range(256)) * 8192  # 2 MiB
    pub.repo.set_target(DELEGATED, big, data)
    pub.repo.bump(DELEGATED)
    pub.repo.snapshot_timestamp()
    publish(pub.repo.path, pub.site)
    args = ["download", big, "--url", pub.url, "--root", str(pub.root1), "-o", str(tmp_path)]
    result = tufrepo(*args, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "big.bin")
    assert (tmp_path / "big.bin").read_bytes() == data
    assert result.stderr == ""  # no terminal (CI): no progress bar
    code, screen = on_terminal(
        *args[:-2], "-o", str(tmp_path / "tty"), "--cache-dir", str(tmp_path / "cache2"),
        answers=[], cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, screen
    assert big in screen  # the progress bar's label
    assert "100%" in screen
    code, screen = on_terminal(
        "check-site", pub.url, "--root", str(pub.root1), "--download-all",
        answers=[], cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, screen
    assert "artifacts  [" in screen  # check-site counts the artifacts it verifies
    missing = tufrepo("download", "R/nothing", *args[2:], "--cache-dir", str(tmp_path / "c"))
    assert missing.returncode == 2
    assert "no artifact 'R/nothing'" in missing.stderr


def test_unreachable_url(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "repo").build()
    with serve(tmp_path) as server:
        url = server.url
    root = repo.path / "metadata" / "root_history" / "1.root.json"
    result = tufrepo("check-site", url, "--root", str(root))
    assert result.returncode == 1
    assert "Connection refused" in result.stderr
    problem, fixers = result.stderr.strip().splitlines()  # one line each, no retry noise
    assert problem.startswith("Problem: refresh failed")
    assert fixers == "Who can fix it: @alice"  # root v1's signer, the root trusted
    tofu = tufrepo("check-site", url)
    assert tofu.returncode == 1
    assert "Error: cannot download the first root" in tofu.stderr
    dl = tufrepo("download", APP, "--url", url, "--root", str(root), "-o", str(tmp_path / "o"))
    assert dl.returncode == 1
    assert "Error: cannot update from" in dl.stderr


def test_wrong_trusted_root(pub: Published, tmp_path: Path) -> None:
    other = RepoBuilder(tmp_path / "other").build()
    wrong = other.path / "metadata" / "root_history" / "1.root.json"
    result = tufrepo("check-site", pub.url, "--root", str(wrong))
    assert result.returncode == 1
    assert "Problem: refresh failed" in result.stderr
    dl = tufrepo("download", APP, "--url", pub.url, "--root", str(wrong), "-o", str(tmp_path))
    assert dl.returncode == 1
    assert "does not verify" in dl.stderr
    not_root = pub.repo.path / "metadata" / "timestamp.json"
    bad = tufrepo("check-site", pub.url, "--root", str(not_root))
    assert bad.returncode == 2
    assert "not valid root metadata" in bad.stderr
    absent = tufrepo("check-site", pub.url, "--root", str(tmp_path / "nope.json"))
    assert absent.returncode == 2
    assert "cannot read trusted root" in absent.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(hours=36)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "12", "2 days", "h", "-1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_duration(text)


def test_probe_paths_reach_pattern_and_hash_bin_roles() -> None:
    from tuf.api.metadata import DelegatedRole, Delegations, SuccinctRoles

    bins = Delegations(keys={}, succinct_roles=SuccinctRoles([], 1, 4, "bin"))
    names = set(bins.succinct_roles.get_roles())
    probes = probe_paths(bins, names)
    assert set(probes) == names
    for name, path in probes.items():
        assert bins.succinct_roles.get_role_for_target(path) == name
    roles = {
        "a": DelegatedRole("a", [], 1, terminating=True, paths=["a/[xy]?/*.tar.gz"]),
        "b": DelegatedRole("b", [], 1, terminating=False, path_hash_prefixes=["ab"]),
    }
    probes = probe_paths(Delegations(keys={}, roles=roles), {"a", "b"})
    assert roles["a"].is_delegated_path(probes["a"])
    assert roles["b"].is_delegated_path(probes["b"])


def test_check_site_loads_roles_without_artifacts(pub: Published) -> None:
    """A delegated role with no artifacts is still loaded (through a probe path) and its
    expiry checked."""
    pub.repo.add_role("S", expires_days=1)
    pub.repo.snapshot_timestamp()
    publish(pub.repo.path, pub.site)
    result = tufrepo("check-site", pub.url, "--root", str(pub.root1), "--valid-for", "36h")
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("Problem:")]
    assert [p.split(" expires")[0] for p in problems] == ["Problem: S v1"]
    assert "/metadata/1.S.json" in pub.server.requests
