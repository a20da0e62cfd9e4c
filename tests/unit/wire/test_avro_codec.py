"""AvroCodec against contract sections 3, 4 and 6, and against the Java Avro library (tests/vectors)."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.wire.avro_codec import AvroCodec

REPO = Path(__file__).resolve().parents[3]
SCHEMA_DIR = REPO / "schemas"
VECTORS = json.loads((REPO / "tests" / "vectors" / "fingerprints.json").read_text())

TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
OUTCOMES = ["SUCCESS", "NO_IMAGE_HELD", "HASH_MISMATCH", "ACTIVATION_FAILURE", "UNKNOWN"]

# Contract section 3, field by field: "T?" is an optional T (["null", T], default null).
CONTRACT: dict[str, list[tuple[str, str]]] = {
    "ServiceRequest": [
        ("request_id", "string"),
        ("service_reference_variant", "string"),
        ("target_device_id", "string"),
        ("execution_datetime", "timestamp?"),
        ("firmware_hash", "string?"),
        ("received_at", "timestamp"),
    ],
    "ActivationOutcome": [
        ("request_id", "string"),
        ("device_id", "string"),
        ("outcome", "Outcome"),
        ("received_at", "timestamp"),
    ],
    "DeviceAlert": [
        ("alert_id", "string"),
        ("alert_code", "string"),
        ("device_id", "string"),
        ("mpxn", "string?"),
        ("raised_at", "timestamp?"),
        ("received_at", "timestamp"),
        ("payload", "bytes?"),
    ],
    "InventoryRecord": [
        ("device_id", "string"),
        ("device_type", "string"),
        ("chf_id", "string?"),
        ("mpxn", "string?"),
        ("updated_at", "timestamp"),
        ("postcode", "string?"),  # version 2
    ],
    "TrackedDevice": [
        ("device_id", "string"),
        ("manufacturer", "string?"),
        ("model", "string?"),
        ("firmware_version", "string?"),
        ("list_version", "string?"),
        ("added_at", "timestamp"),
    ],
    "SuppressedAlert": [
        ("alert", "DeviceAlert"),
        ("esme_id", "string"),
        ("activation_request_id", "string"),
        ("window_start", "timestamp"),
        ("window_end", "timestamp"),
        ("reason", "string"),
        ("decided_at", "timestamp"),
        ("filter_version", "string"),
    ],
    "DeadLetter": [
        ("source_topic", "string"),
        ("partition", "int"),
        ("offset", "long"),
        ("key", "bytes?"),
        ("value", "bytes?"),
        ("error", "string"),
        ("failed_at", "timestamp"),
    ],
    "ReleasedAlert": [  # contract section 8: a record on dsp.alerts.released per released alert
        ("alert_id", "string"),
        ("source_topic", "string"),
        ("partition", "int"),
        ("offset", "long"),
        ("released_by", "string"),
        ("reason", "string"),
        ("released_at", "timestamp"),
        ("filter_version", "string"),
    ],
    "ModeSchedule": [("changes", "ModeChange[]")],  # contract section 8: the value of key `mode` on the control topic
}
MODE_CHANGE_FIELDS = [
    ("mode", "string"),
    ("effective_from", "timestamp"),
    ("reason", "string"),
    ("changed_by", "string"),
    ("changed_at", "timestamp"),
]

ALERT = {
    "alert_id": "ALERT-0002",
    "alert_code": "AD1",
    "device_id": "00-DB-12-34-56-78-90-A1",
    "mpxn": "1900001234567",
    "raised_at": 1_735_689_540_000,
    "received_at": 1_735_689_601_234,
    "payload": b"\x00\xc3\x01\xff",
}
BARE_ALERT = {**ALERT, "mpxn": None, "raised_at": None, "payload": None}

# Every record type, once with every optional field present and once with every one null.
DATUMS: list[tuple[str, dict[str, Any]]] = [
    (
        "ServiceRequest",
        {
            "request_id": "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1001",
            "service_reference_variant": "11.3",
            "target_device_id": "00-db-12-34-56-78-90-a0",
            "execution_datetime": 32_503_680_000_000,
            "firmware_hash": "ab" * 32,
            "received_at": 1_735_689_600_000,
        },
    ),
    (
        "ServiceRequest",
        {
            "request_id": "r",
            "service_reference_variant": "8.1",
            "target_device_id": "00-DB-12-34-56-78-90-A0",
            "execution_datetime": None,
            "firmware_hash": None,
            "received_at": 0,
        },
    ),
    *[
        (
            "ActivationOutcome",
            {
                "request_id": "r:1",
                "device_id": "00-DB-12-34-56-78-90-A0",
                "outcome": outcome,
                "received_at": -1,
            },
        )
        for outcome in OUTCOMES
    ],
    ("DeviceAlert", ALERT),
    ("DeviceAlert", BARE_ALERT),
    (
        "InventoryRecord",
        {
            "device_id": "00-DB-12-34-56-78-90-A0",
            "device_type": "ESME",
            "chf_id": "00-DB-12-34-56-78-90-A1",
            "mpxn": "1900001234567",
            "updated_at": 1,
            "postcode": "SW1A 1AA",
        },
    ),
    (
        "InventoryRecord",
        {
            "device_id": "x",
            "device_type": "ihd",
            "chf_id": None,
            "mpxn": None,
            "updated_at": 2**63 - 1,
            "postcode": None,
        },
    ),
    (
        "TrackedDevice",
        {
            "device_id": "00-DB-12-34-56-78-90-A0",
            "manufacturer": "Acme Meters",
            "model": "E-1 \N{EM DASH} three-phase",
            "firmware_version": "1.2.3",
            "list_version": "2025-01",
            "added_at": 1_735_689_600_000,
        },
    ),
    (
        "TrackedDevice",
        {
            "device_id": "00-DB-12-34-56-78-90-A0",
            "manufacturer": None,
            "model": None,
            "firmware_version": None,
            "list_version": None,
            "added_at": -(2**63),
        },
    ),
    *[
        (
            "SuppressedAlert",
            {
                "alert": alert,
                "esme_id": "00-DB-12-34-56-78-90-A0",
                "activation_request_id": "r:1",
                "window_start": 1_735_689_600_000,
                "window_end": 1_735_691_400_000,
                "reason": "AD1 within activation window",
                "decided_at": 1_735_689_602_000,
                "filter_version": "0.1.0",
            },
        )
        for alert in (ALERT, BARE_ALERT)
    ],
    (
        "DeadLetter",
        {
            "source_topic": "dsp.alerts",
            "partition": 2**31 - 1,
            "offset": 2**63 - 1,
            "key": b"00-DB-12-34-56-78-90-A1",
            "value": b"\xc3\x01 not really",
            "error": "bad",
            "failed_at": 1_735_689_602_000,
        },
    ),
    (
        "DeadLetter",
        {
            "source_topic": "dsp.inventory",
            "partition": -(2**31),
            "offset": 0,
            "key": None,
            "value": None,
            "error": "",
            "failed_at": 0,
        },
    ),
]


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


CODEC = AvroCodec()  # for hypothesis tests, which do not take function-scoped fixtures


def from_java(value: Any) -> Any:
    """A datum from the vectors file: bytes are written there as {"hex": ...}."""
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {key: from_java(item) for key, item in value.items()}
    return value


# --- the schema files against the contract ------------------------------------------------------


def contract_type(spec: str) -> Any:
    if spec.endswith("?"):
        return ["null", contract_type(spec[:-1])]
    if spec == "timestamp":
        return TIMESTAMP
    if spec == "DeviceAlert":
        return "poafilter.DeviceAlert"
    if spec == "Outcome":
        return {"type": "enum", "name": "Outcome", "symbols": OUTCOMES}
    if spec == "ModeChange[]":
        fields = [{"name": name, "type": contract_type(spec)} for name, spec in MODE_CHANGE_FIELDS]
        return {"type": "array", "items": {"type": "record", "name": "ModeChange", "fields": fields}}
    return spec


def strip_docs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: strip_docs(value) for key, value in schema.items() if key != "doc"}
    if isinstance(schema, list):
        return [strip_docs(item) for item in schema]
    return schema


def test_one_schema_file_per_contract_record() -> None:
    assert sorted(path.stem for path in SCHEMA_DIR.glob("*.avsc")) == sorted(CONTRACT)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_schema_file_has_the_contract_fields(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    assert (schema["type"], schema["name"], schema["namespace"]) == ("record", name, "poafilter")
    fields = [(field["name"], strip_docs(field["type"])) for field in schema["fields"]]
    assert fields == [(field, contract_type(spec)) for field, spec in CONTRACT[name]]
    for field, (_, spec) in zip(schema["fields"], CONTRACT[name], strict=True):
        assert ("default" in field) == spec.endswith("?"), field["name"]
        if spec.endswith("?"):
            assert field["default"] is None


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_schema_file_documents_every_record_and_field(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    assert schema["doc"].strip()
    for field in schema["fields"]:
        assert field["doc"].strip(), field["name"]


# --- canonical forms and fingerprints against the Java library -------------------------------------


def test_vectors_cover_every_record(codec: AvroCodec) -> None:
    assert sorted(VECTORS["fingerprints"]) == list(codec.record_names)
    assert {vector["record"] for vector in VECTORS["encoded"]} == {
        "poafilter.DeviceAlert",
        "poafilter.SuppressedAlert",
    }


@pytest.mark.parametrize("name", sorted(VECTORS["fingerprints"]))
def test_canonical_form_matches_java(codec: AvroCodec, name: str) -> None:
    assert codec.canonical_form(name) == VECTORS["fingerprints"][name]["canonical_form"]


@pytest.mark.parametrize("name", sorted(VECTORS["fingerprints"]))
def test_fingerprint_matches_java(codec: AvroCodec, name: str) -> None:
    assert codec.fingerprint(name).hex() == VECTORS["fingerprints"][name]["fingerprint_hex"]


def test_suppressed_alert_canonical_form_writes_device_alert_out_in_full(codec: AvroCodec) -> None:
    alert_form = codec.canonical_form("DeviceAlert")
    assert '{"name":"alert","type":' + alert_form + "}" in codec.canonical_form("SuppressedAlert")


@pytest.mark.parametrize("vector", VECTORS["encoded"], ids=lambda vector: vector["record"])
def test_decodes_what_java_encoded(codec: AvroCodec, vector: dict[str, Any]) -> None:
    assert codec.decode(vector["record"], bytes.fromhex(vector["hex"])) == from_java(vector["datum"])


@pytest.mark.parametrize("vector", VECTORS["encoded"], ids=lambda vector: vector["record"])
def test_encodes_byte_for_byte_as_java(codec: AvroCodec, vector: dict[str, Any]) -> None:
    assert codec.encode(vector["record"], from_java(vector["datum"])).hex() == vector["hex"]


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "datum"), DATUMS, ids=[f"{name}-{i}" for i, (name, _) in enumerate(DATUMS)])
def test_round_trip(codec: AvroCodec, name: str, datum: dict[str, Any]) -> None:
    encoded = codec.encode(name, datum)
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == codec.fingerprint(name)
    assert codec.decode(name, encoded) == datum


def test_decoded_timestamps_are_int_milliseconds_and_enums_strings(codec: AvroCodec) -> None:
    datum = {
        "request_id": "r",
        "device_id": "d",
        "outcome": "HASH_MISMATCH",
        "received_at": 1_735_689_600_123,
    }
    decoded = codec.decode("ActivationOutcome", codec.encode("ActivationOutcome", datum))
    assert type(decoded["received_at"]) is int and decoded["received_at"] == 1_735_689_600_123
    assert type(decoded["outcome"]) is str and decoded["outcome"] == "HASH_MISMATCH"


def test_short_and_full_names_are_the_same_record(codec: AvroCodec) -> None:
    assert codec.fingerprint("DeviceAlert") == codec.fingerprint("poafilter.DeviceAlert")
    assert codec.decode("poafilter.DeviceAlert", codec.encode("DeviceAlert", ALERT)) == ALERT


def test_unknown_record_name_is_a_programming_error(codec: AvroCodec) -> None:
    with pytest.raises(ValueError, match="no schema for record 'Alert'"):
        codec.encode("Alert", ALERT)


def test_missing_optional_fields_are_written_as_null(codec: AvroCodec) -> None:
    datum = {key: value for key, value in ALERT.items() if key not in ("mpxn", "raised_at", "payload")}
    assert codec.decode("DeviceAlert", codec.encode("DeviceAlert", datum)) == BARE_ALERT


def strategy(schema: Any, named: dict[str, Any]) -> Any:
    """Any datum of a self-contained schema (as in a canonical form: full names, no logical types)."""
    primitives = {
        "null": st.none(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "string": st.text(),
        "bytes": st.binary(),
    }
    if isinstance(schema, str):
        return primitives[schema] if schema in primitives else named[schema]
    if isinstance(schema, list):
        return st.one_of([strategy(branch, named) for branch in schema])
    if schema["type"] == "array":
        return st.lists(strategy(schema["items"], named), max_size=3)
    if schema["type"] == "enum":
        named[schema["name"]] = st.sampled_from(schema["symbols"])
    else:
        fields = {field["name"]: strategy(field["type"], named) for field in schema["fields"]}
        named[schema["name"]] = st.fixed_dictionaries(fields)
    return named[schema["name"]]


RECORDS = st.sampled_from(CODEC.record_names).flatmap(
    lambda name: st.tuples(st.just(name), strategy(json.loads(CODEC.canonical_form(name)), {}))
)


@given(RECORDS)
def test_any_valid_datum_round_trips(record: tuple[str, dict[str, Any]]) -> None:
    name, datum = record
    assert CODEC.decode(name, CODEC.encode(name, datum)) == datum


# --- bad input: each names the problem ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "null value where a poafilter.DeviceAlert record is due"),
        (b"", "empty value where a poafilter.DeviceAlert record is due"),
        (b'{"alert_id": "A"}', "does not start with the Avro single-object marker C3 01 (it starts 7b 22"),
        (b"AD1,00-DB", "does not start with the Avro single-object marker C3 01"),
        (
            b"\x00\x00\x00\x00\x01\x02",
            "Confluent schema-registry framing, but no schema registry is configured",
        ),
        (b"\xc3\x01\x39\x25", "truncated value: 4 bytes, too short for the Avro single-object header"),
        (
            b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + b"\x02",
            "unknown writer schema fingerprint 0123456789abcdef",
        ),
    ],
)
def test_bad_values_are_named(codec: AvroCodec, value: bytes | None, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        codec.decode("DeviceAlert", value)
    assert message in str(caught.value)


def test_json_is_recognised(codec: AvroCodec) -> None:
    with pytest.raises(BadInput, match="looks like JSON"):
        codec.decode("DeviceAlert", b' {"alert_id": "A"}')


def test_unknown_fingerprint_names_the_expected_one(codec: AvroCodec) -> None:
    with pytest.raises(BadInput, match=f"fingerprints {codec.fingerprint('DeviceAlert').hex()} "):
        codec.decode("DeviceAlert", b"\xc3\x01" + bytes(8) + b"\x00")


@pytest.mark.parametrize("name", ["ServiceRequest", "SuppressedAlert"])
def test_record_of_another_known_type_is_named(codec: AvroCodec, name: str) -> None:
    other = next(datum for record, datum in DATUMS if record == name)
    with pytest.raises(BadInput, match=f"got a poafilter.{name} record where a poafilter.DeviceAlert is due"):
        codec.decode("DeviceAlert", codec.encode(name, other))


def test_truncated_body(codec: AvroCodec) -> None:
    encoded = codec.encode("DeviceAlert", ALERT)
    with pytest.raises(BadInput, match=r"corrupt poafilter.DeviceAlert record: payload: .* \(truncated\), at byte"):
        codec.decode("DeviceAlert", encoded[:-1])


def test_trailing_bytes_are_corrupt(codec: AvroCodec) -> None:
    encoded = codec.encode("DeviceAlert", BARE_ALERT)
    with pytest.raises(BadInput, match="corrupt poafilter.DeviceAlert record: 2 bytes left over"):
        codec.decode("DeviceAlert", encoded + b"\x00\x00")


def test_invalid_utf8(codec: AvroCodec) -> None:
    encoded = codec.encode("DeviceAlert", {**BARE_ALERT, "alert_id": "AB"})
    body = encoded[10:]
    assert body[:3] == b"\x04AB"
    with pytest.raises(BadInput, match="corrupt poafilter.DeviceAlert record: alert_id: invalid UTF-8 in a string"):
        codec.decode("DeviceAlert", encoded[:10] + b"\x04\xc3\x28" + body[3:])


def test_enum_index_out_of_range_is_corrupt(codec: AvroCodec) -> None:
    datum = {"request_id": "r", "device_id": "d", "outcome": "UNKNOWN", "received_at": 5}
    encoded = codec.encode("ActivationOutcome", datum)
    assert encoded[-2:] == b"\x08\x0a"  # enum index 4, then the long 5
    with pytest.raises(BadInput, match="corrupt poafilter.ActivationOutcome"):
        codec.decode("ActivationOutcome", encoded[:-2] + b"\x0a\x0a")


# --- validation before encoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "datum", "message"),
    [
        (
            "DeviceAlert",
            {**ALERT, "received_at": "2025-01-01"},
            "poafilter.DeviceAlert.received_at: expected long",
        ),
        ("DeviceAlert", {**ALERT, "received_at": 1.5}, "poafilter.DeviceAlert.received_at: expected long"),
        (
            "DeviceAlert",
            {**ALERT, "raised_at": True},
            "poafilter.DeviceAlert.raised_at: expected null or long",
        ),
        ("DeviceAlert", {**ALERT, "received_at": 2**63}, "poafilter.DeviceAlert.received_at: expected long"),
        (
            "DeviceAlert",
            {**ALERT, "mpxn": 1900001234567},
            "poafilter.DeviceAlert.mpxn: expected null or string",
        ),
        (
            "DeviceAlert",
            {**ALERT, "payload": "text"},
            "poafilter.DeviceAlert.payload: expected null or bytes",
        ),
        ("DeviceAlert", {**ALERT, "alert_code": None}, "poafilter.DeviceAlert.alert_code: expected string"),
        ("DeviceAlert", {**ALERT, "severity": 1}, "poafilter.DeviceAlert: unknown field(s) severity"),
        (
            "DeviceAlert",
            {k: v for k, v in ALERT.items() if k != "device_id"},
            "device_id: required field is missing",
        ),
        ("DeviceAlert", [ALERT], "expected a poafilter.DeviceAlert record (a dict)"),
        ("ActivationOutcome", {**DATUMS[2][1], "outcome": "success"}, "outcome: expected one of SUCCESS,"),
        ("DeadLetter", {**DATUMS[-1][1], "partition": 2**31}, "poafilter.DeadLetter.partition: expected int"),
        (
            "SuppressedAlert",
            {**DATUMS[-3][1], "alert": {**ALERT, "device_id": b"00"}},
            "poafilter.SuppressedAlert.alert.device_id: expected string",
        ),
        ("DeviceAlert", {**ALERT, "alert_id": "\udc80"}, "cannot be written as UTF-8"),
    ],
)
def test_encode_rejects_a_datum_that_does_not_fit(codec: AvroCodec, name: str, datum: Any, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        codec.encode(name, datum)
    assert message in str(caught.value)


def test_encode_rejects_datetime_for_a_timestamp(codec: AvroCodec) -> None:
    from datetime import UTC, datetime

    with pytest.raises(BadInput, match="timestamp-millis: int epoch milliseconds"):
        codec.encode("DeviceAlert", {**ALERT, "received_at": datetime(2025, 1, 1, tzinfo=UTC)})


# --- never any other exception for any bytes ----------------------------------------------------


def decode_or_bad_input(name: str, data: bytes) -> dict[str, Any] | None:
    """The decoded record, or None for BadInput; any other exception fails the test."""
    try:
        decoded = CODEC.decode(name, data)
    except BadInput as exc:
        assert str(exc)
        return None
    CODEC.encode(name, decoded)  # whatever decodes is a valid datum of the schema
    return decoded


@given(st.sampled_from(CODEC.record_names), st.binary(max_size=300))
def test_random_bytes(name: str, data: bytes) -> None:
    decode_or_bad_input(name, data)


@given(st.sampled_from(CODEC.record_names), st.binary(max_size=300))
def test_random_body_behind_a_valid_header(name: str, body: bytes) -> None:
    decode_or_bad_input(name, b"\xc3\x01" + CODEC.fingerprint(name) + body)


@given(RECORDS, st.data())
def test_every_truncation_is_bad_input(record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    name, datum = record
    encoded = CODEC.encode(name, datum)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    assert decode_or_bad_input(name, encoded[:cut]) is None


@given(RECORDS, st.binary(min_size=1, max_size=20))
def test_any_trailing_bytes_are_bad_input(record: tuple[str, dict[str, Any]], extra: bytes) -> None:
    name, datum = record
    assert decode_or_bad_input(name, CODEC.encode(name, datum) + extra) is None


@given(RECORDS, st.data())
def test_bit_flips(record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    name, datum = record
    encoded = bytearray(CODEC.encode(name, datum))
    for _ in range(data.draw(st.integers(1, 3))):
        bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
        encoded[bit // 8] ^= 1 << (bit % 8)
    decode_or_bad_input(name, bytes(encoded))


# Negative zig-zag varints of small indexes (-1 to -4), and any byte.
REPLACEMENT_BYTES = st.one_of(st.sampled_from([0x01, 0x03, 0x05, 0x07]), st.integers(0, 255))


@given(RECORDS, st.data())
@settings(max_examples=300)
def test_mutated_records_are_read_exactly_or_rejected(record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    """Issue 9, item 4's class: whatever a mutation makes of a valid record either is BadInput or decodes to a
    datum whose encoding is the mutated bytes. The exception is a number written in a longer form than it
    needs, which the Java library reads too: with more bytes (a varint ending in a zero byte after a
    continuation byte), or with bits beyond 64 in a tenth byte, which Java ignores."""
    name, datum = record
    encoded = bytearray(CODEC.encode(name, datum))
    for _ in range(data.draw(st.integers(1, 2))):
        at = data.draw(st.integers(10, len(encoded) - 1))  # the body: the header is checked whole
        kind = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if kind == "replace":
            encoded[at] = data.draw(REPLACEMENT_BYTES)
        elif kind == "insert":
            encoded.insert(at, data.draw(REPLACEMENT_BYTES))
        elif len(encoded) > 11:
            del encoded[at]
    mutated = bytes(encoded)
    decoded = decode_or_bad_input(name, mutated)
    if decoded is None:
        return
    again = CODEC.encode(name, decoded)
    if again != mutated:
        longer_form = re.search(rb"[\x80-\xff]\x00|[\x80-\xff]{9}[\x02-\x7f]", mutated[10:])
        assert len(again) <= len(mutated) and longer_form, (mutated.hex(), decoded)


# --- named types across files --------------------------------------------------------------------


def test_types_from_other_files_are_written_out_at_first_use_only(tmp_path: Path) -> None:
    (tmp_path / "Base.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Base",
                "namespace": "a",
                "fields": [{"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["X", "Y"]}}],
            }
        )
    )
    (tmp_path / "User.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "User",
                "namespace": "b",
                "fields": [
                    {"name": "first", "type": "a.Base"},
                    {"name": "second", "type": ["null", "a.Base"]},
                    {"name": "kind", "type": "a.Kind"},
                ],
            }
        )
    )
    codec = AvroCodec(tmp_path)
    base = '{"name":"a.Base","type":"record","fields":[{"name":"kind","type":'
    kind = '{"name":"a.Kind","type":"enum","symbols":["X","Y"]}'
    assert codec.canonical_form("Base") == base + kind + "}]}"
    assert codec.canonical_form("b.User") == (
        '{"name":"b.User","type":"record","fields":[{"name":"first","type":'
        + base
        + kind
        + '}]}},{"name":"second","type":["null","a.Base"]},{"name":"kind","type":"a.Kind"}]}'
    )
    datum = {"first": {"kind": "Y"}, "second": {"kind": "X"}, "kind": "X"}
    assert codec.decode("User", codec.encode("User", datum)) == datum


def test_an_undefined_type_is_reported_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "Lonely.avsc").write_text(
        json.dumps({"type": "record", "name": "Lonely", "fields": [{"name": "x", "type": "Missing"}]})
    )
    with pytest.raises(ValueError, match=r"Lonely\.avsc: .*unknown type Missing"):
        AvroCodec(tmp_path)


def zigzag_varint(value: int) -> bytes:
    """Avro's binary form of a long."""
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while encoded >= 0x80:
        out.append(encoded & 0x7F | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def test_int_beyond_32_bits_is_corrupt(codec: AvroCodec) -> None:
    # fastavro alone would return it, as its int reader is its long reader; Java rejects it.
    datum = {**DATUMS[-1][1], "source_topic": "t", "partition": 1}
    encoded = codec.encode("DeadLetter", datum)
    assert encoded[10:13] == b"\x02t" + zigzag_varint(1)
    wide = encoded[:12] + zigzag_varint(2**31) + encoded[13:]
    with pytest.raises(BadInput, match="corrupt poafilter.DeadLetter record: partition: int 2147483648 beyond 32 bits"):
        codec.decode("DeadLetter", wide)


def test_every_avro_type_a_future_field_may_use(tmp_path: Path) -> None:
    """The validator and the inliner cover what compatible evolution may add, not only today's fields."""
    (tmp_path / "Part.avsc").write_text(
        json.dumps({"type": "record", "name": "Part", "namespace": "p", "fields": [{"name": "n", "type": "int"}]})
    )
    (tmp_path / "Kit.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Kit",
                "namespace": "p",
                "fields": [
                    {"name": "flag", "type": "boolean"},
                    {"name": "ratio", "type": "float"},
                    {"name": "mean", "type": "double"},
                    {"name": "parts", "type": {"type": "array", "items": "Part"}},
                    {"name": "spares", "type": {"type": "map", "values": "Part"}},
                    {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
                    {"name": "tags", "type": {"type": "array", "items": "Tag"}},
                    {"name": "either", "type": ["string", "long", "Part"]},
                ],
            }
        )
    )
    codec = AvroCodec(tmp_path)
    assert codec.canonical_form("Kit").count('"name":"p.Part"') == 1  # in full once, then by name
    datum = {
        "flag": True,
        "ratio": 0.5,
        "mean": 2.25,
        "parts": [{"n": 1}, {"n": -2}],
        "spares": {"a": {"n": 3}},
        "tag": b"ab",
        "tags": [b"cd"],
        "either": {"n": 4},
    }
    assert codec.decode("Kit", codec.encode("Kit", datum)) == datum
    changes: list[tuple[dict[Any, Any], str]] = [
        ({"flag": 1}, "p.Kit.flag: expected boolean, got 1 (int)"),
        ({"ratio": "0.5"}, "p.Kit.ratio: expected float"),
        ({"mean": False}, "p.Kit.mean: expected double"),
        ({"parts": {"n": 1}}, "p.Kit.parts: expected an array (list)"),
        ({"parts": [{"n": 1}, {"n": 2**31}]}, "p.Kit.parts[1].n: expected int"),
        ({"spares": [{"n": 1}]}, "p.Kit.spares: expected a map (dict)"),
        ({"spares": {1: {"n": 1}}}, "p.Kit.spares: map keys must be strings"),
        ({"spares": {"a": {"m": 1}}}, "p.Kit.spares['a'].n: required field is missing"),
        ({"tag": b"abc"}, "p.Kit.tag: expected 2 bytes"),
        ({"tags": [b"c"]}, "p.Kit.tags[0]: expected 2 bytes"),
        ({"either": 1.5}, "p.Kit.either: expected string or long or p.Part, got 1.5 (float)"),
        ({"either": {"n": "4"}}, "p.Kit.either.n: expected int"),
    ]
    for change, message in changes:
        with pytest.raises(BadInput) as caught:
            codec.encode("Kit", {**datum, **change})
        assert message in str(caught.value)
