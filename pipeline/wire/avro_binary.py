"""Avro binary primitives for the fast readers and writers (alert_bytes, reference_bytes).

The fast readers only ever accept what the generic path (fastavro + validation) accepts; anything
they do not recognise raises `Unusual` (or IndexError/ValueError on short or bad bytes) and the record
goes to the generic path, which gives the verdict and the readable error.
"""

from functools import lru_cache

from pipeline.core.event_time import EARLIEST_MS, LATEST_MS


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


def read_timestamp(data: bytes, pos: int) -> tuple[int, int]:
    """A timestamp-millis long the validators accept (validation: from 2000 to before 3000)."""
    value, pos = read_long(data, pos)
    if not EARLIEST_MS <= value < LATEST_MS:
        raise Unusual
    return value, pos


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


@lru_cache(maxsize=4096)  # a bulk load stamps many rows with the same time
def long_bytes(value: int) -> bytes:
    """Avro zig-zag varint of a long."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT_LENGTHS = [bytes([n << 1]) for n in range(64)]  # one-byte varints of lengths 0..63


def text_bytes(value: str) -> bytes:
    """Avro string: length, then UTF-8."""
    raw = value.encode()
    n = len(raw)
    return (_SHORT_LENGTHS[n] if n < 64 else long_bytes(n)) + raw


def optional_text_bytes(value: str | None) -> bytes:
    """Union {null, string}."""
    return b"\x00" if value is None else b"\x02" + text_bytes(value)
