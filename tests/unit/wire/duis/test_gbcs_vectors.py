"""The hand-built frames of gbcs_vectors read to the values they were built from, and write back byte for byte."""

from dataclasses import replace

import pytest

from pipeline.wire.duis import gbcs
from pipeline.wire.duis.gbcs import (
    ActivateFirmwareCommand,
    ExecutionOutcome,
    FutureDatedActivationAlert,
    GbcsFrame,
    SupplyOutageRestoredAlert,
)
from tests.unit.wire.duis import gbcs_vectors as v


def test_unsigned_immediate_precommand() -> None:
    frame = gbcs.read_frame(v.PRECOMMAND_IMMEDIATE)
    assert frame == GbcsFrame(
        cra_flag=gbcs.CRA_COMMAND,
        originator_counter=v.COUNTER,
        originator=v.SUPPLIER,
        recipient=v.ESME,
        date_time_ms=None,
        message_code=gbcs.ACTIVATE_FIRMWARE,
        content=v.PRECOMMAND_IMMEDIATE[34:],
        signature=None,
    )
    command = gbcs.read_activate_firmware_command(frame.content)
    assert command == ActivateFirmwareCommand(v.FIRMWARE_HASH, v.COUNTER, None)
    assert gbcs.write_activate_firmware_command(command) == frame.content
    assert gbcs.write_frame(frame) == v.PRECOMMAND_IMMEDIATE


@pytest.mark.parametrize(
    ("payload", "execution_ms"),
    [(v.PRECOMMAND_FUTURE, v.EXECUTION_MS), (v.PRECOMMAND_CANCELLATION, gbcs.CANCELLATION_TIME_MS)],
)
def test_dated_precommands(payload: bytes, execution_ms: int) -> None:
    frame = gbcs.read_frame(payload)
    command = gbcs.read_activate_firmware_command(frame.content)
    assert command == ActivateFirmwareCommand(v.FIRMWARE_HASH, v.COUNTER, execution_ms)
    assert gbcs.write_activate_firmware_command(command) == frame.content
    assert gbcs.write_frame(frame) == payload


def test_cancellation_time_is_the_last_second_of_9999() -> None:
    assert gbcs.CANCELLATION_TIME_MS == v.CANCELLATION_MS


def test_general_ciphering_is_unwrapped_to_the_signed_command_inside() -> None:
    frame = gbcs.read_frame(v.COMMAND_CIPHERED)
    assert frame == replace(gbcs.read_frame(v.PRECOMMAND_FUTURE), signature=v.SIGNATURE)
    rewrapped = gbcs.write_frame(frame, ciphered=True)
    # The invocation counter and the MAC are not kept: written as zeros, everything else as received.
    assert rewrapped[:10] + rewrapped[14:-12] == v.COMMAND_CIPHERED[:10] + v.COMMAND_CIPHERED[14:-12]
    assert rewrapped[10:14] + rewrapped[-12:] == bytes(16)
    assert gbcs.read_frame(rewrapped) == frame


def test_command_accepted_response() -> None:
    frame = gbcs.read_frame(v.RESPONSE_ACCEPTED)
    assert (frame.cra_flag, frame.originator, frame.recipient) == (gbcs.CRA_RESPONSE, v.ESME, v.SUPPLIER)
    assert frame.originator_counter == v.COUNTER
    assert frame.date_time_ms == v.RESPONDED_MS
    assert frame.signature == v.SIGNATURE
    assert gbcs.read_activate_firmware_response(frame.content) is None
    assert gbcs.write_activate_firmware_response(None) == frame.content == b"\x05\x00"
    assert gbcs.write_frame(frame) == v.RESPONSE_ACCEPTED


@pytest.mark.parametrize(
    ("code_hex", "code"),
    [("02 01 00", 0), ("02 01 01", 1), ("02 01 02", 2), ("02 01 03", 3), ("02 01 07", 7), ("02 02 0100", 256)],
)
def test_execution_outcomes(code_hex: str, code: int) -> None:
    payload = v.response_outcome(code_hex)
    frame = gbcs.read_frame(payload)
    outcome = gbcs.read_activate_firmware_response(frame.content)
    assert outcome == ExecutionOutcome(code, v.FIRMWARE_VERSION)
    assert gbcs.write_activate_firmware_response(outcome) == frame.content
    assert gbcs.write_frame(frame) == payload


@pytest.mark.parametrize(("payload", "size", "byte"), [(v.RESPONSE_81, 150, 0xAB), (v.RESPONSE_82, 300, 0xCD)])
def test_multi_byte_lengths(payload: bytes, size: int, byte: int) -> None:
    frame = gbcs.read_frame(payload)
    assert frame.signature == v.SIGNATURE
    outcome = gbcs.read_activate_firmware_response(frame.content)
    assert outcome == ExecutionOutcome(0, bytes([byte]) * size)
    assert gbcs.write_activate_firmware_response(outcome) == frame.content
    assert gbcs.write_frame(frame) == payload


@pytest.mark.parametrize(
    ("payload", "alert_code", "response_code", "device_counter"),
    [(v.ALERT_8F66, 0x8F66, 0, 3000), (v.ALERT_8F67, 0x8F67, 2, 3001)],
)
def test_future_dated_activation_alerts(
    payload: bytes, alert_code: int, response_code: int, device_counter: int
) -> None:
    frame = gbcs.read_frame(payload)
    assert (frame.cra_flag, frame.message_code) == (gbcs.CRA_ALERT, gbcs.FUTURE_DATED_ACTIVATION_ALERT)
    assert (frame.originator, frame.recipient, frame.originator_counter) == (v.ESME, v.SUPPLIER, device_counter)
    alert = gbcs.read_future_dated_activation_alert(frame.content)
    assert alert == FutureDatedActivationAlert(
        alert_code, v.EXECUTION_MS, v.COUNTER, ExecutionOutcome(response_code, v.FIRMWARE_VERSION)
    )
    assert gbcs.write_future_dated_activation_alert(alert) == frame.content
    assert gbcs.write_frame(frame) == payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            v.ECS80_8F36,
            SupplyOutageRestoredAlert(0x8F36, v.RESPONDED_MS, v.OUTAGE_START_MS, v.OUTAGE_END_MS, 0x200007D3, None),
        ),
        (
            v.ECS80_NOTIFICATION_TIME,
            SupplyOutageRestoredAlert(
                0x8F36, v.RESPONDED_MS, v.OUTAGE_START_MS, v.OUTAGE_END_MS, 0x200007D4, v.NOTIFIED_MS
            ),
        ),
        (v.ECS80_UNSPECIFIED, SupplyOutageRestoredAlert(0x8F35, None, None, None, 0x200007D5, None)),
    ],
)
def test_supply_outage_restored_alerts(payload: bytes, expected: SupplyOutageRestoredAlert) -> None:
    frame = gbcs.read_frame(payload)
    assert (frame.originator, frame.recipient) == (v.ESME, v.DNO)
    assert frame.message_code == gbcs.SUPPLY_OUTAGE_RESTORED_ALERT
    alert = gbcs.read_supply_outage_restored_alert(frame.content)
    assert alert == expected
    assert gbcs.write_supply_outage_restored_alert(alert) == frame.content
    assert gbcs.write_frame(frame) == payload


_INTEGERS = [  # (DER content bytes, value): 1 to 9 bytes, the sign bit forcing a leading 00
    ("00", 0),
    ("7F", 127),
    ("0080", 128),
    ("03E8", 1000),
    ("7FFFFF", 2**23 - 1),
    ("7FFFFFFF", 2**31 - 1),
    ("7FFFFFFFFF", 2**39 - 1),
    ("0182AC7B58DF", v.COUNTER),
    ("7FFFFFFFFFFFFF", 2**55 - 1),
    ("7FFFFFFFFFFFFFFF", 2**63 - 1),
    ("008000000000000000", 2**63),
    ("00FFFFFFFFFFFFFFFF", 2**64 - 1),
]


@pytest.mark.parametrize(("integer_hex", "counter"), _INTEGERS)
def test_counters_of_1_to_9_bytes(integer_hex: str, counter: int) -> None:
    integer = bytes.fromhex(integer_hex)
    body = bytes.fromhex("04 20") + v.FIRMWARE_HASH + bytes((0x02, len(integer))) + integer
    content = bytes((0x30, len(body))) + body
    command = gbcs.read_activate_firmware_command(content)
    assert command == ActivateFirmwareCommand(v.FIRMWARE_HASH, counter, None)
    assert gbcs.write_activate_firmware_command(command) == content


@pytest.mark.parametrize("counter", [0, 1, v.COUNTER, 2**63, 2**64 - 1])
def test_frame_counters_are_8_bytes_big_endian(counter: int) -> None:
    payload = v.PRECOMMAND_IMMEDIATE[:3] + counter.to_bytes(8, "big") + v.PRECOMMAND_IMMEDIATE[11:]
    frame = gbcs.read_frame(payload)
    assert frame.originator_counter == counter
    assert gbcs.write_frame(frame) == payload


def test_device_ids_are_canonical_upper_case_and_the_writer_takes_either_case() -> None:
    frame = gbcs.read_frame(v.ALERT_8F66)
    assert frame.originator == "00-DB-12-34-56-78-90-A0"
    assert gbcs.write_frame(replace(frame, originator=frame.originator.lower())) == v.ALERT_8F66


def test_other_information_beyond_the_message_code_is_kept_apart() -> None:
    frame = gbcs.read_frame(v.PRECOMMAND_SUPPLEMENTARY)
    assert frame.supplementary == bytes.fromhex("90B3D51F30030000 00000000000003E9")
    assert replace(frame, supplementary=b"") == gbcs.read_frame(v.PRECOMMAND_IMMEDIATE)
    assert gbcs.write_frame(frame) == v.PRECOMMAND_SUPPLEMENTARY


def test_a_non_critical_alert_has_an_empty_signature() -> None:
    frame = gbcs.read_frame(v.NONCRITICAL_ALERT)
    assert (frame.cra_flag, frame.originator, frame.message_code) == (gbcs.CRA_ALERT, v.ESME, 0x1001)
    assert frame.signature == b""
    assert frame.content == v.NONCRITICAL_ALERT[47:-13]
    rewrapped = gbcs.write_frame(frame, ciphered=True)
    assert rewrapped[:9] + rewrapped[13:-12] == v.NONCRITICAL_ALERT[:9] + v.NONCRITICAL_ALERT[13:-12]


@pytest.mark.parametrize(
    ("date_time_hex", "expected"),
    [
        ("07EA 0C 08 FF 01 1E 00 00 8000 FF", v.RESPONDED_MS),
        ("07EA 0C 08 02 01 1E 00 00 8000 00", v.RESPONDED_MS),  # day of week and clock status given
        ("07EA 0C 08 FF 01 1E 00 FF 8000 FF", v.RESPONDED_MS),  # hundredths not specified: 0
        ("07EA 0C 08 FF 01 1E 00 00 0000 FF", v.RESPONDED_MS),  # deviation 0
        ("07EA 0C 08 FF 02 1E 00 00 FFC4 FF", v.RESPONDED_MS),  # 02:30 local, deviation -60: 01:30 UTC
        ("07EA 0C 08 FF 00 1E 00 00 003C FF", v.RESPONDED_MS),  # 00:30 local, deviation +60
        ("07EA 0C 08 FF 01 1E 00 00 8000 80", v.RESPONDED_MS),  # daylight saving flag alone
        ("07EA 0C 08 FF 01 1E 00 00 8000 02", v.RESPONDED_MS),  # doubtful: still a time
        ("07EC 02 1D FF 00 00 00 00 8000 FF", 1_835_395_200_000),  # 2028-02-29, a leap day
        ("FFFF 0C 08 FF 01 1E 00 00 8000 FF", None),  # year not specified
        ("07EA FF 08 FF 01 1E 00 00 8000 FF", None),  # month not specified
        ("07EA FE 08 FF 01 1E 00 00 8000 FF", None),  # month: daylight saving begins (a schedule wildcard)
        ("07EA 0C FE FF 01 1E 00 00 8000 FF", None),  # day: last of the month (a schedule wildcard)
        ("07EA 0C 08 FF FF 1E 00 00 8000 FF", None),  # hour not specified
        ("07EA 0C 08 FF 01 FF 00 00 8000 FF", None),  # minute not specified
        ("07EA 0C 08 FF 01 1E FF 00 8000 FF", None),  # second not specified
        ("07EA 0C 08 FF 01 1E 00 00 8000 01", None),  # clock status: invalid value
        ("FFFF FF FF FF FF FF FF FF 8000 FF", None),
    ],
)
def test_frame_date_times(date_time_hex: str, expected: int | None) -> None:
    payload = v.RESPONSE_ACCEPTED[:30] + bytes.fromhex(date_time_hex) + v.RESPONSE_ACCEPTED[42:]
    assert gbcs.read_frame(payload).date_time_ms == expected


def test_unsigned_frames_write_no_signature_and_a_missing_date_time_as_00() -> None:
    frame = replace(gbcs.read_frame(v.RESPONSE_ACCEPTED), signature=None, date_time_ms=None)
    assert gbcs.write_frame(frame) == v.RESPONSE_ACCEPTED[:29] + b"\x00" + v.RESPONSE_ACCEPTED[42:-65]
