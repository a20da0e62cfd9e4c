"""Strict ASN.1 DER for the GBCS contents, plus the length and calendar arithmetic the frame codec shares.

Strict, because one value has one encoding: lengths and INTEGERs in their shortest form, no indefinite
lengths, GeneralizedTime as YYYYMMDDHHMMSSZ only. A frame that could be read two ways, or that only a
lenient reader accepts, is refused with a message naming the field, what was found and what was expected.
Readers take (data, pos, end) and return (value, next pos); errors are GbcsError, never IndexError.
"""

MAX_UNSIGNED = 2**64 - 1  # GBCS counters are 8 bytes
MAX_LENGTH_OCTETS = 4  # 0x84: up to 4 GiB; a GBCS payload sits in a 1 MiB document

SEQUENCE, INTEGER, OCTET_STRING, NULL, GENERALIZED_TIME = 0x30, 0x02, 0x04, 0x05, 0x18
_TAG_NAMES = {
    SEQUENCE: "SEQUENCE",
    INTEGER: "INTEGER",
    OCTET_STRING: "OCTET STRING",
    NULL: "NULL",
    GENERALIZED_TIME: "GeneralizedTime",
}
_DAY_MS = 86_400_000
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class GbcsError(ValueError):
    """What is wrong with a GBCS payload, for a person (e.g. 'content length 147 (81 93) at byte 33 runs past
    the end: 120 bytes left'); the XML layer prefixes the element path."""


def hex_bytes(raw: bytes) -> str:
    """Bytes as an engineer reads them in a hex dump: '81 93'."""
    return raw.hex(" ").upper()


def byte_count(count: int) -> str:
    return "1 byte" if count == 1 else f"{count} bytes"


# Lengths: BER definite form, shortest encoding (DER), as GBCS frames and DER contents both use.


def read_length(data: bytes, pos: int, end: int, field: str) -> tuple[int, int]:
    """The length at pos and the position after it; the length must fit in what is left before end."""
    if pos >= end:
        raise GbcsError(f"{field}: missing, the data ends at byte {pos}")
    first = data[pos]
    if first < 0x80:
        length, after = first, pos + 1
    else:
        count = first & 0x7F
        if count == 0:
            raise GbcsError(
                f"{field} at byte {pos}: 0x80 (indefinite length) is not allowed, expected a definite length"
            )
        if count > MAX_LENGTH_OCTETS:
            raise GbcsError(
                f"{field} at byte {pos}: 0x{first:02X} announces {count} length bytes, at most {MAX_LENGTH_OCTETS}"
            )
        after = pos + 1 + count
        if after > end:
            raise GbcsError(
                f"{field} at byte {pos}: 0x{first:02X} announces {count} length bytes, "
                f"only {byte_count(end - pos - 1)} left"
            )
        length = int.from_bytes(data[pos + 1 : after], "big")
        if length < 0x80 or length >> (8 * (count - 1)) == 0:
            raise GbcsError(
                f"{field} at byte {pos}: {hex_bytes(data[pos:after])} is not the shortest form of {length} "
                f"(expected {hex_bytes(length_bytes(length))})"
            )
    if length > end - after:
        raise GbcsError(
            f"{field} {length} ({hex_bytes(data[pos:after])}) at byte {pos} runs past the end: "
            f"{byte_count(end - after)} left"
        )
    return length, after


def length_bytes(length: int) -> bytes:
    """The shortest encoding of a length."""
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(body) > MAX_LENGTH_OCTETS:
        raise GbcsError(f"length {length} needs {len(body)} length bytes, at most {MAX_LENGTH_OCTETS}")
    return bytes((0x80 | len(body),)) + body


# TLVs.


def read_tlv(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """The (start, end) of the value of the element at pos, which must have this tag."""
    if pos >= end:
        raise GbcsError(f"{what}: missing, expected {_TAG_NAMES[tag]} (0x{tag:02X}) at byte {pos}")
    if data[pos] != tag:
        found = _TAG_NAMES.get(data[pos], "unknown")
        raise GbcsError(
            f"{what}: tag 0x{data[pos]:02X} ({found}) at byte {pos}, expected 0x{tag:02X} ({_TAG_NAMES[tag]})"
        )
    length, start = read_length(data, pos + 1, end, f"{what} length")
    return start, start + length


def read_integer(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A non-negative INTEGER of 1 to 9 bytes (0 to 2^64 - 1)."""
    start, stop = read_tlv(data, pos, end, INTEGER, what)
    size = stop - start
    if size == 0:
        raise GbcsError(f"{what}: INTEGER at byte {pos} has no content bytes, expected 1 to 9")
    if size > 9:
        raise GbcsError(f"{what}: INTEGER at byte {pos} has {size} bytes, at most 9 (values up to 2^64 - 1)")
    first = data[start]
    if first & 0x80:
        raise GbcsError(
            f"{what}: INTEGER {hex_bytes(data[start:stop])} at byte {pos} is negative, expected 0 to 2^64 - 1"
        )
    if first == 0 and size > 1 and data[start + 1] < 0x80:
        raise GbcsError(
            f"{what}: INTEGER {hex_bytes(data[start:stop])} at byte {pos} has a superfluous leading 00 (not DER)"
        )
    value = int.from_bytes(data[start:stop], "big")
    if value > MAX_UNSIGNED:
        raise GbcsError(f"{what}: INTEGER {value} at byte {pos} is over 2^64 - 1")
    return value, stop


def read_octet_string(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    start, stop = read_tlv(data, pos, end, OCTET_STRING, what)
    return data[start:stop], stop


def read_generalized_time(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A GeneralizedTime YYYYMMDDHHMMSSZ (UTC, whole seconds), in epoch ms."""
    start, stop = read_tlv(data, pos, end, GENERALIZED_TIME, what)
    text = data[start:stop]
    if len(text) != 15 or text[14] != 0x5A or not text[:14].isdigit():
        raise GbcsError(
            f"{what}: GeneralizedTime {text.decode('ascii', 'backslashreplace')!r} at byte {pos} is not "
            "YYYYMMDDHHMMSSZ (UTC, whole seconds)"
        )
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[8:10]), int(text[10:12]), int(text[12:14])
    problem = date_problem(year, month, day) or time_problem(hour, minute, second)
    if problem:
        raise GbcsError(f"{what}: GeneralizedTime {text.decode()} at byte {pos}: {problem}")
    return epoch_ms(year, month, day, hour, minute, second), stop


def expect_end(pos: int, end: int, what: str) -> None:
    """Nothing may follow the last field of a structure."""
    if pos != end:
        raise GbcsError(f"{what}: {byte_count(end - pos)} more at byte {pos}, after its last field")


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + length_bytes(len(body)) + body


def integer(value: int, what: str) -> bytes:
    if not 0 <= value <= MAX_UNSIGNED:
        raise GbcsError(f"{what} {value} is outside 0 to 2^64 - 1")
    return tlv(INTEGER, value.to_bytes((value.bit_length() + 8) // 8, "big"))


def generalized_time(ms: int, what: str) -> bytes:
    if ms % 1000:
        raise GbcsError(f"{what} {ms} is not a whole second (GeneralizedTime holds whole seconds)")
    year, month, day, hour, minute, second, _ = civil(ms)
    if not 0 <= year <= 9999:
        raise GbcsError(f"{what} {ms} is in year {year}, outside 0000 to 9999")
    return tlv(GENERALIZED_TIME, f"{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}Z".encode())


# Calendar arithmetic (proleptic Gregorian, UTC), without datetime's year limits or its cost.


def date_problem(year: int, month: int, day: int) -> str | None:
    """Why year-month-day is not a date, or None."""
    if not 1 <= month <= 12:
        return f"month {month}, expected 1 to 12"
    last = 29 if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else _DAYS_IN_MONTH[month]
    if not 1 <= day <= last:
        return f"day {day}, expected 1 to {last} in {year:04}-{month:02}"
    return None


def time_problem(hour: int, minute: int, second: int) -> str | None:
    if hour > 23:
        return f"hour {hour}, expected 0 to 23"
    if minute > 59:
        return f"minute {minute}, expected 0 to 59"
    if second > 59:
        return f"second {second}, expected 0 to 59"
    return None


def epoch_ms(year: int, month: int, day: int, hour: int, minute: int, second: int, ms: int = 0) -> int:
    """Epoch milliseconds of a valid UTC date and time (days from civil, H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * _DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000 + ms


def civil(ms: int) -> tuple[int, int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second, millisecond) of epoch milliseconds, UTC."""
    days, rest = divmod(ms, _DAY_MS)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return yoe + era * 400 + (month <= 2), month, day, hour, minute, second, millis
