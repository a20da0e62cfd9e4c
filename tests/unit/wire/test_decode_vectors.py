"""The generic decoder and the fast readers against the Java Avro library's verdicts (tests/vectors).

decode_vectors.json holds, for every published version of every record, valid encodings and corrupt ones
(enum and union indexes out of range, negative or too large; bad lengths; truncations; trailing bytes;
overlong varints; unknown fingerprints), with what the Java library's single-object decoder made of each.
The codec must reject what Java rejects and read what Java reads, resolved to the current version, with
the same values. Regenerate with tests/vectors/generate_fingerprints.sh.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.bad_input import BadInput
from pipeline.wire import validation
from pipeline.wire.alert_bytes import AlertFields, alert_fields, read_alert_fields
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.reference_bytes import read_inventory_record, read_tracked_device

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[3] / "tests" / "vectors" / "decode_vectors.json").read_text()
)["vectors"]
CODEC = AvroCodec()


def from_java(value: Any) -> Any:
    """A datum from the vectors file: bytes are written there as {"hex": ...}."""
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {key: from_java(item) for key, item in value.items()}
    return value


def stricter_than_java(vector: dict[str, Any]) -> str | None:
    """Why we reject bytes the Java library reads, when we do on purpose (see pipeline/wire/avro_scan.py)."""
    if vector["case"].startswith("int beyond 32 bits"):
        return "Java reads the low 32 bits of a wider int"
    if vector.get("java_replaced_invalid_utf8"):
        return "Java reads invalid UTF-8 with replacement characters"
    return None


def vector_id(vector: dict[str, Any]) -> str:
    return f"{vector['record'].rpartition('.')[2]}-v{vector['writer_version']}-{vector['variant']}-{vector['case']}"


def test_vectors_cover_every_published_version_and_every_kind_of_corruption() -> None:
    versions = {(vector["record"], vector["writer_version"]) for vector in VECTORS}
    assert versions == {
        (name, version)
        for name in CODEC.record_names
        for version in range(1, len(CODEC.published_fingerprints(name)) + 1)
    }
    cases = " | ".join(vector["case"] for vector in VECTORS)
    for kind in (
        "enum -1 at outcome",
        "enum 5 at outcome",
        "union -1 at mpxn",
        "union 2 at mpxn",
        "length -1 at",
        "truncated to",
        "trailing 00",
        "long in 10 bytes",
        "long in 11 bytes",
        "unknown fingerprint",
    ):
        assert kind in cases
    assert {vector["java"] for vector in VECTORS} == {"accept", "reject"}


def test_java_resolves_every_published_version_to_the_current_one() -> None:
    """Else an old version would be rejected by both, and the agreement below would not show it."""
    rejected = [vector_id(vector) for vector in VECTORS if vector["case"] == "valid" and vector["java"] != "accept"]
    assert rejected == []


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_decoder_agrees_with_java(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    if vector["java"] == "reject" or stricter_than_java(vector):
        with pytest.raises(BadInput) as caught:
            CODEC.decode(vector["record"], data)
        assert str(caught.value)
    else:
        assert CODEC.decode(vector["record"], data) == from_java(vector["datum"])


def test_the_outcome_of_the_issue_is_rejected() -> None:
    """Issue 9, item 4: outcome index -3 was read as HASH_MISMATCH (a withdrawal)."""
    datum = {"request_id": "r:1", "device_id": "00-DB-12-34-56-78-90-A0", "outcome": "UNKNOWN", "received_at": 5}
    encoded = CODEC.encode("ActivationOutcome", datum)
    assert encoded[-2:] == b"\x08\x0a"  # enum index 4, then the long 5
    with pytest.raises(BadInput, match=r"corrupt poafilter.ActivationOutcome record: outcome: enum index -3 out of"):
        CODEC.decode("ActivationOutcome", encoded[:-2] + b"\x05\x0a")


def fast_alert(data: bytes) -> object:
    raw = read_alert_fields(data, CODEC.single_object_header("DeviceAlert"))
    return None if raw is None else alert_fields(raw)


def generic_alert(data: bytes) -> object:
    alert = validation.device_alert(CODEC.decode("DeviceAlert", data))
    return AlertFields(alert.alert_id, alert.alert_code, alert.device_id, alert.received_at)


def generic_inventory(data: bytes) -> object:
    record = validation.inventory_record(CODEC.decode("InventoryRecord", data))
    return record.device_id, record.chf_id if record.is_esme else None, record.postcode, record.is_ch_function


def generic_tracked(data: bytes) -> object:
    return validation.tracked_device(CODEC.decode("TrackedDevice", data)).device_id


FAST_READERS: dict[str, tuple[Callable[[bytes], object], Callable[[bytes], object]]] = {
    "poafilter.DeviceAlert": (fast_alert, generic_alert),
    "poafilter.InventoryRecord": (
        lambda data: read_inventory_record(data, CODEC.single_object_header("InventoryRecord")),
        generic_inventory,
    ),
    "poafilter.TrackedDevice": (
        lambda data: read_tracked_device(data, CODEC.single_object_header("TrackedDevice")),
        generic_tracked,
    ),
}


@pytest.mark.parametrize("vector", [vector for vector in VECTORS if vector["record"] in FAST_READERS], ids=vector_id)
def test_fast_readers_never_accept_what_the_generic_path_rejects(vector: dict[str, Any]) -> None:
    fast, generic = FAST_READERS[vector["record"]]
    data = bytes.fromhex(vector["hex"])
    answer = fast(data)
    if answer is None:
        return
    assert vector["java"] == "accept"
    assert answer == generic(data)


def test_fast_readers_read_the_usual_valid_records() -> None:
    """So the test above is not passed by readers that decline everything."""
    read = {
        name: sum(
            1
            for vector in VECTORS
            if vector["record"] == name and vector["case"] == "valid" and fast(bytes.fromhex(vector["hex"]))
        )
        for name, (fast, _generic) in FAST_READERS.items()
    }
    assert all(count >= 1 for count in read.values()), read
