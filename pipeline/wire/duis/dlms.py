"""The 12-byte DLMS COSEM date-time of GBCS frames and ECS80 notifications.

Layout: year (2 bytes), month, day, day of week, hour, minute, second, hundredths, deviation (2 bytes,
signed minutes, 0x8000 not specified), clock status; 0xFF (0xFFFF for the year) means "not specified".

What a reading gives, since a decision needs a point in time or nothing:
- None when the year, month, day, hour, minute or second is not specified, when month or day is one of
  DLMS's schedule wildcards (0xFD, 0xFE: daylight saving end or begin, second last or last day), or when
  the clock status is given and says "invalid value" (bit 0): there is no point in time to use.
- Hundredths not specified count as 0.
- Deviation not specified: the time is UTC (GBCS devices keep UTC). Otherwise it is applied as the DLMS
  Blue Book defines it, minutes from local time to UTC (UTC = local + deviation; -60 for CET).
- The day of week is checked for range but not against the date; the clock status is otherwise ignored.
Any field outside its range is a GbcsError naming it. Writing gives the canonical form GBCS test frames
use (day of week, deviation and clock status not specified), so those frames read and write back
byte for byte.
"""

import struct
from functools import lru_cache

from pipeline.wire.duis.der import GbcsError, civil, date_problem, epoch_ms, hex_bytes, time_problem

DATE_TIME_SIZE = 12
UNSPECIFIED_DEVIATION = -0x8000  # 0x8000 read as a signed 16-bit number
MAX_DEVIATION = 720
_FIELDS = struct.Struct(">HBBBBBBBhB")
_NOT_SPECIFIED = 0xFF
_WILDCARDS = (0xFD, 0xFE, 0xFF)
UNSPECIFIED = _FIELDS.pack(0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, UNSPECIFIED_DEVIATION, 0xFF)


def read_date_time(data: bytes, pos: int, what: str) -> int | None:
    """The date-time of the 12 bytes at pos (which the caller has checked are there), in epoch ms."""
    year, month, day, weekday, hour, minute, second, hundredths, deviation, status = _FIELDS.unpack_from(data, pos)
    if (  # the usual form, decided in a few comparisons: the alert path reads three of these
        hour < 24
        and minute < 60
        and second < 60
        and hundredths < 100
        and deviation == UNSPECIFIED_DEVIATION
        and (weekday == _NOT_SPECIFIED or 1 <= weekday <= 7)
        and (status == _NOT_SPECIFIED or not status & 0x01)
    ):
        midnight = _midnight_ms(year, month, day)
        if midnight is not None:
            return midnight + ((hour * 60 + minute) * 60 + second) * 1000 + hundredths * 10
    return _read_unusual_date_time(data, pos, what)


@lru_cache(maxsize=4096)
def _midnight_ms(year: int, month: int, day: int) -> int | None:
    """Epoch ms of a concrete, valid date's midnight, else None (left to the full reading)."""
    if year == 0xFFFF or date_problem(year, month, day):
        return None
    return epoch_ms(year, month, day, 0, 0, 0)


def _read_unusual_date_time(data: bytes, pos: int, what: str) -> int | None:
    """Every other form: fields not specified, a deviation, or a field out of range (a GbcsError)."""
    year, month, day, weekday, hour, minute, second, hundredths, deviation, status = _FIELDS.unpack_from(data, pos)
    problem = _field_problem(month, day, weekday, hour, minute, second, hundredths, deviation)
    if problem:
        raise GbcsError(
            f"{what}: DLMS date-time {hex_bytes(data[pos : pos + DATE_TIME_SIZE])} at byte {pos}: {problem}"
        )
    if (
        year == 0xFFFF
        or month in _WILDCARDS
        or day in _WILDCARDS
        or _NOT_SPECIFIED in (hour, minute, second)
        or (status != _NOT_SPECIFIED and status & 0x01)
    ):
        return None
    problem = date_problem(year, month, day)
    if problem:
        raise GbcsError(
            f"{what}: DLMS date-time {hex_bytes(data[pos : pos + DATE_TIME_SIZE])} at byte {pos}: {problem}"
        )
    ms = epoch_ms(year, month, day, hour, minute, second, 0 if hundredths == _NOT_SPECIFIED else hundredths * 10)
    return ms if deviation == UNSPECIFIED_DEVIATION else ms + deviation * 60_000


def _field_problem(
    month: int, day: int, weekday: int, hour: int, minute: int, second: int, hundredths: int, deviation: int
) -> str | None:
    """Why a field is out of range (0xFF and the wildcards aside), or None."""
    if not (1 <= month <= 12 or month in _WILDCARDS):
        return f"month {month} (0x{month:02X}), expected 1 to 12, 0xFD, 0xFE or 0xFF"
    if not (1 <= day <= 31 or day in _WILDCARDS):
        return f"day {day} (0x{day:02X}), expected 1 to 31, 0xFD, 0xFE or 0xFF"
    if not (1 <= weekday <= 7 or weekday == _NOT_SPECIFIED):
        return f"day of week {weekday} (0x{weekday:02X}), expected 1 to 7 or 0xFF"
    problem = time_problem(
        0 if hour == _NOT_SPECIFIED else hour,
        0 if minute == _NOT_SPECIFIED else minute,
        0 if second == _NOT_SPECIFIED else second,
    )
    if problem:
        return problem + " or 0xFF"
    if hundredths > 99 and hundredths != _NOT_SPECIFIED:
        return f"hundredths {hundredths}, expected 0 to 99 or 0xFF"
    if abs(deviation) > MAX_DEVIATION and deviation != UNSPECIFIED_DEVIATION:
        return f"deviation {deviation} minutes, expected -720 to 720 or 0x8000 (not specified)"
    return None


def date_time_bytes(ms: int | None, what: str) -> bytes:
    """The canonical 12 bytes of a time (all fields not specified for None)."""
    if ms is None:
        return UNSPECIFIED
    if ms % 10:
        raise GbcsError(f"{what} {ms} is not a whole hundredth of a second (DLMS date-times hold hundredths)")
    year, month, day, hour, minute, second, millis = civil(ms)
    if not 0 <= year < 0xFFFF:
        raise GbcsError(f"{what} {ms} is in year {year}, outside 0 to 65534")
    return _FIELDS.pack(year, month, day, 0xFF, hour, minute, second, millis // 10, UNSPECIFIED_DEVIATION, 0xFF)
