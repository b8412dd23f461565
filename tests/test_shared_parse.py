"""A role parsed with another copy of it at hand (main's, for the event's) is the role its
bytes say, whatever the two copies share; each view gets a copy of its own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, TargetFile, Targets

from tests.counting import count_target_files
from tufrepo import repository
from tufrepo.errors import CorruptMetadataError

SHA = "a" * 64


def _role(entries: dict[str, Any], version: int = 1) -> bytes:
    signed = Targets(version=version).to_dict()
    signed["targets"] = entries
    return json.dumps({"signatures": [], "signed": signed}, indent=1, sort_keys=True).encode()


MAIN = {
    "a": {"length": 1, "hashes": {"sha256": SHA}},
    "b": {"length": 2, "hashes": {"sha256": SHA}},
    "c": {"length": 3, "hashes": {"sha256": SHA}, "custom": {"x": 1}},
}


@pytest.mark.parametrize(
    "entry",
    [
        {"length": 1, "hashes": {"sha256": SHA}},  # the same
        {"length": 9, "hashes": {"sha256": SHA}},
        {"length": 1, "hashes": {"sha256": "b" * 64}},
        {"length": 1, "hashes": {"sha256": SHA, "sha512": "c" * 128}},
        {"length": True, "hashes": {"sha256": SHA}},  # equal to 1 in Python
        {"length": 1.0, "hashes": {"sha256": SHA}},  # equal to 1 in Python
        {"length": 1, "hashes": {"sha256": SHA}, "custom": {"x": 1}},
        {"length": 3, "hashes": {"sha256": SHA}},  # c without its custom field
    ],
)
def test_an_entry_is_what_its_bytes_say(entry: dict[str, Any]) -> None:
    main = repository.parse("targets.json", _role(MAIN))
    event = {**MAIN, "a": entry, "c": {**entry, "length": entry["length"] + 2}}
    data = _role(event, version=2)
    alone = repository.parse("targets.json", data)
    beside = repository.parse("targets.json", data, like=main)
    assert beside.to_dict() == alone.to_dict()
    assert repository.serialize(beside) == repository.serialize(alone) == data
    assert _canonical(beside) == _canonical(alone)
    for path, tf in beside.signed.targets.items():  # typed as written: true is not 1
        assert type(tf.length) is type(event[path]["length"])


def _canonical(md: Metadata[Any]) -> bytes | str:
    try:
        return repository.signed_bytes(md)
    except Exception as e:
        return type(e).__name__


@pytest.mark.parametrize(
    "entry", [{"length": 1}, {"hashes": {"sha256": SHA}}, {"length": -1, "hashes": {}}, [1]]
)
def test_a_bad_entry_is_refused_beside_a_good_copy(entry: Any) -> None:
    main = repository.parse("targets.json", _role(MAIN))
    with pytest.raises(CorruptMetadataError):
        repository.parse("targets.json", _role({**MAIN, "a": entry}), like=main)


def test_unchanged_entries_are_not_built_again(monkeypatch: pytest.MonkeyPatch) -> None:
    main = repository.parse("targets.json", _role(MAIN))
    built = count_target_files(monkeypatch)
    event = {**MAIN, "d": {"length": 4, "hashes": {"sha256": SHA}}}
    repository.parse("targets.json", _role(event, version=2), like=main)
    assert sorted(built) == ["c", "d"]  # c has a custom field: always built


def test_a_file_parsed_once_gives_each_view_its_own_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Views edit what they parsed (an event's role is closed, its targets replaced): the
    copies of one parse share nothing that an edit of one would change in another."""
    signed = Targets(targets={"a": TargetFile(1, {"sha256": "00"}, "a")})
    role = DelegatedRole("r", [], 1, terminating=False, paths=["x/*"])
    signed.delegations = Delegations({}, {"r": role})
    data = Metadata(signed).to_bytes()
    parsed: list[str] = []
    real = repository.parse

    def counting(name: str, data: bytes, where: str = "", **kwargs: Any) -> Any:
        parsed.append(name)
        return real(name, data, where, **kwargs)

    monkeypatch.setattr(repository, "parse", counting)
    repository.forget_parsed()
    first = repository.parse_shared("targets.json", data)
    first.signed.targets["b"] = TargetFile(2, {"sha256": "11"}, "b")
    first.signed.version = 7
    first.signed.delegations.roles["r"].paths.append("y/*")
    second = repository.parse_shared("targets.json", data)
    assert parsed == ["targets.json"]
    assert second.to_bytes() == data
    repository.forget_parsed()
    repository.parse_shared("targets.json", data)
    assert parsed == ["targets.json"] * 2
