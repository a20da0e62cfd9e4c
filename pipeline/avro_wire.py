"""Avro binary primitives for the fast readers (alert_wire, reference_wire).

The fast readers only ever accept what the generic path (fastavro + input_records) accepts; anything
they do not recognise raises `Unusual` (or IndexError/ValueError on short or bad bytes) and the record
goes to the generic path, which gives the verdict and the readable error.
"""


class Unusual(Exception):
    """Not the common shape: leave the record to the generic path."""


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Avro zig-zag varint at pos: (value, next position)."""
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    result = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = data[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos + 1
        shift += 7
        if shift > 63:
            raise Unusual


def skip_text(data: bytes, pos: int) -> tuple[int, int]:
    """Avro string or bytes at pos, any length: (start of its content, next position)."""
    length, start = read_long(data, pos)
    if length < 0:
        raise Unusual
    return start, start + length


def read_text(data: bytes, pos: int) -> tuple[bytes, int]:
    """Avro string or bytes at pos: (raw content, next position)."""
    start, end = skip_text(data, pos)
    if end > len(data):
        raise Unusual
    return data[start:end], end


def read_optional_text(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """Union {null, string} at pos."""
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch != 2:
        raise Unusual
    return read_text(data, pos + 1)
