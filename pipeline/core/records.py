"""The input records as the decision core sees them: validated, device IDs canonical, times in epoch ms (UTC).

These are plain data; decoding and validation live in `pipeline.wire.validation`, Avro in `pipeline.wire.avro_codec`.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

FIRMWARE_ACTIVATION_VARIANT = "11.3"
OUTAGE_ALERT_CODE = "AD1"


class Outcome(StrEnum):
    SUCCESS = "SUCCESS"
    NO_IMAGE_HELD = "NO_IMAGE_HELD"
    HASH_MISMATCH = "HASH_MISMATCH"
    ACTIVATION_FAILURE = "ACTIVATION_FAILURE"
    UNKNOWN = "UNKNOWN"


# Outcomes that mean no firmware was activated, so no CH power cut is expected (contract 5.3).
WITHDRAWING_OUTCOMES = frozenset({Outcome.NO_IMAGE_HELD, Outcome.HASH_MISMATCH})


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    request_id: str
    service_reference_variant: str
    target_device_id: str
    execution_datetime: int | None
    firmware_hash: str | None
    received_at: int


@dataclass(frozen=True, slots=True)
class ActivationOutcome:
    request_id: str
    device_id: str
    outcome: Outcome
    received_at: int


class AlertFacts(Protocol):
    """What a decision reads of an alert: a DeviceAlert, or the fields the worker's fast reader gives."""

    @property
    def alert_id(self) -> str: ...
    @property
    def alert_code(self) -> str: ...
    @property
    def device_id(self) -> str: ...
    @property
    def received_at(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DeviceAlert:
    alert_id: str
    alert_code: str
    device_id: str
    mpxn: str | None
    raised_at: int | None
    received_at: int
    payload: bytes | None


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    device_id: str
    device_type: str
    chf_id: str | None
    mpxn: str | None
    updated_at: int
    postcode: str | None = None  # schema version 2; None when absent or blank

    @property
    def is_esme(self) -> bool:
        return self.device_type.upper() == "ESME"

    @property
    def is_ch_function(self) -> bool:
        return self.device_type.upper() == "CHF"


@dataclass(frozen=True, slots=True)
class TrackedDevice:
    device_id: str
    manufacturer: str | None
    model: str | None
    firmware_version: str | None
    list_version: str | None
    added_at: int
