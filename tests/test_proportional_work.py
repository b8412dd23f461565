"""status, update-targets and sign read main from git objects and do work proportional to the
change, not to the repository (many delegated roles, one changed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import tufrepo.flows
import tufrepo.repository
import tufrepo.targets
from tests.git_helpers import World, git

pytestmark = pytest.mark.git

ROLES = 12


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
    world.tufrepo("appci", "event", "open", "fill", "--repo", str(world.clone("appci")), *args)
    world.tufrepo("alice", "sign", "sign/fill", user="@alice")
    world.merge("fill")
    return world


def test_status_and_sign_scale_with_the_change(
    big_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = big_world
    changed = world.root / "files/new.bin"
    changed.write_bytes(b"new release")
    world.tufrepo(
        "appci", "event", "open", "one", "--repo", str(world.clone("appci")),
        "--target", f"role3/y/new.bin={changed}",
    )  # fmt: skip

    parsed: Counter[str] = Counter()
    hashed: list[str] = []
    real_parse, real_target_file = tufrepo.repository.parse, tufrepo.targets.target_file

    def counting_parse(name: str, data: bytes, where: str = "") -> Any:
        parsed[name] += 1
        return real_parse(name, data, where)

    def counting_target_file(checkout: Path, target: str) -> Any:
        hashed.append(target)
        return real_target_file(checkout, target)

    def no_clone(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("main must be read from git objects, not a clone")

    monkeypatch.setattr(tufrepo.repository, "parse", counting_parse)
    monkeypatch.setattr(tufrepo.targets, "target_file", counting_target_file)
    monkeypatch.setattr(tufrepo.flows, "clone", no_clone)

    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "sign/one", "origin/sign/one")
    world.tufrepo("ci", "status", "--format", "json", code=1)
    assert hashed == ["role3/y/new.bin"]
    assert set(parsed) <= {"root.json", "targets.json", "role3.json"}
    assert sum(parsed.values()) <= 6

    parsed.clear()
    hashed.clear()
    world.tufrepo("ci", "update-targets")
    assert hashed == ["role3/y/new.bin"]
    assert sum(parsed.values()) <= 6
    git(ci, "checkout", "--quiet", "--detach")

    parsed.clear()
    hashed.clear()
    world.tufrepo("alice", "sign", "sign/one", user="@alice")
    assert set(hashed) == {"role3/y/new.bin"}
    assert set(parsed) <= {"root.json", "targets.json", "role3.json"}
