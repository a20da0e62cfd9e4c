"""TrackedDevice and InventoryRecord read from and written to Avro bytes directly: the hot paths of the
state rebuild and of the bulk loaders.

A worker that lost its disk reads millions of these (1.5 million tracked devices, 3.3 million inventory
rows) before it may decide an alert; fastavro's dict plus the validators cost most of that time. These
readers apply the same checks to the bytes and return only what the state keeps; like alert_bytes, they
say None to anything unusual and the generic path then gives the verdict and the readable error.
"""

from collections.abc import Mapping
from typing import Any

from pipeline.core.device_ids import EUI64_BYTES
from pipeline.wire.avro_binary import (
    Unusual,
    long_bytes,
    optional_text_bytes,
    read_optional_text,
    read_text,
    read_timestamp,
    text_bytes,
)


def _device_id(raw: bytes) -> str:
    if not EUI64_BYTES.fullmatch(raw):
        raise Unusual
    return raw.decode().upper()


def read_tracked_device(data: bytes, header: bytes) -> str | None:
    """The canonical device ID of a valid single-object TrackedDevice with this header, else None."""
    if not data.startswith(header):
        return None
    try:
        device_id, pos = read_text(data, len(header))
        for _optional_field in range(4):  # manufacturer, model, firmware_version, list_version
            text, pos = read_optional_text(data, pos)
            if text is not None:
                text.decode()  # UnicodeDecodeError is a ValueError
        _added_at, pos = read_timestamp(data, pos)
        return _device_id(device_id) if pos == len(data) else None
    except (Unusual, IndexError, ValueError):
        return None


def read_inventory_record(data: bytes, header: bytes) -> tuple[str, str | None, str | None, bool] | None:
    """(canonical device ID, its CHF if it is an ESME with one, its postcode: None when absent or blank, whether
    its device type is CHF) of a valid single-object InventoryRecord of the current version (2: with
    `postcode`) with this header, else None: what `FilterState.put_esme_han` needs. Older versions have
    another header and are left to the generic path, which resolves them."""
    if not data.startswith(header):
        return None
    try:
        device_id, pos = read_text(data, len(header))
        device_type, pos = read_text(data, pos)
        chf_id, pos = read_optional_text(data, pos)
        mpxn, pos = read_optional_text(data, pos)
        _updated_at, pos = read_timestamp(data, pos)
        postcode, pos = read_optional_text(data, pos)
        if pos != len(data):
            return None
        kind = device_type.decode()
        if mpxn is not None:
            mpxn.decode()  # UnicodeDecodeError is a ValueError
        place = None if postcode is None else postcode.decode()
        if not kind.strip():
            return None
        chf = None if not chf_id else _device_id(chf_id)
        return (
            _device_id(device_id),
            chf if kind.upper() == "ESME" else None,
            place if place and place.strip() else None,
            kind.upper() == "CHF",
        )
    except (Unusual, IndexError, ValueError):
        return None


def tracked_device_bytes(header: bytes, datum: Mapping[str, Any]) -> bytes:
    """A TrackedDevice datum the validators accepted, encoded after `header` (byte for byte as fastavro)."""
    return b"".join(
        (
            header,
            text_bytes(datum["device_id"]),
            optional_text_bytes(datum.get("manufacturer")),
            optional_text_bytes(datum.get("model")),
            optional_text_bytes(datum.get("firmware_version")),
            optional_text_bytes(datum.get("list_version")),
            long_bytes(datum["added_at"]),
        )
    )


def inventory_record_bytes(header: bytes, datum: Mapping[str, Any], postcode: str | None = None) -> bytes:
    """An InventoryRecord datum the validators accepted, encoded in the current version (2) after `header`,
    the current version's header (byte for byte as fastavro).

    `postcode` is the premises' postcode; when it is None, the datum's own `postcode` (absent: null).
    """
    return b"".join(
        (
            header,
            text_bytes(datum["device_id"]),
            text_bytes(datum["device_type"]),
            optional_text_bytes(datum.get("chf_id")),
            optional_text_bytes(datum.get("mpxn")),
            long_bytes(datum["updated_at"]),
            optional_text_bytes(datum.get("postcode") if postcode is None else postcode),
        )
    )
