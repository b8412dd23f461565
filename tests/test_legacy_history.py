"""A repository whose first roots were written by an older tool (tests/legacy_helpers.py):
``verify`` walks its root_history with warnings naming the files, ``publish`` copies every
entry byte for byte, tufrepo takes it over (a root change and a release in a dotted role,
online-sign, publish again) and python-tuf and tuf-js clients update through every version.

What the clients themselves accept is checked too: tuf-js trusts root 1 (RFC 3339 time with
fraction and offset); python-tuf's ngclient cannot parse it and starts from root 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api.exceptions import RepositoryError
from tuf.api.serialization import DeserializationError

from tests.git_helpers import World, git, run_tufrepo
from tests.legacy_helpers import ARTIFACTS, DOTTED, LegacyRepo
from tests.site_helpers import ngclient_download, run_tufjs, serve, tufjs_available
from tufrepo.repository import read_history_root
from tufrepo.validate import walk_history

pytestmark = pytest.mark.git

APP2 = f"{DOTTED}/pkg/app-2.0.tgz"


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    path = w.clone("legacy")
    LegacyRepo(path, w.signers, w.online_uri).build()
    git(path, "checkout", "--quiet", "-b", "main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "A repository written by older tools")
    git(path, "push", "--quiet", "origin", "main")
    w.ci()
    return w


def test_tolerant_reader_verifies_the_signed_bytes(world: World) -> None:
    history = world.clone("ci") / "metadata" / "root_history"
    entries = {v: (history / f"{v}.root.json").read_bytes() for v in (1, 2, 3)}
    assert not walk_history(dict(entries.items())).problems
    entry = read_history_root("root_history/1.root.json", entries[1])
    assert entry.strict_problem is not None
    assert "python-tuf cannot parse it" in entry.strict_problem
    # a signature over root 1 as python-tuf would re-serialise it (normalised time) fails:
    # the reader verifies what the older tool signed
    tampered = entries[1].replace(b"-06:00", b"-05:00")
    chain = walk_history({1: tampered, 2: entries[2], 3: entries[3]})
    assert chain.problems == ["root v1: signed by 0/1 of root v1's root keys"]


def test_a_root_python_tuf_cannot_read_after_one_it_can_is_an_error(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "other"
    LegacyRepo(
        path, world.signers, world.online_uri, root3_expires="2031-01-01T00:00:00.5Z"
    ).build()
    history = path / "metadata" / "root_history"
    entries = {v: (history / f"{v}.root.json").read_bytes() for v in (1, 2, 3)}
    problems = walk_history(dict(entries.items())).problems
    assert len(problems) == 1, problems
    assert "root_history/3.root.json: python-tuf clients that trust root v2 fail" in problems[0]


def _clients(world: World, url: str, site: Path, targets: list[str]) -> None:
    """tuf-js from root 1, python-tuf from root 2 (fresh caches and the earlier ones)."""
    metadata = site / "metadata"
    with pytest.raises((RepositoryError, DeserializationError, ValueError)):
        ngclient_download(url, metadata / "1.root.json", world.root / "py-1", world.root / "o", [])
    for cache in ("py", "py-fresh"):
        version = ngclient_download(
            url, metadata / "2.root.json", world.root / cache, world.root / cache / "out", targets
        )
        assert version == max(int(p.name.split(".")[0]) for p in metadata.glob("*.root.json"))
    for cache in ("js", "js-fresh"):
        out = world.root / cache / "out"
        result = run_tufjs(url, metadata / "1.root.json", world.root / cache, out, targets)
        assert result.returncode == 0, result.stderr
        for target in targets:
            assert (out / target.rsplit("/", 1)[-1]).is_file()


@pytest.mark.tufjs
@pytest.mark.skipif(not tufjs_available(), reason="needs node and tests/tufjs/node_modules")
def test_take_over_a_legacy_repository(world: World) -> None:
    ci = world.clone("ci")
    result = world.tufrepo("ci", "verify")
    for name in ("root_history/1.root.json", "root_history/2.root.json"):
        assert f"metadata/{name}" in result.stderr
    assert "expires 2021-12-18T13:28:12.99008-06:00" in result.stderr
    assert "legacy keyid" in result.stderr
    assert "consistent_snapshot is false" in result.stderr
    assert "root_history/3.root.json" not in result.stderr

    site = world.root / "site"
    world.tufrepo("ci", "publish", str(site))
    for version in (1, 2, 3):
        published = (site / "metadata" / f"{version}.root.json").read_bytes()
        assert published == (ci / "metadata" / "root_history" / f"{version}.root.json").read_bytes()

    with serve(site) as server:
        _clients(world, server.url, site, list(ARTIFACTS))

        # take over: a root change by @alice, a release in the dotted role signed by @bob
        for role in ("root", DOTTED):
            world.tufrepo(
                "alice", "delegate", "sign/takeover", role, "--expiry-period", "300", user="@alice"
            )
        world.tufrepo("bob", "sign", "sign/takeover", user="@bob")  # the dotted role's signer
        bob = world.clone("bob")
        git(bob, "checkout", "--quiet", "sign/takeover")
        world.tufrepo("bob", "status")  # ready: exit 0
        world.merge("takeover")
        world.release("rel-2", APP2, b"two" * 70, "@bob")
        world.ci()
        world.tufrepo("ci", "online-sign")
        assert world.tufrepo("ci", "verify").exit_code == 0
        world.tufrepo("ci", "publish", str(site))
        assert (site / "metadata" / "4.root.json").is_file()
        assert (site / "metadata" / "4.registry.npmjs.org.json").is_file()

        _clients(world, server.url, site, [*ARTIFACTS, APP2])
        # check-site without --root: trust on first use of the first root python-tuf reads
        checked = run_tufrepo("check-site", server.url, "--cache-dir", str(world.root / "cs"))
        assert checked.returncode == 0, checked.stderr
