"""Commands do work proportional to the change, not to the repository: status, update-targets
and sign read main from git objects (many delegated roles, one changed); online-sign hashes
only the artifacts changed since the last online-signed commit (many artifacts, a few
changed); none of them clones."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git as gitpython
import pytest
from freezegun import freeze_time

import tufrepo.git
import tufrepo.repository
import tufrepo.site_index
import tufrepo.site_store
from tests.counting import count_hashing, count_target_files
from tests.git_helpers import World, git

pytestmark = pytest.mark.git

ROLES = 12
ARTIFACTS = 200


def forbid_clones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way tufrepo could clone fail: GitPython's clone calls (what
    ``tufrepo.git``'s clone functions call) and ``git clone`` through ``GitRepo.run``."""

    def no_clone(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("main must be read from git objects, not a clone")

    real_run = tufrepo.git.GitRepo.run

    def run(self: tufrepo.git.GitRepo, *args: str) -> str:
        if "clone" in args[:3]:
            no_clone()
        return real_run(self, *args)

    monkeypatch.setattr(gitpython.Repo, "clone_from", no_clone)
    monkeypatch.setattr(gitpython.Repo, "clone", no_clone)
    monkeypatch.setattr(tufrepo.git.GitRepo, "run", run)


def _release(world: World, name: str, changes: list[str]) -> None:
    """Open event ``name`` with ``changes`` (event open arguments), sign it, merge it."""
    world.tufrepo("appci", "event", "open", name, "--repo", str(world.clone("appci")), *changes)
    world.tufrepo("alice", "sign", f"sign/{name}", user="@alice")
    world.merge(name)


@pytest.fixture
def big_world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.init()
    for i in range(ROLES):
        world.tufrepo("alice", "delegate", "sign/roles", f"role{i}", user="@alice")
    world.merge("roles")
    # every role gets some artifacts on main
    files = world.root / "files"
    files.mkdir()
    args = []
    for i in range(ROLES):
        for j in range(3):
            f = files / f"{i}-{j}.bin"
            f.write_bytes(f"{i}/{j}".encode() * 50)
            args += ["--target", f"role{i}/x/{j}.bin={f}"]
    _release(world, "fill", args)
    return world


def test_status_and_sign_scale_with_the_change(
    big_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = big_world
    changed = world.root / "files/new.bin"
    changed.write_bytes(b"new release")
    parsed = _parse_counter(monkeypatch)
    world.tufrepo(
        "appci", "event", "open", "one", "--repo", str(world.clone("appci")),
        "--target", f"role3/y/new.bin={changed}",
    )  # fmt: skip
    # each file at most once as main has it and once as the event has it
    assert max(parsed.values()) <= 2, parsed

    parsed.clear()
    hashed = count_hashing(monkeypatch)
    forbid_clones(monkeypatch)

    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/one", "origin/sign/one")
    world.tufrepo("ci", "status", "--format", "json", code=1)
    assert hashed == ["role3/y/new.bin"]
    assert set(parsed) <= {"root.json", "targets.json", "role3.json"}
    assert sum(parsed.values()) <= 6

    parsed.clear()
    hashed.clear()
    built = count_target_files(monkeypatch)
    world.tufrepo("ci", "update-targets")
    assert hashed == ["role3/y/new.bin"]
    # main's role3 lists 3 artifacts, the event's 4: the event's copy builds only the new one
    assert len(built) == 4, built
    assert sum(parsed.values()) <= 6
    # the roles the event did not change are the same bytes as main's: parsed once; the
    # event's role3 is read beside main's, entry by entry as bytes (tufrepo.entries)
    assert parsed["targets.json"] == 1, parsed
    assert parsed["role3.json"] == 1, parsed
    git(ci, "checkout", "--quiet", "--detach")

    parsed.clear()
    hashed.clear()
    world.tufrepo("alice", "sign", "sign/one", user="@alice")
    assert set(hashed) == {"role3/y/new.bin"}
    assert set(parsed) <= {"root.json", "targets.json", "role3.json"}
    # each file once as main has it and once as the event has it: reviewed, then signed
    assert max(parsed.values()) <= 2, parsed


def test_the_clone_guard_catches_a_command_that_clones(
    big_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``event open --remote`` clones: the guard used above must stop it."""
    forbid_clones(monkeypatch)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")
    with pytest.raises(AssertionError, match="not a clone"):
        big_world.tufrepo(
            "appci", "event", "open", "cloned", "--remote", str(big_world.remote),
            "--target", f"role1/a.bin={artifact}", "--repo", str(tmp_path / "unused"),
        )  # fmt: skip


@pytest.fixture
def many_artifacts(tmp_path: Path) -> World:
    """ARTIFACTS artifacts of targets on main, online-signed once."""
    world = World(tmp_path)
    world.init()
    _release(world, "fill", world.target_args(ARTIFACTS, lambda i: f"a{i}.bin"))
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    return world


def _release_one(world: World) -> None:
    """Release ``one`` on main: a1.bin and a2.bin changed, added.bin added, a3.bin removed."""
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    _release(world, "one", [
        "--target", f"a1.bin={new}", "--target", f"a2.bin={new}",
        "--target", f"added.bin={new}", "--remove", "a3.bin",
    ])  # fmt: skip


def test_online_sign_hashes_only_what_changed_since_it_last_signed(
    many_artifacts: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = many_artifacts
    _release_one(world)
    ci = world.clone("ci")
    hashed = count_hashing(monkeypatch)
    forbid_clones(monkeypatch)
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
    assert sorted(hashed) == ["a1.bin", "a2.bin", "added.bin"]

    hashed.clear()  # the next run: nothing changed since, nothing is read
    assert "up to date" in world.tufrepo("ci", "online-sign").stderr
    assert hashed == []
    assert git(ci, "status", "--porcelain") == ""


def test_online_sign_reads_a_flat_role_once_and_builds_only_the_changed_entries(
    many_artifacts: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flat targets role (issue 9: 100,000 artifacts, 14.6 MB): online-sign reads main's
    copy and the copy it verified last once each, encodes main's once for the signature
    check (from the parsed JSON), builds TargetFile objects only for the entries that differ
    between the two, and parses each trusted root once."""
    import tufrepo.history
    import tufrepo.jsonfast

    world = many_artifacts
    _release_one(world)
    world.clone("ci")
    parsed = _parse_counter(monkeypatch, tufrepo.history)
    built = count_target_files(monkeypatch)
    encoded: list[int] = []
    real_canonical = tufrepo.jsonfast.canonical

    def canonical(obj: Any, **kwargs: Any) -> bytes:
        out = real_canonical(obj, **kwargs)
        encoded.append(len(out))
        return out

    monkeypatch.setattr(tufrepo.jsonfast, "canonical", canonical)
    blobs: list[str] = []
    real_read = tufrepo.git.GitRepo.read_blob

    def read_blob(self: tufrepo.git.GitRepo, commit: str | None, path: str) -> bytes | None:
        blobs.append(path)
        return real_read(self, commit, path)

    monkeypatch.setattr(tufrepo.git.GitRepo, "read_blob", read_blob)
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
    # main's four changed entries (a3.bin only in the copy verified before)
    assert set(built) == {"a1.bin", "a2.bin", "a3.bin", "added.bin"}, built
    assert len(built) <= 6, built
    assert parsed["targets.json"] == 2, parsed  # main's, and the copy verified last
    history = [name for name in parsed if name.startswith("root_history/")]
    assert history
    assert all(parsed[name] == 1 for name in history), parsed
    targets_size = len((world.clone("ci") / "metadata/targets.json").read_bytes())
    assert len([n for n in encoded if n > targets_size // 2]) == 1, encoded
    assert blobs.count("metadata/targets.json") == 1, blobs


@pytest.mark.parametrize("tamper", ["modify", "add", "remove"])
def test_online_sign_still_sees_files_changed_behind_the_metadata(
    many_artifacts: World, tamper: str
) -> None:
    """Someone who can push to main changes artifacts without signed metadata: online-sign
    compares those (they changed since it last signed) and refuses."""
    world = many_artifacts
    ci = world.clone("ci")
    if tamper == "modify":
        (ci / "targets/a7.bin").write_bytes(b"evil")
    elif tamper == "add":
        (ci / "targets/evil.bin").write_bytes(b"evil")
    else:
        (ci / "targets/a7.bin").unlink()
    git(ci, "add", "--all", "targets")
    git(ci, "commit", "--quiet", "-m", "pushed behind the metadata's back")
    git(ci, "push", "--quiet", "origin", "main")
    head = git(ci, "rev-parse", "HEAD")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "refusing to sign online" in out
    assert ("evil.bin" if tamper == "add" else "a7.bin") in out
    assert git(ci, "rev-parse", "HEAD") == head


def test_online_sign_sees_a_signed_entry_whose_file_did_not_change(
    many_artifacts: World,
) -> None:
    """A signed event changes a7.bin, and its artifact change is lost before the merge (the
    file put back as main had it): the merged targets lists a new entry for a file git saw
    unchanged. online-sign hashes only changed files, but compares every entry that differs
    from the one it verified before: it refuses."""
    world = many_artifacts
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    world.tufrepo("appci", "event", "open", "lost", "--repo", str(world.clone("appci")),
                  "--target", f"a7.bin={new}")  # fmt: skip
    world.tufrepo("alice", "sign", "sign/lost", user="@alice")
    appci = world.clone("appci")
    git(appci, "fetch", "--quiet", "origin")
    git(appci, "checkout", "--quiet", "-B", "sign/lost", "origin/sign/lost")
    git(appci, "checkout", "origin/main", "--", "targets/a7.bin")
    git(appci, "commit", "--quiet", "-m", "the artifact change lost")
    git(appci, "push", "--quiet", "origin", "sign/lost")
    world.merge("lost")
    ci = world.ci()
    head = git(ci, "rev-parse", "HEAD")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "a7.bin: metadata length/hash differ from targets/a7.bin" in out, out
    assert git(ci, "rev-parse", "HEAD") == head


@pytest.mark.parametrize("edit", ["length", "version"])
def test_online_sign_refuses_a_flat_role_changed_without_signatures(
    many_artifacts: World, edit: str
) -> None:
    """The flat targets role edited on main (an entry, or its version) without its signers:
    the signature check over the role's bytes as parsed fails, and online-sign refuses."""
    world = many_artifacts
    ci = world.ci()
    path = ci / "metadata/targets.json"
    md = json.loads(path.read_text())
    if edit == "length":
        md["signed"]["targets"]["a7.bin"]["length"] += 1
    else:
        md["signed"]["version"] += 1
    path.write_text(json.dumps(md, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "pushed behind the signers' back")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "targets: signed by 0/1" in out, out


def _missing_blobs(clone: Path) -> int:
    """Objects a partial clone has not fetched."""
    out = git(clone, "rev-list", "--objects", "--all", "--missing=print")
    return sum(1 for line in out.splitlines() if line.startswith("?"))


def test_ci_steps_in_a_sparse_partial_clone_fetch_only_the_change(
    many_artifacts: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """App CI's ``event open --remote``, then update-targets, status, online-sign and verify
    in sparse, partial clones (metadata only): each reads the changed artifacts alone."""
    world = many_artifacts
    git(world.remote, "config", "uploadpack.allowFilter", "true")
    url = world.remote.as_uri()  # a local path would be copied whole
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    hashed = count_hashing(monkeypatch)
    world.tufrepo(
        "appci", "event", "open", "rel", "--remote", url, "--repo", str(tmp_path),
        "--target", f"a5.bin={new}", "--target", f"added.bin={new}", "--remove", "a6.bin",
    )  # fmt: skip
    assert sorted(hashed) == ["a5.bin", "added.bin"]

    ci = tufrepo.git.sparse_clone(url, tmp_path / "sparse-ci").path
    assert not (ci / "targets").exists()
    git(ci, "checkout", "--quiet", "-B", "sign/rel", "origin/sign/rel")
    hashed.clear()
    assert "up to date" in world.tufrepo("ci", "update-targets", "--repo", str(ci)).stderr
    status = world.tufrepo("ci", "status", "--format", "json", "--repo", str(ci), code=1)
    assert "added.bin" in status.stdout
    assert sorted(hashed) == ["a5.bin", "a5.bin", "added.bin", "added.bin"]
    assert _missing_blobs(ci) >= ARTIFACTS - 3

    alice = tufrepo.git.sparse_clone(url, tmp_path / "sparse-alice").path
    world.tufrepo("alice", "sign", "sign/rel", "--repo", str(alice), user="@alice")
    world.merge("rel")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    hashed.clear()
    assert "signed snapshot" in world.tufrepo("ci", "online-sign", "--repo", str(ci)).stderr
    assert sorted(hashed) == ["a5.bin", "added.bin"]
    assert _missing_blobs(ci) >= ARTIFACTS - 3

    hashed.clear()  # verify is a whole-repository check: it fetches and hashes everything
    world.tufrepo("ci", "verify", "--repo", str(ci))
    assert len(hashed) == ARTIFACTS
    assert len(list((ci / "targets").iterdir())) == ARTIFACTS


def _parse_counter(monkeypatch: pytest.MonkeyPatch, *also: Any) -> Counter[str]:
    """Files parsed (``repository.parse``; ``also``: modules that imported it too)."""
    parsed: Counter[str] = Counter()
    real = tufrepo.repository.parse

    def counting(name: str, data: bytes, where: str = "", **kwargs: Any) -> Any:
        parsed[name] += 1
        return real(name, data, where, **kwargs)

    for module in (tufrepo.repository, *also):
        monkeypatch.setattr(module, "parse", counting)
    return parsed


def test_online_sign_reads_only_the_roles_changed_since_the_snapshot(
    big_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Roles whose bytes the current snapshot lists (with their delegator's) were verified
    by an earlier online-sign: only their expiry is read, from the start of the file."""
    world = big_world
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    changed = world.root / "files/changed.bin"
    changed.write_bytes(b"changed")
    world.tufrepo(
        "appci", "event", "open", "two", "--repo", str(world.clone("appci")),
        "--target", f"role5/x/0.bin={changed}",
    )  # fmt: skip
    world.tufrepo("alice", "sign", "sign/two", user="@alice")
    world.merge("two")
    parsed = _parse_counter(monkeypatch)
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
    roles = {n for n in parsed if not n.startswith("root_history/")}
    assert roles == {"root.json", "targets.json", "role5.json", "snapshot.json", "timestamp.json"}
    snapshot = json.loads((ci / "metadata/snapshot.json").read_text())["signed"]["meta"]
    assert len(snapshot) == ROLES + 1


def test_online_sign_still_checks_roles_changed_behind_the_snapshot(big_world: World) -> None:
    """A role file changed on main without valid signatures is not what the snapshot lists:
    it is verified again, and online-sign refuses."""
    world = big_world
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    path = ci / "metadata/role7.json"
    md = json.loads(path.read_text())
    md["signed"]["targets"]["role7/x/0.bin"]["length"] += 1
    path.write_text(json.dumps(md, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "pushed behind the snapshot's back")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "role7: signed by 0/1" in out


def test_online_sign_still_sees_a_proven_role_expire(big_world: World) -> None:
    world = big_world
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    with freeze_time(datetime.now(UTC) + timedelta(days=400)):
        out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "role9: expired at" in out


def test_publish_into_a_site_hashes_only_the_new_artifacts(
    many_artifacts: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Updating a published site in place: artifacts already there under their hash names
    are neither hashed nor copied again."""
    world = many_artifacts
    ci = world.clone("ci")
    site = world.root / "site"
    world.tufrepo("ci", "publish", str(site))
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    _release(world, "pub", ["--target", f"a1.bin={new}", "--target", f"added.bin={new}"])
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "online-sign")
    hashed = count_hashing(monkeypatch)
    forbid_listing(monkeypatch)
    world.tufrepo("ci", "publish", str(site))
    assert sorted(hashed) == ["a1.bin", "added.bin"]


def test_publish_from_a_sparse_clone_fetches_only_the_new_artifacts(
    many_artifacts: World, tmp_path: Path
) -> None:
    """The publishing job in a sparse partial clone: updating the site checks out (so
    fetches) the new artifacts alone, not every artifact of the repository."""
    world = many_artifacts
    site = world.root / "site"
    world.tufrepo("ci", "publish", str(site))
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    _release(world, "pub", ["--target", f"a1.bin={new}", "--target", f"added.bin={new}"])
    ci = world.clone("ci")
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "online-sign")
    git(world.remote, "config", "uploadpack.allowFilter", "true")
    publisher = tufrepo.git.sparse_clone(world.remote.as_uri(), tmp_path / "sparse-pub").path
    out = world.tufrepo("ci", "publish", str(site), "--json", "--repo", str(publisher)).stdout
    written = json.loads(out)["written"]
    assert sorted(p.split(".")[-2] for p in written if p.startswith("targets/")) == ["a1", "added"]
    assert _missing_blobs(publisher) >= ARTIFACTS - 3
    assert not (publisher / "targets/a3.bin").exists()


def forbid_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing the site (every file of it) is what an update must not need."""

    def no_listing(*_args: object) -> None:
        raise AssertionError("an update of the site must not list it")

    monkeypatch.setattr(tufrepo.site_store.DirectorySite, "listing", no_listing)


def test_publish_reads_only_the_changed_role(
    big_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of 12 delegated roles, a publish after a release that changed one reads that role
    (and root, targets, snapshot, timestamp), lists nothing, hashes the new artifact."""
    world = big_world
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    site = world.root / "site"
    world.tufrepo("ci", "publish", str(site))
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    _release(world, "one", ["--target", f"role5/y/new.bin={new}"])
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "online-sign")
    monkeypatch.setattr(tufrepo.site_index, "ARTIFACT_ROWS", 10)  # no list of every artifact
    read: list[str] = []
    real = Path.read_bytes

    def reading(self: Path) -> bytes:
        if self.parent == ci / "metadata":
            read.append(self.name)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", reading)
    hashed = count_hashing(monkeypatch)
    forbid_listing(monkeypatch)
    world.tufrepo("ci", "publish", str(site))
    assert hashed == ["role5/y/new.bin"]
    assert set(read) == {"root.json", "timestamp.json", "snapshot.json", "targets.json",
                         "role5.json"}  # fmt: skip


def test_metadata_only_events_commit_in_a_sparse_clone(
    many_artifacts: World, tmp_path: Path
) -> None:
    """A commit that changes metadata alone (nothing under targets/ checked out) works in a
    sparse checkout, where git refuses to add a directory that is not checked out."""
    world = many_artifacts
    git(world.remote, "config", "uploadpack.allowFilter", "true")
    alice = tufrepo.git.sparse_clone(world.remote.as_uri(), tmp_path / "sparse-alice").path
    out = world.tufrepo(
        "alice", "delegate", "sign/new-role", "newrole", "--signers", "@alice",
        "--repo", str(alice), user="@alice",
    )  # fmt: skip
    assert "committed" in out.stdout
    committed = git(alice, "show", "--name-only", "--format=", "sign/new-role")
    assert "metadata/newrole.json" in committed


def test_an_unsigned_timestamp_commit_does_not_hide_changed_files(many_artifacts: World) -> None:
    """A pusher to main changes an artifact and, in a later commit, timestamp.json (which
    they cannot sign): online-sign still starts from its own last signed commit, sees the
    artifact and refuses."""
    world = many_artifacts
    ci = world.clone("ci")
    (ci / "targets/a7.bin").write_bytes(b"evil")
    git(ci, "add", "--all", "targets")
    git(ci, "commit", "--quiet", "-m", "pushed behind the metadata's back")
    ts = ci / "metadata/timestamp.json"
    data = json.loads(ts.read_bytes())
    data["signed"]["expires"] = "2099-01-01T00:00:00Z"
    ts.write_text(json.dumps(data, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "a timestamp nobody online signed")
    git(ci, "push", "--quiet", "origin", "main")
    head = git(ci, "rev-parse", "HEAD")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "refusing to sign online" in out
    assert "a7.bin" in out
    assert git(ci, "rev-parse", "HEAD") == head


def _signed_main(world: World) -> tuple[Path, str]:
    """The CI clone after online-sign signed main: (clone, the online-sign commit)."""
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    return ci, git(ci, "rev-parse", "HEAD")


def _tamper_role7(ci: Path) -> None:
    """role7.json changed at the same version, without valid signatures."""
    path = ci / "metadata/role7.json"
    md = json.loads(path.read_text())
    md["signed"]["targets"]["role7/x/0.bin"]["length"] += 1
    path.write_text(json.dumps(md, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "role7 changed behind online-sign's back")


def _replay(ci: Path, signed: str) -> None:
    """An unsigned timestamp, then the online-signed bytes of ``signed`` again: the newest
    commit that made timestamp.json an online-signed one is now the pusher's."""
    path = ci / "metadata/timestamp.json"
    data = json.loads(path.read_bytes())
    data["signed"]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "a timestamp nobody online signed")
    git(ci, "checkout", "--quiet", signed, "--", "metadata/timestamp.json")
    git(ci, "commit", "--quiet", "-am", "the online-signed timestamp again")


def _merged_copy(ci: Path, signed: str) -> None:
    """A line beside the online-sign commit: role7 tampered with, then a commit copying
    that commit's timestamp and snapshot bytes; merged as the *first* parent, so main's
    first-parent line no longer passes through the commit online-sign made."""
    git(ci, "checkout", "--quiet", "-b", "evil", f"{signed}^1")
    _tamper_role7(ci)
    git(ci, "checkout", "--quiet", signed, "--", "metadata/timestamp.json",
        "metadata/snapshot.json")  # fmt: skip
    git(ci, "commit", "--quiet", "-m", "online-signed bytes, copied")
    git(ci, "merge", "--quiet", "-s", "ours", "-m", "merge", signed)
    git(ci, "checkout", "--quiet", "-B", "main", "evil")


@pytest.mark.parametrize("attack", ["re-committed timestamp", "merged copy"])
def test_online_sign_verifies_a_role_changed_under_a_copied_signed_timestamp(
    big_world: World, attack: str
) -> None:
    """A pusher to main commits the bytes of the online-signed timestamp (and snapshot)
    again, with role7 tampered at the same version: role7 does not equal what it was at
    the commit online-sign made, so it is verified again and online-sign refuses."""
    world = big_world
    ci, signed = _signed_main(world)
    if attack == "re-committed timestamp":
        _tamper_role7(ci)
        _replay(ci, signed)
    else:
        _merged_copy(ci, signed)
    assert git(ci, "show", "HEAD:metadata/timestamp.json") == git(
        ci, "show", f"{signed}:metadata/timestamp.json"
    )
    git(ci, "push", "--quiet", "origin", "main")
    head = git(ci, "rev-parse", "HEAD")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "refusing to sign online" in out
    assert "role7: signed by 0/1" in out
    assert git(ci, "rev-parse", "HEAD") == head


def test_a_replayed_older_signed_state_is_a_rollback(big_world: World) -> None:
    """The timestamp, snapshot and role file of an earlier online signing, all validly
    signed and equal to what online-sign verified then, pushed back to main: the versions
    are lower than the newest online-signed ones, and online-sign refuses."""
    world = big_world
    ci, first = _signed_main(world)
    changed = world.root / "files/changed.bin"
    changed.write_bytes(b"changed")
    _release(world, "two", ["--target", f"role5/x/0.bin={changed}"])
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "online-sign")
    old = ["metadata/timestamp.json", "metadata/snapshot.json", "metadata/role5.json"]
    git(ci, "checkout", "--quiet", first, "--", *old)
    git(ci, "checkout", "--quiet", first, "--", "targets/role5/x/0.bin")
    git(ci, "commit", "--quiet", "-m", "the state of the first online signing")
    git(ci, "push", "--quiet", "origin", "main")
    out = world.tufrepo("ci", "online-sign", code=1).stderr
    assert "rollback" in out
    assert "timestamp: v1 is older than v2" in out, out
    assert "role5: v2 is older than v3" in out, out


def test_online_sign_writes_snapshot_entries_without_hashes(big_world: World) -> None:
    """Snapshot entries carry version and length (a client caps its download with the
    length), no hashes; timestamp's entry for snapshot keeps its sha256."""
    ci, _ = _signed_main(big_world)
    snapshot = json.loads((ci / "metadata/snapshot.json").read_text())["signed"]["meta"]
    assert len(snapshot) == ROLES + 1
    for name, entry in snapshot.items():
        assert set(entry) == {"length", "version"}, name
        assert entry["length"] == len((ci / "metadata" / name).read_bytes())
    timestamp = json.loads((ci / "metadata/timestamp.json").read_text())["signed"]
    assert set(timestamp["meta"]["snapshot.json"]["hashes"]) == {"sha256"}


def test_a_snapshot_entry_changed_on_main_is_not_signed_again(big_world: World) -> None:
    """A pusher edits snapshot.json to list a wrong length for an unchanged role, and
    timestamp.json to record the edited snapshot (neither verifies any more): online-sign
    signs a new snapshot whose entry is the file's, not the pusher's."""
    world = big_world
    ci, _ = _signed_main(world)
    path = ci / "metadata/snapshot.json"
    md = json.loads(path.read_text())
    md["signed"]["meta"]["role3.json"]["length"] = 1
    path.write_text(json.dumps(md, indent=1, sort_keys=True))
    data = path.read_bytes()
    ts_path = ci / "metadata/timestamp.json"
    ts = json.loads(ts_path.read_text())
    ts["signed"]["meta"]["snapshot.json"] = {
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
        "length": len(data),
        "version": 1,
    }
    ts_path.write_text(json.dumps(ts, indent=1, sort_keys=True))
    git(ci, "commit", "--quiet", "-am", "a snapshot entry nobody online signed")
    git(ci, "push", "--quiet", "origin", "main")
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
    entry = json.loads(path.read_text())["signed"]["meta"]["role3.json"]
    role3 = (ci / "metadata/role3.json").read_bytes()
    assert entry == {"length": len(role3), "version": json.loads(role3)["signed"]["version"]}


def test_an_event_brought_up_to_date_after_an_online_signing_is_signed_online(
    big_world: World,
) -> None:
    """An event opened, then brought up to date with main after online-sign signed a newer
    timestamp (its merge of main makes timestamp.json those bytes on the event's line), then
    signed and merged: that merge is no online signing, online-sign signs the release."""
    world = big_world
    ci, _ = _signed_main(world)
    two, three = world.root / "files/two.bin", world.root / "files/three.bin"
    two.write_bytes(b"two")
    three.write_bytes(b"three")
    world.tufrepo("appci", "event", "open", "two", "--repo", str(world.clone("appci")),
                  "--target", f"role5/x/0.bin={two}")  # fmt: skip
    _release(world, "three", ["--target", f"role6/x/0.bin={three}"])
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "online-sign")
    world.tufrepo("alice", "event", "update", "sign/two", "--repo", str(world.clone("alice")))
    world.tufrepo("alice", "sign", "sign/two", user="@alice")
    world.merge("two")
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr


def test_online_sign_finds_its_anchor_once(
    many_artifacts: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commits online-sign's last verification stands on are looked for once per run:
    the proof of unchanged roles and the version-regression check share them."""
    import tufrepo.history

    world = many_artifacts
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    _release(world, "anchor", ["--target", f"a1.bin={new}"])
    world.clone("ci")
    calls = []
    real = tufrepo.history.online_anchor

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tufrepo.history, "online_anchor", counting)
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
    assert len(calls) == 1


def test_files_read_from_a_commit_parse_each_tree_once(tmp_path: Path) -> None:
    """Reading every role file of a commit parses metadata/ once (GitPython parsed the
    directory's tree again for each file: a thousand entries, with hash bins)."""
    from tufrepo.git import GitRepo

    work = tmp_path / "repo"
    (work / "metadata").mkdir(parents=True)
    for i in range(40):
        (work / f"metadata/bin-{i}.json").write_text(str(i))
    git(tmp_path, "init", "--quiet", str(work))
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "roles")
    repo = GitRepo(work)
    head = repo.head() or ""
    tree = bytes.fromhex(git(work, "rev-parse", "HEAD:metadata"))
    reads = []
    real = repo._object

    def counting(name: str) -> Any:
        reads.append(bytes.fromhex(name) if len(name) == 40 else name)
        return real(name)

    repo._object = counting  # type: ignore[method-assign]
    assert [repo.read_blob(head, f"metadata/bin-{i}.json") for i in range(40)] == [
        str(i).encode() for i in range(40)
    ]
    assert repo.list_dir(head, "metadata")[:2] == ["bin-0.json", "bin-1.json"]
    assert reads.count(tree) == 1


def test_online_sign_encodes_and_copies_the_snapshot_without_python_tuf_walks(
    big_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot of a million artifacts in bins lists 1,025 roles: online-sign signs and
    checks it over one canonical encoding at C speed (never python-tuf's pure-Python
    ``signed_bytes``, once per signature and check) and edits a copy that shares the
    entries (``MetaFile``: replaced, never edited in place), not a deep copy of each."""
    from tuf.api.metadata import MetaFile
    from tuf.api.serialization.json import CanonicalJSONSerializer

    world = big_world
    world.clone("ci")
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr  # the first
    new = world.root / "files/new.bin"
    new.write_bytes(b"new release")
    _release(world, "one", ["--target", f"role3/x/new.bin={new}"])
    encoded: list[str] = []
    real_serialize = CanonicalJSONSerializer.serialize

    def serialize(self: CanonicalJSONSerializer, obj: Any) -> bytes:
        encoded.append(type(obj).__name__)
        return real_serialize(self, obj)

    copied: list[int] = []

    def deepcopy_meta(self: MetaFile, memo: dict[int, Any]) -> MetaFile:
        copied.append(self.version)
        return MetaFile(self.version, self.length, dict(self.hashes or {}) or None)

    monkeypatch.setattr(CanonicalJSONSerializer, "serialize", serialize)
    monkeypatch.setattr(MetaFile, "__deepcopy__", deepcopy_meta, raising=False)
    assert "signed snapshot" in world.tufrepo("ci", "online-sign").stderr
    # root: a root_history entry is checked to be what python-tuf itself encodes (small)
    assert set(encoded) <= {"Root"}, encoded
    # the changed role's new entry and timestamp's, in python-tuf's do_snapshot/do_timestamp
    # and the view's copies: never each of snapshot's ROLES + 1 entries
    assert len(copied) < ROLES, copied
