"""``tufrepo publish`` into a site whose record names the published commit: it reads and
writes only what changed since (no listing of the site, only the changed roles parsed, only
the new artifacts hashed), still refuses what a client would, and falls back to the full
publish whenever the record cannot be used."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Metadata

from tests.counting import count_hashing
from tests.git_helpers import git
from tests.site_helpers import DELEGATED, RepoBuilder, ngclient_download, serve
from tufrepo import site_index
from tufrepo.errors import InputError, MetadataError
from tufrepo.publish import MANIFEST, PublishResult, publish
from tufrepo.site_delta import FullPublish, plan_delta
from tufrepo.site_manifest import TIMESTAMP, parse_manifest
from tufrepo.site_store import DirectorySite, Headers

pytestmark = pytest.mark.git

APP1 = f"{DELEGATED}/a/b/c/app-1.0.tar.gz"
APP2 = f"{DELEGATED}/a/b/c/app-2.0.tar.gz"
ROLES = [f"role{i}" for i in range(8)]


class CountingDirectory(DirectorySite):
    """The directory store, counting what publish asks of it; ``fail`` makes a write fail."""

    def __init__(self, root: Path, fail: Callable[[str], bool] = lambda _: False) -> None:
        super().__init__(root, clean=True)
        self.fail = fail
        self.listings = 0
        self.reads: list[str] = []
        self.puts: list[str] = []
        self.deletes: list[str] = []

    def listing(self) -> dict[str, int]:
        self.listings += 1
        return super().listing()

    def read(self, path: str) -> bytes | None:
        self.reads.append(path)
        return super().read(path)

    def put(self, path: str, content: bytes | Path, headers: Headers) -> None:
        self.puts.append(path)
        if self.fail(path):
            raise OSError(28, "No space left on device")
        super().put(path, content, headers)

    def delete(self, paths: list[str]) -> None:
        self.deletes.extend(paths)
        super().delete(paths)


def commit(repo: RepoBuilder, message: str = "change") -> str:
    git(repo.path, "add", "--all")
    git(repo.path, "commit", "--quiet", "-m", message)
    return git(repo.path, "rev-parse", "HEAD")


def release(repo: RepoBuilder, add: str, remove: str | None = None) -> None:
    if remove:
        repo.set_target(DELEGATED, remove, None)
    repo.set_target(DELEGATED, add, add.encode() * 30)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    """A repository in git with several delegated roles, each listing an artifact."""
    built = RepoBuilder(tmp_path / "repo").build()
    for name in ROLES:
        built.add_role(name)
        built.set_target(name, f"{name}/x/file.bin", name.encode() * 10)
        built.bump(name)
    built.snapshot_timestamp()
    git(built.path, "init", "--quiet", "--initial-branch=main")
    commit(built, "repository")
    return built


def site_files(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def count_parsing(repo: RepoBuilder, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The role files parsed from now on, named by their content (any version in git)."""
    names: dict[bytes, str] = {}
    for line in git(repo.path, "log", "--format=%H").splitlines():
        for name in ["targets", DELEGATED, *ROLES]:
            data = git(repo.path, "show", f"{line}:metadata/{name}.json")
            names[data.encode()] = name
    parsed: list[str] = []
    real = Metadata.from_bytes.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Metadata[Any]], data: bytes, *args: Any) -> Any:
        if (name := names.get(data.rstrip(b"\n"))) is not None:
            parsed.append(name)
        return real(cls, data, *args)

    monkeypatch.setattr(Metadata, "from_bytes", classmethod(counting))
    return parsed


def test_an_update_reads_and_writes_only_the_change(
    repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    first = publish(repo.path, site)
    assert first.full_reason is not None
    head = git(repo.path, "rev-parse", "HEAD")
    assert json.loads((site / MANIFEST).read_text())["commit"] == head
    release(repo, APP2)
    commit(repo)
    store = CountingDirectory(site)
    monkeypatch.setattr(site_index, "ARTIFACT_ROWS", 5)  # at scale: no list of every artifact
    parsed = count_parsing(repo, monkeypatch)
    hashed = count_hashing(monkeypatch)
    result = publish(repo.path, store)
    monkeypatch.undo()
    assert result.full_reason is None
    assert store.listings == 0
    assert store.reads == [MANIFEST, TIMESTAMP]
    (artifact,) = [p for p in store.puts if p.startswith("targets/")]
    assert store.puts == [
        MANIFEST, artifact, f"metadata/2.{DELEGATED}.json", "metadata/3.snapshot.json",
        TIMESTAMP, "index.html", MANIFEST,
    ]  # fmt: skip
    assert store.deletes == []
    assert hashed == [APP2]
    assert set(parsed) == {"targets", DELEGATED}, parsed  # no unchanged role parsed
    assert result.written == store.puts[1:-2]
    assert result.kept == [f"metadata/1.{DELEGATED}.json", "metadata/2.snapshot.json"]
    # the same site as a full publish would make, plus the earlier versions kept
    fresh = tmp_path / "fresh"
    publish(repo.path, fresh)
    now, full = site_files(site), site_files(fresh)
    volatile = {"index.html", MANIFEST}
    assert {p: d for p, d in full.items() if p not in volatile} == {
        p: d for p, d in now.items() if p not in volatile and p not in result.kept
    }
    record, fresh_record = (json.loads(s.read_bytes()) for s in (site / MANIFEST, fresh / MANIFEST))
    assert record["roles"] == fresh_record["roles"]
    assert record["commit"] == fresh_record["commit"] == git(repo.path, "rev-parse", "HEAD")
    with serve(site) as server:
        root1 = repo.path / "metadata/root_history/1.root.json"
        ngclient_download(server.url, root1, tmp_path / "c", tmp_path / "o", [APP2, APP1])
    again = CountingDirectory(site)
    assert publish(repo.path, again).written == []  # nothing changed: nothing written
    assert again.puts == ["index.html", MANIFEST]


def _unsigned_edit(repo: RepoBuilder) -> None:
    repo.set_target(DELEGATED, APP2, b"evil" * 10)
    repo.roles[DELEGATED].signed.version += 1
    repo.write(DELEGATED)  # keeps the old signature: no longer valid
    repo.snapshot_timestamp()


def test_a_tampered_changed_role_is_refused(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    before = site_files(site)
    _unsigned_edit(repo)
    commit(repo, "R edited without its signer")
    record = parse_manifest((site / MANIFEST).read_bytes())
    live = (site / TIMESTAMP).read_bytes()
    with pytest.raises(FullPublish, match=f"a client refuses the update: .*{DELEGATED}"):
        plan_delta(repo.path, record, live, datetime.now(UTC))
    store = CountingDirectory(site)
    with pytest.raises(MetadataError, match="does not verify"):
        publish(repo.path, store)
    assert store.puts == []
    assert site_files(site) == before


def _drop_record(site: Path, repo: RepoBuilder) -> None:
    (site / MANIFEST).unlink()


def _corrupt_record(site: Path, repo: RepoBuilder) -> None:
    (site / MANIFEST).write_text("{")


def _unknown_commit(site: Path, repo: RepoBuilder) -> None:
    record = json.loads((site / MANIFEST).read_text())
    record["commit"] = "0" * 40
    (site / MANIFEST).write_text(json.dumps(record))


def _commit_elsewhere(site: Path, repo: RepoBuilder) -> None:
    """The site was published from a commit of another history (not an ancestor)."""
    git(repo.path, "checkout", "--quiet", "--orphan", "other")
    git(repo.path, "commit", "--quiet", "-m", "other history")
    record = json.loads((site / MANIFEST).read_text())
    record["commit"] = git(repo.path, "rev-parse", "HEAD")
    (site / MANIFEST).write_text(json.dumps(record))
    git(repo.path, "checkout", "--quiet", "main")


def _uncommitted(site: Path, repo: RepoBuilder) -> None:
    (repo.path / "not-committed").write_text("the release below is not committed")


FALLBACKS: dict[str, tuple[Callable[[Path, RepoBuilder], None], str]] = {
    "record missing": (_drop_record, "the site records no published commit"),
    "record corrupt": (_corrupt_record, "the site records no published commit"),
    "commit unknown": (_unknown_commit, "is unknown to this clone"),
    "commit not an ancestor": (_commit_elsewhere, "is not an ancestor of HEAD"),
    "uncommitted metadata": (_uncommitted, "differs from HEAD's (uncommitted changes)"),
}


@pytest.mark.parametrize("case", FALLBACKS, ids=list(FALLBACKS))
def test_without_a_usable_record_the_publish_is_full(
    repo: RepoBuilder, tmp_path: Path, case: str
) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    spoil, reason = FALLBACKS[case]
    spoil(site, repo)
    release(repo, APP2)
    if case != "uncommitted metadata":
        commit(repo)
    store = CountingDirectory(site)
    result = publish(repo.path, store)
    assert result.full_reason is not None
    assert reason in result.full_reason
    assert store.listings == 1
    assert any(p.endswith(".app-2.0.tar.gz") for p in result.written)
    with serve(site) as server:
        root1 = repo.path / "metadata/root_history/1.root.json"
        ngclient_download(server.url, root1, tmp_path / "c", tmp_path / "o", [APP2])
    record = json.loads((site / MANIFEST).read_text())
    committed = case != "uncommitted metadata"
    assert (record["commit"] == git(repo.path, "rev-parse", "HEAD")) is committed
    if committed:  # the next publish is an update again
        release(repo, f"{DELEGATED}/a/b/c/app-3.0.tar.gz")
        commit(repo)
        assert publish(repo.path, site).full_reason is None


def test_versions_kept_then_pruned_without_listing(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)  # the roles expire long after t0 + 8 days
    publish(repo.path, site, now=t0)
    old_app = next(p for p in site_files(site) if p.endswith(".app-1.0.tar.gz"))
    release(repo, APP2, remove=APP1)
    commit(repo)
    second = publish(repo.path, site, now=t0 + timedelta(hours=1))
    assert second.full_reason is None
    assert second.pruned == []
    gone = {old_app, f"metadata/1.{DELEGATED}.json", "metadata/2.snapshot.json"}
    assert set(second.kept) == gone
    assert gone <= set(site_files(site))
    release(repo, f"{DELEGATED}/a/b/c/app-3.0.tar.gz", remove=APP2)
    commit(repo)
    store = CountingDirectory(site)
    third = publish(repo.path, store, now=t0 + timedelta(days=8))
    assert third.full_reason is None
    assert store.listings == 0
    assert set(third.pruned) == gone
    assert not gone & set(site_files(site))
    assert "metadata/1.root.json" in site_files(site)


def test_an_interrupted_update_is_completed_and_its_leftovers_known(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    old_timestamp = (site / TIMESTAMP).read_bytes()
    release(repo, APP2)
    commit(repo)
    failing = CountingDirectory(site, lambda p: p.endswith(".snapshot.json"))
    with pytest.raises(InputError, match="No space left on device"):
        publish(repo.path, failing)
    assert failing.puts[0] == MANIFEST
    assert (site / TIMESTAMP).read_bytes() == old_timestamp
    pending = json.loads((site / MANIFEST).read_text())["pending"]
    assert f"metadata/2.{DELEGATED}.json" in pending
    junk = site / "metadata" / ".3.snapshot.json.abcd1234.tmp"  # what a killed write leaves
    junk.write_text("half a file")
    # main moved on without that release: its files are leftovers, pruned in time
    git(repo.path, "reset", "--quiet", "--hard", "HEAD~1")
    repo.set_target(DELEGATED, f"{DELEGATED}/a/b/c/other.bin", b"other" * 9)
    del repo.roles[DELEGATED].signed.targets[APP2]
    repo.roles[DELEGATED].signed.version += 1  # R v3: v2 never went live
    repo.sign(DELEGATED, "bob")
    repo.snapshot_timestamp()
    commit(repo)
    done = publish(repo.path, site)
    assert done.full_reason is None
    assert not junk.exists()
    assert f"metadata/2.{DELEGATED}.json" in done.kept  # a leftover, superseded now
    assert json.loads((site / MANIFEST).read_text())["pending"] == []
    with serve(site) as server:
        root1 = repo.path / "metadata/root_history/1.root.json"
        ngclient_download(server.url, root1, tmp_path / "c", tmp_path / "o",
                          [f"{DELEGATED}/a/b/c/other.bin"])  # fmt: skip


def test_hosted_elsewhere_and_the_page_at_scale(
    repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    repo.set_descriptor(DELEGATED, f"{DELEGATED}/x/y/z/big.iso", b"built elsewhere")
    release(repo, APP2)
    commit(repo)
    monkeypatch.setattr(site_index, "ARTIFACT_ROWS", 3)
    result = publish(repo.path, site)
    assert result.full_reason is None
    assert result.hosted_elsewhere == [f"{DELEGATED}/x/y/z/big.iso"]
    assert not list(site.glob("targets/R/x/**/*.big.iso"))
    page = (site / "index.html").read_text()
    assert "12 artifacts: too many to list here" in page
    assert f"<tr><td>{DELEGATED}</td><td>3</td></tr>" in page
    assert "app-2.0.tar.gz" not in page  # no row per artifact
    assert f'data-role="{DELEGATED}"' in page  # a row per role
    assert json.loads((site / MANIFEST).read_text())["hosted_elsewhere"] == [
        f"{DELEGATED}/x/y/z/big.iso"
    ]


def test_result_of_a_first_publish_says_why_it_was_full(repo: RepoBuilder, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result: PublishResult = publish(repo.path, empty)
    assert result.full_reason == "a new site directory"
