"""The little DER (ASN.1) that PKCS#8 EncryptedPrivateKeyInfo needs: write and read.

Only the universal types used by PBES2 (RFC 8018) with scrypt (RFC 7914) are handled:
SEQUENCE, INTEGER (non-negative), OCTET STRING and OBJECT IDENTIFIER. Reading is strict
(definite lengths, minimal length encoding) and raises ``ValueError`` on anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, length, content."""
    return bytes([tag]) + _length(len(content)) + content


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def octet_string(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def integer(value: int) -> bytes:
    """A non-negative INTEGER (two's complement: a leading 0 byte when the top bit is set)."""
    if value < 0:
        raise ValueError("only non-negative integers are supported")
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form, e.g. ``"1.2.840.113549.1.5.13"``."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"invalid object identifier {dotted}")
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return tlv(OBJECT_IDENTIFIER, bytes(body))


@dataclass(frozen=True)
class Element:
    """A decoded DER element: its tag and content bytes."""

    tag: int
    content: bytes

    def children(self) -> list[Element]:
        """The elements inside a SEQUENCE."""
        self.expect(SEQUENCE)
        return read_all(self.content)

    def expect(self, tag: int) -> Element:
        if self.tag != tag:
            raise ValueError(f"expected DER tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self

    def as_int(self) -> int:
        self.expect(INTEGER)
        if not self.content or self.content[0] & 0x80:
            raise ValueError("expected a non-negative DER INTEGER")
        return int.from_bytes(self.content, "big")

    def as_oid(self) -> str:
        self.expect(OBJECT_IDENTIFIER)
        arcs: list[int] = []
        value = 0
        for byte in self.content:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        if not arcs or self.content[-1] & 0x80:
            raise ValueError("malformed DER OBJECT IDENTIFIER")
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])

    def as_bytes(self) -> bytes:
        return self.expect(OCTET_STRING).content


def read(data: bytes, offset: int = 0) -> tuple[Element, int]:
    """Decode the element at ``offset``; return it and the offset just after it."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[offset], data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise ValueError("unsupported or truncated DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        if length < 0x80 or data[pos] == 0:
            raise ValueError("non-minimal DER length")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return Element(tag, data[pos : pos + length]), pos + length


def read_all(data: bytes) -> list[Element]:
    """Decode consecutive elements filling ``data`` exactly."""
    items: list[Element] = []
    offset = 0
    while offset < len(data):
        item, offset = read(data, offset)
        items.append(item)
    return items


def read_single(data: bytes) -> Element:
    """Decode ``data`` that must hold exactly one element."""
    item, end = read(data)
    if end != len(data):
        raise ValueError("trailing bytes after DER element")
    return item
