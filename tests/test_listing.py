"""A targets role parsed lazily (``parse(..., lazy=True)``, what online-sign reads) is the
role the strict parse gives: the same TargetFile objects, the same canonical bytes for its
signatures, the same refusals; it builds TargetFile objects only for the entries asked for,
and encodes its signed bytes from the parsed JSON only when they are python-tuf's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tuf.api.metadata import Metadata, TargetFile, Targets

from tests.counting import count_target_files
from tufrepo import jsonfast, repository
from tufrepo.errors import CorruptMetadataError
from tufrepo.listing import TargetListing, changed_entries

SHA = "a" * 64
ENTRIES = {
    "a": {"length": 1, "hashes": {"sha256": SHA}},
    "b": {"length": 2, "hashes": {"sha256": SHA}},
    "c/d": {"length": 3, "hashes": {"sha256": SHA, "sha512": "c" * 128}},
}


def _role(entries: dict[str, Any], **signed: Any) -> bytes:
    body = Targets(version=3).to_dict()
    body.update(signed)
    body["targets"] = entries
    sig = {"keyid": "k" * 64, "sig": "00"}
    return json.dumps({"signatures": [sig], "signed": body}, indent=1, sort_keys=True).encode()


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception:  # compared: refused both ways
        return "refused"


def _same(data: bytes) -> Metadata[Any]:
    strict = repository.parse("targets.json", data)
    lazy = repository.parse("targets.json", data, lazy=True)
    assert lazy.to_dict() == strict.to_dict()
    assert repository.serialize(lazy) == repository.serialize(strict)
    assert _outcome(lambda: repository.signed_bytes(lazy)) == _outcome(
        lambda: repository.signed_bytes(strict)
    )
    assert _outcome(lambda: repository.signed_bytes(strict)) == _outcome(
        lambda: strict.signed_bytes  # python-tuf's own encoding, what clients verify
    )
    for path, tf in strict.signed.targets.items():
        assert lazy.signed.targets[path] == tf
        assert type(lazy.signed.targets[path].length) is type(tf.length)
    return lazy


@pytest.mark.parametrize(
    "entry",
    [
        {"length": 1, "hashes": {"sha256": SHA}},
        {"length": 0, "hashes": {"sha256": SHA}},
        {"length": True, "hashes": {"sha256": SHA}},  # python-tuf keeps a bool
        {"length": 1.0, "hashes": {"sha256": SHA}},  # not canonical JSON: refused
        {"length": 1, "hashes": {"sha256": SHA}, "custom": {"x": [1, "y", None]}},
        {"length": 1, "hashes": {"sha256": SHA}, "custom": {"x": 1.5}},  # a float
        {"length": 1, "hashes": {"sha256": SHA}, "custom": "a\nb"},  # escaped as JSON
        {"length": 1, "hashes": {"sha256": 'é\\"'}},
    ],
)
def test_an_entry_parsed_lazily_is_what_the_strict_parse_gives(entry: dict[str, Any]) -> None:
    _same(_role({**ENTRIES, "new": entry}))


@pytest.mark.parametrize(
    "signed",
    [
        {"expires": "2030-1-02T03:04:05Z"},  # python-tuf writes 2030-01-02T03:04:05Z
        {"version": 7, "x-field": {"nested": [1, 2]}},
        {"x-field": 2.5},
        {"delegations": {"keys": {}, "roles": [], "x-extra": True}},
    ],
)
def test_the_rest_of_a_lazy_role_is_what_the_strict_parse_gives(signed: dict[str, Any]) -> None:
    _same(_role(ENTRIES, **signed))


@pytest.mark.parametrize(
    "entry",
    [
        {"length": 1},
        {"hashes": {"sha256": SHA}},
        {"length": -1, "hashes": {"sha256": SHA}},
        {"length": 1, "hashes": {}},
        {"length": 1, "hashes": {"sha256": 5}},
        {"length": "1", "hashes": {"sha256": SHA}},
        [1],
    ],
)
def test_a_bad_entry_is_refused_lazily_as_strictly(entry: Any) -> None:
    data = _role({**ENTRIES, "bad": entry})
    with pytest.raises(CorruptMetadataError):
        repository.parse("targets.json", data)
    with pytest.raises(CorruptMetadataError):
        repository.parse("targets.json", data, lazy=True)


def test_a_lazy_role_builds_only_the_entries_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {f"p{i}": {"length": i, "hashes": {"sha256": SHA}} for i in range(50)}
    data = _role(entries)
    strict_bytes = repository.signed_bytes(repository.parse("targets.json", data))
    built = count_target_files(monkeypatch)
    md = repository.parse("targets.json", data, lazy=True)
    listing = md.signed.targets
    assert isinstance(listing, TargetListing)
    assert (len(listing), "p7" in listing, "x" in listing, bool(listing)) == (50, True, False, True)
    assert list(listing)[:2] == ["p0", "p1"]
    assert repository.signed_bytes(md) == strict_bytes  # from the parsed JSON: none built
    assert built == []
    assert listing["p7"].length == 7
    assert listing["p7"] is listing["p7"]
    assert built == ["p7"]


def test_an_edited_lazy_role_encodes_its_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit (a new entry, a new version) is in the signed bytes: the parsed JSON's own
    encoding is no longer used."""
    data = _role(ENTRIES)
    for edit in (
        lambda md: md.signed.targets.__setitem__("z", TargetFile(9, {"sha256": SHA}, "z")),
        lambda md: md.signed.targets.pop("a"),
        lambda md: setattr(md.signed, "version", 9),
    ):
        strict = repository.parse("targets.json", data)
        lazy = repository.parse("targets.json", data, lazy=True)
        assert repository.signed_bytes(lazy) == repository.signed_bytes(strict)
        edit(strict)
        edit(lazy)
        assert repository.signed_bytes(lazy) == repository.signed_bytes(strict)
        assert repository.serialize(lazy) == repository.serialize(strict)


def test_a_copy_of_a_lazy_role_is_its_own() -> None:
    md = repository.parse("targets.json", _role(ENTRIES), lazy=True)
    payload = repository.signed_bytes(md)
    copy = repository.copy_metadata(md)
    copy.signed.targets["z"] = TargetFile(9, {"sha256": SHA}, "z")
    copy.signed.targets["a"].unrecognized_fields  # noqa: B018 - built, shared: not edited
    assert "z" not in md.signed.targets
    assert repository.signed_bytes(md) == payload
    assert repository.signed_bytes(copy) != payload


def test_a_lazy_role_is_parsed_once_per_command(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _role(ENTRIES)
    parsed: list[bool] = []
    real = repository.parse

    def counting(name: str, data: bytes, where: str = "", **kwargs: Any) -> Any:
        parsed.append(kwargs.get("lazy", False))
        return real(name, data, where, **kwargs)

    monkeypatch.setattr(repository, "parse", counting)
    repository.forget_parsed()
    first = repository.parse_shared("targets.json", data, lazy=True)
    second = repository.parse_shared("targets.json", data, lazy=True)
    strict = repository.parse_shared("targets.json", data)
    assert parsed == [True, False]
    assert isinstance(second.signed.targets, TargetListing)
    assert not isinstance(strict.signed.targets, TargetListing)
    assert first.to_dict() == second.to_dict() == strict.to_dict()
    repository.forget_parsed()


@pytest.mark.parametrize(
    "new",
    [
        ENTRIES,
        {**ENTRIES, "e": {"length": 5, "hashes": {"sha256": SHA}}},
        {k: v for k, v in ENTRIES.items() if k != "b"},
        {**ENTRIES, "a": {"length": 9, "hashes": {"sha256": SHA}}},
        {**ENTRIES, "a": {"length": 1, "hashes": {"sha256": SHA}, "custom": 1}},
        {**ENTRIES, "a": {"length": True, "hashes": {"sha256": SHA}}},  # python-tuf: equal
        {"x": {"length": 1, "hashes": {"sha256": SHA}}},
    ],
)
def test_changed_entries_are_the_entries_python_tuf_finds_different(
    new: dict[str, Any],
) -> None:
    old_data, new_data = _role(ENTRIES), _role(new)
    strict_old = repository.parse("targets.json", old_data).signed.targets
    strict_new = repository.parse("targets.json", new_data).signed.targets
    expected = {
        p for p in strict_old.keys() | strict_new.keys() if strict_old.get(p) != strict_new.get(p)
    }
    lazy_old = repository.parse("targets.json", old_data, lazy=True).signed.targets
    lazy_new = repository.parse("targets.json", new_data, lazy=True).signed.targets
    assert changed_entries(lazy_old, lazy_new) == expected
    assert changed_entries(strict_old, lazy_new) == expected
    assert changed_entries(lazy_old, {}) == set(ENTRIES)


def test_float_free_canonical_is_the_checked_one() -> None:
    """``canonical(float_free=True)`` skips only the search for floats: the same bytes for
    what has none (the listing proves it: entries with a length and hashes alone)."""
    obj = {"a": [1, -2, {"b": "c:1.5", "d": None, "e": True}], "f": "é"}
    assert jsonfast.canonical(obj, float_free=True) == jsonfast.canonical(obj)
    role = json.loads(_role(ENTRIES))["signed"]
    assert jsonfast.canonical(role, float_free=True) == jsonfast.canonical(role)
