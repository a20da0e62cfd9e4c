"""DeviceAlert bytes read and written without the generic Avro machinery: the worker's hot path.

Every alert is decoded and validated (contract 6), most only to be forwarded byte for byte. fastavro
plus the validators cost about 6 us an alert, a third of the worker's whole budget, mostly in building a
dict nobody needs. `read_alert_fields` reads the four fields a decision uses straight from a
single-object encoded DeviceAlert and applies the same checks. It only ever says yes to a record the
generic path accepts, with the same values; anything unusual (another framing, a long varint, a bad
field) gets None, and the generic path then gives the verdict and the readable error. Tests hold the two
paths to that, over generated and mutated records.

`suppressed_alert_bytes` writes the audit record by reusing the input bytes: `alert` is the first field
of SuppressedAlert, so its encoding is the DeviceAlert body exactly as received.
"""

from io import BytesIO
from typing import Any, NamedTuple

from fastavro import parse_schema, schemaless_writer

from pipeline.core.device_ids import EUI64_BYTES
from pipeline.wire.avro_binary import Unusual, read_timestamp, skip_text


class AlertFields(NamedTuple):
    """What a decision needs of an alert (records.AlertFacts)."""

    alert_id: str
    alert_code: str
    device_id: str  # canonical (upper case)
    received_at: int


# alert_id, alert_code, device_id as written (bytes, a valid EUI-64), received_at
RawAlertFields = tuple[str, str, bytes, int]


def read_alert_fields(data: bytes, header: bytes) -> RawAlertFields | None:
    """The decision's fields of a valid single-object DeviceAlert with this header, else None.

    Written out field by field, the one-byte length of the short strings inline: this runs for every alert.
    """
    if not data.startswith(header):
        return None
    try:
        p = len(header)
        short: list[bytes] = []  # alert_id, alert_code, device_id
        for _ in range(3):
            n = data[p]  # a length byte with bit 0 or bit 7 set is negative or longer than 63
            if n & 0x81:
                return None
            s = p + 1
            p = s + (n >> 1)
            short.append(data[s:p])
        raw_id, raw_code, raw_device = short
        b = data[p]  # mpxn: union {null, string}
        if b == 2:
            s, p = skip_text(data, p + 1)
            data[s:p].decode()  # UnicodeDecodeError is a ValueError
        elif b == 0:
            p += 1
        else:
            return None
        b = data[p]  # raised_at: union {null, timestamp-millis}
        if b == 2:
            _raised_at, p = read_timestamp(data, p + 1)
        elif b == 0:
            p += 1
        else:
            return None
        received_at, p = read_timestamp(data, p)
        b = data[p]  # payload: union {null, bytes}, skipped without a copy
        if b == 2:
            _s, p = skip_text(data, p + 1)
        elif b == 0:
            p += 1
        else:
            return None
        if p != len(data) or not EUI64_BYTES.fullmatch(raw_device):
            return None
        alert_id = raw_id.decode()  # UnicodeDecodeError is a ValueError
        alert_code = raw_code.decode()
        if not alert_id.strip() or not alert_code.strip():
            return None
        return alert_id, alert_code, raw_device, received_at
    except (Unusual, IndexError, ValueError):
        return None


def alert_fields(raw: RawAlertFields) -> AlertFields:
    """The device ID in canonical form, for a decision that needs it (AD1s only)."""
    return AlertFields(raw[0], raw[1], raw[2].decode().upper(), raw[3])


_TAIL_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "SuppressedAlertAfterAlert",
        "fields": [
            {"name": "esme_id", "type": "string"},
            {"name": "activation_request_id", "type": "string"},
            {"name": "window_start", "type": "long"},
            {"name": "window_end", "type": "long"},
            {"name": "reason", "type": "string"},
            {"name": "decided_at", "type": "long"},
            {"name": "filter_version", "type": "string"},
        ],
    }
)


def suppressed_alert_bytes(header: bytes, alert_body: bytes, audit: dict[str, Any]) -> bytes:
    """A SuppressedAlert: its header, the alert's body as received, then the fields after `alert`
    (`audit`, as output_records.audit_fields gives them)."""
    buffer = BytesIO()
    buffer.write(header)
    buffer.write(alert_body)
    schemaless_writer(buffer, _TAIL_SCHEMA, audit)
    return buffer.getvalue()
