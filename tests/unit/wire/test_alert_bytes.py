"""The worker's fast DeviceAlert reader and audit splice, held to the generic path.

The fast reader may say "not mine" (None) to anything, but when it accepts a record the generic path
(fastavro + validation) must accept it too, with the same fields. And it must accept the usual shape,
or the worker would silently lose its speed.
"""

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import Activation, RequestVersion, Window
from pipeline.core.alert_decisions import Suppress
from pipeline.core.bad_input import BadInput
from pipeline.wire import validation
from pipeline.wire.alert_bytes import alert_fields, read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import audit_fields, suppressed_alert

CODEC = AvroCodec()
HEADER = CODEC.single_object_header("DeviceAlert")
T0 = 1_790_000_000_000

hex_octet = st.text("0123456789abcdefABCDEF", min_size=2, max_size=2)
good_device_id = st.lists(hex_octet, min_size=8, max_size=8).map("-".join)
any_device_id = st.one_of(good_device_id, st.text(max_size=30), st.just("00-11-22-33-44-55-66-77 "))
timestamps = st.one_of(
    st.integers(T0 - 10**9, T0 + 10**9),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([946_684_800_000 - 1, 946_684_800_000, 32_503_680_000_000 - 1, 32_503_680_000_000]),
)
texts = st.one_of(st.text(max_size=10), st.text(min_size=60, max_size=200), st.sampled_from(["", " ", "\u2003", "AD1"]))

alert_datums = st.fixed_dictionaries(
    {
        "alert_id": texts,
        "alert_code": st.one_of(st.sampled_from(["AD1", "8F36", "ad1"]), texts),
        "device_id": any_device_id,
        "mpxn": st.one_of(st.none(), texts),
        "raised_at": st.one_of(st.none(), timestamps),
        "received_at": timestamps,
        "payload": st.one_of(st.none(), st.binary(max_size=10), st.binary(min_size=64, max_size=400)),
    }
)


def generic(value: bytes) -> tuple[str, str, str, int] | None:
    try:
        alert = validation.device_alert(CODEC.decode("DeviceAlert", value))
    except BadInput:
        return None
    return alert.alert_id, alert.alert_code, alert.device_id, alert.received_at


def fast(value: bytes) -> tuple[str, str, str, int] | None:
    raw = read_alert_fields(value, HEADER)
    return None if raw is None else tuple(alert_fields(raw))  # type: ignore[return-value]


def usual(**fields: Any) -> dict[str, Any]:
    datum = {
        "alert_id": "dsp-000123",
        "alert_code": "AD1",
        "device_id": "00-db-12-34-56-78-90-a0",
        "mpxn": None,
        "raised_at": None,
        "received_at": T0,
        "payload": None,
    }
    return datum | fields


@given(alert_datums)
@settings(max_examples=400)
def test_accepts_only_what_the_generic_path_accepts_with_the_same_fields(datum: dict[str, Any]) -> None:
    value = CODEC.encode("DeviceAlert", datum)
    answer = fast(value)
    if answer is not None:
        assert answer == generic(value)


@given(alert_datums, st.data())
@settings(max_examples=400)
def test_mutated_bytes_are_never_accepted_when_the_generic_path_rejects(datum: dict[str, Any], data: Any) -> None:
    value = bytearray(CODEC.encode("DeviceAlert", datum))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "extend", "insert"]))
    at = data.draw(st.integers(0, len(value) - 1))
    if mutation == "flip":
        value[at] = data.draw(st.integers(0, 255))
    elif mutation == "truncate":
        del value[at:]
    elif mutation == "extend":
        value += data.draw(st.binary(min_size=1, max_size=4))
    else:
        value[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    answer = fast(bytes(value))
    if answer is not None:
        assert answer == generic(bytes(value))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"alert_code": "8F36", "mpxn": "1012345678901", "raised_at": T0 - 5000},
        {"payload": bytes(range(256)) * 2},  # a long payload: a two-byte length
        {"device_id": "00-DB-12-34-56-78-90-A0", "alert_id": "é-ünïcödé"},
    ],
)
def test_the_usual_shapes_are_read_by_the_fast_path(fields: dict[str, Any]) -> None:
    value = CODEC.encode("DeviceAlert", usual(**fields))
    assert fast(value) == generic(value)
    assert fast(value) is not None


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"device_id": "00DB1234567890A0"}, "no hyphens"),
        ({"alert_id": "   "}, "blank alert_id"),
        ({"received_at": 946_684_799_999}, "before 2000"),
        ({"raised_at": 32_503_680_000_000}, "raised in 3000"),
    ],
)
def test_invalid_alerts_are_left_to_the_generic_path(fields: dict[str, Any], why: str) -> None:
    value = CODEC.encode("DeviceAlert", usual(**fields))
    assert fast(value) is None, why
    assert generic(value) is None, why


def test_other_framings_and_records_are_left_to_the_generic_path() -> None:
    tracked = CODEC.encode("TrackedDevice", {"device_id": "00-DB-12-34-56-78-90-A0", "added_at": T0})
    assert read_alert_fields(tracked, HEADER) is None
    assert read_alert_fields(b"\x00\x00\x00\x00\x01" + CODEC.encode("DeviceAlert", usual())[10:], HEADER) is None


@given(alert_datums)
@settings(max_examples=200)
def test_spliced_audit_record_is_byte_identical_to_encoding_it(datum: dict[str, Any]) -> None:
    value = CODEC.encode("DeviceAlert", datum)
    assume(generic(value) is not None)
    version = RequestVersion("req-1", "00-DB-12-34-56-78-90-A1", T0 - 1000, T0)
    decision = Suppress(Activation(version, Window(T0, T0 + 1_800_000)))
    audit = audit_fields(decision)
    spliced = suppressed_alert_bytes(CODEC.header("SuppressedAlert"), value[len(HEADER) :], audit)
    assert spliced == CODEC.encode("SuppressedAlert", {"alert": CODEC.decode("DeviceAlert", value), **audit})
    assert CODEC.decode("SuppressedAlert", spliced)["alert"] == CODEC.decode("DeviceAlert", value)
    assert suppressed_alert(datum, decision).keys() == {"alert", *audit}
