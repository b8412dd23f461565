"""``publish`` after ``online-sign``, flat layout: a changed role that online-sign verified
before it signed (byte for byte, with its delegators and root) is not verified again — no
signature checked, never encoded canonically, its JSON decoded once and python-tuf objects
built only for the changed entries — while a role changed on main after online-sign (with
the timestamp untouched, or with the online-signed timestamp committed again) is verified,
and refused."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import CanonicalJSONSerializer

import tufrepo.jsonfast
import tufrepo.site_delta
import tufrepo.site_index
from tests.counting import count_hashing, count_target_files
from tests.git_helpers import World, git
from tufrepo.git import GitRepo
from tufrepo.history import online_verified
from tufrepo.repository import git_view
from tufrepo.site_manifest import TIMESTAMP
from tufrepo.site_store import DirectorySite

pytestmark = pytest.mark.git

ARTIFACTS = 200


def _release(world: World, name: str, changes: list[str]) -> None:
    world.tufrepo("appci", "event", "open", name, "--repo", str(world.clone("appci")), *changes)
    world.tufrepo("alice", "sign", f"sign/{name}", user="@alice")
    world.merge(name)


CHANGES = ["--target", "a1.bin=NEW", "--target", "added.bin=NEW", "--remove", "a3.bin"]


@pytest.fixture
def published(tmp_path: Path) -> tuple[World, Path, Path]:
    """ARTIFACTS artifacts of (flat) targets, online-signed and published; then a release
    changing, adding and removing artifacts, merged and online-signed: (world, CI clone on
    main, site)."""
    return _published(tmp_path, CHANGES)


@pytest.fixture(autouse=True)
def _at_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Roles this small are verified by a client unless told they are big (what the tests
    check is what happens to a big role)."""
    monkeypatch.setattr(tufrepo.site_delta, "PROVE_ABOVE", 0)


def _published(tmp_path: Path, changes: list[str]) -> tuple[World, Path, Path]:
    world = World(tmp_path)
    world.init()
    _release(world, "fill", world.target_args(ARTIFACTS, lambda i: f"a{i}.bin"))
    ci = world.ci()
    world.tufrepo("ci", "online-sign")
    site = world.root / "site"
    world.tufrepo("ci", "publish", str(site))
    new = world.root / "new.bin"
    new.write_bytes(b"new release")
    _release(world, "one", [c.replace("NEW", str(new)) for c in changes])
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "online-sign")
    return world, ci, site


def _is_targets(obj: Any) -> bool:
    signed = getattr(obj, "signed", obj)
    signed = signed.get("signed", signed) if isinstance(signed, dict) else signed
    kind = signed.get("_type") if isinstance(signed, dict) else getattr(signed, "type", None)
    return kind == "targets"


def _count_work(ci: Path, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What is done to targets.json from now on: parses by python-tuf, JSON decodes of its
    bytes (python-tuf's parse decodes too), canonical encodings (python-tuf's, jsonfast's)."""
    names = {
        git(ci, "show", f"{c}:metadata/targets.json").encode()
        for c in git(ci, "log", "--format=%H").splitlines()
    }

    def ours(data: bytes) -> bool:
        return data.rstrip(b"\n") in names

    work: Counter[str] = Counter()
    from_bytes = Metadata.from_bytes.__func__  # type: ignore[attr-defined]

    def parse(cls: type[Metadata[Any]], data: bytes, *args: Any) -> Any:
        work["parse"] += ours(data)
        return from_bytes(cls, data, *args)

    loads = json.loads

    def decode(data: bytes, **kwargs: Any) -> Any:
        work["decode"] += isinstance(data, bytes) and ours(data)
        return loads(data, **kwargs)

    serialize = CanonicalJSONSerializer.serialize

    def encode(self: CanonicalJSONSerializer, obj: Any) -> bytes:
        work["encode"] += _is_targets(obj)
        return serialize(self, obj)

    canonical = tufrepo.jsonfast.canonical

    def fast_encode(obj: Any) -> bytes:
        work["encode"] += _is_targets(obj)
        return canonical(obj)

    monkeypatch.setattr(Metadata, "from_bytes", classmethod(parse))
    monkeypatch.setattr(json, "loads", decode)
    monkeypatch.setattr(CanonicalJSONSerializer, "serialize", encode)
    monkeypatch.setattr(tufrepo.site_delta, "canonical", fast_encode, raising=False)
    return work


def _no_listing(*_args: object) -> None:
    raise AssertionError("an update of the site must not list it")


def test_publish_trusts_what_online_sign_verified(
    published: tuple[World, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, ci, site = published
    monkeypatch.setattr(tufrepo.site_index, "ARTIFACT_ROWS", 10)  # the page: counts only
    work = _count_work(ci, monkeypatch)
    built = count_target_files(monkeypatch)
    hashed = count_hashing(monkeypatch)
    monkeypatch.setattr(DirectorySite, "listing", _no_listing)  # the update, not the full
    out = world.tufrepo("ci", "publish", str(site), "--json").stdout
    monkeypatch.undo()
    assert work == Counter(decode=2)  # the new role and the recorded one, each once
    assert sorted(built) == ["a1.bin", "a1.bin", "a3.bin", "added.bin"]  # changed entries
    assert sorted(hashed) == ["a1.bin", "added.bin"]
    written = [p for p in json.loads(out)["written"] if p.startswith("targets/")]
    assert sorted(p.rsplit(".", 2)[-2] for p in written) == ["a1", "added"]
    # the site is what a full publish makes
    fresh = world.root / "fresh"
    world.tufrepo("ci", "publish", str(fresh))
    for path in fresh.rglob("*.json"):
        rel = path.relative_to(fresh)
        if rel.name != "tufrepo-site.json":
            assert (site / rel).read_bytes() == path.read_bytes(), rel


def _tamper_targets(ci: Path) -> None:
    """targets.json changed at the same version and length (its expiry), unsigned."""
    path = ci / "metadata/targets.json"
    data = path.read_bytes()
    at = data.index(b'"expires": "') + len(b'"expires": "') + 3  # the year's last digit
    digit = b"%d" % ((int(data[at : at + 1]) + 1) % 10)
    path.write_bytes(data[:at] + digit + data[at + 1 :])
    git(ci, "commit", "--quiet", "-am", "targets changed behind online-sign's back")


def _replay(ci: Path) -> None:
    """An unsigned timestamp, then the online-signed bytes again: the newest commit making
    timestamp.json the online-signed one changes nothing else, as online-sign's do."""
    signed = git(ci, "rev-parse", "HEAD~1")
    path = ci / "metadata/timestamp.json"
    path.write_bytes(path.read_bytes().replace(b'"version"', b'"version" ', 1))
    git(ci, "commit", "--quiet", "-am", "a timestamp nobody online signed")
    git(ci, "checkout", "--quiet", signed, "--", "metadata/timestamp.json")
    git(ci, "commit", "--quiet", "-am", "the online-signed timestamp again")


@pytest.mark.parametrize("replay", [False, True], ids=["timestamp untouched", "replayed"])
def test_a_role_changed_after_online_sign_is_verified(
    published: tuple[World, Path, Path], replay: bool
) -> None:
    world, ci, site = published
    before = (site / TIMESTAMP).read_bytes()
    _tamper_targets(ci)
    if replay:
        _replay(ci)
    assert git(ci, "show", "HEAD:metadata/timestamp.json") == git(
        ci, "show", "HEAD~3:metadata/timestamp.json" if replay else "HEAD~1:" + TIMESTAMP
    )
    out = world.tufrepo("ci", "publish", str(site), code=1).stderr
    assert "does not verify" in out
    assert "targets" in out
    assert (site / TIMESTAMP).read_bytes() == before


def test_a_release_that_only_adds_reads_no_old_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only artifacts added since a recorded commit that online-sign made: the entries that
    differ are the files git names, and the recorded commit's targets.json is not read."""
    world, ci, site = _published(tmp_path, ["--target", "added1.bin=NEW", "--target",
                                            "added2.bin=NEW"])  # fmt: skip
    record = json.loads((site / "tufrepo-site.json").read_text())["commit"]
    changed = git(ci, "show", "--format=", "--name-only", record).split()
    assert changed == ["metadata/snapshot.json", TIMESTAMP]  # online-sign's commit
    monkeypatch.setattr(tufrepo.site_index, "ARTIFACT_ROWS", 10)
    work = _count_work(ci, monkeypatch)
    built = count_target_files(monkeypatch)
    monkeypatch.setattr(DirectorySite, "listing", _no_listing)
    out = world.tufrepo("ci", "publish", str(site), "--json").stdout
    monkeypatch.undo()
    assert work == Counter(decode=1)  # the new role, once; not the recorded one
    assert sorted(built) == ["added1.bin", "added2.bin"]
    written = [p for p in json.loads(out)["written"] if p.startswith("targets/")]
    assert len(written) == 2
    fresh = world.root / "fresh"
    world.tufrepo("ci", "publish", str(fresh))
    assert (
        json.loads((fresh / "tufrepo-site.json").read_text())["roles"]
        == json.loads((site / "tufrepo-site.json").read_text())["roles"]
    )


def test_targets_counts_only_while_root_is_what_online_sign_verified_with(
    published: tuple[World, Path, Path],
) -> None:
    """``targets`` is delegated by root: a root.json changed since online-sign's commit (here
    only its layout: the blob differs) means targets is not the one online-sign verified."""
    _, ci, _ = published
    repo = GitRepo(ci)

    def verified() -> set[str]:
        view = git_view(lambda p: repo.read_blob("HEAD", p), lambda d: repo.list_dir("HEAD", d),
                        "HEAD")  # fmt: skip
        return set(online_verified(repo, view, {"targets": "root"}).roles)

    assert verified() == {"targets"}
    root = ci / "metadata/root.json"
    root.write_bytes(root.read_bytes() + b"\n")
    git(ci, "commit", "--quiet", "-am", "root.json changed after online-sign")
    assert verified() == set()
