"""Validation of decoded input records (contract 6): a domain record, or BadInput saying what is wrong.

Avro decoding already guarantees field presence and types; this checks what Avro cannot express:
device IDs, non-empty identifiers, and plausible timestamps.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.event_time import EARLIEST_MS, LATEST_MS
from pipeline.core.records import (
    ActivationOutcome,
    DeviceAlert,
    InventoryRecord,
    Outcome,
    ServiceRequest,
    TrackedDevice,
)


def _iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"


def timestamp(datum: Mapping[str, Any], field: str, allow_cancellation: bool = False) -> int:
    value = datum[field]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadInput(f"{field} must be a timestamp in epoch milliseconds, got {value!r}")
    if value < EARLIEST_MS:
        raise BadInput(f"{field} {_iso(value)} is before 2000-01-01T00:00:00Z")
    if value >= LATEST_MS and not allow_cancellation:
        raise BadInput(f"{field} {_iso(value)} is on or after 3000-01-01T00:00:00Z")
    return value


def optional_timestamp(datum: Mapping[str, Any], field: str, allow_cancellation: bool = False) -> int | None:
    return None if datum.get(field) is None else timestamp(datum, field, allow_cancellation)


def identifier(datum: Mapping[str, Any], field: str) -> str:
    value = datum[field]
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{field} must be a non-empty string, got {value!r}")
    return value


def optional_text(datum: Mapping[str, Any], field: str) -> str | None:
    """A free-text field as written; empty or blank is the same as absent (None)."""
    value = datum.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadInput(f"{field} must be a string, got {value!r}")
    return value


def optional_device_id(datum: Mapping[str, Any], field: str) -> str | None:
    value = datum.get(field)
    return None if value in (None, "") else canonical_device_id(value, field)


def service_request(d: Mapping[str, Any]) -> ServiceRequest:
    return ServiceRequest(
        request_id=identifier(d, "request_id"),
        service_reference_variant=identifier(d, "service_reference_variant"),
        target_device_id=canonical_device_id(d["target_device_id"], "target_device_id"),
        execution_datetime=optional_timestamp(d, "execution_datetime", allow_cancellation=True),
        firmware_hash=d.get("firmware_hash"),
        received_at=timestamp(d, "received_at"),
    )


def activation_outcome(d: Mapping[str, Any]) -> ActivationOutcome:
    try:
        outcome = Outcome(d["outcome"])
    except ValueError:
        raise BadInput(f"outcome {d['outcome']!r} is not one of {[o.value for o in Outcome]}") from None
    return ActivationOutcome(
        request_id=identifier(d, "request_id"),
        device_id=canonical_device_id(d["device_id"]),
        outcome=outcome,
        received_at=timestamp(d, "received_at"),
    )


def device_alert(d: Mapping[str, Any]) -> DeviceAlert:
    return DeviceAlert(
        alert_id=identifier(d, "alert_id"),
        alert_code=identifier(d, "alert_code"),
        device_id=canonical_device_id(d["device_id"]),
        mpxn=d.get("mpxn"),
        raised_at=optional_timestamp(d, "raised_at"),
        received_at=timestamp(d, "received_at"),
        payload=d.get("payload"),
    )


def inventory_record(d: Mapping[str, Any]) -> InventoryRecord:
    return InventoryRecord(
        device_id=canonical_device_id(d["device_id"]),
        device_type=identifier(d, "device_type"),
        chf_id=optional_device_id(d, "chf_id"),
        mpxn=d.get("mpxn"),
        updated_at=timestamp(d, "updated_at"),
        postcode=optional_text(d, "postcode"),
    )


def tracked_device(d: Mapping[str, Any]) -> TrackedDevice:
    return TrackedDevice(
        device_id=canonical_device_id(d["device_id"]),
        manufacturer=d.get("manufacturer"),
        model=d.get("model"),
        firmware_version=d.get("firmware_version"),
        list_version=d.get("list_version"),
        added_at=timestamp(d, "added_at"),
    )
