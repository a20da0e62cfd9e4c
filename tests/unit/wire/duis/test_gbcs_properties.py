"""Properties of the GBCS codec: writers and readers are exact inverses, and no bytes whatever make a reader fail
with anything but a GbcsError (the worker turns that into a dead letter; anything else would be a crash).

Canonical bytes are built here from their parts, independently of the writers, and the times they hold are
checked against datetime, so neither direction is checked only against itself.
"""

import calendar
import contextlib
import struct
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.wire.duis import gbcs
from pipeline.wire.duis.gbcs import (
    ActivateFirmwareCommand,
    ExecutionOutcome,
    FutureDatedActivationAlert,
    GbcsError,
    GbcsFrame,
    SupplyOutageRestoredAlert,
)
from tests.unit.wire.duis import gbcs_vectors as v

U64 = st.integers(0, 2**64 - 1)
EUIS = st.binary(min_size=8, max_size=8).map(lambda raw: raw.hex("-").upper())
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Any time a DLMS date-time holds (years 0 to 65534, hundredths), and any a GeneralizedTime holds (whole seconds).
DLMS_MS = st.integers(-6_216_721_920_000, 200_591_760_959_999).map(lambda t: t * 10)
SECONDS_MS = st.integers(-62_167_219_200, 253_402_300_799).map(lambda t: t * 1000)
CONTENTS = st.one_of(st.binary(max_size=130), st.binary(min_size=250, max_size=300))

frames = st.builds(
    GbcsFrame,
    cra_flag=st.integers(1, 3),
    originator_counter=U64,
    originator=EUIS,
    recipient=EUIS,
    date_time_ms=st.none() | DLMS_MS,
    message_code=st.integers(0, 0xFFFF),
    content=CONTENTS,
    signature=st.none() | st.just(b"") | st.binary(min_size=64, max_size=64),
    supplementary=st.binary(max_size=140),
)
outcomes = st.builds(ExecutionOutcome, response_code=U64, firmware_version=st.binary(max_size=300))
commands = st.builds(
    ActivateFirmwareCommand,
    firmware_hash=st.binary(min_size=32, max_size=32),
    counter=U64,
    execution_ms=st.none() | SECONDS_MS,
)
future_dated_alerts = st.builds(
    FutureDatedActivationAlert,
    alert_code=st.integers(0, 0xFFFF),
    execution_ms=SECONDS_MS,
    counter=U64,
    outcome=outcomes,
)
supply_alerts = st.builds(
    SupplyOutageRestoredAlert,
    alert_code=st.integers(0, 0xFFFF),
    alert_ms=st.none() | DLMS_MS,
    outage_start_ms=st.none() | DLMS_MS,
    outage_end_ms=st.none() | DLMS_MS,
    long_invoke_id=st.integers(0, 2**32 - 1),
    notification_ms=st.none() | DLMS_MS,
)


@settings(max_examples=300, deadline=None)
@given(frames, st.booleans())
def test_frames_read_back_as_written(frame: GbcsFrame, ciphered: bool) -> None:
    assert gbcs.read_frame(gbcs.write_frame(frame, ciphered=ciphered)) == frame


@settings(max_examples=200, deadline=None)
@given(commands)
def test_commands_read_back_as_written(command: ActivateFirmwareCommand) -> None:
    assert gbcs.read_activate_firmware_command(gbcs.write_activate_firmware_command(command)) == command


@settings(max_examples=200, deadline=None)
@given(st.none() | outcomes)
def test_responses_read_back_as_written(outcome: ExecutionOutcome | None) -> None:
    assert gbcs.read_activate_firmware_response(gbcs.write_activate_firmware_response(outcome)) == outcome


@settings(max_examples=200, deadline=None)
@given(future_dated_alerts)
def test_future_dated_alerts_read_back_as_written(alert: FutureDatedActivationAlert) -> None:
    assert gbcs.read_future_dated_activation_alert(gbcs.write_future_dated_activation_alert(alert)) == alert


@settings(max_examples=200, deadline=None)
@given(supply_alerts)
def test_supply_alerts_read_back_as_written(alert: SupplyOutageRestoredAlert) -> None:
    assert gbcs.read_supply_outage_restored_alert(gbcs.write_supply_outage_restored_alert(alert)) == alert


# The other direction: canonical bytes, built from their parts.


def length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes(4, "big").lstrip(b"\x00")
    return bytes([0x80 + len(body)]) + body


def der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + length(len(body)) + body


def der_integer(value: int) -> bytes:
    body = value.to_bytes(9, "big").lstrip(b"\x00") or b"\x00"
    return der(0x02, b"\x00" + body if body[0] & 0x80 else body)


@st.composite
def dlms_times(draw: st.DrawFn) -> tuple[bytes, int]:
    """(12 canonical bytes, the epoch ms datetime gives them), years 1 to 9999 as datetime allows."""
    when = draw(st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 990_000)))
    hundredths = when.microsecond // 10_000
    raw = (
        when.year.to_bytes(2, "big")
        + bytes([when.month, when.day, 0xFF, when.hour, when.minute, when.second, hundredths])
        + b"\x80\x00\xff"
    )
    whole = when.replace(microsecond=0, tzinfo=UTC) - EPOCH
    return raw, (whole.days * 86_400 + whole.seconds) * 1000 + hundredths * 10


@st.composite
def generalized_times(draw: st.DrawFn) -> tuple[bytes, int]:
    when = draw(st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59))).replace(microsecond=0)
    since = when.replace(tzinfo=UTC) - EPOCH
    text = f"{when.year:04}{when.month:02}{when.day:02}{when.hour:02}{when.minute:02}{when.second:02}Z"
    return der(0x18, text.encode()), (since.days * 86_400 + since.seconds) * 1000


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 3),
    st.binary(min_size=8 + 8 + 8, max_size=8 + 8 + 8),
    st.none() | dlms_times(),
    st.integers(0, 0xFFFF),
    st.binary(max_size=140),
    CONTENTS,
    st.none() | st.just(b"") | st.binary(min_size=64, max_size=64),
)
def test_canonical_frames_write_back_byte_for_byte(
    cra: int,
    ids: bytes,
    date_time: tuple[bytes, int] | None,
    code: int,
    supplementary: bytes,
    content: bytes,
    signature: bytes | None,
) -> None:
    counter, originator, recipient = ids[:8], ids[8:16], ids[16:]
    payload = b"".join(
        (
            b"\xdf\x09",
            bytes([cra]),
            counter,
            b"\x08" + originator,
            b"\x08" + recipient,
            b"\x00" if date_time is None else b"\x0c" + date_time[0],
            length(2 + len(supplementary)) + code.to_bytes(2, "big") + supplementary,
            length(len(content)) + content,
            b"" if signature is None else bytes([len(signature)]) + signature,
        )
    )
    frame = gbcs.read_frame(payload)
    assert frame == GbcsFrame(
        cra,
        int.from_bytes(counter, "big"),
        originator.hex("-").upper(),
        recipient.hex("-").upper(),
        None if date_time is None else date_time[1],
        code,
        content,
        signature,
        supplementary,
    )
    assert gbcs.write_frame(frame) == payload


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), U64, st.none() | generalized_times())
def test_canonical_commands_write_back_byte_for_byte(
    firmware_hash: bytes, counter: int, execution: tuple[bytes, int] | None
) -> None:
    content = der(0x30, der(0x04, firmware_hash) + der_integer(counter) + (b"" if execution is None else execution[0]))
    command = gbcs.read_activate_firmware_command(content)
    assert command == ActivateFirmwareCommand(firmware_hash, counter, None if execution is None else execution[1])
    assert gbcs.write_activate_firmware_command(command) == content


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), generalized_times(), U64, U64, st.binary(max_size=300))
def test_canonical_future_dated_alerts_write_back_byte_for_byte(
    code: int, execution: tuple[bytes, int], counter: int, response_code: int, version: bytes
) -> None:
    outcome = der(0x30, der_integer(response_code) + der(0x04, version))
    content = der(0x30, der_integer(code) + execution[0] + der_integer(counter) + outcome)
    alert = gbcs.read_future_dated_activation_alert(content)
    assert alert == FutureDatedActivationAlert(code, execution[1], counter, ExecutionOutcome(response_code, version))
    assert gbcs.write_future_dated_activation_alert(alert) == content
    assert gbcs.read_activate_firmware_response(outcome) == alert.outcome
    assert gbcs.write_activate_firmware_response(alert.outcome) == outcome


UNSPECIFIED = (bytes.fromhex("FFFF FF FF FF FF FF FF FF 8000 FF"), None)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=4, max_size=4),
    st.none() | dlms_times(),
    st.integers(0, 0xFFFF),
    st.lists(dlms_times() | st.just(UNSPECIFIED), min_size=3, max_size=3),
)
def test_canonical_supply_alerts_write_back_byte_for_byte(
    invoke_id: bytes, notified: tuple[bytes, int] | None, code: int, times: list[tuple[bytes, int | None]]
) -> None:
    content = b"".join(
        (
            b"\x0f" + invoke_id,
            b"\x00" if notified is None else b"\x09\x0c" + notified[0],
            b"\x02\x04\x12" + code.to_bytes(2, "big"),
            *(b"\x09\x0c" + raw for raw, _ in times),
        )
    )
    alert = gbcs.read_supply_outage_restored_alert(content)
    assert alert == SupplyOutageRestoredAlert(
        code,
        alert_ms=times[0][1],
        outage_start_ms=times[1][1],
        outage_end_ms=times[2][1],
        long_invoke_id=int.from_bytes(invoke_id, "big"),
        notification_ms=None if notified is None else notified[1],
    )
    assert gbcs.write_supply_outage_restored_alert(alert) == content


# No bytes make a reader raise anything but GbcsError.


def read_all(payload: bytes) -> tuple[GbcsFrame, Any]:
    """The frame and its content read as the message code and CRA flag say (the raw content otherwise); the
    frame's raw content is dropped when it was read (its value stands for it)."""
    frame = gbcs.read_frame(payload)
    read_content = v.CONTENT_READERS.get((frame.message_code, frame.cra_flag))
    if read_content is None:
        return frame, frame.content
    return replace(frame, content=b""), read_content(frame.content)


def write_all(frame: GbcsFrame, value: Any, ciphered: bool) -> bytes:
    write_content = v.WRITERS.get((frame.message_code, frame.cra_flag))
    content = value if write_content is None else write_content(value)
    return gbcs.write_frame(replace(frame, content=content), ciphered=ciphered)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | st.binary(max_size=200).map(lambda tail: b"\xdf\x09" + tail))
def test_random_bytes_are_refused_or_read(payload: bytes) -> None:
    for read in (gbcs.read_frame, *v.CONTENT_READERS.values()):
        with contextlib.suppress(GbcsError):
            read(payload)


def _in(position: int, spans: tuple[tuple[int, int], ...]) -> bool:
    return any(start <= position < end for start, end in spans)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(v.VECTORS), st.data())
def test_a_changed_byte_is_refused_or_read_exactly(vector: v.Vector, data: st.DataObject) -> None:
    """Either a GbcsError, or the changed frame writes back byte for byte: the change was read, not ignored.
    Only the bytes read loosely (DLMS date-times, the wrapper's invocation counter and MAC) may differ."""
    position = data.draw(st.integers(0, len(vector.frame) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != vector.frame[position]))
    changed = vector.frame[:position] + bytes([byte]) + vector.frame[position + 1 :]
    try:
        frame, value = read_all(changed)
    except GbcsError:
        return
    rewritten = write_all(frame, value, ciphered=changed[0] == gbcs.GENERAL_CIPHERING)
    if len(rewritten) != len(changed):
        assert _in(position, vector.loose)
    else:
        assert all(_in(i, vector.loose) for i in range(len(changed)) if rewritten[i] != changed[i])
    assert read_all(rewritten) == (frame, value)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(v.VECTORS), st.data())
def test_inserted_and_deleted_bytes_are_refused_or_read_consistently(vector: v.Vector, data: st.DataObject) -> None:
    changed = bytearray(vector.frame)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(changed)))
        if data.draw(st.booleans()) or position == len(changed):
            changed[position:position] = data.draw(st.binary(min_size=1, max_size=3))
        else:
            del changed[position : position + data.draw(st.integers(1, 3))]
    try:
        frame, value = read_all(bytes(changed))
    except GbcsError:
        return
    assert read_all(write_all(frame, value, ciphered=changed[:1] == b"\xdd")) == (frame, value)


def test_calendar_matches_datetime_at_the_edges() -> None:
    for year, month, day in ((1, 1, 1), (1969, 12, 31), (1970, 1, 1), (2000, 2, 29), (9999, 12, 31)):
        expected = calendar.timegm((year, month, day, 23, 59, 59)) * 1000
        command = ActivateFirmwareCommand(v.FIRMWARE_HASH, 1, expected)
        assert gbcs.read_activate_firmware_command(gbcs.write_activate_firmware_command(command)) == command
        assert f"{year:04}{month:02}{day:02}235959Z".encode() in gbcs.write_activate_firmware_command(command)


def _field(valid: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    return valid | st.integers(0, 255)


@settings(max_examples=1000, deadline=None)
@given(
    st.integers(1, 9999) | st.just(0xFFFF),
    _field(st.integers(1, 12) | st.sampled_from([0xFD, 0xFE, 0xFF])),
    _field(st.integers(1, 31) | st.sampled_from([0xFD, 0xFE, 0xFF])),
    _field(st.integers(1, 7) | st.just(0xFF)),
    _field(st.integers(0, 23) | st.just(0xFF)),
    _field(st.integers(0, 59) | st.just(0xFF)),
    _field(st.integers(0, 59) | st.just(0xFF)),
    _field(st.integers(0, 99) | st.just(0xFF)),
    st.integers(-720, 720) | st.just(-0x8000) | st.integers(-0x8000, 0x7FFF),
    st.integers(0, 255),
)
def test_dlms_date_times_follow_the_documented_rules(
    year: int,
    month: int,
    day: int,
    weekday: int,
    hour: int,
    minute: int,
    second: int,
    hundredths: int,
    deviation: int,
    status: int,
) -> None:
    """Any 12 bytes, against the rules of dlms.py's docstring written out here with datetime."""
    raw = struct.pack(">HBBBBBBBhB", year, month, day, weekday, hour, minute, second, hundredths, deviation, status)
    in_range = (
        (1 <= month <= 12 or month >= 0xFD)
        and (1 <= day <= 31 or day >= 0xFD)
        and (1 <= weekday <= 7 or weekday == 0xFF)
        and (hour <= 23 or hour == 0xFF)
        and (minute <= 59 or minute == 0xFF)
        and (second <= 59 or second == 0xFF)
        and (hundredths <= 99 or hundredths == 0xFF)
        and (abs(deviation) <= 720 or deviation == -0x8000)
    )
    expected: int | None | type[GbcsError]
    if not in_range:
        expected = GbcsError
    elif year == 0xFFFF or month > 12 or day > 31 or 0xFF in (hour, minute, second) or (status != 0xFF and status & 1):
        expected = None
    else:
        try:
            since = datetime(year, month, day, hour, minute, second, tzinfo=UTC) - EPOCH
        except ValueError:  # no such day in that month
            expected = GbcsError
        else:
            expected = (since.days * 86_400 + since.seconds) * 1000 + (0 if hundredths == 0xFF else hundredths * 10)
            if deviation != -0x8000:
                expected += deviation * 60_000
    payload = v.RESPONSE_ACCEPTED[:30] + raw + v.RESPONSE_ACCEPTED[42:]
    try:
        found: int | None | type[GbcsError] = gbcs.read_frame(payload).date_time_ms
    except GbcsError:
        found = GbcsError
    assert found == expected
