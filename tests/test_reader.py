"""The one metadata reader, without I/O: strict for main, tolerant for old root history."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner

from tufrepo.errors import CorruptMetadataError
from tufrepo.repository import parse, read_history_root, rfc3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2021-12-18T13:28:12.99008-06:00", datetime(2021, 12, 18, 19, 28, 12, 990080, UTC)),
        ("2021-12-18T13:28:12.990080123+00:00", datetime(2021, 12, 18, 13, 28, 12, 990080, UTC)),
        ("2021-12-18t13:28:12z", datetime(2021, 12, 18, 13, 28, 12, tzinfo=UTC)),
        ("2021-12-18T13:28:12+05:30", datetime(2021, 12, 18, 7, 58, 12, tzinfo=UTC)),
    ],
)
def test_rfc3339_times(text: str, expected: datetime) -> None:
    assert rfc3339(text) == expected


@pytest.mark.parametrize(
    "text", ["2021-12-18 13:28:12Z", "2021-12-18T13:28:12", "2021-13-18T13:28:12Z", 1639834092]
)
def test_not_rfc3339(text: object) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        rfc3339(text)


def _root(signer: CryptoSigner, **fields: Any) -> dict[str, Any]:
    key = signer.public_key
    signed = {
        "_type": "root",
        "spec_version": "1.0",
        "version": 1,
        "expires": "2030-01-01T00:00:00Z",
        "keys": {key.keyid: key.to_dict()},
        "roles": {
            r: {"keyids": [key.keyid], "threshold": 1}
            for r in ("root", "targets", "snapshot", "timestamp")
        },
        "consistent_snapshot": True,
        **fields,
    }
    sig = signer.sign(encode_canonical(signed).encode())
    return {"signatures": [sig.to_dict()], "signed": signed}


SIGNER = CryptoSigner.generate_ed25519()
CANONICAL = json.dumps(_root(SIGNER), indent=1, sort_keys=True).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (CANONICAL.replace(b'"signed": {', b'"signed": {"version": 7,', 1), "duplicate key"),
        (CANONICAL.replace(b"{", b'{"x": 1,', 1), "fields outside signed/signatures: x"),
        (b"[]", "not a JSON object"),
        (b"{nope", "is not valid TUF metadata"),
    ],
)
def test_strict_parse_names_the_file(data: bytes, message: str) -> None:
    with pytest.raises(CorruptMetadataError, match=r"metadata/root.json \(main\)") as e:
        parse("root.json", data, "main")
    assert message in str(e.value)


def test_a_canonical_root_has_no_notes() -> None:
    entry = read_history_root("root_history/1.root.json", CANONICAL)
    assert entry.notes == ()
    assert entry.strict_problem is None


@pytest.mark.parametrize(
    ("fields", "indent", "notes", "python_tuf_reads"),
    [
        ({"expires": "2030-01-01T00:00:00.5-06:00"}, 1, ["expires 2030-01-01T00"], False),
        ({"consistent_snapshot": False}, 1, ["consistent_snapshot is false"], True),
        ({}, "\t", ["not in tuf-on-ci's JSON layout"], True),
    ],
)  # fmt: skip
def test_what_older_tools_wrote_is_noted(
    fields: dict[str, Any], indent: int | str, notes: list[str], python_tuf_reads: bool
) -> None:
    data = json.dumps(_root(SIGNER, **fields), indent=indent, sort_keys=True).encode()
    entry = read_history_root("root_history/1.root.json", data)
    assert [n[: len(m)] for n, m in zip(entry.notes, notes, strict=True)] == notes
    assert (entry.strict_problem is None) == python_tuf_reads
    # the payload is what was signed, whatever python-tuf would re-serialise
    entry.root.verify_delegate("root", entry.payload, entry.signatures)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expires": "next year"}, "not an RFC 3339 time"),
        ({"spec_version": "2.0"}, "not root metadata a client reads"),
        ({"_type": "targets"}, "not root metadata a client reads"),
    ],
)
def test_what_no_client_reads_is_an_error(fields: dict[str, Any], message: str) -> None:
    data = json.dumps(_root(SIGNER, **fields)).encode()
    with pytest.raises(CorruptMetadataError, match=message):
        read_history_root("root_history/1.root.json", data)
