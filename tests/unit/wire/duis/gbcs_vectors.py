"""Hand-built GBCS frames, field by field from the layouts in duis.md, with the values they hold.

Written out by hand (not by our writer) so that the tests hold the codec to the layout, not to itself.
The other DUIS tests may build their GBCSPayloads from these. Device IDs: a Supplier (originator of
commands), an ESME (the device) and a DNO (recipient of its ECS80 alert).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.wire.duis import gbcs

SUPPLIER = "90-B3-D5-1F-30-01-00-00"
ESME = "00-DB-12-34-56-78-90-A0"
DNO = "90-B3-D5-1F-30-02-00-00"
FIRMWARE_HASH = bytes.fromhex("00112233445566778899AABBCCDDEEFF0123456789ABCDEFFEDCBA9876543210")
FIRMWARE_VERSION = bytes.fromhex("0123ABCD")
SIGNATURE = bytes(range(0x40, 0x80))
COUNTER = 1660751141087  # 0x0182AC7B58DF: a real-sized counter
EXECUTION_MS = 1_894_698_000_000  # 2030-01-15T09:00:00Z
CANCELLATION_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
RESPONDED_MS = 1_796_693_400_000  # 2026-12-08T01:30:00Z
OUTAGE_START_MS = 1_796_691_900_000  # 2026-12-08T01:05:00Z
OUTAGE_END_MS = 1_796_693_340_000  # 2026-12-08T01:29:00Z
NOTIFIED_MS = 1_796_692_815_250  # 2026-12-08T01:20:15.25Z


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


_SIG = "40" + SIGNATURE.hex()
_TO_ESME = "08 90B3D51F30010000  08 00DB1234567890A0"  # originator: the Supplier, recipient: the ESME
_FROM_ESME = "08 00DB1234567890A0  08 90B3D51F30010000"  # the ESME's response or alert to the Supplier
_HASH = "04 20" + FIRMWARE_HASH.hex()
_RESPONDED = "07EA 0C 08 FF 01 1E 00 00 8000 FF"  # 2026-12-08, day of week, 01:30:00.00 UTC, status: not given

# CS06 pre-commands (the User's, unsigned) and the signed command in general ciphering.
PRECOMMAND_IMMEDIATE = _hex(
    "DF 09 01 00000182AC7B58DF"  # general signing, transaction id: command, counter
    + _TO_ESME
    + "00"  # no date-time
    + "02 0012"  # other information: message code CS06
    + "2C"  # content length 44
    + "30 2A"
    + _HASH
    + "02 06 0182AC7B58DF"  # SEQUENCE { hash, counter }
)
PRECOMMAND_FUTURE = _hex(
    "DF 09 01 00000182AC7B58DF" + _TO_ESME + "00 02 0012"
    "3D"  # content length 61
    "30 3B" + _HASH + "02 06 0182AC7B58DF"
    "18 0F 32303330303131353039303030305A"  # GeneralizedTime 20300115090000Z
)
PRECOMMAND_CANCELLATION = _hex(
    "DF 09 01 00000182AC7B58DF" + _TO_ESME + "00 02 0012"
    "3D 30 3B" + _HASH + "02 06 0182AC7B58DF"
    "18 0F 39393939313233313233353935395A"  # 99991231235959Z
)
COMMAND_CIPHERED = _hex(
    "DD 000000000000"  # general ciphering, six empty fields
    "81 B1"  # ciphered content length 177
    "11 00000000"  # security header: authenticated only, invocation counter
    + PRECOMMAND_FUTURE.hex()
    + _SIG
    + "00112233445566778899AABB"  # MAC
)

# CS06 responses from the ESME: "command accepted" and execution outcomes.
RESPONSE_ACCEPTED = _hex(
    "DF 09 02 00000182AC7B58DF"  # response, the request's counter
    + _FROM_ESME
    + "0C"
    + _RESPONDED
    + "02 0012"
    "02 0500"  # content: NULL
     + _SIG
)


def response_outcome(code_hex: str) -> bytes:
    """A CS06 response carrying the execution outcome whose response code INTEGER is code_hex (e.g. '02 01 03')."""
    code = _hex(code_hex)
    body = code + _hex("04 04") + FIRMWARE_VERSION
    content = bytes((0x30, len(body))) + body
    return (
        _hex("DF 09 02 00000182AC7B58DF" + _FROM_ESME + "0C" + _RESPONDED + "02 0012")
        + bytes((len(content),))
        + content
        + _hex(_SIG)
    )


# A firmware version of 150 bytes needs 0x81 lengths, one of 300 bytes 0x82 lengths (DER and frame alike).
RESPONSE_81 = _hex(
    "DF 09 02 00000182AC7B58DF" + _FROM_ESME + "0C" + _RESPONDED + "02 0012"
    "81 9F"  # content length 159
    "30 81 9C 02 01 00 04 81 96" + "AB" * 150 + _SIG
)
RESPONSE_82 = _hex(
    "DF 09 02 00000182AC7B58DF" + _FROM_ESME + "0C" + _RESPONDED + "02 0012"
    "82 0137"  # content length 311
    "30 82 0133 02 01 00 04 82 012C" + "CD" * 300 + _SIG
)

# 0x00CA future-dated activation alerts: the ESME's own counter in the frame, the request's in the content.
ALERT_8F66 = _hex(
    "DF 09 03 0000000000000BB8"  # alert, the device's counter 3000
    + _FROM_ESME
    + "00 02 00CA"
    "2B 30 29"  # content length 43, SEQUENCE of 41
    "02 03 008F66"  # alert code (a leading 00: 0x8F would be negative)
    "18 0F 32303330303131353039303030305A"  # execution date-time 20300115090000Z
    "02 06 0182AC7B58DF"  # the request's counter
    "30 09 02 01 00 04 04 0123ABCD" + _SIG  # outcome: success, firmware version
)
ALERT_8F67 = _hex(
    "DF 09 03 0000000000000BB9" + _FROM_ESME + "00 02 00CA"
    "2B 30 29 02 03 008F67 18 0F 32303330303131353039303030305A 02 06 0182AC7B58DF"
    "30 09 02 01 02 04 04 0123ABCD" + _SIG  # outcome: hash mismatch
)

# 0x0067 ECS80 Supply Outage Restored (8F36) from the ESME to the DNO: a DLMS data notification.
_ESME_TO_DNO = "08 00DB1234567890A0  08 90B3D51F30020000"
_ECS80_BODY = (
    "02 04"  # structure of 4
    "12 8F36"  # long-unsigned: the alert code
    "09 0C"
    + _RESPONDED  # the alert time
    + "09 0C 07EA 0C 08 FF 01 05 00 00 8000 FF"  # outage start 01:05:00
    "09 0C 07EA 0C 08 FF 01 1D 00 00 8000 FF"  # outage end 01:29:00
)
ECS80_8F36 = _hex(
    "DF 09 03 00000000000007D3" + _ESME_TO_DNO + "00 02 0067"
    "35"  # content length 53
    "0F 200007D3"  # data-notification, long-invoke-id-and-priority
    "00"  # no notification date-time
     + _ECS80_BODY + _SIG
)
ECS80_NOTIFICATION_TIME = _hex(
    "DF 09 03 00000000000007D4" + _ESME_TO_DNO + "00 02 0067"
    "42 0F 200007D4"  # content length 66
    "09 0C 07EA 0C 08 FF 01 14 0F 19 8000 FF"  # notified 01:20:15.25
     + _ECS80_BODY + _SIG
)
ECS80_UNSPECIFIED = _hex(  # the device knew none of its times
    "DF 09 03 00000000000007D5" + _ESME_TO_DNO + "00 02 0067"
    "35 0F 200007D5 00 02 04 12 8F35" + "09 0C FFFF FF FF FF FF FF FF FF 8000 FF" * 3 + _SIG
)

# A non-critical alert: authenticated by the ciphering wrapper's MAC alone, so its signature is empty (00).
NONCRITICAL_ALERT = _hex(
    "DD 000000000000 4D 11 00000000"  # ciphered content length 77
    "DF 09 03 0000000000000BBA" + _FROM_ESME + "00 02 1001"
    "19 0F 20000BBA 00 02 02 12 8F3E 09 0C"
    + _RESPONDED  # content: a DLMS notification, not read here
    + "00"  # signature length 0: none
    "0123456789ABCDEF01234567"  # MAC
)
# Other information beyond the message code: a supplementary remote party ID and its counter.
PRECOMMAND_SUPPLEMENTARY = _hex(
    "DF 09 01 00000182AC7B58DF"
    + _TO_ESME
    + "00"
    + "12 0012 90B3D51F30030000 00000000000003E9"  # other information of 18 bytes
    + PRECOMMAND_IMMEDIATE[33:].hex()
)


@dataclass(frozen=True)
class Vector:
    """A frame, and the spans (start, end) read loosely: bytes there may
    change without an error and without the frame writing back identically (DLMS date-times, the
    ciphering wrapper's invocation counter and MAC)."""

    name: str
    frame: bytes
    loose: tuple[tuple[int, int], ...] = ()


_FRAME_DATE_TIME = ((30, 42),)  # after the 0C at byte 29


def _ecs80_times(content_at: int, notification: bool) -> tuple[tuple[int, int], ...]:
    first = content_at + 5 + (14 if notification else 1) + 2 + 3
    spans = tuple((first + 2 + 14 * i, first + 14 * (i + 1)) for i in range(3))
    return ((content_at + 7, content_at + 19), *spans) if notification else spans


VECTORS = (
    Vector("precommand immediate", PRECOMMAND_IMMEDIATE),
    Vector("precommand future", PRECOMMAND_FUTURE),
    Vector("precommand cancellation", PRECOMMAND_CANCELLATION),
    Vector("command ciphered", COMMAND_CIPHERED, ((10, 14), (len(COMMAND_CIPHERED) - 12, len(COMMAND_CIPHERED)))),
    Vector("response accepted", RESPONSE_ACCEPTED, _FRAME_DATE_TIME),
    Vector("response outcome", response_outcome("02 01 03"), _FRAME_DATE_TIME),
    Vector("response 0x81", RESPONSE_81, _FRAME_DATE_TIME),
    Vector("response 0x82", RESPONSE_82, _FRAME_DATE_TIME),
    Vector("alert 8F66", ALERT_8F66),
    Vector("alert 8F67", ALERT_8F67),
    Vector("ECS80 8F36", ECS80_8F36, _ecs80_times(34, notification=False)),
    Vector("ECS80 notification time", ECS80_NOTIFICATION_TIME, _ecs80_times(34, notification=True)),
    Vector("ECS80 unspecified", ECS80_UNSPECIFIED, _ecs80_times(34, notification=False)),
    Vector("non-critical alert", NONCRITICAL_ALERT, ((9, 13), (len(NONCRITICAL_ALERT) - 12, len(NONCRITICAL_ALERT)))),
    Vector("precommand supplementary", PRECOMMAND_SUPPLEMENTARY),
)

# The content reader and writer of each (message code, CRA flag).
CONTENT_READERS: dict[tuple[int, int], Callable[[bytes], Any]] = {
    (gbcs.ACTIVATE_FIRMWARE, gbcs.CRA_COMMAND): gbcs.read_activate_firmware_command,
    (gbcs.ACTIVATE_FIRMWARE, gbcs.CRA_RESPONSE): gbcs.read_activate_firmware_response,
    (gbcs.FUTURE_DATED_ACTIVATION_ALERT, gbcs.CRA_ALERT): gbcs.read_future_dated_activation_alert,
    (gbcs.SUPPLY_OUTAGE_RESTORED_ALERT, gbcs.CRA_ALERT): gbcs.read_supply_outage_restored_alert,
}
WRITERS: dict[tuple[int, int], Callable[[Any], bytes]] = {
    (gbcs.ACTIVATE_FIRMWARE, gbcs.CRA_COMMAND): gbcs.write_activate_firmware_command,
    (gbcs.ACTIVATE_FIRMWARE, gbcs.CRA_RESPONSE): gbcs.write_activate_firmware_response,
    (gbcs.FUTURE_DATED_ACTIVATION_ALERT, gbcs.CRA_ALERT): gbcs.write_future_dated_activation_alert,
    (gbcs.SUPPLY_OUTAGE_RESTORED_ALERT, gbcs.CRA_ALERT): gbcs.write_supply_outage_restored_alert,
}
