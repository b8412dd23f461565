"""Hash-bin delegations (TAP 15) end to end on real git: binning, artifact changes across
bins, two signers, re-binning, online-sign, publish, and python-tuf / tuf-js downloading."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from tuf.api.metadata import Metadata, SuccinctRoles

from tests.git_helpers import World, git
from tests.site_helpers import ngclient_download, run_tufjs, serve, tufjs_available
from tufrepo import repository, signing
from tufrepo.client import inspect_site
from tufrepo.publish import publish

pytestmark = pytest.mark.git


def _files(tmp: Path, names: list[str], tag: str = "") -> list[str]:
    """--target args for artifacts ``names`` with content naming them (and ``tag``)."""
    src = tmp / "files"
    src.mkdir(exist_ok=True)
    args = []
    for name in names:
        f = src / f"{name.replace('/', '_')}{tag}"
        f.write_text(f"{name} {tag}\n" * 3)
        args += ["--target", f"{name}={f}"]
    return args


def _bins(meta: Path, role: str) -> SuccinctRoles:
    md = Metadata.from_file(str(meta / f"{role}.json"))
    succinct = md.signed.delegations.succinct_roles
    assert succinct is not None
    return succinct


def _online(world: World, ci: Path) -> None:
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")


def _calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[str]:
    """The first argument of every call of ``module.name`` from now on."""
    calls: list[str] = []
    real = getattr(module, name)

    def counting(first: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def _tufjs(url: str, root: Path, cache: Path, out: Path, targets: list[str]) -> None:
    if not tufjs_available():
        return
    result = run_tufjs(url, root, cache, out, targets)
    assert result.returncode == 0, result.stderr


def test_bins_lifecycle_two_signers_rebinning_and_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path)
    world.init()
    world.targets_two_of_two()
    names = [f"pkg{i}.txt" for i in range(24)]
    appci = world.clone("appci")
    world.tufrepo("appci", "event", "open", "rel", "--repo", str(appci), *_files(tmp_path, names))
    for user in ("bob", "alice"):
        world.tufrepo(user, "sign", "sign/rel", user=f"@{user}")
    world.merge("rel")

    # bin the top-level targets role: both signers sign targets and every bin
    out = world.tufrepo("alice", "delegate", "sign/bins", "targets", "--bins", "16", user="@alice")
    assert "signed 16 hash bins of targets (targets-bins-0 .. targets-bins-f)" in out.stderr
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/bins", "origin/sign/bins")
    text = world.tufrepo("ci", "status", code=1).stdout
    assert "16 hash bins of targets (targets-bins-0 .. targets-bins-f)" in text
    assert "24 artifacts of targets moved to their new hash bins" in text
    assert "not signed yet: @bob" in text
    assert len(text.splitlines()) < 20
    git(ci, "checkout", "--quiet", "--detach")
    loads = _calls(monkeypatch, signing, "load_signer")
    out = world.tufrepo("bob", "sign", "sign/bins", user="@bob")
    assert "signed 16 hash bins of targets" in out.stderr
    assert loads == [world.signers["@bob"]]  # 17 roles signed, the signer loaded once
    monkeypatch.undo()
    world.merge("bins")
    _online(world, ci)
    meta = ci / "metadata"
    bins = _bins(meta, "targets")
    assert Metadata.from_file(str(meta / "targets.json")).signed.targets == {}
    for name in names:
        listed = Metadata.from_file(str(meta / f"{bins.get_role_for_target(name)}.json"))
        assert name in listed.signed.targets

    # one event adds, modifies and removes artifacts across bins
    added, modified, removed = ["new1.txt", "new2.txt", "new3.txt"], names[:3], names[3:6]
    removals = [arg for r in removed for arg in ("--remove", r)]
    world.tufrepo("appci", "event", "open", "rel2", "--repo", str(appci),
                  *_files(tmp_path, added + modified, "v2"), *removals)  # fmt: skip
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/rel2", "origin/sign/rel2")
    parsed = _calls(monkeypatch, repository, "parse")
    status = json.loads(world.tufrepo("ci", "status", "--format", "json", code=1).stdout)
    monkeypatch.undo()
    touched = {bins.get_role_for_target(p) for p in added + modified + removed}
    # work grows with the change: only the bins it touches are read, not all 16 (and the
    # online roles, whose records of the touched files strict reading checks)
    online = {"snapshot", "timestamp"}
    assert {n.removesuffix(".json") for n in parsed} == {"root", "targets", *online, *touched}
    changes = {(a["path"], a["change"]) for r in status["roles"] for a in r["artifacts"]}
    assert changes == {(p, "added") for p in added} | {(p, "modified") for p in modified} | {
        (p, "removed") for p in removed
    }
    assert {r["role"] for r in status["roles"]} == touched
    assert all(r["bin_of"] == "targets" for r in status["roles"])
    git(ci, "checkout", "--quiet", "--detach")
    for user in ("alice", "bob"):
        world.tufrepo(user, "sign", "sign/rel2", user=f"@{user}")
    world.merge("rel2")
    _online(world, ci)
    world.tufrepo("ci", "verify")
    site = tmp_path / "site"
    publish(ci, site)
    root1 = meta / "root_history" / "1.root.json"
    kept = [n for n in names if n not in removed]
    index = (site / "index.html").read_text()
    owner = bins.get_role_for_target(added[0])
    assert f"<td><code>{added[0]}</code></td><td>{owner}</td>" in index
    bin_row = index.split(f'<tr data-role="{owner}"', 1)[1].split("</tr>", 1)[0]
    assert "2 of 2" in bin_row  # a bin's signers are its role's
    assert "@bob" in bin_row
    with serve(site) as server:
        ngclient_download(server.url, root1, tmp_path / "py", tmp_path / "o1", added + kept[:4])
        _tufjs(server.url, root1, tmp_path / "js", tmp_path / "j1", added + kept[:4])
        report = inspect_site(server.url, root1.read_bytes())
        assert report, report.problems
        seen = {r.name for r in report.roles}
        assert set(bins.get_roles()) <= seen
        for name in bins.get_roles():  # every bin's metadata fetched, not just one artifact's
            assert any(p.endswith(f".{name}.json") for p in server.requests)

    # re-binning 16 -> 64 is one event; snapshot keeps the retired bins' entries
    world.tufrepo("alice", "delegate", "sign/rebin", "targets", "--bins", "64", user="@alice")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/rebin", "origin/sign/rebin")
    out = world.tufrepo("ci", "update-targets", "--no-push")
    assert "targets metadata is up to date" in out.stderr + out.stdout
    text = world.tufrepo("ci", "status", code=1).stdout
    assert "hash bins: 16 -> 64 (targets-bins-*)" in text
    assert f"{len(kept + added)} artifacts of targets moved to their new hash bins" in text
    git(ci, "checkout", "--quiet", "--detach")
    world.tufrepo("bob", "sign", "sign/rebin", user="@bob")
    world.merge("rebin")
    _online(world, ci)
    world.tufrepo("ci", "verify")
    new_bins = _bins(meta, "targets")
    assert new_bins.number_of_bins == 64
    assert not (meta / "targets-bins-0.json").exists()
    snapshot = Metadata.from_file(str(meta / "snapshot.json")).signed
    assert "targets-bins-0.json" in snapshot.meta
    assert "targets-bins-3f.json" in snapshot.meta
    publish(ci, site)
    with serve(site) as server:
        # clients that trusted the 16-bin snapshot accept the new one and find every artifact
        ngclient_download(server.url, root1, tmp_path / "py", tmp_path / "o2", kept + added)
        _tufjs(server.url, root1, tmp_path / "js", tmp_path / "j2", kept[-3:] + added)
        report = inspect_site(server.url, root1.read_bytes(), download_all=True)
        assert report, report.problems
        assert set(new_bins.get_roles()) <= {r.name for r in report.roles}
        assert sorted(report.downloaded) == sorted(kept + added)


def _refused(world: World, cases: list[tuple[list[str], str]]) -> None:
    """Each ``delegate sign/x ARGS`` exits 2 saying ``message`` and changes nothing."""
    before = world.snapshot("alice")
    for args, message in cases:
        result = world.tufrepo("alice", "delegate", "sign/x", *args, user="@alice", code=2)
        assert message in result.stderr
        assert world.snapshot("alice") == before


def test_bins_bad_input_changes_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.init()
    world.tufrepo("alice", "delegate", "sign/x", "app", user="@alice")
    _refused(world, [
        (["targets", "--bins", "3"], "--bins 3: use a power of two"),
        (["root", "--bins", "16"], "root holds no artifacts"),
        (["targets", "--bins", "16"], "targets delegates to named roles"),
    ])  # fmt: skip
    world.tufrepo("alice", "delegate", "sign/x", "app", "--bins", "16", user="@alice")
    _refused(world, [
        (["app", "--bins", "16"], "app already has 16 hash bins"),
        (["app-bins-3", "--bins", "4"], "app-bins-3 is a hash bin"),
        (["app-bins-3", "--signers", "@bob"], "app-bins-3 is a hash bin"),
    ])  # fmt: skip
    world.merge("x")
    # hash bins due for re-signing together open one event, not one per bin
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    with freeze_time(datetime.now(UTC) + timedelta(days=330)):
        out = world.tufrepo("ci", "expiry-events", "--no-push").stdout
    assert "opened sign/app-bins-v2 for app-bins-0, app-bins-1," in out
    assert "sign/app-bins-0-v" not in out


def test_bins_follow_their_roles_signers(tmp_path: Path) -> None:
    """A new signer of a binned role signs its bins too, after accepting the invitation."""
    world = World(tmp_path)
    world.init()
    world.tufrepo("alice", "delegate", "sign/app", "app", "--bins", "4", user="@alice")
    world.merge("app")
    world.tufrepo("alice", "delegate", "sign/carol", "app", "--signers", "@alice,@carol",
                  "--threshold", "2", user="@alice")  # fmt: skip
    out = world.tufrepo("carol", "sign", "sign/carol", user="@carol")
    assert "signed 4 hash bins of app (app-bins-0 .. app-bins-3)" in out.stderr
    world.tufrepo("alice", "sign", "sign/carol", user="@alice")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "sign/carol", "origin/sign/carol")
    status = json.loads(world.tufrepo("ci", "status", "--format", "json").stdout)
    assert status["ready"] is True
    bins = [r for r in status["roles"] if r["bin_of"] == "app"]
    assert len(bins) == 4
    assert all(sorted(r["signed"]) == ["@alice", "@carol"] for r in bins)
    assert all(r["threshold"] == 2 for r in bins)
    app = Metadata.from_file(str(ci / "metadata" / "app.json")).signed
    assert app.delegations.succinct_roles.threshold == 2
    assert len(app.delegations.succinct_roles.keyids) == 2
