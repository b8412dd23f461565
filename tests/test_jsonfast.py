"""The fast JSON paths give exactly the bytes (and verdicts) of the slow ones they replace:
securesystemslib's encode_canonical, json.dumps(indent=1, sort_keys=True), and json.loads
refusing duplicate keys. A table of tricky values, then seeded random documents."""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from typing import Any

import pytest
from securesystemslib.exceptions import FormatError
from securesystemslib.formats import encode_canonical

from tufrepo import jsonfast

TRICKY_STRINGS = [
    "", "plain", 'quote"', "back\\slash", '\\"', '"\\', "\\\\\\", "new\nline", "tab\t",
    "nul\x00", "\x1f\x7f", "\r\b\f", "caf\u00e9", "\u2028\u2029", "\U0001f600 emoji",
    "\\u0041", "brace{}[]", "colon:1.5", ",2e5", "[3.0]", "\\n", "\ud7ff\ue000",
]  # fmt: skip

TRICKY_VALUES: list[Any] = [
    *TRICKY_STRINGS,
    0, -1, 1, 2**64, -(2**70), 10**100, True, False, None,
    [], {}, [[]], [{}], {"": {}}, {"a": []},
    {"b": 1, "a": 2, "A": 3, "_": 4, "\u00e9": 5, "\U0001f600": 6, " ": 7},
    {s: s for s in TRICKY_STRINGS},
    [TRICKY_STRINGS, {"n": [1, [2, [3, {"x": None}]]]}],
    ("tuple", 1), OrderedDict([("z", 1), ("a", 2)]),
    {"signed": {"_type": "targets", "targets": {"a/b.bin": {"hashes": {"sha256": "ab"},
     "length": 3, "custom": {"k": [True, None]}}}}},
]  # fmt: skip


def _slow_canonical(obj: Any) -> bytes:
    text = encode_canonical(obj)
    assert isinstance(text, str)
    return text.encode()


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=repr)
def test_canonical_is_encode_canonical(value: Any) -> None:
    assert jsonfast.canonical(value) == _slow_canonical(value)


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=repr)
def test_indented_is_json_dumps(value: Any) -> None:
    assert jsonfast.indented(value) == json.dumps(value, indent=1, sort_keys=True).encode()


@pytest.mark.parametrize(
    "value",
    [1.5, [1.0], {"a": 2e20}, {"a": "x", "b": -0.5}, float("nan"), [float("inf")], {1: "int key"}],
    ids=repr,
)
def test_canonical_refuses_what_encode_canonical_refuses(value: Any) -> None:
    with pytest.raises((FormatError, AttributeError)):
        _slow_canonical(value)
    if isinstance(value, dict) and 1 in value:
        return  # a non-string key: JSON data never has one (see jsonfast.canonical)
    with pytest.raises(FormatError):
        jsonfast.canonical(value)


def test_canonical_refuses_objects_json_cannot_encode() -> None:
    with pytest.raises(FormatError):
        jsonfast.canonical({"a": object()})


@pytest.mark.parametrize(
    "value", [1.5, {"a": [0.1, 1e100, -2.5]}, {"a": float("nan")}, {2: "x", 1: "y"}, (1, 2)]
)
def test_indented_takes_what_json_dumps_takes(value: Any) -> None:
    assert jsonfast.indented(value) == json.dumps(value, indent=1, sort_keys=True).encode()


ALPHABET = 'ab"\\\n\x00\x1f\u00e9\u2028\U0001f600{}[]:,.5e '


def _random_string(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(6)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return _random_string(rng)
    if kind == 1:
        return rng.choice([0, 1, -7, 2**63, -(10**30), rng.randrange(-1000, 1000)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return "".join(rng.choice("abc0123456789") for _ in range(rng.randrange(4)))
    if kind in (4, 5):
        return {
            _random_string(rng) if rng.random() < 0.5 else f"k{i}": _random_value(rng, depth + 1)
            for i in range(rng.randrange(5))
        }
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]


@pytest.mark.parametrize("seed", range(300))
def test_random_documents(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 (reproducible documents, not secrets)
    value = {f"k{i}": _random_value(rng) for i in range(4)}
    assert jsonfast.canonical(value) == _slow_canonical(value)
    written = jsonfast.indented(value)
    assert written == json.dumps(value, indent=1, sort_keys=True).encode()
    assert jsonfast.loads_unique(written) == value
    compact = json.dumps(value, separators=(",", ":")).encode()
    assert jsonfast.loads_unique(compact) == value


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a":1,"a":2}',
        '{"a" :1,"a":2}',  # whitespace before a colon: not counted by the fast path
        '{"a"\n:1,"a":2}',
        '{"a"\r:1,"a":2}',
        '{"a"\t:1,"a":2}',
        '{"a" : 1, "b": {"c": 1, "c": 1}}',
        '{"x": ":", "a": 1, "a": 2}',  # a string opening with a colon
        '{"x": "\\":", "a": 1, "a": 2}',  # an escaped quote before a colon
        '[{"k": 1}, {"k": 2, "k": 3}]',
        '{"a\\u0062": 1, "ab": 2}',  # the same key spelled two ways
    ],
)
def test_loads_unique_refuses_duplicate_keys(text: str) -> None:
    with pytest.raises(ValueError, match="duplicate key"):
        jsonfast.loads_unique(text.encode())


@pytest.mark.parametrize(
    "text",
    ['{"a": ":", "b": [":x", {"c": 1}]}', '{"a" :1}', '{"a\\"": 1, "a": 2}', "[]", "1", '":"'],
)
def test_loads_unique_reads_what_json_reads(text: str) -> None:
    assert jsonfast.loads_unique(text.encode()) == json.loads(text)


def test_loads_unique_refuses_what_is_not_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        jsonfast.loads_unique(b'{"a": 1')


def test_metadata_takes_the_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typical metadata (quotes, backslashes, non-ASCII, big ints; no control characters or
    floats) never reaches the slow paths."""

    def slow(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("slow path taken")

    doc = {
        "signatures": [{"keyid": "ab", "sig": ""}],
        "signed": {
            "_type": "targets", "version": 2**40, "expires": "2030-01-01T00:00:00Z",
            "targets": {f'dir/"q"\\{i}\u00e9.bin': {"hashes": {"sha256": "ab" * 32},
                        "length": i, "custom": {"a": [None, True, False, []]}}
                        for i in range(50)},
        },
    }  # fmt: skip
    expected_canonical = _slow_canonical(doc["signed"])
    written = json.dumps(doc, indent=1, sort_keys=True).encode()
    monkeypatch.setattr(jsonfast, "_slow_canonical", slow)
    monkeypatch.setattr(jsonfast.json, "dumps", slow)
    assert jsonfast.canonical(doc["signed"]) == expected_canonical
    assert jsonfast.indented(doc) == written
    # reading: a backslash anywhere (an escape) and every object is checked as it is parsed
    plain = {"signed": {"targets": {f"d/{i}.bin": {"length": i} for i in range(50)}}}
    monkeypatch.setattr(jsonfast, "_pairs_unique", slow)
    assert jsonfast.loads_unique(jsonfast.indented(plain)) == plain
