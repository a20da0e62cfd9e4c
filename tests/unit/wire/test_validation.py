"""Contract 3 and 6: validation of decoded records. Good data gives a domain record with canonical
(upper-case) device IDs; every kind of bad field gives BadInput whose message names the field.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from pipeline.core.bad_input import BadInput
from pipeline.core.records import (
    ActivationOutcome,
    DeviceAlert,
    InventoryRecord,
    Outcome,
    ServiceRequest,
    TrackedDevice,
)
from pipeline.wire import validation

ESME = "00-db-12-34-56-78-9a-a0"  # lower case on the wire
CHF = "00-Db-12-34-56-78-9A-c0"  # mixed case on the wire
ORIGINATOR = "90-B3-D5-1F-30-01-00-00"
T = 1_717_200_000_000  # 2024-06-01
Y2000 = 946_684_800_000  # 2000-01-01T00:00:00Z
Y3000 = 32_503_680_000_000  # 3000-01-01T00:00:00Z
CANCEL_X = 32_535_129_600_000  # 3000-12-31T00:00:00Z

GOOD: dict[str, dict[str, Any]] = {
    "ServiceRequest": {
        "request_id": f"{ORIGINATOR}:{ESME}:1",
        "service_reference_variant": "11.3",
        "target_device_id": ESME,
        "execution_datetime": T + 3_600_000,
        "firmware_hash": "ab" * 32,
        "received_at": T,
    },
    "ActivationOutcome": {
        "request_id": f"{ORIGINATOR}:{ESME}:1",
        "device_id": ESME,
        "outcome": "HASH_MISMATCH",
        "received_at": T,
    },
    "DeviceAlert": {
        "alert_id": "alert-1",
        "alert_code": "AD1",
        "device_id": CHF,
        "mpxn": "1234567890123",
        "raised_at": T - 1_000,
        "received_at": T,
        "payload": b"\x00\xde\xad",
    },
    "InventoryRecord": {
        "device_id": ESME,
        "device_type": "ESME",
        "chf_id": CHF,
        "mpxn": "1234567890123",
        "updated_at": T,
        "postcode": "SW1A 1AA",
    },
    "TrackedDevice": {
        "device_id": ESME,
        "manufacturer": "L+G",
        "model": "E470",
        "firmware_version": "1.2.3",
        "list_version": "7",
        "added_at": T,
    },
}

VALIDATORS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "ServiceRequest": validation.service_request,
    "ActivationOutcome": validation.activation_outcome,
    "DeviceAlert": validation.device_alert,
    "InventoryRecord": validation.inventory_record,
    "TrackedDevice": validation.tracked_device,
}

EXPECTED = {
    "ServiceRequest": ServiceRequest(f"{ORIGINATOR}:{ESME}:1", "11.3", ESME.upper(), T + 3_600_000, "ab" * 32, T),
    "ActivationOutcome": ActivationOutcome(f"{ORIGINATOR}:{ESME}:1", ESME.upper(), Outcome.HASH_MISMATCH, T),
    "DeviceAlert": DeviceAlert("alert-1", "AD1", CHF.upper(), "1234567890123", T - 1_000, T, b"\x00\xde\xad"),
    "InventoryRecord": InventoryRecord(ESME.upper(), "ESME", CHF.upper(), "1234567890123", T, "SW1A 1AA"),
    "TrackedDevice": TrackedDevice(ESME.upper(), "L+G", "E470", "1.2.3", "7", T),
}

DEVICE_ID_FIELDS = [
    ("ServiceRequest", "target_device_id"),
    ("ActivationOutcome", "device_id"),
    ("DeviceAlert", "device_id"),
    ("InventoryRecord", "device_id"),
    ("InventoryRecord", "chf_id"),
    ("TrackedDevice", "device_id"),
]
IDENTIFIER_FIELDS = [
    ("ServiceRequest", "request_id"),
    ("ServiceRequest", "service_reference_variant"),
    ("ActivationOutcome", "request_id"),
    ("DeviceAlert", "alert_id"),
    ("DeviceAlert", "alert_code"),
    ("InventoryRecord", "device_type"),
]
TIMESTAMP_FIELDS = [
    ("ServiceRequest", "received_at"),
    ("ServiceRequest", "execution_datetime"),
    ("ActivationOutcome", "received_at"),
    ("DeviceAlert", "received_at"),
    ("DeviceAlert", "raised_at"),
    ("InventoryRecord", "updated_at"),
    ("TrackedDevice", "added_at"),
]
OPTIONAL_FIELDS = [
    ("ServiceRequest", "execution_datetime"),
    ("ServiceRequest", "firmware_hash"),
    ("DeviceAlert", "mpxn"),
    ("DeviceAlert", "raised_at"),
    ("DeviceAlert", "payload"),
    ("InventoryRecord", "chf_id"),
    ("InventoryRecord", "mpxn"),
    ("InventoryRecord", "postcode"),
    ("TrackedDevice", "manufacturer"),
    ("TrackedDevice", "model"),
    ("TrackedDevice", "firmware_version"),
    ("TrackedDevice", "list_version"),
]


def ids(fields: list[tuple[str, str]]) -> list[str]:
    return [f"{record}.{field}" for record, field in fields]


def validate(record: str, **changes: Any) -> Any:
    return VALIDATORS[record]({**GOOD[record], **changes})


def rejects(record: str, field: str, value: Any) -> BadInput:
    with pytest.raises(BadInput, match=re.escape(field)) as caught:
        validate(record, **{field: value})
    return caught.value


@pytest.mark.parametrize("record", GOOD)
def test_good_record_validates_with_canonical_device_ids(record: str) -> None:
    assert validate(record) == EXPECTED[record]


@pytest.mark.parametrize(("record", "field"), OPTIONAL_FIELDS, ids=ids(OPTIONAL_FIELDS))
def test_optional_field_may_be_null(record: str, field: str) -> None:
    assert getattr(validate(record, **{field: None}), field) is None


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_postcode_is_none(blank: str) -> None:
    assert validate("InventoryRecord", postcode=blank).postcode is None


def test_a_version_1_inventory_record_has_no_postcode() -> None:
    datum = {key: value for key, value in GOOD["InventoryRecord"].items() if key != "postcode"}
    assert validation.inventory_record(datum).postcode is None


def test_the_postcode_is_passed_on_as_written() -> None:
    assert validate("InventoryRecord", postcode="sw1a1aa").postcode == "sw1a1aa"


def test_immediate_request_has_no_execution_time() -> None:
    datum: Mapping[str, Any] = {k: v for k, v in GOOD["ServiceRequest"].items() if k != "execution_datetime"}
    assert validation.service_request(datum).execution_datetime is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("00-DB-12-34-56-78-9A-A0", id="upper"),
        pytest.param("00-db-12-34-56-78-9a-a0", id="lower"),
        pytest.param("00-dB-12-34-56-78-9A-a0", id="mixed"),
    ],
)
@pytest.mark.parametrize(("record", "field"), DEVICE_ID_FIELDS, ids=ids(DEVICE_ID_FIELDS))
def test_device_id_in_any_case_is_canonical_upper_case(record: str, field: str, value: str) -> None:
    assert getattr(validate(record, **{field: value}), field) == "00-DB-12-34-56-78-9A-A0"


BAD_DEVICE_IDS = [
    pytest.param("00-DB-12-34-56-78-9A", id="7 octets"),
    pytest.param("00-DB-12-34-56-78-9A-A0-11", id="9 octets"),
    pytest.param("00:DB:12:34:56:78:9A:A0", id="colons"),
    pytest.param("00.DB.12.34.56.78.9A.A0", id="dots"),
    pytest.param("00_DB_12_34_56_78_9A_A0", id="underscores"),
    pytest.param("00DB123456789AA0", id="no separators"),
    pytest.param("00 DB 12 34 56 78 9A A0", id="spaces as separators"),
    pytest.param(" 00-DB-12-34-56-78-9A-A0", id="leading space"),
    pytest.param("00-DB-12-34-56-78-9A-A0 ", id="trailing space"),
    pytest.param("00-DB-12-34-56-78-9A-A0\n", id="trailing newline"),
    pytest.param("00-DB-12-34-56-78-9A -A0", id="inner space"),
    pytest.param("00-DB-12-34-56-78-9A-G0", id="non-hex digit"),
    pytest.param("0-DB-12-34-56-78-9A-A0", id="short octet"),
    pytest.param("000-DB-12-34-56-78-9A-A0", id="long octet"),
    pytest.param("00-DB-12-34-56-78-9A-٠٠", id="non-ASCII digits"),
    pytest.param("00--DB-12-34-56-78-9A-A0", id="double hyphen"),
    pytest.param(1234, id="not a string"),
]


@pytest.mark.parametrize("value", BAD_DEVICE_IDS)
@pytest.mark.parametrize(("record", "field"), DEVICE_ID_FIELDS, ids=ids(DEVICE_ID_FIELDS))
def test_malformed_device_id_is_bad_input_naming_the_field(record: str, field: str, value: object) -> None:
    rejects(record, field, value)


REQUIRED_DEVICE_ID_FIELDS = [f for f in DEVICE_ID_FIELDS if f[1] != "chf_id"]


@pytest.mark.parametrize(("record", "field"), REQUIRED_DEVICE_ID_FIELDS, ids=ids(REQUIRED_DEVICE_ID_FIELDS))
@pytest.mark.parametrize("value", [None, ""], ids=["null", "empty"])
def test_missing_required_device_id_is_bad_input(record: str, field: str, value: object) -> None:
    rejects(record, field, value)


@pytest.mark.parametrize("value", [None, "", "   ", 3], ids=["null", "empty", "blank", "not a string"])
@pytest.mark.parametrize(("record", "field"), IDENTIFIER_FIELDS, ids=ids(IDENTIFIER_FIELDS))
def test_empty_identifier_is_bad_input_naming_the_field(record: str, field: str, value: object) -> None:
    rejects(record, field, value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(Y2000, id="2000-01-01T00:00:00.000Z"),
        pytest.param(Y3000 - 1, id="2999-12-31T23:59:59.999Z"),
    ],
)
@pytest.mark.parametrize(("record", "field"), TIMESTAMP_FIELDS, ids=ids(TIMESTAMP_FIELDS))
def test_timestamp_from_2000_to_the_end_of_2999_is_accepted(record: str, field: str, value: int) -> None:
    assert getattr(validate(record, **{field: value}), field) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(Y2000 - 1, id="1999-12-31T23:59:59.999Z"),
        pytest.param(0, id="epoch"),
        pytest.param(-1, id="negative"),
        pytest.param(T // 1000, id="seconds instead of millis"),
    ],
)
@pytest.mark.parametrize(("record", "field"), TIMESTAMP_FIELDS, ids=ids(TIMESTAMP_FIELDS))
def test_timestamp_before_2000_is_bad_input_naming_the_field(record: str, field: str, value: int) -> None:
    assert "2000-01-01" in str(rejects(record, field, value))


LATE_TIMESTAMPS = [
    pytest.param(Y3000, id="3000-01-01"),
    pytest.param(CANCEL_X, id="3000-12-31"),
    pytest.param(T * 1000, id="micros instead of millis"),
]
NOT_EXECUTION = [f for f in TIMESTAMP_FIELDS if f[1] != "execution_datetime"]


@pytest.mark.parametrize("value", LATE_TIMESTAMPS)
@pytest.mark.parametrize(("record", "field"), NOT_EXECUTION, ids=ids(NOT_EXECUTION))
def test_timestamp_from_3000_is_bad_input_naming_the_field(record: str, field: str, value: int) -> None:
    assert "3000-01-01" in str(rejects(record, field, value))


@pytest.mark.parametrize("value", LATE_TIMESTAMPS)
def test_execution_time_from_3000_is_a_valid_cancellation(value: int) -> None:
    assert validation.service_request({**GOOD["ServiceRequest"], "execution_datetime": value}).execution_datetime == (
        value
    )


@pytest.mark.parametrize("value", ["2024-06-01T00:00:00Z", float(T), True], ids=["ISO string", "float", "bool"])
@pytest.mark.parametrize(("record", "field"), TIMESTAMP_FIELDS, ids=ids(TIMESTAMP_FIELDS))
def test_timestamp_of_the_wrong_type_is_bad_input_naming_the_field(record: str, field: str, value: object) -> None:
    rejects(record, field, value)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_known_outcome_is_accepted(outcome: Outcome) -> None:
    assert validate("ActivationOutcome", outcome=outcome.value).outcome is outcome


@pytest.mark.parametrize("value", ["FAILED", "success", "NO IMAGE HELD", "", "2"])
def test_unknown_outcome_is_bad_input_naming_the_field(value: str) -> None:
    rejects("ActivationOutcome", "outcome", value)
