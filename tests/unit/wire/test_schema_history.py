"""Schema evolution (contract 3): every version ever published is read, resolved to the current one.

schemas/<Name>.avsc is the current version; schemas/history/<Name>.v<N>.avsc each version published before it.
"""

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from pipeline.core.bad_input import BadInput
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import SchemaRegistryClient
from tests.unit.wire.fake_registry import FakeRegistry, confluent

REPO = Path(__file__).resolve().parents[3]
HISTORY = REPO / "schemas" / "history"
VECTORS = json.loads((REPO / "tests" / "vectors" / "fingerprints.json").read_text())
CODEC = AvroCodec()

# Every version this project has published, by fingerprint, oldest first. A published version stays
# readable for good: a change to a schema that drops one of these fails here. Publishing a version adds one.
PUBLISHED = {
    "poafilter.ActivationOutcome": ["a5a7a39f8b260dcf"],
    "poafilter.DeadLetter": ["f6dc60e87b9d5e15"],
    "poafilter.DeviceAlert": ["3925567dd452e05a"],
    "poafilter.InventoryRecord": ["6fc5a24576a94d9d", "6423bfd5677156a2"],
    "poafilter.ServiceRequest": ["09379bb10010aee1"],
    "poafilter.SuppressedAlert": ["9be3dfc65e3389f8"],
    "poafilter.TrackedDevice": ["7f41b88022398325"],
}

V1 = {
    "device_id": "00-DB-12-34-56-78-90-A0",
    "device_type": "ESME",
    "chf_id": "00-DB-12-34-56-78-90-A1",
    "mpxn": "1012345678901",
    "updated_at": 1_790_000_000_000,
}


def v1_schema() -> dict[str, Any]:
    return dict(json.loads((HISTORY / "InventoryRecord.v1.avsc").read_text()))


def v1_body(datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(v1_schema()), datum)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_version_is_still_known(name: str) -> None:
    assert [fingerprint.hex() for fingerprint in CODEC.published_fingerprints(name)][: len(PUBLISHED[name])] == (
        PUBLISHED[name]
    )


@pytest.mark.parametrize("name", sorted(VECTORS["published"]))
def test_published_fingerprints_match_java(name: str) -> None:
    java = [version["fingerprint_hex"] for version in VECTORS["published"][name]]
    assert [fingerprint.hex() for fingerprint in CODEC.published_fingerprints(name)] == java


def test_inventory_record_version_2_adds_an_optional_postcode() -> None:
    v1, v2 = CODEC.published_fingerprints("InventoryRecord")
    assert CODEC.fingerprint("InventoryRecord") == v2
    assert CODEC.canonical_form("InventoryRecord").endswith(
        '{"name":"updated_at","type":"long"},{"name":"postcode","type":["null","string"]}]}'
    )
    fields = json.loads((REPO / "schemas" / "InventoryRecord.avsc").read_text())["fields"]
    assert fields[-1]["name"] == "postcode" and fields[-1]["default"] is None
    assert [field["name"] for field in v1_schema()["fields"]] == [field["name"] for field in fields[:-1]]


def test_version_1_single_object_bytes_read_as_version_2_with_no_postcode() -> None:
    v1_fingerprint = CODEC.published_fingerprints("InventoryRecord")[0]
    value = b"\xc3\x01" + v1_fingerprint + v1_body(V1)
    assert CODEC.decode("InventoryRecord", value) == {**V1, "postcode": None}


def test_version_2_bytes_carry_the_postcode() -> None:
    datum = {**V1, "postcode": "SW1A 1AA"}
    assert CODEC.decode("InventoryRecord", CODEC.encode("InventoryRecord", datum)) == datum
    assert CODEC.encode("InventoryRecord", V1)[-1:] == b"\x00"  # written as version 2, postcode null


def test_version_1_and_2_in_confluent_framing(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    v1_id = fake.add({"schema": json.dumps(v1_schema())})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    assert codec.decode("InventoryRecord", confluent(v1_id, v1_body(V1))) == {**V1, "postcode": None}
    datum = {**V1, "postcode": "EH1 1YZ"}
    framed = codec.encode("InventoryRecord", datum, topic="dsp.inventory")
    assert json.loads(fake.schemas[int.from_bytes(framed[1:5], "big")]["schema"])["fields"][-1]["name"] == "postcode"
    assert codec.decode("InventoryRecord", framed) == datum


def test_corrupt_version_1_bytes_are_bad_input() -> None:
    v1_fingerprint = CODEC.published_fingerprints("InventoryRecord")[0]
    body = v1_body(V1)
    with pytest.raises(BadInput, match=r"corrupt poafilter.InventoryRecord record \(writer version 1\): chf_id: union"):
        CODEC.decode(
            "InventoryRecord", b"\xc3\x01" + v1_fingerprint + body.replace(b"\x02\x2e00-DB", b"\x01\x2e00-DB", 1)
        )
    with pytest.raises(BadInput, match=r"\(writer version 1\): 1 bytes left over"):
        CODEC.decode("InventoryRecord", b"\xc3\x01" + v1_fingerprint + body + b"\x00")


def test_an_unpublished_version_is_bad_input(tmp_path: Path) -> None:
    schema = v1_schema()
    schema["fields"].append({"name": "floor", "type": ["null", "int"], "default": None})
    (tmp_path / "InventoryRecord.avsc").write_text(json.dumps(schema))
    fingerprint = AvroCodec(tmp_path).fingerprint("InventoryRecord")
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(schema), {**V1, "floor": 2})
    with pytest.raises(BadInput, match=f"unknown writer schema fingerprint {fingerprint.hex()}"):
        CODEC.decode("InventoryRecord", b"\xc3\x01" + fingerprint + buffer.getvalue())


def test_a_version_1_record_of_another_type_is_named() -> None:
    v1_fingerprint = CODEC.published_fingerprints("InventoryRecord")[0]
    with pytest.raises(BadInput, match="got a poafilter.InventoryRecord record where a poafilter.TrackedDevice is due"):
        CODEC.decode("TrackedDevice", b"\xc3\x01" + v1_fingerprint + v1_body(V1))


# --- the history folder's layout -------------------------------------------------------------------


def write(folder: Path, name: str, schema: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(schema))


def record(name: str, *fields: str) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "t",
        "fields": [{"name": field, "type": ["null", "string"], "default": None} for field in fields],
    }


def test_versions_number_from_the_history(tmp_path: Path) -> None:
    write(tmp_path, "Thing.avsc", record("Thing", "a", "b", "c"))
    write(tmp_path / "history", "Thing.v1.avsc", record("Thing", "a"))
    write(tmp_path / "history", "Thing.v2.avsc", record("Thing", "a", "b"))
    codec = AvroCodec(tmp_path)
    assert len(codec.published_fingerprints("Thing")) == 3
    assert codec.published_fingerprints("Thing")[-1] == codec.fingerprint("Thing")
    old = io.BytesIO()
    schemaless_writer(old, parse_schema(record("Thing", "a")), {"a": "x"})
    v1 = codec.published_fingerprints("Thing")[0]
    assert codec.decode("Thing", b"\xc3\x01" + v1 + old.getvalue()) == {"a": "x", "b": None, "c": None}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"Thing.v2.avsc": record("Thing", "a")}, r"versions of Thing must run 1, 2, \.\.\. without a gap: \[2\]"),
        ({"Other.v1.avsc": record("Other", "a")}, "t.Other is not a version of a record in"),
        ({"Thing.v1.avsc": record("Thing", "a", "b")}, "the same schema as t.Thing version 2"),
        ({"Thing-1.avsc": record("Thing", "a")}, r"a published schema's file is named <Name>\.v<N>\.avsc"),
        (
            {"Thing.v1.avsc": {**record("Thing"), "fields": [{"name": "x", "type": "t.Elsewhere"}]}},
            "not a usable, self-contained Avro schema",
        ),
    ],
)
def test_a_bad_history_is_refused(tmp_path: Path, files: dict[str, dict[str, Any]], message: str) -> None:
    write(tmp_path, "Thing.avsc", record("Thing", "a", "b"))
    for name, schema in files.items():
        write(tmp_path / "history", name, schema)
    with pytest.raises(ValueError, match=message):
        AvroCodec(tmp_path)
