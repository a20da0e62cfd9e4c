"""GBCS frames (inside a DUIS GBCSPayload) and the three contents the filter reads; writers are the exact inverse.

No library reads GBCS framing, so this is our own, from the layouts in the DUIS notes (docs: duis.md):
the general signing frame, optionally wrapped in general ciphering, whose content is ASN.1 DER (CS06
Activate Firmware command and response, the 0x00CA future-dated activation alert) or a DLMS data
notification (the ECS80 0x0067 Supply Outage Restored alert). Every length is followed, never a fixed
offset; anything left over, cut short or encoded in more than one way is a GbcsError naming the field,
its byte offset, what was found and what was expected (offsets count from the start of what the reader
was given: the payload, wrapper included, for read_frame; the content for the content readers).
Signatures and MACs are kept or skipped, never verified: the DSP has checked them.

Read then write gives the same bytes for frames in canonical form, which GBCS test frames are: shortest
lengths, DLMS date-times with day of week, deviation and clock status not specified. A ciphering wrapper
is written with a zero invocation counter and a zero MAC (reading does not keep them).
"""

import re
import struct
from dataclasses import dataclass

from pipeline.wire.duis import der
from pipeline.wire.duis.der import GbcsError, byte_count, hex_bytes, read_length
from pipeline.wire.duis.dlms import DATE_TIME_SIZE, date_time_bytes, read_date_time

__all__ = [
    "ACTIVATE_FIRMWARE",
    "CANCELLATION_TIME_MS",
    "CRA_ALERT",
    "CRA_COMMAND",
    "CRA_RESPONSE",
    "FUTURE_DATED_ACTIVATION_ALERT",
    "SUPPLY_OUTAGE_RESTORED_ALERT",
    "ActivateFirmwareCommand",
    "ExecutionOutcome",
    "FutureDatedActivationAlert",
    "GbcsError",
    "GbcsFrame",
    "SupplyOutageRestoredAlert",
    "read_activate_firmware_command",
    "read_activate_firmware_response",
    "read_frame",
    "read_future_dated_activation_alert",
    "read_supply_outage_restored_alert",
    "write_activate_firmware_command",
    "write_activate_firmware_response",
    "write_frame",
    "write_future_dated_activation_alert",
    "write_supply_outage_restored_alert",
]

ACTIVATE_FIRMWARE = 0x0012  # CS06 command and response
FUTURE_DATED_ACTIVATION_ALERT = 0x00CA  # 8F66 / 8F67
SUPPLY_OUTAGE_RESTORED_ALERT = 0x0067  # ECS80, 8F35 / 8F36
CRA_COMMAND, CRA_RESPONSE, CRA_ALERT = 1, 2, 3
CANCELLATION_TIME_MS = der.epoch_ms(9999, 12, 31, 23, 59, 59)  # GeneralizedTime 99991231235959Z
FIRMWARE_HASH_SIZE = 32
SIGNATURE_SIZE = 64

GENERAL_SIGNING, GENERAL_CIPHERING = 0xDF, 0xDD
_TRANSACTION_ID_SIZE = 9  # CRA flag and 8-byte counter
_SYSTEM_TITLE_SIZE = 8
_CIPHERING_FIELDS = bytes(6)  # empty transaction id, system titles, date-time, other information, key info
_SECURITY_HEADER_SIZE, _AUTHENTICATED_ONLY, _MAC_SIZE = 5, 0x11, 12
# DF, 09, CRA, counter, 08, originator, 08, recipient, then the date-time's length byte
_HEADER = struct.Struct(">BBBQB8sB8sB")
_HEADER_FIELDS = (  # (offset, name) of each field of _HEADER, for a truncated frame's message
    (0, "general signing tag"),
    (1, "transaction-id length"),
    (2, "CRA flag"),
    (3, "originator counter"),
    (11, "originator system title length"),
    (12, "originator system title"),
    (20, "recipient system title length"),
    (21, "recipient system title"),
    (29, "date-time length"),
)
_EUI64 = re.compile(r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}")

_DATA_NOTIFICATION, _OCTET_STRING, _STRUCTURE, _LONG_UNSIGNED = 0x0F, 0x09, 0x02, 0x12
_ECS80_ELEMENTS = 4  # alert code, alert time, outage start, outage end
_DLMS_DATE_TIME = bytes((_OCTET_STRING, DATE_TIME_SIZE))
_ECS80_STRUCTURE = bytes((_STRUCTURE, _ECS80_ELEMENTS))


@dataclass(frozen=True, slots=True)
class GbcsFrame:
    cra_flag: int
    originator_counter: int  # 8-byte big-endian counter of the transaction id
    originator: str  # EUI-64, canonical "00-DB-12-34-56-78-90-A0"
    recipient: str
    date_time_ms: int | None  # the frame's DLMS date-time, None when absent or not specified
    message_code: int
    content: bytes  # the ASN.1 DER or DLMS content, as framed
    # The 64-byte ECDSA signature of a critical message; b"" for the empty one (length 00) a non-critical
    # message carries inside general ciphering; None when absent (an unsigned pre-command).
    signature: bytes | None
    # What follows the message code in the other information (a supplementary remote party ID and counter,
    # say): kept so that the frame writes back byte for byte; the filter reads none of it.
    supplementary: bytes = b""


@dataclass(frozen=True, slots=True)
class ActivateFirmwareCommand:
    firmware_hash: bytes
    counter: int
    execution_ms: int | None  # None: immediate; CANCELLATION_TIME_MS: a cancellation


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    response_code: int  # 0 success, 1 no image held, 2 hash mismatch, 3 activation failure, else unknown
    firmware_version: bytes


@dataclass(frozen=True, slots=True)
class FutureDatedActivationAlert:
    alert_code: int  # 0x8F66 done, 0x8F67 not done (not checked here: the XML says which it is)
    execution_ms: int
    counter: int  # the 11.3 request's counter
    outcome: ExecutionOutcome


@dataclass(frozen=True, slots=True)
class SupplyOutageRestoredAlert:
    alert_code: int  # 0x8F35 or 0x8F36 (not checked here)
    alert_ms: int | None
    outage_start_ms: int | None
    outage_end_ms: int | None
    # Kept so that a notification writes back byte for byte; the filter reads neither.
    long_invoke_id: int = 0
    notification_ms: int | None = None  # the data notification's own date-time, usually absent


# The frame.


def read_frame(payload: bytes) -> GbcsFrame:
    """The general signing frame, unwrapped from general ciphering (DD ...) when wrapped; every length
    followed (multi-byte lengths 0x81/0x82...), trailing bytes refused. GbcsError otherwise."""
    if not payload:
        raise GbcsError("the GBCS payload is empty")
    first = payload[0]
    if first == GENERAL_SIGNING:
        return _read_signing(payload, 0, len(payload))
    if first == GENERAL_CIPHERING:
        return _read_signing(payload, *_unwrap(payload))
    raise GbcsError(
        f"byte 0 is 0x{first:02X}, expected 0xDF (general signing) or 0xDD (general ciphering around a signing frame)"
    )


def _unwrap(payload: bytes) -> tuple[int, int]:
    """(start, end) of the signing frame inside a general ciphering wrapper."""
    if payload[1:7] != _CIPHERING_FIELDS:
        raise GbcsError(
            f"general ciphering: bytes 1 to 6 are {hex_bytes(payload[1:7]) or 'missing'}, expected six 00 bytes "
            "(no transaction id, system titles, date-time, other information or key info of its own)"
        )
    size, start = read_length(payload, 7, len(payload), "general ciphering: ciphered content length")
    if start + size != len(payload):
        raise GbcsError(
            f"general ciphering: {byte_count(len(payload) - start - size)} more after the ciphered content of "
            f"{byte_count(size)}"
        )
    if size < _SECURITY_HEADER_SIZE + _MAC_SIZE + 1:
        raise GbcsError(
            f"general ciphering: ciphered content of {byte_count(size)}, too short for a 5-byte security header, "
            "a signing frame and a 12-byte MAC"
        )
    if payload[start] != _AUTHENTICATED_ONLY:
        raise GbcsError(
            f"general ciphering: security header 0x{payload[start]:02X} at byte {start}, expected 0x11 "
            "(authenticated, not encrypted: an encrypted frame cannot be read)"
        )
    inner = start + _SECURITY_HEADER_SIZE
    if payload[inner] != GENERAL_SIGNING:
        raise GbcsError(
            f"general ciphering: byte {inner} is 0x{payload[inner]:02X}, expected 0xDF (the general signing frame)"
        )
    return inner, len(payload) - _MAC_SIZE


def _read_signing(data: bytes, pos: int, end: int) -> GbcsFrame:
    if end - pos < _HEADER.size:
        field = next(name for offset, name in reversed(_HEADER_FIELDS) if offset <= end - pos)
        raise GbcsError(
            f"general signing frame cut short: {byte_count(end - pos)}, ending in the {field} "
            f"(at least {_HEADER.size} bytes come before the content)"
        )
    _tag, tid_size, cra, counter, orig_size, orig, recip_size, recip, dt_size = _HEADER.unpack_from(data, pos)
    if tid_size != _TRANSACTION_ID_SIZE:
        raise GbcsError(
            f"transaction-id length 0x{tid_size:02X} at byte {pos + 1}, expected 0x09 (CRA flag and 8-byte counter)"
        )
    if not CRA_COMMAND <= cra <= CRA_ALERT:
        raise GbcsError(f"CRA flag 0x{cra:02X} at byte {pos + 2}, expected 01 command, 02 response or 03 alert")
    if orig_size != _SYSTEM_TITLE_SIZE:
        raise GbcsError(f"originator system title length 0x{orig_size:02X} at byte {pos + 11}, expected 0x08")
    if recip_size != _SYSTEM_TITLE_SIZE:
        raise GbcsError(f"recipient system title length 0x{recip_size:02X} at byte {pos + 20}, expected 0x08")
    pos += _HEADER.size
    if dt_size == 0:
        date_time_ms = None
    elif dt_size == DATE_TIME_SIZE:
        if end - pos < DATE_TIME_SIZE:
            raise GbcsError(f"date-time at byte {pos}: {byte_count(end - pos)} left, expected 12")
        date_time_ms = read_date_time(data, pos, "frame date-time")
        pos += DATE_TIME_SIZE
    else:
        raise GbcsError(f"date-time length 0x{dt_size:02X} at byte {pos - 1}, expected 00 (none) or 0C (12 bytes)")
    info_size, info = read_length(data, pos, end, "other-information length")
    if info_size < 2:
        raise GbcsError(f"other-information length {info_size} at byte {pos}, expected 2 or more (the message code)")
    message_code = int.from_bytes(data[info : info + 2], "big")
    content_size, content = read_length(data, info + info_size, end, "content length")
    pos = content + content_size
    if pos == end:
        signature = None
    elif data[pos] not in (0, SIGNATURE_SIZE):
        raise GbcsError(
            f"signature length 0x{data[pos]:02X} at byte {pos}, expected 0x40 (a 64-byte ECDSA signature), "
            "00 (none: a non-critical message) or the end of the frame (an unsigned pre-command)"
        )
    elif end - pos - 1 != data[pos]:
        raise GbcsError(
            f"signature at byte {pos + 1}: {byte_count(end - pos - 1)} after its length 0x{data[pos]:02X}, "
            f"expected {data[pos]}"
        )
    else:
        signature = data[pos + 1 : end]
    return GbcsFrame(
        cra,
        counter,
        orig.hex("-").upper(),
        recip.hex("-").upper(),
        date_time_ms,
        message_code,
        data[content : content + content_size],
        signature,
        data[info + 2 : info + info_size],
    )


def write_frame(frame: GbcsFrame, *, ciphered: bool = False) -> bytes:
    """The frame's bytes; ciphered: wrapped in general ciphering with a zero invocation counter and MAC."""
    if not CRA_COMMAND <= frame.cra_flag <= CRA_ALERT:
        raise GbcsError(f"CRA flag {frame.cra_flag}, expected 1 command, 2 response or 3 alert")
    if not 0 <= frame.originator_counter <= der.MAX_UNSIGNED:
        raise GbcsError(f"originator counter {frame.originator_counter} is outside 0 to 2^64 - 1")
    if not 0 <= frame.message_code <= 0xFFFF:
        raise GbcsError(f"message code {frame.message_code} is outside 0 to 0xFFFF")
    if frame.signature is not None and len(frame.signature) not in (0, SIGNATURE_SIZE):
        raise GbcsError(f"signature of {len(frame.signature)} bytes, expected 64, 0 or None")
    date_time = b"\x00" if frame.date_time_ms is None else b"\x0c" + date_time_bytes(frame.date_time_ms, "date-time")
    signed = b"".join(
        (
            _HEADER.pack(
                GENERAL_SIGNING,
                _TRANSACTION_ID_SIZE,
                frame.cra_flag,
                frame.originator_counter,
                _SYSTEM_TITLE_SIZE,
                _system_title(frame.originator, "originator"),
                _SYSTEM_TITLE_SIZE,
                _system_title(frame.recipient, "recipient"),
                len(date_time) - 1,
            ),
            date_time[1:],
            der.length_bytes(2 + len(frame.supplementary)),
            frame.message_code.to_bytes(2, "big"),
            frame.supplementary,
            der.length_bytes(len(frame.content)),
            frame.content,
            b"" if frame.signature is None else bytes((len(frame.signature),)) + frame.signature,
        )
    )
    if not ciphered:
        return signed
    ciphered_content = bytes((_AUTHENTICATED_ONLY, 0, 0, 0, 0)) + signed + bytes(_MAC_SIZE)
    return b"\xdd" + _CIPHERING_FIELDS + der.length_bytes(len(ciphered_content)) + ciphered_content


def _system_title(eui: str, what: str) -> bytes:
    if not _EUI64.fullmatch(eui):
        raise GbcsError(f"{what} {eui!r} is not an EUI-64 (8 hyphen-separated hex octets)")
    return bytes.fromhex(eui.replace("-", ""))


# CS06 Activate Firmware (0x0012).


def read_activate_firmware_command(content: bytes) -> ActivateFirmwareCommand:
    """SEQUENCE { image hash OCTET STRING (32), originator counter INTEGER, execution GeneralizedTime OPTIONAL }."""
    what = "CS06 command"
    start, stop = der.read_tlv(content, 0, len(content), der.SEQUENCE, what)
    der.expect_end(stop, len(content), what)
    firmware_hash, pos = der.read_octet_string(content, start, stop, f"{what} firmware hash")
    if len(firmware_hash) != FIRMWARE_HASH_SIZE:
        raise GbcsError(f"{what}: the firmware hash is {len(firmware_hash)} bytes, expected {FIRMWARE_HASH_SIZE}")
    counter, pos = der.read_integer(content, pos, stop, f"{what} originator counter")
    execution_ms = None
    if pos < stop:
        execution_ms, pos = der.read_generalized_time(content, pos, stop, f"{what} execution date-time")
        der.expect_end(pos, stop, what)
    return ActivateFirmwareCommand(firmware_hash, counter, execution_ms)


def write_activate_firmware_command(command: ActivateFirmwareCommand) -> bytes:
    """Any hash length is written, so that tests can build the frames the reader refuses."""
    parts = [
        der.tlv(der.OCTET_STRING, command.firmware_hash),
        der.integer(command.counter, "CS06 command originator counter"),
    ]
    if command.execution_ms is not None:
        parts.append(der.generalized_time(command.execution_ms, "CS06 command execution time"))
    return der.tlv(der.SEQUENCE, b"".join(parts))


def read_activate_firmware_response(content: bytes) -> ExecutionOutcome | None:
    """None for NULL ("command accepted": a future-dated request or a cancellation), else the outcome."""
    what = "CS06 response"
    if content[:1] == bytes((der.NULL,)):
        _read_null(content, what)
        return None
    if content[:1] != bytes((der.SEQUENCE,)):
        raise GbcsError(
            f"{what}: {f'tag 0x{content[0]:02X}' if content else 'no content'} at byte 0, expected 0x05 "
            "(NULL: command accepted) or 0x30 (SEQUENCE: the execution outcome)"
        )
    outcome, pos = _read_outcome(content, 0, len(content), what)
    der.expect_end(pos, len(content), what)
    return outcome


def _read_null(content: bytes, what: str) -> None:
    start, stop = der.read_tlv(content, 0, len(content), der.NULL, what)
    if stop != start:
        raise GbcsError(f"{what}: NULL with {byte_count(stop - start)} of content, expected 05 00")
    der.expect_end(stop, len(content), what)


def _read_outcome(data: bytes, pos: int, end: int, what: str) -> tuple[ExecutionOutcome, int]:
    """The execution outcome SEQUENCE { response code INTEGER, firmware version OCTET STRING }."""
    what = f"{what} execution outcome"
    start, stop = der.read_tlv(data, pos, end, der.SEQUENCE, what)
    code, pos = der.read_integer(data, start, stop, f"{what} response code")
    version, pos = der.read_octet_string(data, pos, stop, f"{what} firmware version")
    der.expect_end(pos, stop, what)
    return ExecutionOutcome(code, version), stop


def write_activate_firmware_response(outcome: ExecutionOutcome | None) -> bytes:
    return b"\x05\x00" if outcome is None else _outcome_bytes(outcome)


def _outcome_bytes(outcome: ExecutionOutcome) -> bytes:
    return der.tlv(
        der.SEQUENCE,
        der.integer(outcome.response_code, "response code") + der.tlv(der.OCTET_STRING, outcome.firmware_version),
    )


# 0x00CA: the future-dated activation alert (8F66 done, 8F67 not done).


def read_future_dated_activation_alert(content: bytes) -> FutureDatedActivationAlert:
    """SEQUENCE { alert code INTEGER, execution GeneralizedTime, originator counter INTEGER, outcome }."""
    what = "0x00CA alert"
    start, stop = der.read_tlv(content, 0, len(content), der.SEQUENCE, what)
    der.expect_end(stop, len(content), what)
    alert_code, pos = der.read_integer(content, start, stop, "0x00CA alert code")
    if alert_code > 0xFFFF:
        raise GbcsError(f"0x00CA alert code 0x{alert_code:X} is more than 16 bits")
    execution_ms, pos = der.read_generalized_time(content, pos, stop, "0x00CA execution date-time")
    counter, pos = der.read_integer(content, pos, stop, "0x00CA originator counter")
    outcome, pos = _read_outcome(content, pos, stop, "0x00CA")
    der.expect_end(pos, stop, what)
    return FutureDatedActivationAlert(alert_code, execution_ms, counter, outcome)


def write_future_dated_activation_alert(alert: FutureDatedActivationAlert) -> bytes:
    if not 0 <= alert.alert_code <= 0xFFFF:
        raise GbcsError(f"alert code {alert.alert_code} is outside 0 to 0xFFFF")
    return der.tlv(
        der.SEQUENCE,
        b"".join(
            (
                der.integer(alert.alert_code, "alert code"),
                der.generalized_time(alert.execution_ms, "execution time"),
                der.integer(alert.counter, "originator counter"),
                _outcome_bytes(alert.outcome),
            )
        ),
    )


# 0x0067: the ECS80 Supply Outage Restored alert, a DLMS data notification.


def read_supply_outage_restored_alert(content: bytes) -> SupplyOutageRestoredAlert:
    """0F, long-invoke-id (4), date-time (00, or 09 0C and 12 bytes), then structure 02 04 of the alert code
    (12 and 2 bytes) and three date-times (09 0C and 12 bytes each: the alert, the outage start and its end)."""
    what = "ECS80 alert (0x0067)"
    end = len(content)
    if end < 6:
        raise GbcsError(f"{what}: {byte_count(end)}, too short for a DLMS data notification (0F, invoke id, date-time)")
    if content[0] != _DATA_NOTIFICATION:
        raise GbcsError(f"{what}: tag 0x{content[0]:02X} at byte 0, expected 0x0F (DLMS data-notification)")
    invoke_id = int.from_bytes(content[1:5], "big")
    notification_ms, pos = _read_dlms_date_time(content, 5, "ECS80 notification date-time", optional=True)
    if not content.startswith(_ECS80_STRUCTURE, pos):
        raise GbcsError(
            f"{what}: {hex_bytes(content[pos : pos + 2]) or 'nothing'} at byte {pos}, expected 02 04 "
            "(a structure of 4: alert code, alert time, outage start, outage end)"
        )
    pos += 2
    if end - pos < 3 or content[pos] != _LONG_UNSIGNED:
        raise GbcsError(
            f"ECS80 alert code: {hex_bytes(content[pos : pos + 3]) or 'nothing'} at byte {pos}, "
            "expected 12 and 2 bytes (long-unsigned)"
        )
    alert_code = int.from_bytes(content[pos + 1 : pos + 3], "big")
    alert_ms, pos = _read_dlms_date_time(content, pos + 3, "ECS80 alert time")
    start_ms, pos = _read_dlms_date_time(content, pos, "ECS80 outage start")
    end_ms, pos = _read_dlms_date_time(content, pos, "ECS80 outage end")
    der.expect_end(pos, end, what)
    return SupplyOutageRestoredAlert(alert_code, alert_ms, start_ms, end_ms, invoke_id, notification_ms)


def _read_dlms_date_time(data: bytes, pos: int, what: str, optional: bool = False) -> tuple[int | None, int]:
    """A DLMS date-time as octet-string data (09 0C and 12 bytes), or null-data (00) when optional."""
    if optional and data.startswith(b"\x00", pos):
        return None, pos + 1
    if not data.startswith(_DLMS_DATE_TIME, pos):
        raise GbcsError(
            f"{what}: {hex_bytes(data[pos : pos + 2]) or 'nothing'} at byte {pos}, expected "
            f"{'00 (none) or ' if optional else ''}09 0C (a 12-byte octet string)"
        )
    pos += 2
    if len(data) - pos < DATE_TIME_SIZE:
        raise GbcsError(f"{what} at byte {pos}: {byte_count(len(data) - pos)} left, expected 12")
    return read_date_time(data, pos, what), pos + DATE_TIME_SIZE


def write_supply_outage_restored_alert(alert: SupplyOutageRestoredAlert) -> bytes:
    if not 0 <= alert.alert_code <= 0xFFFF:
        raise GbcsError(f"alert code {alert.alert_code} is outside 0 to 0xFFFF")
    if not 0 <= alert.long_invoke_id <= 0xFFFFFFFF:
        raise GbcsError(f"long invoke id {alert.long_invoke_id} is outside 0 to 0xFFFFFFFF")
    notification = (
        b"\x00"
        if alert.notification_ms is None
        else _DLMS_DATE_TIME + date_time_bytes(alert.notification_ms, "notification time")
    )
    return b"".join(
        (
            bytes((_DATA_NOTIFICATION,)),
            alert.long_invoke_id.to_bytes(4, "big"),
            notification,
            bytes((_STRUCTURE, _ECS80_ELEMENTS, _LONG_UNSIGNED)),
            alert.alert_code.to_bytes(2, "big"),
            _DLMS_DATE_TIME,
            date_time_bytes(alert.alert_ms, "alert time"),
            _DLMS_DATE_TIME,
            date_time_bytes(alert.outage_start_ms, "outage start"),
            _DLMS_DATE_TIME,
            date_time_bytes(alert.outage_end_ms, "outage end"),
        )
    )
