"""The role map (pure): which role owns a path, who delegates a role, for named delegations
and hash bins alike; how many bins a role gets."""

from __future__ import annotations

import pytest
from tuf.api.metadata import DelegatedRole, Delegations, SuccinctRoles, Targets

from tufrepo.errors import InputError
from tufrepo.roles import RoleMap, bins_for, bit_length_for, delegated_paths, role_map


def _targets(named: list[str] = [], bits: int = 0, prefix: str = "") -> Targets:  # noqa: B006
    t = Targets()
    if bits:
        t.delegations = Delegations({}, succinct_roles=SuccinctRoles([], 1, bits, prefix))
    elif named:
        roles = {
            n: DelegatedRole(n, [], 1, terminating=True, paths=delegated_paths(n)) for n in named
        }
        t.delegations = Delegations({}, roles=roles)
    return t


def _bin(bits: int, prefix: str, path: str) -> str:
    return SuccinctRoles([], 1, bits, prefix).get_role_for_target(path)


FLAT = role_map(_targets(["app", "docs"]), {}.get)
BINNED_TOP = role_map(_targets(bits=4, prefix="targets-bins"), {}.get)
BINNED_APP = role_map(_targets(["app", "docs"]), {"app": _targets(bits=6, prefix="app-bins")}.get)

OWNERS = [
    (FLAT, "a.txt", "targets"),
    (FLAT, "app/1/2/3/x.tgz", "app"),
    (FLAT, "docs/d.html", "docs"),
    (BINNED_TOP, "a.txt", _bin(4, "targets-bins", "a.txt")),
    (BINNED_TOP, "any/depth/at/all/x", _bin(4, "targets-bins", "any/depth/at/all/x")),
    (BINNED_APP, "a.txt", "targets"),
    (BINNED_APP, "app/1/x.tgz", _bin(6, "app-bins", "app/1/x.tgz")),
    (BINNED_APP, "docs/d.html", "docs"),
]


@pytest.mark.parametrize(("rmap", "path", "owner"), OWNERS)
def test_owner(rmap: RoleMap, path: str, owner: str) -> None:
    assert rmap.owner(path) == owner
    assert rmap.delegator(owner) == (
        "root" if owner == "targets" else rmap.bin_owner(owner) or "targets"
    )
    assert owner in rmap.signed_roles()


@pytest.mark.parametrize(
    ("rmap", "path", "message"),
    [
        (FLAT, "other/x", "no role owns targets/other/x: 'other' is not a delegated role"),
        (FLAT, "app/1/2/3/4/x", "more than 4 levels below targets/app"),
        (BINNED_APP, "other/x", "'other' is not a delegated role"),
    ],
)
def test_unowned_path_names_it(rmap: RoleMap, path: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        rmap.owner(path)


def test_names_delegators_and_layout() -> None:
    bins = BINNED_APP.bin_names("app")
    assert len(bins) == 64
    assert bins[0] == "app-bins-00"
    assert BINNED_APP.targets_roles() == ["targets", "app", "docs", *bins]
    assert "app" not in BINNED_APP.signed_roles()  # a binned role lists nothing itself
    assert BINNED_APP.delegator("app-bins-3f") == "app"
    assert BINNED_APP.group("app-bins-3f") == "app"
    assert "app-bins-40" not in BINNED_APP
    with pytest.raises(InputError, match="no role delegates app-bins-40"):
        BINNED_APP.delegator("app-bins-40")
    assert BINNED_APP.covers("app") == "none itself: 64 hash bins app-bins-*"
    assert "1 of 64" in BINNED_APP.covers("app-bins-00")
    assert FLAT.covers("docs") == "targets/docs/ (up to 4 levels)"
    assert FLAT.layout("app") != BINNED_APP.layout("app")
    assert FLAT.layout("docs") == BINNED_APP.layout("docs")
    assert RoleMap().targets_roles() == ["targets"]


@pytest.mark.parametrize(
    ("artifacts", "bins"),
    [(0, 16), (8_000, 16), (10_000, 32), (100_000, 256), (1_000_000, 1024), (2_000_000, 2048)],
)
def test_bins_for_keeps_bins_and_snapshot_small(artifacts: int, bins: int) -> None:
    assert bins_for(artifacts) == bins


@pytest.mark.parametrize("bad", [0, 1, 3, 48, 2**15])
def test_bins_must_be_a_power_of_two(bad: int) -> None:
    with pytest.raises(InputError, match="power of two"):
        bit_length_for(bad)
