"""SchemaRegistryClient and the codec's Confluent framing, against a tiny in-process registry."""

import io
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import NoSuchAvroSchema, SchemaRegistryClient, SchemaRegistryError

ALERT = {
    "alert_id": "ALERT-0003",
    "alert_code": "AD1",
    "device_id": "00-DB-12-34-56-78-90-A1",
    "mpxn": None,
    "raised_at": 1_735_689_540_000,
    "received_at": 1_735_689_601_234,
    "payload": b"\x01\x02",
}
DEVICE_ALERT_AVSC = Path(__file__).resolve().parents[3] / "schemas" / "DeviceAlert.avsc"
FIRST_ID = 4242  # IDs with more than one non-zero byte, to catch byte-order mistakes


class FakeRegistry:
    """Just POST /subjects/{subject}/versions and GET /schemas/ids/{id}, as Confluent's registry answers them."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}  # id -> answer body of GET /schemas/ids/{id}
        self.subjects: dict[str, dict[str, int]] = {}  # subject -> schema text -> id
        self.requests: list[tuple[str, str]] = []
        self.fail_with: tuple[int, bytes] | None = None  # (status, body) for every request
        self.delay = 0.0
        self.lock = threading.Lock()

    def add(self, answer: dict[str, Any]) -> int:
        with self.lock:
            schema_id = FIRST_ID + len(self.schemas)
            self.schemas[schema_id] = answer
            return schema_id

    def handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(("GET", self.path))
                match = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
                answer = match and registry.schemas.get(int(match.group(1)))
                if answer:
                    self.answer(200, answer)
                else:
                    self.answer(404, {"error_code": 40403, "message": "Schema not found"})

            def do_POST(self) -> None:
                registry.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                match = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
                assert match and self.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
                versions = registry.subjects.setdefault(match.group(1), {})
                if body["schema"] not in versions:
                    versions[body["schema"]] = registry.add({"schema": body["schema"]})
                self.answer(200, {"id": versions[body["schema"]]})

            def answer(self, status: int, body: dict[str, Any]) -> None:
                time.sleep(registry.delay)
                raw = json.dumps(body).encode()
                if registry.fail_with:
                    status, raw = registry.fail_with
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except BrokenPipeError:  # the client gave up first (test_timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def registry() -> Iterator[tuple[FakeRegistry, str]]:
    fake = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


# --- the client ------------------------------------------------------------------------------------


def test_register_returns_the_id_and_caches_it(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    client = SchemaRegistryClient(url)
    assert client.register("dno.alerts-value", '"string"') == FIRST_ID
    assert client.register("dno.alerts-value", '"string"') == FIRST_ID
    assert client.register("dno.alerts-value", '"long"') == FIRST_ID + 1
    assert fake.requests == [("POST", "/subjects/dno.alerts-value/versions")] * 2
    assert client.get_schema(FIRST_ID) == '"string"'  # known from registering: no request
    assert len(fake.requests) == 2


def test_get_schema_fetches_once(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema_id = fake.add({"schema": '"bytes"'})
    client = SchemaRegistryClient(url)
    assert client.get_schema(schema_id) == '"bytes"'
    assert client.get_schema(schema_id) == '"bytes"'
    assert fake.requests == [("GET", f"/schemas/ids/{schema_id}")]


def test_unknown_id_is_no_such_schema(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    with pytest.raises(NoSuchAvroSchema, match="40403: Schema not found"):
        SchemaRegistryClient(url).get_schema(7)


def test_a_protobuf_schema_is_not_an_avro_schema(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema_id = fake.add({"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"})
    with pytest.raises(NoSuchAvroSchema, match="is PROTOBUF, not Avro"):
        SchemaRegistryClient(url).get_schema(schema_id)


def test_registry_refusal_carries_its_message(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (
        409,
        json.dumps({"error_code": 409, "message": "Schema being registered is incompatible"}).encode(),
    )
    with pytest.raises(SchemaRegistryError, match="refused POST .*HTTP 409, error 409: Schema being registered"):
        SchemaRegistryClient(url).register("s-value", '"string"')


def test_server_error_is_not_no_such_schema(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (500, b"<html>oops</html>")
    with pytest.raises(SchemaRegistryError, match="HTTP 500") as caught:
        SchemaRegistryClient(url).get_schema(1)
    assert not isinstance(caught.value, NoSuchAvroSchema)


def test_non_json_answer(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (200, b"not json")
    with pytest.raises(SchemaRegistryError, match="something other than JSON"):
        SchemaRegistryClient(url).get_schema(1)


def test_answer_without_id(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (200, b'{"version": 1}')
    with pytest.raises(SchemaRegistryError, match="without an integer id"):
        SchemaRegistryClient(url).register("s-value", '"string"')


def test_timeout(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.delay = 5.0
    started = time.monotonic()
    with pytest.raises(SchemaRegistryError, match="cannot reach schema registry"):
        SchemaRegistryClient(url, timeout=0.2).get_schema(1)
    assert time.monotonic() - started < 3.0


def test_unreachable_registry() -> None:
    client = SchemaRegistryClient("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(SchemaRegistryError, match=r"cannot reach schema registry http://127.0.0.1:9 \(GET"):
        client.get_schema(1)


# --- the codec's Confluent framing ------------------------------------------------------------------


def confluent(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def avro_body(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(schema), datum)
    return buffer.getvalue()


def test_encode_registers_the_full_schema_under_topic_value(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    encoded = codec.encode("SuppressedAlert", suppressed(), topic="dsp.alerts.suppressed")
    assert encoded[:5] == confluent(FIRST_ID, b"")
    registered = json.loads(fake.schemas[FIRST_ID]["schema"])
    assert registered["fields"][0]["type"]["name"] == "poafilter.DeviceAlert"  # written out, not a bare name
    assert list(fake.subjects) == ["dsp.alerts.suppressed-value"]
    assert encoded[5:] == AvroCodec().encode("SuppressedAlert", suppressed())[10:]


def suppressed() -> dict[str, Any]:
    return {
        "alert": ALERT,
        "esme_id": "00-DB-12-34-56-78-90-A0",
        "activation_request_id": "r:1",
        "window_start": 1,
        "window_end": 2,
        "reason": "activation",
        "decided_at": 3,
        "filter_version": "0.1.0",
    }


def test_confluent_round_trip_and_both_framings_accepted(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    framed = codec.encode("DeviceAlert", ALERT, topic="dsp.alerts")
    assert codec.decode("DeviceAlert", framed) == ALERT
    assert codec.decode("DeviceAlert", AvroCodec().encode("DeviceAlert", ALERT)) == ALERT
    assert codec.encode("DeviceAlert", ALERT, topic="dsp.alerts") == framed
    assert [method for method, _ in fake.requests] == ["POST"]  # cached: no second POST, no GET


def test_reads_our_schema_registered_by_someone_else(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema_id = fake.add({"schema": DEVICE_ALERT_AVSC.read_text()})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    body = AvroCodec().encode("DeviceAlert", ALERT)[10:]
    assert codec.decode("DeviceAlert", confluent(schema_id, body)) == ALERT
    assert codec.decode("DeviceAlert", confluent(schema_id, body)) == ALERT
    assert fake.requests == [("GET", f"/schemas/ids/{schema_id}")]


def device_alert_v2() -> dict[str, Any]:
    """A compatible newer DeviceAlert: fields reordered, one added. The codec must resolve it."""
    schema = json.loads(DEVICE_ALERT_AVSC.read_text())
    schema["fields"].reverse()
    schema["fields"].append({"name": "severity", "type": ["null", "string"], "default": None})
    return schema


def test_resolves_another_version_of_the_schema(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema = device_alert_v2()
    schema_id = fake.add({"schema": json.dumps(schema)})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    body = avro_body(schema, {**ALERT, "severity": "high"})
    assert codec.decode("DeviceAlert", confluent(schema_id, body)) == ALERT


def test_record_of_another_known_type_by_id(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    framed = codec.encode("TrackedDevice", {"device_id": "d", "added_at": 1}, topic="dsp.tracked-devices")
    with pytest.raises(BadInput, match=r"got a poafilter.TrackedDevice record \(schema ID 4242\) where a poafilter"):
        codec.decode("DeviceAlert", framed)


def test_record_of_a_foreign_type_by_id(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema = {"type": "record", "name": "Reading", "namespace": "acme", "fields": [{"name": "kwh", "type": "long"}]}
    schema_id = fake.add({"schema": json.dumps(schema)})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(BadInput, match=r"got a acme.Reading record \(schema ID \d+\) where a poafilter.DeviceAlert"):
        codec.decode("DeviceAlert", confluent(schema_id, avro_body(schema, {"kwh": 5})))


def test_incompatible_version_cannot_be_read(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema = device_alert_v2()
    next(field for field in schema["fields"] if field["name"] == "received_at")["type"] = "string"
    schema_id = fake.add({"schema": json.dumps(schema)})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    body = avro_body(schema, {**ALERT, "received_at": "yesterday"})
    with pytest.raises(
        BadInput, match=rf"the record \(writer schema ID {schema_id}\) cannot be read as a poafilter.DeviceAlert"
    ):
        codec.decode("DeviceAlert", confluent(schema_id, body))


def test_unknown_schema_id_is_bad_input(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(BadInput, match="schema ID 99, which the registry does not have"):
        codec.decode("DeviceAlert", confluent(99, b"\x00"))


def test_unparseable_registry_schema_is_bad_input(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    schema_id = fake.add({"schema": '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]}'})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(BadInput, match=f"schema ID {schema_id} from the registry is not an Avro schema"):
        codec.decode("DeviceAlert", confluent(schema_id, b"\x00"))


def test_truncated_confluent_header(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(BadInput, match="too short for the Confluent framing header"):
        codec.decode("DeviceAlert", b"\x00\x00\x10")


def test_not_avro_names_both_framings(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(BadInput, match="marker C3 01 or the Confluent schema-registry magic byte 00"):
        codec.decode("DeviceAlert", b"\x7f\x00")


def test_registry_outage_is_not_bad_input(registry: tuple[FakeRegistry, str]) -> None:
    # The value may be fine: the worker must retry, not dead-letter it.
    fake, url = registry
    fake.fail_with = (503, b"")
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(SchemaRegistryError) as caught:
        codec.decode("DeviceAlert", confluent(FIRST_ID, b"\x00"))
    assert not isinstance(caught.value, BadInput | NoSuchAvroSchema)
    with pytest.raises(SchemaRegistryError):
        codec.encode("DeviceAlert", ALERT, topic="dsp.alerts")


class CountingClient(SchemaRegistryClient):
    """Counts what the codec asks, so the tests can see the codec's own caches at work."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: list[str] = []

    def register(self, subject: str, schema: str) -> int:
        self.calls.append("register")
        return super().register(subject, schema)

    def get_schema(self, schema_id: int) -> str:
        self.calls.append("get_schema")
        return super().get_schema(schema_id)


def test_codec_asks_the_registry_once_per_topic_and_once_per_id(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    v2 = device_alert_v2()
    v2_id = fake.add({"schema": json.dumps(v2)})
    client = CountingClient(url)
    codec = AvroCodec(registry=client)
    for _ in range(3):
        codec.encode("DeviceAlert", ALERT, topic="dsp.alerts")
        codec.encode("DeviceAlert", ALERT, topic="dno.alerts")
        assert codec.decode("DeviceAlert", confluent(v2_id, avro_body(v2, {**ALERT, "severity": None}))) == ALERT
    assert client.calls == ["register", "register", "get_schema"]
    assert sorted(fake.subjects) == ["dno.alerts-value", "dsp.alerts-value"]


def test_encoding_for_a_registry_needs_the_topic(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    with pytest.raises(ValueError, match="needs the topic"):
        codec.encode("DeviceAlert", ALERT)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50, deadline=None)
@given(body=st.binary(max_size=100), schema_id=st.sampled_from([FIRST_ID, FIRST_ID + 1, 77]))
def test_random_confluent_bodies(registry: tuple[FakeRegistry, str], body: bytes, schema_id: int) -> None:
    fake, url = registry
    if not fake.schemas:
        fake.add({"schema": DEVICE_ALERT_AVSC.read_text()})
        fake.add({"schema": json.dumps(device_alert_v2())})
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    try:
        codec.decode("DeviceAlert", confluent(schema_id, body))
    except BadInput as exc:
        assert str(exc)
