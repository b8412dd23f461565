"""A second copy of a targets role read beside the first (``tufrepo.entries``) is the role
its bytes say: the same objects, encodings and errors as parsing it alone, whatever was
changed, added, removed, reordered, retyped or written in another layout; only the entries
written differently are built."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.counting import count_target_files
from tufrepo import jsonfast, repository
from tufrepo.errors import CorruptMetadataError

Doc = dict[str, Any]


def _entry(i: int) -> Doc:
    return {"hashes": {"sha256": f"{i:064x}"}, "length": i}


def _main() -> Doc:
    signed = {
        "_type": "targets",
        "expires": "2030-01-01T00:00:00Z",
        "spec_version": "1.0.31",
        "targets": {f"d/{i}.bin": _entry(i) for i in range(40)},
        "version": 1,
        "x-tuf-on-ci-expiry-period": 365,
    }
    return {"signatures": [{"keyid": "a" * 64, "sig": "b" * 128}], "signed": signed}


def _write(doc: Doc, **dumps: Any) -> bytes:
    return json.dumps(doc, **({"indent": 1, "sort_keys": True} | dumps)).encode()


def _targets(doc: Doc) -> Doc:
    return doc["signed"]["targets"]  # type: ignore[no-any-return]


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    return lambda d: _targets(d).__setitem__(path, value)


def _resort(doc: Doc) -> None:
    doc["signed"]["targets"] = dict(sorted(_targets(doc).items()))


def _drop(path: str) -> Callable[[Doc], None]:
    return lambda d: _targets(d).pop(path)


def _header(d: Doc) -> None:
    d["signed"]["version"] = 2
    d["signed"]["expires"] = "2031-01-01T00:00:00Z"
    d["signatures"] = [{"keyid": "a" * 64, "sig": ""}]


# (what the event's copy changes, the paths built anew when read beside main's)
CASES: dict[str, tuple[Callable[[Doc], None], list[str]]] = {
    "nothing but the header": (_header, []),
    "one added": (lambda d: (_set("d/new.bin", _entry(99))(d), _resort(d)), ["d/new.bin"]),
    "first changed": (_set("d/0.bin", _entry(7)), ["d/0.bin"]),
    "last changed": (_set("d/9.bin", _entry(7)), ["d/9.bin"]),
    "one removed": (_drop("d/17.bin"), []),
    "first removed": (_drop("d/0.bin"), []),
    "last removed": (_drop("d/9.bin"), []),
    "a copy of its neighbour": (_set("d/21.bin", _entry(20)), ["d/21.bin"]),
    "length 0": (_set("d/3.bin", {"hashes": {"sha256": "0" * 64}, "length": 0}), ["d/3.bin"]),
    "length true": (_set("d/1.bin", {"hashes": {"sha256": f"{1:064x}"}, "length": True}), []),
    "length 1.0": (_set("d/1.bin", {"hashes": {"sha256": f"{1:064x}"}, "length": 1.0}), []),
    "a custom field": (_set("d/5.bin", {**_entry(5), "custom": {"x": 1}}), []),
    "two hashes": (
        _set("d/5.bin", {"hashes": {"sha256": "0" * 64, "sha512": "1" * 128}, "length": 5}),
        [],
    ),
    "upper-case hash": (_set("d/5.bin", {"hashes": {"sha256": "A" * 64}, "length": 5}), []),
    "a quote in a path": (_set('d/"q".bin', _entry(1)), []),
    "a non-ASCII path": (lambda d: (_set("d/é.bin", _entry(1))(d), _resort(d)), []),
    "the marker as a path": (_set("tufrepo:entries", _entry(1)), ["tufrepo:entries"]),
    "the marker as a field": (lambda d: d["signed"].__setitem__("tufrepo:entries", 0), []),
    "all replaced": (
        lambda d: d["signed"].__setitem__("targets", {f"e/{i}.bin": _entry(i) for i in range(40)}),
        [f"e/{i}.bin" for i in range(40)],
    ),
    "emptied": (lambda d: d["signed"].__setitem__("targets", {}), []),
}


PARSED_WHOLE = {
    "length true", "length 1.0", "a custom field", "two hashes", "upper-case hash",
    "a quote in a path", "a non-ASCII path", "the marker as a field", "emptied",
}  # fmt: skip
"""Cases whose entries are not all of the form read as bytes: parsed as JSON (beside)."""


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_copy_read_beside_is_what_its_bytes_say(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    change, built_anew = CASES[case]
    main = _main()
    event = json.loads(json.dumps(main))
    change(event)
    data = _write(event)
    alone = repository.parse("targets.json", data)
    repository.forget_parsed()
    first = repository.parse_shared("targets.json", _write(main))
    built = count_target_files(monkeypatch)
    parsed = _count_json(monkeypatch)
    beside = repository.parse_shared("targets.json", data)
    repository.forget_parsed()
    assert beside.to_dict() == alone.to_dict() == event
    assert repository.serialize(beside) == repository.serialize(alone)
    assert list(beside.signed.targets) == list(alone.signed.targets)  # the file's order
    for path, tf in beside.signed.targets.items():  # typed as written: true is not 1
        assert type(tf.length) is type(event["signed"]["targets"][path]["length"])
    assert (len(data) in parsed) is (case in PARSED_WHOLE)
    if case not in PARSED_WHOLE:
        assert sorted(built) == sorted(built_anew)  # only what changed is built
        shared = [p for p in beside.signed.targets if p not in built_anew]
        assert all(beside.signed.targets[p] is first.signed.targets[p] for p in shared)


def _count_json(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every text parsed as JSON from here on."""
    sizes: list[int] = []
    real = jsonfast.loads_unique

    def counting(data: bytes) -> Any:
        sizes.append(len(data))
        return real(data)

    monkeypatch.setattr(jsonfast, "loads_unique", counting)
    return sizes


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"length": 17', b'"length": 17, "length": 18'),  # a duplicate key in an entry
        (b'"length": 17', b'"length": 017'),  # not JSON
        (b'"length": 17', b'"length": -17'),  # refused by python-tuf
        (b'"d/17.bin": {', b'"d/16.bin": {'),  # a path listed twice
        (b'"version": 1', b'"version": 1,\n  "version": 2'),  # a duplicate key outside
        (b'"_type": "targets"', b'"_type": "root"'),
        (b'\n  },\n  "version"', b'\n  },\n  "targets": {},\n  "version"'),
    ],
)
def test_a_bad_copy_beside_a_good_one_is_refused_as_alone(old: bytes, new: bytes) -> None:
    main = _write(_main())
    data = main.replace(old, new, 1)
    assert data != main
    with pytest.raises(CorruptMetadataError) as alone:
        repository.parse("targets.json", data)
    repository.forget_parsed()
    repository.parse_shared("targets.json", main)
    with pytest.raises(CorruptMetadataError) as beside:
        repository.parse_shared("targets.json", data)
    repository.forget_parsed()
    assert str(beside.value) == str(alone.value)


@pytest.mark.parametrize(
    "dumps", [{"indent": None}, {"indent": 2}, {"indent": 1, "sort_keys": False}]
)
def test_other_layouts_are_parsed_whole(dumps: dict[str, Any]) -> None:
    main, event = _main(), _main()
    _set("d/3.bin", _entry(8))(event)
    repository.forget_parsed()
    repository.parse_shared("targets.json", _write(main, **dumps))
    beside = repository.parse_shared("targets.json", _write(event, **dumps))
    repository.forget_parsed()
    assert beside.to_dict() == event


def test_a_third_copy_is_read_beside_the_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second copy's entries were each proven: the third needs no new proof of them."""
    main, event, third = _main(), _main(), _main()
    _set("d/3.bin", _entry(8))(event)
    _set("d/3.bin", _entry(8))(third)
    _set("d/4.bin", _entry(9))(third)
    repository.forget_parsed()
    repository.parse_shared("targets.json", _write(main))
    repository.parse_shared("targets.json", _write(event))
    built = count_target_files(monkeypatch)
    out = repository.parse_shared("targets.json", _write(third))
    repository.forget_parsed()
    assert built == ["d/4.bin"]
    assert out.to_dict() == third


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"d/17.bin": {', b'"d/16.bin": {'),  # a path listed twice
        (b'"version": 1', b'"version": 1,\n  "version": 2'),
        (b'"keyid": "', b'"keyid": "x",\n   "keyid": "'),
        (b'"length": 17', b'"length": 17,\n    "length": 17'),  # not of the form: parsed
    ],
)
def test_a_duplicate_key_is_refused_in_a_role_of_that_form(old: bytes, new: bytes) -> None:
    """Parsed alone, a role whose entries have the form is checked for duplicate keys in
    the rest of the file, and for paths listed twice by counting them."""
    data = _write(_main()).replace(old, new, 1)
    with pytest.raises(CorruptMetadataError, match="duplicate key"):
        repository.parse("targets.json", data)
