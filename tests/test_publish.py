"""``tufrepo publish``: layout, index, verification before writing, kept versions, pruning,
atomicity and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import TargetFile

from tests.git_helpers import run_tufrepo as tufrepo
from tests.site_helpers import DELEGATED, RepoBuilder, ngclient_download, serve
from tufrepo.errors import InputError, MetadataError
from tufrepo.publish import MANIFEST, publish
from tufrepo.site_store import DirectorySite, Headers

APP1 = f"{DELEGATED}/a/b/c/app-1.0.tar.gz"
APP2 = f"{DELEGATED}/a/b/c/app-2.0.tar.gz"


def site_files(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def hashed_path(target: str, repo: RepoBuilder) -> str:
    return hashed(target, (repo.path / "targets" / target).read_bytes())


def hashed(target_path: str, data: bytes) -> str:
    directory, _, name = target_path.rpartition("/")
    prefix = f"targets/{directory}/" if directory else "targets/"
    return f"{prefix}{hashlib.sha256(data).hexdigest()}.{name}"


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo").build()


def test_layout_is_consistent_snapshots(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = tufrepo("publish", str(site), "--repo", str(repo.path))
    assert result.returncode == 0, result.stderr
    files = site_files(site)
    history = repo.path / "metadata" / "root_history"
    snap_v = repo.roles["snapshot"].signed.version
    expected = {
        "metadata/timestamp.json": repo.metadata_bytes("timestamp"),
        f"metadata/{snap_v}.snapshot.json": repo.metadata_bytes("snapshot"),
        f"metadata/{repo.roles['targets'].signed.version}.targets.json": repo.metadata_bytes(
            "targets"
        ),
        f"metadata/{repo.roles[DELEGATED].signed.version}.{DELEGATED}.json": (
            repo.metadata_bytes(DELEGATED)
        ),
        **{f"metadata/{v}.root.json": (history / f"{v}.root.json").read_bytes() for v in (1, 2, 3)},
    }
    for name in ("readme.txt", APP1):
        expected[hashed(name, (repo.path / "targets" / name).read_bytes())] = (
            repo.path / "targets" / name
        ).read_bytes()
    for path, data in expected.items():
        assert files.get(path) == data, path
    extra = set(files) - set(expected)
    assert extra == {"index.html", ".nojekyll", MANIFEST}
    # a second publish of the same repository changes nothing
    again = tufrepo("publish", str(site), "--repo", str(repo.path), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["written"] == []
    assert {p: d for p, d in site_files(site).items() if p != "index.html"} == {
        p: d for p, d in files.items() if p != "index.html"
    }


def _row(page: str, role: str) -> str:
    return next(r for r in page.split("<tr ") if r.startswith(f'data-role="{role}"'))


def test_index_shows_roles_signers_expiry_and_artifacts(repo: RepoBuilder, tmp_path: Path) -> None:
    repo.set_descriptor(DELEGATED, f"{DELEGATED}/x/y/z/big.iso", b"built elsewhere")
    repo.bump(DELEGATED)
    # timestamp inside its 1-day signing period; targets well outside its 60 days
    repo.snapshot_timestamp(timestamp_expires=repo.now + timedelta(hours=12))
    site = tmp_path / "site"
    result = publish(repo.path, site)
    page = (site / "index.html").read_text()
    assert 'class="expiry warn"' in _row(page, "timestamp")
    assert 'class="expiry ok"' in _row(page, "targets")
    root = _row(page, "root")
    assert "@bob" in root
    assert "@carol" in root
    assert "@alice" not in root
    assert "1 of 2" in root
    assert "@bob" in _row(page, DELEGATED)
    assert "(file2:online2.pem)" in _row(page, "snapshot")
    expires = repo.roles["targets"].signed.expires.strftime("%Y-%m-%d %H:%M")
    assert expires in _row(page, "targets")
    assert hashlib.sha256((repo.path / "targets" / APP1).read_bytes()).hexdigest() in page
    # the descriptor is listed, not copied
    assert result.hosted_elsewhere == [f"{DELEGATED}/x/y/z/big.iso"]
    assert "hosted elsewhere" in page
    assert not list(site.glob("targets/R/x/**/*.big.iso"))
    manifest = json.loads((site / MANIFEST).read_text())
    assert manifest["hosted_elsewhere"] == [f"{DELEGATED}/x/y/z/big.iso"]


def _release(repo: RepoBuilder, remove: str, add: str) -> None:
    repo.set_target(DELEGATED, remove, None)
    repo.set_target(DELEGATED, add, add.encode() * 50)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()


def test_earlier_versions_kept_then_pruned(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    publish(repo.path, site, now=t0)
    first = set(site_files(site)) - {"index.html", MANIFEST, ".nojekyll", "metadata/timestamp.json"}
    _release(repo, APP1, APP2)
    second_result = publish(repo.path, site, now=t0 + timedelta(hours=1))
    files = set(site_files(site))
    assert first <= files  # a client mid-update still finds every earlier file
    assert "metadata/1.snapshot.json" in files
    assert "metadata/2.snapshot.json" in files
    assert second_result.pruned == []
    superseded = json.loads((site / MANIFEST).read_text())["superseded"]
    assert set(superseded.values()) == {"2026-01-01T01:00:00Z"}
    assert "metadata/1.snapshot.json" in superseded
    assert not [p for p in superseded if "app-2.0" in p or "2.snapshot" in p]
    second = files - set(superseded) - {"index.html", MANIFEST, ".nojekyll"}
    # a third publish 8 days later: the first publish stopped being current 8 days ago
    _release(repo, APP2, f"{DELEGATED}/a/b/c/app-3.0.tar.gz")
    third = publish(repo.path, site, now=t0 + timedelta(days=8))
    files = set(site_files(site))
    gone = first - second
    assert gone
    assert not (gone & files), "files only the first publish used are pruned"
    assert set(third.pruned) == gone
    assert second - first <= files, "the publish superseded just now is kept"
    assert {"metadata/1.root.json", "metadata/2.root.json"} <= files, "roots are never pruned"
    assert not list(site.glob("targets/**/*app-1.0*"))
    assert (site / "targets" / DELEGATED / "a" / "b" / "c").is_dir()


def test_keep_days_zero_prunes_at_once(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    _release(repo, APP1, APP2)
    result = tufrepo("publish", str(site), "--repo", str(repo.path), "--keep-days", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert "metadata/1.snapshot.json" in json.loads(result.stdout)["pruned"]
    assert not (site / "metadata" / "1.snapshot.json").exists()


def test_previous_site_elsewhere(repo: RepoBuilder, tmp_path: Path) -> None:
    old = tmp_path / "old"
    publish(repo.path, old)
    (old / MANIFEST).unlink()  # a site from another tool: everything found counts as kept
    _release(repo, APP1, APP2)
    new = tmp_path / "new"
    result = tufrepo("publish", str(new), "--repo", str(repo.path), "--previous", str(old))
    assert result.returncode == 0, result.stderr
    files = site_files(new)
    assert files["metadata/1.snapshot.json"] == (old / "metadata/1.snapshot.json").read_bytes()
    assert any("app-1.0" in p for p in files)
    assert any("app-2.0" in p for p in files)


def test_refuses_to_roll_the_site_back(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    older = tmp_path / "older"
    shutil.copytree(repo.path, older)
    _release(repo, APP1, APP2)
    publish(repo.path, site)
    before = site_files(site)
    result = tufrepo("publish", str(site), "--repo", str(older))
    assert result.returncode == 1
    assert "roll the site back" in result.stderr
    assert site_files(site) == before


def test_refuses_new_content_under_a_published_version(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    repo.set_target(DELEGATED, APP1, b"same version, other bytes")
    repo.sign(DELEGATED, "bob")  # no version bump
    repo.snapshot_timestamp()
    with pytest.raises(MetadataError, match=r"1\.R\.json is already published"):
        publish(repo.path, site)


def _unsigned_edit(repo: RepoBuilder) -> None:
    repo.roles[DELEGATED].signed.version += 1
    repo.roles[DELEGATED].signed.expires += timedelta(days=1)
    repo.write(DELEGATED)  # keeps the old signature: no longer valid
    repo.snapshot_timestamp()


INVALID: dict[str, tuple[Callable[[RepoBuilder], None], str]] = {
    "tampered artifact": (
        lambda r: (r.path / "targets" / "readme.txt").write_bytes(b"evil"),
        "targets/readme.txt does not match role targets",
    ),
    "unlisted artifact": (
        lambda r: [
            (r.path / "targets" / DELEGATED / name).write_bytes(b"x")
            for name in ("extra.bin", ".gitkeep")  # hidden names are not artifacts
        ],
        "targets/R/extra.bin is not listed",
    ),
    "role edited without signatures": (_unsigned_edit, "does not verify"),
    "snapshot names a missing version": (
        lambda r: r.snapshot_timestamp(meta_override={f"{DELEGATED}.json": 99}),
        "does not verify",
    ),
    "expired timestamp": (
        lambda r: r.snapshot_timestamp(timestamp_expires=r.now - timedelta(hours=1)),
        "does not verify",
    ),
    "root history gap": (
        lambda r: (r.path / "metadata" / "root_history" / "2.root.json").unlink(),
        "lacks root version",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_refuses_an_invalid_repository(repo: RepoBuilder, tmp_path: Path, case: str) -> None:
    mutate, message = INVALID[case]
    mutate(repo)
    site = tmp_path / "site"
    result = tufrepo("publish", str(site), "--repo", str(repo.path))
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not site.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


def test_bad_input(repo: RepoBuilder, tmp_path: Path) -> None:
    a_file = tmp_path / "site"
    a_file.write_text("not a directory")
    result = tufrepo("publish", str(a_file), "--repo", str(repo.path))
    assert result.returncode == 2
    assert "is not a directory" in result.stderr
    assert a_file.read_text() == "not a directory"

    not_a_site = tmp_path / "docs"
    not_a_site.mkdir()
    (not_a_site / "README").write_text("mine")
    result = tufrepo("publish", str(not_a_site), "--repo", str(repo.path))
    assert result.returncode == 2
    assert "holds no published site" in result.stderr
    assert [p.name for p in not_a_site.iterdir()] == ["README"]

    result = tufrepo("publish", str(tmp_path / "out"), "--repo", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "nothing is not a directory" in result.stderr
    (tmp_path / "empty").mkdir()
    result = tufrepo("publish", str(tmp_path / "out"), "--repo", str(tmp_path / "empty"))
    assert result.returncode == 2
    assert "no metadata/ directory" in result.stderr

    # the timestamp's signing period is 1 day: a CDN must not cache it that long
    result = tufrepo("publish", str(tmp_path / "out"), "--repo", str(repo.path),
                     "--max-age", "86400")  # fmt: skip
    assert result.returncode == 2
    assert "--max-age 86400s is not below the timestamp's signing period" in result.stderr
    assert not (tmp_path / "out").exists()

    (repo.path / "metadata" / f"{DELEGATED}.json").unlink()
    result = tufrepo("publish", str(tmp_path / "out"), "--repo", str(repo.path))
    assert result.returncode == 1
    assert f"missing metadata file {repo.path / 'metadata' / 'R.json'}" in result.stderr
    assert not (tmp_path / "out").exists()

    (repo.path / "metadata" / "timestamp.json").write_text("{not json")
    result = tufrepo("publish", str(tmp_path / "out"), "--repo", str(repo.path))
    assert result.returncode == 2
    assert "timestamp.json is not valid TUF metadata" in result.stderr


class FailingSite(DirectorySite):
    """The directory store with a disk that fills up at the first write matching ``fail``."""

    def __init__(self, root: Path, fail: Callable[[str], bool]) -> None:
        super().__init__(root)
        self.fail = fail
        self.puts: list[str] = []

    def put(self, path: str, content: bytes | Path, headers: Headers) -> None:
        self.puts.append(path)
        if self.fail(path):
            raise OSError(28, "No space left on device")
        super().put(path, content, headers)


def test_failed_write_leaves_a_usable_site_and_the_next_publish_completes_it(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    publish(repo.path, site)
    old_timestamp = (site / "metadata/timestamp.json").read_bytes()
    _release(repo, APP1, APP2)
    failing = FailingSite(site, lambda p: p.endswith(".snapshot.json"))
    with pytest.raises(InputError, match="No space left on device"):
        publish(repo.path, failing)
    assert any("app-2.0" in p for p in failing.puts), "the new artifact was written first"
    metadata = [p for p in failing.puts if p.startswith("metadata/")]
    assert metadata == ["metadata/2.R.json", "metadata/2.snapshot.json"], "then in order"
    assert (site / "metadata/timestamp.json").read_bytes() == old_timestamp
    with serve(site) as server:  # clients still use the old site
        root1 = repo.path / "metadata/root_history/1.root.json"
        ngclient_download(server.url, root1, tmp_path / "c", tmp_path / "o", [APP1])
    done = publish(repo.path, site)
    assert not [p for p in done.written if "app-2.0" in p], "not written again"
    assert "metadata/2.R.json" not in done.written
    assert done.written[-1] == "metadata/timestamp.json"
    with serve(site) as server:
        ngclient_download(server.url, root1, tmp_path / "c", tmp_path / "o", [APP2])


def test_refuses_symlinks_under_targets(repo: RepoBuilder, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    real = repo.path / "targets" / DELEGATED / "a"
    shutil.move(real, secret / "a")
    real.symlink_to(secret / "a")  # same bytes, reached through a symlinked directory
    result = tufrepo("publish", str(tmp_path / "site"), "--repo", str(repo.path))
    assert result.returncode == 2
    assert "symlinks are not allowed" in result.stderr
    assert not (tmp_path / "site").exists()


def test_empty_outdir_is_replaced_whole(repo: RepoBuilder, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    publish(repo.path, site)
    assert (site / "metadata" / "timestamp.json").is_file()
    assert oct(site.stat().st_mode & 0o777) == oct(0o755)
    assert all(p.stat().st_mode & 0o644 == 0o644 for p in site.rglob("*") if p.is_file())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(InputError, match="drop --previous"):
        publish(repo.path, site, previous=site)
    with pytest.raises(InputError, match="is not a published site"):
        publish(repo.path, tmp_path / "new", previous=repo.path)
    before = site_files(repo.path)
    for outdir in (repo.path, repo.path / "metadata"):
        with pytest.raises(InputError, match="is the repository checkout"):
            publish(repo.path, outdir)
    (repo.path / "build").mkdir()
    publish(repo.path, repo.path / "build")  # a directory inside the checkout is fine
    assert {k: v for k, v in site_files(repo.path).items() if not k.startswith("build/")} == before


def test_interrupted_publish_keeps_what_its_timestamp_needs(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    """The manifest is written after timestamp.json: a publish that dies in between leaves a
    site whose current files no record names. The next publish must still keep them."""
    site = tmp_path / "site"
    publish(repo.path, site)
    _release(repo, APP1, APP2)
    with pytest.raises(InputError):
        publish(repo.path, FailingSite(site, lambda p: p == MANIFEST))
    assert (site / "metadata" / "2.snapshot.json").exists()
    _release(repo, APP2, f"{DELEGATED}/a/b/c/app-3.0.tar.gz")
    publish(repo.path, site)
    assert (site / "metadata" / "2.snapshot.json").exists()
    assert list(site.glob("targets/R/a/b/c/*.app-2.0.tar.gz"))


def test_previous_site_from_its_url(repo: RepoBuilder, tmp_path: Path) -> None:
    """CI that deploys a fresh directory each time passes the live site's URL."""
    live = tmp_path / "live"
    older = tmp_path / "older"
    shutil.copytree(repo.path, older)
    publish(repo.path, live)
    repo.set_target(DELEGATED, APP2, b"2.0" * 99)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()
    with serve(tmp_path / "nothing-here") as empty:
        first = tufrepo("publish", str(tmp_path / "fresh"), "--repo", str(repo.path),
                        "--previous", empty.url)  # fmt: skip
        assert first.returncode == 0, first.stderr  # no site there yet: a first publish
    # a hostile manifest naming paths outside the site: never written anywhere
    manifest = json.loads((live / MANIFEST).read_text())
    manifest["superseded"].update(dict.fromkeys(["targets/../../../evil.txt", "/etc/evil.txt"],
                                                "2099-01-01T00:00:00Z"))  # fmt: skip
    (live / MANIFEST).write_text(json.dumps(manifest))
    (live / "evil.txt").write_text("served for any path that normalises to it")
    with serve(live) as server:
        new = tmp_path / "new"
        result = tufrepo("publish", str(new), "--repo", str(repo.path), "--previous", server.url)
        assert result.returncode == 0, result.stderr
        assert (new / "metadata/1.snapshot.json").read_bytes() == (
            live / "metadata/1.snapshot.json"
        ).read_bytes()
        assert (new / "metadata/1.R.json").is_file()
        assert "metadata/1.snapshot.json" in json.loads((new / MANIFEST).read_text())["superseded"]
        assert "/metadata/1.snapshot.json" in server.requests
        # the unchanged artifact comes from the repository, not over the network
        assert not [r for r in server.requests if "app-1.0" in r]
        assert not [r for r in server.requests if "evil" in r]
        assert list(tmp_path.parent.rglob("evil.txt")) == [live / "evil.txt"]
        url = server.url
    with serve(new) as server:  # the new site went live; the older repository would roll back
        back = tufrepo(
            "publish", str(tmp_path / "b"), "--repo", str(older), "--previous", server.url
        )
        assert back.returncode == 1
        assert "roll the site back" in back.stderr
    gone = tufrepo("publish", str(tmp_path / "c"), "--repo", str(repo.path), "--previous", url)
    assert gone.returncode == 1
    assert "cannot read the previous site" in gone.stderr
    assert not (tmp_path / "c").exists()


# Runs `tufrepo publish` with a SIGKILL delivered right after the first artifact's temporary
# file is written into the site (a real kill at the worst moment of the artifact phase).
_KILLED_MID_ARTIFACTS = """
import os, signal, sys
from tufrepo import files
from tufrepo.cli import main
real = files.stage
def stage_then_die(dest, content, *, mode=None):
    tmp = real(dest, content, mode=mode)
    if dest.parent.name == "c":
        os.kill(os.getpid(), signal.SIGKILL)
    return tmp
files.stage = stage_then_die
sys.argv = ["tufrepo", *sys.argv[1:]]
main()
"""


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if p.name.endswith(".tmp") or ".tufrepo-" in p.name or p.name.startswith("tufrepo-previous")
    )


@pytest.mark.parametrize("existing", [True, False], ids=["update", "new-outdir"])
def test_killed_publish_is_followed_by_a_clean_one(
    repo: RepoBuilder, tmp_path: Path, existing: bool
) -> None:
    site = tmp_path / "site"
    if existing:
        publish(repo.path, site)
    _release(repo, APP1, APP2)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_ARTIFACTS, "publish", str(site),
         "--repo", str(repo.path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _leftovers(tmp_path), "the kill left a temporary file behind"
    done = tufrepo("publish", str(site), "--repo", str(repo.path), env={"TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert _leftovers(tmp_path) == []
    assert list(temp.iterdir()) == []
    assert list(site.glob("targets/R/a/b/c/*.app-2.0.tar.gz"))


def test_an_update_hashes_and_copies_only_new_artifacts(
    repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        repo.set_target(DELEGATED, f"{DELEGATED}/a/b/c/lib-{i}.so", b"lib %d" % i)
    repo.bump(DELEGATED)
    repo.snapshot_timestamp()
    site = tmp_path / "site"
    publish(repo.path, site)
    _release(repo, APP1, APP2)
    hashed: list[str] = []
    real = TargetFile.from_file

    def counting(target_path: str, local_path: str, hash_algorithms: list[str]) -> TargetFile:
        hashed.append(target_path)
        return real(target_path, local_path, hash_algorithms)

    monkeypatch.setattr(TargetFile, "from_file", counting)
    result = publish(repo.path, site)
    assert hashed == [APP2]
    assert [p for p in result.written if p.startswith("targets/")] == [hashed_path(APP2, repo)]
    assert result.unchanged == 3 + 1 + 21  # roots, targets.json, readme and the libraries
