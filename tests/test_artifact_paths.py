"""The artifact path rule (targets.path_problem, path_clashes): the same at event open,
update-targets, sign, verify and publish; names it allows are fetched by both clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.git_helpers import World, git, world_with_app_role
from tests.site_helpers import (
    DELEGATED,
    Published,
    ngclient_download,
    published_site,
    run_tufjs,
    tufjs_available,
)
from tests.test_bad_input import assert_one_line_error, push_event, run_unchanged
from tufrepo import targets
from tufrepo.errors import InputError
from tufrepo.publish import publish
from tufrepo.targets import path_clashes, path_problem

REFUSED = {
    "a#b.bin": "URL fragment",
    "a?b.bin": "URL query",
    "a%41.bin": "URL escape",
    "a\\b.bin": "path separator",
    "a\tb.bin": "U+0009",
    "a\x7fb.bin": "U+007F",
    "a\u202eb.bin": "U+202E",  # right-to-left override: a name that reads differently
    "a\u200bb.bin": "U+200B",  # zero-width space
    "e\u0301.bin": "NFC",  # "é" as e + combining accent
    "../x.bin": "'..'",
    "/etc/passwd": "segments",
    "a//b.bin": "segments",
    "a/./b.bin": "segments",
    "a/": "segments",
    "": "empty",
    ".hidden": "not artifacts",
}
ALLOWED = ["app 1.0.tar.gz", "Straße/ünïcode ß.txt", "日本語.txt", "a+b@c~d=e,f;g!h'(i).txt"]


@pytest.mark.parametrize("path", list(REFUSED), ids=[repr(p) for p in REFUSED])
def test_path_rule_refuses(path: str) -> None:
    problem = path_problem(path)
    assert problem is not None
    assert REFUSED[path] in problem


@pytest.mark.parametrize("path", ALLOWED)
def test_path_rule_allows(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "removable"),
    [("a#b.bin", True), ("e\u0301.bin", True), ("a\u202eb", True), ("../x.bin", False),
     ("/etc/passwd", False), ("a//b", False), ("", False)],
)  # fmt: skip
def test_path_rule_for_removals_only_keeps_inside_targets(path: str, removable: bool) -> None:
    assert (path_problem(path, removal=True) is None) is removable


@pytest.mark.parametrize(
    ("paths", "clashes"),
    [
        (["app/x", "app/x/inner.txt"], [("app/x", "app/x/inner.txt")]),
        (["app/x/inner.txt", "app/x"], [("app/x", "app/x/inner.txt")]),
        (["a", "a/b/c", "a/b"], [("a", "a/b"), ("a", "a/b/c"), ("a/b", "a/b/c")]),
        (["app/x", "app/x-1/y", "app/xy", "app/x.txt"], []),
        ([], []),
    ],
)
def test_path_clashes(paths: list[str], clashes: list[tuple[str, str]]) -> None:
    assert path_clashes(paths) == clashes


# --- the commands, on real git ----------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> World:
    return world_with_app_role(tmp_path)


def open_event(world: World, name: str, *targets: str, code: int = 0) -> str:
    """``event open NAME --target T=<a file>...`` in app CI's clone (nothing changed on
    failure); returns stderr."""
    artifact = world.root / "artifact.bin"
    artifact.write_bytes(b"release\n")
    args = ["event", "open", name, "--repo", str(world.clone("appci"))]
    for target in targets:
        args += ["--target", f"{target}={artifact}"]
    if code == 0:
        return world.tufrepo("appci", *args).stderr
    return run_unchanged(world, "appci", *args, code=code, user=None)


@pytest.mark.parametrize("name", ["a#b.bin", "a?b.bin", "a%41.bin", "e\u0301.bin", "a\u202eb.bin"])
def test_event_open_refuses_names_clients_cannot_fetch(world: World, name: str) -> None:
    err = open_event(world, "rel", f"app/{name}", code=2)
    assert_one_line_error(err, "invalid target path", REFUSED[name])


def test_event_open_refuses_a_clash_in_one_event(world: World) -> None:
    err = open_event(world, "rel", "app/x", "app/x/inner.txt", code=2)
    assert_one_line_error(err, "'app/x/inner.txt'", "file/directory clash")


@pytest.mark.parametrize(
    ("first", "second"), [("app/x", "app/x/inner.txt"), ("app/x/inner.txt", "app/x")]
)
def test_event_open_refuses_a_clash_with_main(world: World, first: str, second: str) -> None:
    open_event(world, "rel-1", first)
    world.tufrepo("alice", "sign", "sign/rel-1", user="@alice")
    world.merge("rel-1")
    err = open_event(world, "rel-2", second, code=2)
    assert_one_line_error(err, "'app/x/inner.txt'", "'app/x'", "file/directory clash")


def test_a_removed_artifact_can_become_a_directory(world: World) -> None:
    open_event(world, "rel-1", "app/x")
    world.tufrepo("alice", "sign", "sign/rel-1", user="@alice")
    world.merge("rel-1")
    artifact = world.root / "artifact.bin"
    world.tufrepo("appci", "event", "open", "rel-2", "--repo", str(world.clone("appci")),
                  "--remove", "app/x", "--target", f"app/x/inner.txt={artifact}")  # fmt: skip
    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    assert git(ci, "ls-tree", "-r", "--name-only", "origin/sign/rel-2", "targets/app") == (
        "targets/app/x/inner.txt"
    )


def test_a_name_from_before_the_rule_can_be_removed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older_tufrepo:  # one that had no path rule
        older_tufrepo.setattr(targets, "path_problem", lambda path, removal=False: None)
        open_event(world, "old", "app/a#b.bin")
        world.tufrepo("alice", "sign", "sign/old", user="@alice")
    world.merge("old")
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    verify = world.tufrepo("ci", "verify", code=1)
    assert "invalid target path 'app/a#b.bin'" in verify.stdout
    world.tufrepo("appci", "event", "open", "fix", "--repo", str(world.clone("appci")),
                  "--remove", "app/a#b.bin")  # fmt: skip
    world.tufrepo("alice", "sign", "sign/fix", user="@alice")
    world.merge("fix")
    git(ci, "pull", "--quiet", "--ff-only", "origin", "main")
    world.tufrepo("ci", "verify")


def test_hand_made_events_are_refused_by_update_targets_sign_and_verify(world: World) -> None:
    def add_bad_files(path: Path) -> None:
        (path / "targets/app").mkdir(parents=True)
        (path / "targets/app/a#b.bin").write_bytes(b"x")

    def add_clash(path: Path) -> None:  # a descriptor app/x and a file app/x/inner.txt
        (path / "targets/app/x").mkdir(parents=True)
        (path / "targets/app/x/inner.txt").write_bytes(b"x")
        (path / "descriptors/app").mkdir(parents=True)
        desc = {"length": 1, "hashes": {"sha256": "0" * 64}}
        (path / "descriptors/app/x.json").write_text(json.dumps(desc))

    ci = world.clone("ci")
    for event, change, needle in [("hash", add_bad_files, "URL fragment"),
                                  ("clash", add_clash, "file/directory clash")]:  # fmt: skip
        push_event(world, event, change)
        git(ci, "fetch", "--quiet", "origin")
        git(ci, "checkout", "--quiet", "-B", f"sign/{event}", f"origin/sign/{event}")
        assert_one_line_error(run_unchanged(world, "ci", "update-targets", code=2, user=None),
                              "invalid target path", needle)  # fmt: skip
        verify = world.tufrepo("ci", "verify", code=1)
        assert "invalid target path" in verify.stdout + verify.stderr
        assert needle in verify.stdout + verify.stderr
        git(ci, "checkout", "--quiet", "--detach")
        err = run_unchanged(world, "alice", "sign", f"sign/{event}", code=2, user="@alice")
        assert_one_line_error(err, "invalid target path", needle)


# --- publish and the clients --------------------------------------------------------------------


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Published]:
    with published_site(tmp_path) as p:
        yield p


@pytest.mark.parametrize("bad", ["a#b.bin", "x/inner.txt"])
def test_publish_refuses_what_the_rule_refuses(pub: Published, bad: str) -> None:
    if bad == "x/inner.txt":
        pub.repo.set_descriptor(DELEGATED, f"{DELEGATED}/x", b"hosted elsewhere")
    pub.release(f"{DELEGATED}/{bad}")
    before = sorted(p.relative_to(pub.site) for p in pub.site.rglob("*"))
    with pytest.raises(InputError, match="invalid target path"):
        publish(pub.repo.path, pub.site)
    assert sorted(p.relative_to(pub.site) for p in pub.site.rglob("*")) == before


NAMES = [f"{DELEGATED}/a/b/c/My App 1.0.tar.gz", f"{DELEGATED}/Straße/日本語 ünïcode.txt"]


def test_spaces_and_letters_are_fetched_by_python_tuf(pub: Published, tmp_path: Path) -> None:
    for name in NAMES:
        pub.release(name)
    publish(pub.repo.path, pub.site)
    ngclient_download(pub.url, pub.root1, tmp_path / "cache", tmp_path / "out", NAMES)
    for name in NAMES:
        local = tmp_path / "out" / name.rsplit("/", 1)[-1]
        assert local.read_bytes() == (pub.repo.path / "targets" / name).read_bytes()


@pytest.mark.tufjs
@pytest.mark.skipif(not tufjs_available(), reason="needs node and tests/tufjs/node_modules")
def test_spaces_and_letters_are_fetched_by_tuf_js(pub: Published, tmp_path: Path) -> None:
    for name in NAMES:
        pub.release(name)
    publish(pub.repo.path, pub.site)
    result = run_tufjs(pub.url, pub.root1, tmp_path / "cache", tmp_path / "out", NAMES)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        local = tmp_path / "out" / name.rsplit("/", 1)[-1]
        assert local.read_bytes() == (pub.repo.path / "targets" / name).read_bytes()
