"""``tufrepo publish s3://BUCKET/PREFIX`` against a real S3 server (SeaweedFS), with
python-tuf and tuf-js reading the bucket over HTTP straight from the S3 endpoint."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.ngclient import Updater, Urllib3Fetcher

from tests.git_helpers import run_tufrepo as tufrepo
from tests.s3_helpers import CountingSite, S3Server, objects, seaweed
from tests.site_helpers import (
    DELEGATED,
    RepoBuilder,
    ngclient_download,
    run_tufjs,
    tufjs_available,
)
from tufrepo.errors import Error
from tufrepo.publish import MANIFEST, publish

pytestmark = pytest.mark.s3

APP1 = f"{DELEGATED}/a/b/c/app-1.0.tar.gz"
APP2 = f"{DELEGATED}/a/b/c/app-2.0.tar.gz"
PREFIX = "tuf/site"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server, request: pytest.FixtureRequest) -> str:
    name = "b" + str(abs(hash(request.node.nodeid)) % 10**12)
    s3.create_bucket(name)
    return name


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo").build()


def _release(repo: RepoBuilder, add: str) -> None:
    repo.set_target(DELEGATED, add, add.encode() * 40)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()


def _head(url: str) -> dict[str, str]:
    req = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}


def test_publish_then_release_uploads_only_new_objects(
    s3: S3Server, bucket: str, repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tufrepo("publish", f"s3://{bucket}/{PREFIX}", "--repo", str(repo.path), "--json",
                    env=s3.env())  # fmt: skip
    assert first.returncode == 0, first.stderr
    site = s3.store(bucket, PREFIX, monkeypatch)
    before = objects(site)
    assert set(json.loads(first.stdout)["written"]) <= set(before)
    url = s3.url(bucket, PREFIX)
    ts = _head(f"{url}/metadata/timestamp.json")
    assert ts["cache-control"] == "public, max-age=300"
    assert ts["content-type"] == "application/json"
    (artifact,) = [p for p in before if p.endswith(".app-1.0.tar.gz")]
    for versioned in ("metadata/1.root.json", "metadata/1.R.json", artifact):
        assert _head(f"{url}/{versioned}")["cache-control"] == "public, max-age=31536000, immutable"
    assert _head(f"{url}/{artifact}")["content-type"] == "application/gzip"
    assert _head(f"{url}/index.html")["content-type"].startswith("text/html")
    root1 = repo.path / "metadata/root_history/1.root.json"
    assert ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", [APP1]) == 3

    _release(repo, APP2)
    counting = CountingSite(site)
    result = publish(repo.path, counting)
    assert counting.listings == 1
    assert counting.reads == ["tufrepo-site.json", "metadata/timestamp.json"]
    (new_artifact,) = [p for p in counting.puts if "app-2.0" in p]
    assert counting.puts == [
        new_artifact, "metadata/2.R.json", "metadata/2.snapshot.json",
        "metadata/timestamp.json", "index.html", "tufrepo-site.json",
    ]  # fmt: skip
    assert counting.deletes == []
    assert result.unchanged == 6  # three roots, 1.targets.json and two artifacts
    after = objects(site)
    changed = {p for p in before if after[p] != before[p]}
    assert changed == {"metadata/timestamp.json", "index.html", "tufrepo-site.json"}
    assert set(after) - set(before) == set(counting.puts) - changed
    assert ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", [APP2]) == 3
    check = tufrepo("check-site", url, "--root", str(root1), "--download-all", "--json")
    assert check.returncode == 0, check.stderr
    assert sorted(json.loads(check.stdout)["downloaded"]) == sorted([APP1, APP2, "readme.txt"])
    if tufjs_available():
        js = run_tufjs(url, root1, tmp_path / "j", tmp_path / "jo", [APP1, APP2])
        assert js.returncode == 0, js.stderr
        assert (tmp_path / "jo" / "app-2.0.tar.gz").read_bytes() == APP2.encode() * 40


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4], ids=["artifact", "role", "snapshot", "ts"])
def test_failed_upload_leaves_a_usable_site_and_the_next_publish_completes_it(  # noqa: PLR0917
    s3: S3Server,
    bucket: str,
    repo: RepoBuilder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fail_at: int,
) -> None:
    site = s3.store(bucket, PREFIX, monkeypatch)
    publish(repo.path, site)
    url = s3.url(bucket, PREFIX)
    root1 = repo.path / "metadata/root_history/1.root.json"
    ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", [APP1])
    _release(repo, APP2)
    failing = CountingSite(site, fail_at=fail_at)
    with pytest.raises(Error, match="reset by peer"):
        publish(repo.path, failing)
    assert len(failing.puts) == fail_at
    # clients keep updating from the old site, a fresh one and one with state alike
    assert ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", [APP1]) == 3
    assert ngclient_download(url, root1, tmp_path / "fresh", tmp_path / "o2", [APP1]) == 3
    counting = CountingSite(site)
    publish(repo.path, counting)
    assert counting.puts[0] == failing.puts[-1], "resumes where the failed one stopped"
    assert not set(counting.puts) & set(failing.puts[:-1]), "nothing uploaded twice"
    assert ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", [APP2]) == 3


class PublishingFetcher(Urllib3Fetcher):  # type: ignore[misc]
    """An HTTP fetcher that lets a publish happen right after it got timestamp.json."""

    def __init__(self, between: object) -> None:
        super().__init__()
        self.between = between
        self.done = False

    def _fetch(self, url: str) -> Iterator[bytes]:
        chunks = list(super()._fetch(url))
        if url.endswith("/timestamp.json") and not self.done:
            self.done = True
            self.between()  # type: ignore[operator]
        yield from chunks


def test_client_that_read_timestamp_before_a_publish_reads_the_rest_after(
    s3: S3Server, bucket: str, repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = s3.store(bucket, PREFIX, monkeypatch)
    publish(repo.path, site)
    _release(repo, APP2)
    url = s3.url(bucket, PREFIX)
    fetcher = PublishingFetcher(lambda: publish(repo.path, site))
    (tmp_path / "c").mkdir()
    updater = Updater(
        str(tmp_path / "c"), f"{url}/metadata/", str(tmp_path), f"{url}/targets/",
        bootstrap=(repo.path / "metadata/root_history/1.root.json").read_bytes(),
        fetcher=fetcher,
    )  # fmt: skip
    updater.refresh()
    assert fetcher.done
    info = updater.get_targetinfo(APP1)
    assert info is not None
    updater.download_target(info, str(tmp_path / "app-1.0"))
    assert objects(site).get("metadata/2.R.json"), "the publish did happen in between"


def test_bad_input_is_one_line_exit_2_and_nothing_uploaded(
    s3: S3Server, bucket: str, repo: RepoBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = s3.store(bucket, PREFIX, monkeypatch)
    no_keys = dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "")
    cases = {
        "ftp://host/dir": ({}, "cannot publish to ftp:// URLs"),
        f"s3://{bucket}/{PREFIX}": (no_keys, "no s3:// credentials in the environment"),
        f"s3://no-such-bucket/{PREFIX}": ({}, "the bucket does not exist"),
        "s3:///x": ({}, "no bucket named"),
    }
    for target, (env, message) in cases.items():
        done = tufrepo("publish", target, "--repo", str(repo.path), env={**s3.env(), **env})
        assert done.returncode == 2, (target, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr, done.stderr
    wrong = {**s3.env(), "AWS_SECRET_ACCESS_KEY": "wrong"}
    done = tufrepo("publish", f"s3://{bucket}/{PREFIX}", "--repo", str(repo.path), env=wrong)
    assert done.returncode == 2, done.stderr
    assert "access denied" in done.stderr
    assert objects(site) == {}


@pytest.mark.git
def test_real_flow_publish_event_online_sign_publish_again(
    s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tufrepo commands end to end: init, a delegated role, online-sign, publish to the
    bucket; then an app release event, signatures, merge, online-sign, publish again."""
    from tests.git_helpers import World, git

    (tmp_path / "world").mkdir()
    world = World(tmp_path / "world")
    world.init()
    world.tufrepo("alice", "delegate", "sign/app-role", "app", user="@alice")
    world.merge("app-role")
    ci = world.clone("ci")

    def ci_online_sign() -> None:
        git(ci, "fetch", "--quiet", "origin")
        git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
        world.tufrepo("ci", "online-sign")

    ci_online_sign()
    target = f"s3://{bucket}/{PREFIX}"
    first = tufrepo("publish", target, "--repo", str(ci), env=s3.env())
    assert first.returncode == 0, first.stderr
    site = s3.store(bucket, PREFIX, monkeypatch)
    before = objects(site)
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"release 1.0\n" * 100)
    world.tufrepo("appci", "event", "open", "rel-1.0", "--remote", str(world.remote),
                  "--target", f"app/a/b/c/file.bin={artifact}")  # fmt: skip
    world.tufrepo("alice", "sign", "sign/rel-1.0", user="@alice")
    world.merge("rel-1.0")
    ci_online_sign()
    counting = CountingSite(site)
    publish(ci, counting)
    after = objects(site)
    new = set(after) - set(before)
    assert new == set(counting.puts) - {"metadata/timestamp.json", "index.html", MANIFEST}
    assert {p.split("/")[0] for p in new} == {"targets", "metadata"}
    assert [p for p in new if p.startswith("targets/")] == [
        p for p in counting.puts if p.startswith("targets/")
    ]
    assert all(after[p] == before[p] for p in before if p not in counting.puts)
    root1 = ci / "metadata/root_history/1.root.json"
    url = s3.url(bucket, PREFIX)
    assert ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", ["app/a/b/c/file.bin"])
    assert (tmp_path / "o/file.bin").read_bytes() == artifact.read_bytes()


@pytest.mark.git
def test_an_update_costs_requests_in_proportion_to_the_change(
    s3: S3Server, bucket: str, repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the published commit on record, one new artifact is two reads and seven writes:
    no listing of the bucket, whatever its size."""
    from tests.git_helpers import git

    def commit() -> None:
        git(repo.path, "add", "--all")
        git(repo.path, "commit", "--quiet", "-m", "change")

    git(repo.path, "init", "--quiet", "--initial-branch=main")
    commit()
    site = s3.store(bucket, PREFIX, monkeypatch)
    assert publish(repo.path, site).full_reason is not None
    before = objects(site)
    _release(repo, APP2)
    commit()
    counting = CountingSite(site)
    result = publish(repo.path, counting)
    assert result.full_reason is None
    assert counting.listings == 0
    assert counting.reads == [MANIFEST, "metadata/timestamp.json"]
    (new_artifact,) = [p for p in counting.puts if "app-2.0" in p]
    assert counting.puts == [
        MANIFEST, new_artifact, "metadata/2.R.json", "metadata/2.snapshot.json",
        "metadata/timestamp.json", "index.html", MANIFEST,
    ]  # fmt: skip
    assert counting.deletes == []
    after = objects(site)
    assert {p for p in before if after[p] != before[p]} == {
        "metadata/timestamp.json", "index.html", MANIFEST,
    }  # fmt: skip
    url = s3.url(bucket, PREFIX)
    root1 = repo.path / "metadata/root_history/1.root.json"
    assert ngclient_download(url, root1, tmp_path / "c", tmp_path / "o", [APP1, APP2]) == 3
