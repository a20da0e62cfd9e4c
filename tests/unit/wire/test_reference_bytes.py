"""The fast TrackedDevice/InventoryRecord readers and writers, held to the generic path (fastavro and the
validators): the readers accept only what it accepts, with the same result, and read the usual shape; the
writers produce the very bytes fastavro does."""

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.reference_bytes import (
    inventory_record_bytes,
    read_inventory_record,
    read_tracked_device,
    tracked_device_bytes,
)

CODEC = AvroCodec()
TRACKED = CODEC.single_object_header("TrackedDevice")
INVENTORY = CODEC.single_object_header("InventoryRecord")
T0 = 1_790_000_000_000

hex_octet = st.text("0123456789abcdefABCDEF", min_size=2, max_size=2)
good_id = st.lists(hex_octet, min_size=8, max_size=8).map("-".join)
device_ids = st.one_of(good_id, st.text(max_size=25), st.just(""))
texts = st.one_of(st.none(), st.text(max_size=8), st.text(min_size=64, max_size=120))
times = st.one_of(st.integers(T0 - 10**9, T0 + 10**9), st.integers(-(2**63), 2**63 - 1))

tracked_datums = st.fixed_dictionaries(
    {
        "device_id": device_ids,
        "manufacturer": texts,
        "model": texts,
        "firmware_version": texts,
        "list_version": texts,
        "added_at": times,
    }
)
inventory_datums = st.fixed_dictionaries(
    {
        "device_id": device_ids,
        "device_type": st.one_of(st.sampled_from(["ESME", "esme", "CHF", "chf", "GSME", " ", ""]), st.text(max_size=5)),
        "chf_id": st.one_of(st.none(), device_ids),
        "mpxn": texts,
        "updated_at": times,
        "postcode": texts,
    }
)


def generic_tracked(value: bytes) -> str | None:
    try:
        return validation.tracked_device(CODEC.decode("TrackedDevice", value)).device_id
    except BadInput:
        return None


def generic_inventory(value: bytes) -> tuple[str, str | None, str | None, bool] | None:
    try:
        record = validation.inventory_record(CODEC.decode("InventoryRecord", value))
    except BadInput:
        return None
    return record.device_id, record.chf_id if record.is_esme else None, record.postcode, record.is_ch_function


def mutate(value: bytes, data: Any) -> bytes:
    out = bytearray(value)
    at = data.draw(st.integers(0, len(out) - 1))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if kind == "flip":
        out[at] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        del out[at:]
    else:
        out += data.draw(st.binary(min_size=1, max_size=3))
    return bytes(out)


FAST_AND_GENERIC: dict[str, tuple[Any, Callable[[bytes], object], Callable[[bytes], object]]] = {
    "TrackedDevice": (tracked_datums, lambda v: read_tracked_device(v, TRACKED), generic_tracked),
    "InventoryRecord": (inventory_datums, lambda v: read_inventory_record(v, INVENTORY), generic_inventory),
}


@pytest.mark.parametrize("record", sorted(FAST_AND_GENERIC))
@given(data=st.data())
@settings(max_examples=300)
def test_fast_reader_accepts_only_what_the_generic_path_accepts(record: str, data: Any) -> None:
    datums, fast, generic = FAST_AND_GENERIC[record]
    value = CODEC.encode(record, data.draw(datums))
    for candidate in (value, mutate(value, data)):
        answer = fast(candidate)
        if answer is not None:
            assert answer == generic(candidate)


USUAL_ROW = {
    "device_id": "00-db-12-34-56-78-90-a0",
    "device_type": "ESME",
    "chf_id": "00-DB-12-34-56-78-90-A1",
    "mpxn": "1012345678901",
    "updated_at": T0,
}


@pytest.mark.parametrize(
    ("datum", "expected"),
    [
        (USUAL_ROW, ("00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-A1", None, False)),
        (
            {
                "device_id": "00-DB-12-34-56-78-90-A1",
                "device_type": "CHF",
                "chf_id": None,
                "mpxn": None,
                "updated_at": T0,
            },
            ("00-DB-12-34-56-78-90-A1", None, None, True),
        ),
        (
            {
                "device_id": "00-DB-12-34-56-78-90-A2",
                "device_type": "GSME",
                "chf_id": "00-DB-12-34-56-78-90-A1",
                "mpxn": None,
                "updated_at": T0,
            },
            ("00-DB-12-34-56-78-90-A2", None, None, False),
        ),
        (
            {
                "device_id": "00-DB-12-34-56-78-90-A3",
                "device_type": "esme",
                "chf_id": "",
                "mpxn": None,
                "updated_at": T0,
            },
            ("00-DB-12-34-56-78-90-A3", None, None, False),
        ),
    ],
)
def test_usual_inventory_rows_are_read_by_the_fast_path(
    datum: dict[str, Any], expected: tuple[str, str | None, str | None, bool]
) -> None:
    value = CODEC.encode("InventoryRecord", datum)
    assert read_inventory_record(value, INVENTORY) == expected == generic_inventory(value)


def test_usual_tracked_rows_are_read_by_the_fast_path() -> None:
    datum = {
        "device_id": "00-db-12-34-56-78-90-a0",
        "manufacturer": "L+G",
        "model": "E470",
        "firmware_version": "5.3",
        "list_version": "2026-11",
        "added_at": T0,
    }
    value = CODEC.encode("TrackedDevice", datum)
    assert read_tracked_device(value, TRACKED) == "00-DB-12-34-56-78-90-A0" == generic_tracked(value)


def test_a_record_of_another_type_is_left_to_the_generic_path() -> None:
    tracked = CODEC.encode("TrackedDevice", {"device_id": "00-DB-12-34-56-78-90-A0", "added_at": T0})
    assert read_inventory_record(tracked, INVENTORY) is None
    assert read_tracked_device(tracked[:-1], TRACKED) is None


@given(tracked_datums)
@settings(max_examples=200)
def test_tracked_writer_matches_fastavro_byte_for_byte(datum: dict[str, Any]) -> None:
    assert tracked_device_bytes(TRACKED, datum) == CODEC.encode("TrackedDevice", datum)


@given(inventory_datums)
@settings(max_examples=200)
def test_inventory_writer_matches_fastavro_byte_for_byte(datum: dict[str, Any]) -> None:
    assert inventory_record_bytes(INVENTORY, datum) == CODEC.encode("InventoryRecord", datum)
    without = {key: value for key, value in datum.items() if key != "postcode"}
    assert inventory_record_bytes(INVENTORY, without, postcode=datum["postcode"]) == CODEC.encode(
        "InventoryRecord", datum
    )


def test_version_1_inventory_bytes_are_left_to_the_generic_path() -> None:
    v1 = CODEC.published_fingerprints("InventoryRecord")[0]
    current = CODEC.encode("InventoryRecord", {**USUAL_ROW, "postcode": None})
    old = b"\xc3\x01" + v1 + current[10:-1]  # version 1: the same fields without postcode
    assert read_inventory_record(old, INVENTORY) is None
    assert generic_inventory(old) == ("00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-A1", None, False)


@pytest.mark.parametrize(("postcode", "read"), [("SW1A 1AA", "SW1A 1AA"), (" ", None), ("", None), (None, None)])
def test_a_postcode_is_read_by_the_fast_path_blank_as_none(postcode: str | None, read: str | None) -> None:
    value = CODEC.encode("InventoryRecord", {**USUAL_ROW, "postcode": postcode})
    expected = ("00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-A1", read, False)
    assert read_inventory_record(value, INVENTORY) == expected == generic_inventory(value)
