"""Broken GBCS frames and contents: each refused with a GbcsError that says which field, where, what was found
and what was expected (the message a DSP engineer gets on the dead-letter topic, after the element path)."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from pipeline.wire.duis import gbcs
from pipeline.wire.duis.gbcs import GbcsError
from tests.unit.wire.duis import gbcs_vectors as v


def at(data: bytes, offset: int, new_hex: str) -> bytes:
    """data with the bytes at offset replaced by new_hex."""
    new = bytes.fromhex(new_hex)
    return data[:offset] + new + data[offset + len(new) :]


def der(tag: int, body: bytes) -> bytes:
    assert len(body) < 0x80
    return bytes((tag, len(body))) + body


def h(text: str) -> bytes:
    return bytes.fromhex(text)


P, R, C = v.PRECOMMAND_IMMEDIATE, v.RESPONSE_ACCEPTED, v.COMMAND_CIPHERED
SIG_AT = len(R) - 65
HASH = der(0x04, v.FIRMWARE_HASH)
COUNTER = h("02 06 0182AC7B58DF")
CS06 = der(0x30, HASH + COUNTER)
ALERT = gbcs.read_frame(v.ALERT_8F66).content
ECS80 = gbcs.read_frame(v.ECS80_8F36).content
FUTURE = h("18 0F 32303330303131353039303030305A")

FRAME_CASES = [
    ("empty", b"", "the GBCS payload is empty"),
    (
        "not a frame",
        at(P, 0, "30"),
        "byte 0 is 0x30, expected 0xDF (general signing) or 0xDD (general ciphering around a signing frame)",
    ),
    (
        "cut in the counter",
        P[:5],
        "general signing frame cut short: 5 bytes, ending in the originator counter "
        "(at least 30 bytes come before the content)",
    ),
    (
        "cut in the recipient",
        P[:25],
        "general signing frame cut short: 25 bytes, ending in the recipient system title "
        "(at least 30 bytes come before the content)",
    ),
    (
        "transaction id length",
        at(P, 1, "0A"),
        "transaction-id length 0x0A at byte 1, expected 0x09 (CRA flag and 8-byte counter)",
    ),
    ("CRA flag", at(P, 2, "04"), "CRA flag 0x04 at byte 2, expected 01 command, 02 response or 03 alert"),
    ("CRA flag 0", at(P, 2, "00"), "CRA flag 0x00 at byte 2, expected 01 command, 02 response or 03 alert"),
    ("originator length", at(P, 11, "07"), "originator system title length 0x07 at byte 11, expected 0x08"),
    ("recipient length", at(P, 20, "09"), "recipient system title length 0x09 at byte 20, expected 0x08"),
    ("date-time length", at(P, 29, "0B"), "date-time length 0x0B at byte 29, expected 00 (none) or 0C (12 bytes)"),
    ("date-time cut", R[:36], "date-time at byte 30: 6 bytes left, expected 12"),
    (
        "date-time month",
        at(R, 32, "0D"),
        "frame date-time: DLMS date-time 07 EA 0D 08 FF 01 1E 00 00 80 00 FF at byte 30: month 13 (0x0D), "
        "expected 1 to 12, 0xFD, 0xFE or 0xFF",
    ),
    (
        "date-time 30 February",
        at(R, 32, "021E"),
        "frame date-time: DLMS date-time 07 EA 02 1E FF 01 1E 00 00 80 00 FF at byte 30: day 30, "
        "expected 1 to 28 in 2026-02",
    ),
    (
        "date-time deviation",
        at(R, 39, "02D1"),
        "frame date-time: DLMS date-time 07 EA 0C 08 FF 01 1E 00 00 02 D1 FF at byte 30: deviation 721 minutes, "
        "expected -720 to 720 or 0x8000 (not specified)",
    ),
    (
        "other information of 1",
        at(P, 30, "01"),
        "other-information length 1 at byte 30, expected 2 or more (the message code)",
    ),
    (
        "other information past the end",
        at(P, 30, "7F"),
        "other-information length 127 (7F) at byte 30 runs past the end: 47 bytes left",
    ),
    (
        "content length past the end",
        at(P, 33, "7F"),
        "content length 127 (7F) at byte 33 runs past the end: 44 bytes left",
    ),
    (
        "content length 0x82 past the end",
        P[:33] + h("82 0100") + P[34:],
        "content length 256 (82 01 00) at byte 33 runs past the end: 44 bytes left",
    ),
    (
        "indefinite content length",
        at(P, 33, "80"),
        "content length at byte 33: 0x80 (indefinite length) is not allowed, expected a definite length",
    ),
    (
        "content length not in its shortest form",
        P[:33] + h("81 2C") + P[34:],
        "content length at byte 33: 81 2C is not the shortest form of 44 (expected 2C)",
    ),
    (
        "content length 0x82 not in its shortest form",
        P[:33] + h("82 002C") + P[34:],
        "content length at byte 33: 82 00 2C is not the shortest form of 44 (expected 2C)",
    ),
    (
        "content length of 5 length bytes",
        P[:33] + h("85 0000000001") + P[34:],
        "content length at byte 33: 0x85 announces 5 length bytes, at most 4",
    ),
    (
        "content length bytes cut",
        P[:33] + h("82"),
        "content length at byte 33: 0x82 announces 2 length bytes, only 0 bytes left",
    ),
    (
        "signature length",
        at(R, SIG_AT, "41"),
        "signature length 0x41 at byte 48, expected 0x40 (a 64-byte ECDSA signature), 00 (none: a non-critical "
        "message) or the end of the frame (an unsigned pre-command)",
    ),
    ("signature cut", R[:-1], "signature at byte 49: 63 bytes after its length 0x40, expected 64"),
    ("byte after the signature", R + b"\x00", "signature at byte 49: 65 bytes after its length 0x40, expected 64"),
    (
        "byte after an unsigned frame",
        P + b"\x01",
        "signature length 0x01 at byte 78, expected 0x40 (a 64-byte ECDSA signature), 00 (none: a non-critical "
        "message) or the end of the frame (an unsigned pre-command)",
    ),
    (
        "byte after an empty signature",
        P + b"\x00\x00",
        "signature at byte 79: 1 byte after its length 0x00, expected 0",
    ),
    (
        "ciphering with fields of its own",
        at(C, 3, "01"),
        "general ciphering: bytes 1 to 6 are 00 00 01 00 00 00, expected six 00 bytes "
        "(no transaction id, system titles, date-time, other information or key info of its own)",
    ),
    (
        "ciphering cut",
        C[:-1],
        "general ciphering: ciphered content length 177 (81 B1) at byte 7 runs past the end: 176 bytes left",
    ),
    ("byte after the ciphering", C + b"\x00", "general ciphering: 1 byte more after the ciphered content of 177 bytes"),
    (
        "encrypted",
        at(C, 9, "31"),
        "general ciphering: security header 0x31 at byte 9, expected 0x11 "
        "(authenticated, not encrypted: an encrypted frame cannot be read)",
    ),
    (
        "ciphering around no signing frame",
        at(C, 14, "DE"),
        "general ciphering: byte 14 is 0xDE, expected 0xDF (the general signing frame)",
    ),
    (
        "ciphering of nothing",
        h("DD 000000000000 05 1100000000"),
        "general ciphering: ciphered content of 5 bytes, too short for a 5-byte security header, a signing frame and "
        "a 12-byte MAC",
    ),
    (
        "frame inside the ciphering cut",
        h("DD 000000000000 21 1100000000") + P[:16] + bytes(12),
        "general signing frame cut short: 16 bytes, ending in the originator system title "
        "(at least 30 bytes come before the content)",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [case[1:] for case in FRAME_CASES], ids=[c[0] for c in FRAME_CASES])
def test_broken_frames(payload: bytes, message: str) -> None:
    with pytest.raises(GbcsError) as refused:
        gbcs.read_frame(payload)
    assert str(refused.value) == message


def _command(*parts: bytes) -> bytes:
    return der(0x30, b"".join(parts))


CONTENT_CASES: list[tuple[str, Callable[[bytes], Any], bytes, str]] = [
    (
        "31-byte hash",
        gbcs.read_activate_firmware_command,
        _command(der(0x04, v.FIRMWARE_HASH[:31]), COUNTER),
        "CS06 command: the firmware hash is 31 bytes, expected 32",
    ),
    (
        "33-byte hash",
        gbcs.read_activate_firmware_command,
        _command(der(0x04, v.FIRMWARE_HASH + b"\x00"), COUNTER),
        "CS06 command: the firmware hash is 33 bytes, expected 32",
    ),
    (
        "negative counter",
        gbcs.read_activate_firmware_command,
        _command(HASH, h("02 01 80")),
        "CS06 command originator counter: INTEGER 80 at byte 36 is negative, expected 0 to 2^64 - 1",
    ),
    (
        "counter with a superfluous 00",
        gbcs.read_activate_firmware_command,
        _command(HASH, h("02 02 007F")),
        "CS06 command originator counter: INTEGER 00 7F at byte 36 has a superfluous leading 00 (not DER)",
    ),
    (
        "counter of 2^64",
        gbcs.read_activate_firmware_command,
        _command(HASH, h("02 09 010000000000000000")),
        "CS06 command originator counter: INTEGER 18446744073709551616 at byte 36 is over 2^64 - 1",
    ),
    (
        "counter of 10 bytes",
        gbcs.read_activate_firmware_command,
        _command(HASH, h("02 0A 00FFFFFFFFFFFFFFFFFF")),
        "CS06 command originator counter: INTEGER at byte 36 has 10 bytes, at most 9 (values up to 2^64 - 1)",
    ),
    (
        "empty counter",
        gbcs.read_activate_firmware_command,
        _command(HASH, h("02 00")),
        "CS06 command originator counter: INTEGER at byte 36 has no content bytes, expected 1 to 9",
    ),
    (
        "counter of another type",
        gbcs.read_activate_firmware_command,
        _command(HASH, h("04 01 05")),
        "CS06 command originator counter: tag 0x04 (OCTET STRING) at byte 36, expected 0x02 (INTEGER)",
    ),
    (
        "no counter",
        gbcs.read_activate_firmware_command,
        _command(HASH),
        "CS06 command originator counter: missing, expected INTEGER (0x02) at byte 36",
    ),
    (
        "SEQUENCE past the end",
        gbcs.read_activate_firmware_command,
        at(CS06, 1, "40"),
        "CS06 command length 64 (40) at byte 1 runs past the end: 42 bytes left",
    ),
    (
        "SEQUENCE length not in its shortest form",
        gbcs.read_activate_firmware_command,
        h("30 81 2A") + CS06[2:],
        "CS06 command length at byte 1: 81 2A is not the shortest form of 42 (expected 2A)",
    ),
    (
        "byte after the SEQUENCE",
        gbcs.read_activate_firmware_command,
        CS06 + b"\x00",
        "CS06 command: 1 byte more at byte 44, after its last field",
    ),
    (
        "field after the execution time",
        gbcs.read_activate_firmware_command,
        _command(HASH, COUNTER, FUTURE, h("05 00")),
        "CS06 command: 2 bytes more at byte 61, after its last field",
    ),
    (
        "NULL where the execution time goes",
        gbcs.read_activate_firmware_command,
        _command(HASH, COUNTER, h("05 00")),
        "CS06 command execution date-time: tag 0x05 (NULL) at byte 44, expected 0x18 (GeneralizedTime)",
    ),
    *[
        (
            f"GeneralizedTime {text}",
            gbcs.read_activate_firmware_command,
            _command(HASH, COUNTER, der(0x18, text.encode())),
            f"CS06 command execution date-time: GeneralizedTime '{text}' at byte 44 is not YYYYMMDDHHMMSSZ "
            "(UTC, whole seconds)",
        )
        for text in ("20300115090000", "20300115090000.5Z", "20300115090000+0100", "203001150900Z", "2030011509000aZ")
    ],
    *[
        (
            f"GeneralizedTime {text}",
            gbcs.read_activate_firmware_command,
            _command(HASH, COUNTER, der(0x18, text.encode())),
            f"CS06 command execution date-time: GeneralizedTime {text} at byte 44: {problem}",
        )
        for text, problem in (
            ("20301315090000Z", "month 13, expected 1 to 12"),
            ("20300230090000Z", "day 30, expected 1 to 28 in 2030-02"),
            ("21000229090000Z", "day 29, expected 1 to 28 in 2100-02"),
            ("20300115240000Z", "hour 24, expected 0 to 23"),
            ("20300115096000Z", "minute 60, expected 0 to 59"),
            ("20300115090060Z", "second 60, expected 0 to 59"),
        )
    ],
    (
        "NULL with content",
        gbcs.read_activate_firmware_response,
        h("05 01 00"),
        "CS06 response: NULL with 1 byte of content, expected 05 00",
    ),
    (
        "byte after NULL",
        gbcs.read_activate_firmware_response,
        h("05 00 00"),
        "CS06 response: 1 byte more at byte 2, after its last field",
    ),
    (
        "response of another type",
        gbcs.read_activate_firmware_response,
        h("31 00"),
        "CS06 response: tag 0x31 at byte 0, expected 0x05 (NULL: command accepted) or 0x30 (SEQUENCE: the execution "
        "outcome)",
    ),
    (
        "empty response",
        gbcs.read_activate_firmware_response,
        b"",
        "CS06 response: no content at byte 0, expected 0x05 (NULL: command accepted) or 0x30 (SEQUENCE: the execution "
        "outcome)",
    ),
    (
        "outcome without a firmware version",
        gbcs.read_activate_firmware_response,
        h("30 03 020100"),
        "CS06 response execution outcome firmware version: missing, expected OCTET STRING (0x04) at byte 5",
    ),
    (
        "outcome with a field more",
        gbcs.read_activate_firmware_response,
        h("30 09 020100 04020123 0500"),
        "CS06 response execution outcome: 2 bytes more at byte 9, after its last field",
    ),
    (
        "negative response code",
        gbcs.read_activate_firmware_response,
        h("30 07 0201FF 04020123"),
        "CS06 response execution outcome response code: INTEGER FF at byte 2 is negative, expected 0 to 2^64 - 1",
    ),
    (
        "alert code over 16 bits",
        gbcs.read_future_dated_activation_alert,
        h("30 29 02 03 018F66") + ALERT[7:],
        "0x00CA alert code 0x18F66 is more than 16 bits",
    ),
    (
        "alert without an outcome",
        gbcs.read_future_dated_activation_alert,
        h("30 1E") + ALERT[2:32],
        "0x00CA execution outcome: missing, expected SEQUENCE (0x30) at byte 32",
    ),
    (
        "alert without an execution time",
        gbcs.read_future_dated_activation_alert,
        h("30 18") + ALERT[2:7] + ALERT[24:],
        "0x00CA execution date-time: tag 0x02 (INTEGER) at byte 7, expected 0x18 (GeneralizedTime)",
    ),
    (
        "not a data notification",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 0, "0E"),
        "ECS80 alert (0x0067): tag 0x0E at byte 0, expected 0x0F (DLMS data-notification)",
    ),
    (
        "data notification cut",
        gbcs.read_supply_outage_restored_alert,
        ECS80[:4],
        "ECS80 alert (0x0067): 4 bytes, too short for a DLMS data notification (0F, invoke id, date-time)",
    ),
    (
        "notification date-time without its type",
        gbcs.read_supply_outage_restored_alert,
        ECS80[:5] + h("0C") + bytes(12) + ECS80[6:],
        "ECS80 notification date-time: 0C 00 at byte 5, expected 00 (none) or 09 0C (a 12-byte octet string)",
    ),
    (
        "structure of 5",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 7, "05"),
        "ECS80 alert (0x0067): 02 05 at byte 6, expected 02 04 (a structure of 4: alert code, alert time, outage "
        "start, outage end)",
    ),
    (
        "alert code of another type",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 8, "11"),
        "ECS80 alert code: 11 8F 36 at byte 8, expected 12 and 2 bytes (long-unsigned)",
    ),
    (
        "no alert code",
        gbcs.read_supply_outage_restored_alert,
        ECS80[:8],
        "ECS80 alert code: nothing at byte 8, expected 12 and 2 bytes (long-unsigned)",
    ),
    (
        "alert time of another type",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 11, "0A"),
        "ECS80 alert time: 0A 0C at byte 11, expected 09 0C (a 12-byte octet string)",
    ),
    (
        "alert time of 11 bytes",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 12, "0B"),
        "ECS80 alert time: 09 0B at byte 11, expected 09 0C (a 12-byte octet string)",
    ),
    (
        "outage end cut",
        gbcs.read_supply_outage_restored_alert,
        ECS80[:45],
        "ECS80 outage end at byte 41: 4 bytes left, expected 12",
    ),
    (
        "no outage end",
        gbcs.read_supply_outage_restored_alert,
        ECS80[:39],
        "ECS80 outage end: nothing at byte 39, expected 09 0C (a 12-byte octet string)",
    ),
    (
        "byte after the notification",
        gbcs.read_supply_outage_restored_alert,
        ECS80 + b"\x00",
        "ECS80 alert (0x0067): 1 byte more at byte 53, after its last field",
    ),
    (
        "outage start day of week",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 31, "08"),
        "ECS80 outage start: DLMS date-time 07 EA 0C 08 08 01 05 00 00 80 00 FF at byte 27: day of week 8 (0x08), "
        "expected 1 to 7 or 0xFF",
    ),
    (
        "outage end hundredths",
        gbcs.read_supply_outage_restored_alert,
        at(ECS80, 49, "64"),
        "ECS80 outage end: DLMS date-time 07 EA 0C 08 FF 01 1D 00 64 80 00 FF at byte 41: hundredths 100, "
        "expected 0 to 99 or 0xFF",
    ),
]


@pytest.mark.parametrize(
    ("read", "content", "message"), [case[1:] for case in CONTENT_CASES], ids=[c[0] for c in CONTENT_CASES]
)
def test_broken_contents(read: Callable[[bytes], Any], content: bytes, message: str) -> None:
    with pytest.raises(GbcsError) as refused:
        read(content)
    assert str(refused.value) == message


@pytest.mark.parametrize("vector", v.VECTORS, ids=lambda vector: vector.name)
def test_every_cut_is_refused(vector: v.Vector) -> None:
    whole = gbcs.read_frame(vector.frame)
    # Without its signature, a signed frame is the unsigned pre-command it was: the one cut that reads.
    unsigned_size = len(vector.frame) - 65 if whole.signature and vector.frame[0] == gbcs.GENERAL_SIGNING else -1
    for size in range(len(vector.frame)):
        if size == unsigned_size:
            assert gbcs.read_frame(vector.frame[:size]) == replace(whole, signature=None)
        else:
            with pytest.raises(GbcsError):
                gbcs.read_frame(vector.frame[:size])
    read_content = v.CONTENT_READERS.get((whole.message_code, whole.cra_flag))
    if read_content is not None:
        for size in range(len(whole.content)):
            with pytest.raises(GbcsError):
                read_content(whole.content[:size])
