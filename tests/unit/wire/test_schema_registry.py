"""SchemaRegistryClient and the codec's Confluent framing, against a tiny in-process registry."""

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.wire.avro_codec import AvroCodec, codec_for_registry
from pipeline.wire.schema_registry import (
    MAX_IN_FLIGHT,
    NoSuchAvroSchema,
    RegistryAuthFileError,
    RegistryUnavailable,
    SchemaRegistryClient,
)
from tests.unit.wire.fake_registry import FIRST_ID, FakeRegistry, Serving, confluent

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
    with pytest.raises(RegistryUnavailable, match="refused POST .*HTTP 409, error 409: Schema being registered"):
        SchemaRegistryClient(url).register("s-value", '"string"')


def test_server_error_is_not_no_such_schema(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (500, b"<html>oops</html>")
    with pytest.raises(RegistryUnavailable, match="HTTP 500"):
        SchemaRegistryClient(url).get_schema(1)


def test_non_json_answer(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (200, b"not json")
    with pytest.raises(RegistryUnavailable, match="something other than JSON"):
        SchemaRegistryClient(url).get_schema(1)


def test_answer_without_id(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.fail_with = (200, b'{"version": 1}')
    with pytest.raises(RegistryUnavailable, match="without an integer id"):
        SchemaRegistryClient(url).register("s-value", '"string"')


def test_timeout(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    fake.delay = 5.0
    with pytest.raises(RegistryUnavailable, match="cannot reach schema registry .*timed out"):
        SchemaRegistryClient(url, timeout=0.2).get_schema(1)


def test_unreachable_registry() -> None:
    client = SchemaRegistryClient("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(RegistryUnavailable, match=r"cannot reach schema registry http://127.0.0.1:9 \(GET"):
        client.get_schema(1)


# --- the codec's Confluent framing ------------------------------------------------------------------


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


def test_registry_outage_is_not_bad_input(serving: Serving) -> None:
    """Down, answering 503, too slow: RegistryUnavailable on decode, encode and header, never BadInput (the
    value may be fine: the worker waits and retries); once it is back, the same calls succeed."""
    fake = serving.fake
    schema_id = fake.add({"schema": DEVICE_ALERT_AVSC.read_text()})
    framed = confluent(schema_id, AvroCodec().encode("DeviceAlert", ALERT)[10:])
    codec = AvroCodec(registry=SchemaRegistryClient(f"http://127.0.0.1:{serving.port}", timeout=0.3))

    def every_call_is_unavailable(reason: str) -> None:
        with pytest.raises(RegistryUnavailable, match=reason):
            codec.decode("DeviceAlert", framed)
        with pytest.raises(RegistryUnavailable, match=reason):
            codec.encode("DeviceAlert", ALERT, topic="dsp.alerts")
        with pytest.raises(RegistryUnavailable, match=reason):
            codec.header("SuppressedAlert", topic="dsp.alerts.suppressed")

    fake.fail_with = (503, b'{"error_code": 50302, "message": "Leader not known"}')
    every_call_is_unavailable("HTTP 503, error 50302: Leader not known")
    fake.fail_with = (500, b"<html>Internal Server Error</html>")
    every_call_is_unavailable("HTTP 500")
    fake.fail_with = None
    serving.stop()
    every_call_is_unavailable("cannot reach schema registry .*Connection refused")
    serving.start()
    fake.delay = 2.0
    every_call_is_unavailable("cannot reach schema registry .*timed out")
    fake.delay = 0.0
    assert codec.decode("DeviceAlert", framed) == ALERT  # no failure was cached
    assert codec.encode("DeviceAlert", ALERT, topic="dsp.alerts")[5:] == framed[5:]
    with pytest.raises(BadInput, match="which the registry does not have"):  # a 404 stays bad input
        codec.decode("DeviceAlert", confluent(99, b"\x00"))


def test_credentials_in_the_url_are_sent_and_never_shown(registry: tuple[FakeRegistry, str]) -> None:
    fake, url = registry
    client = SchemaRegistryClient(url.replace("http://", "http://poa%40filter:s3cr%3At@"))
    assert client.register("s-value", '"string"') == FIRST_ID
    assert fake.authorizations == ["Basic " + base64.b64encode(b"poa@filter:s3cr:t").decode()]
    assert "s3cr" not in client.url
    fake.fail_with = (503, b"")
    with pytest.raises(RegistryUnavailable) as caught:
        client.get_schema(7)
    assert "s3cr" not in str(caught.value) and "poa" not in str(caught.value)


def test_credentials_from_the_auth_file_are_sent_and_never_shown(
    registry: tuple[FakeRegistry, str], tmp_path: Path
) -> None:
    """POA_SCHEMA_REGISTRY_AUTH_FILE (contract 7): `user:password` on the file's first line."""
    fake, url = registry
    auth = tmp_path / "registry-auth"
    auth.write_text("poa-worker:pa55:word\n")
    codec = codec_for_registry(url, str(auth))
    codec.encode("DeviceAlert", ALERT, topic="dsp.alerts")
    assert fake.authorizations and set(fake.authorizations) == {
        "Basic " + base64.b64encode(b"poa-worker:pa55:word").decode()
    }
    fake.fail_with = (503, b"")
    with pytest.raises(RegistryUnavailable) as caught:
        codec.decode("DeviceAlert", confluent(42, b"\x00"))
    assert "pa55" not in str(caught.value)


def test_an_auth_file_without_user_and_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    auth = tmp_path / "registry-auth"
    auth.write_text("just-a-secret-token\n")
    with pytest.raises(RegistryAuthFileError, match="user:password") as caught:
        codec_for_registry("http://127.0.0.1:9", str(auth))
    assert "just-a-secret-token" not in str(caught.value)


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


# --- a registry that hangs: the caller is held `wait_s` at most (issue 18, item 15) ------------------------


class HangingRegistry:
    """Accepts connections and reads requests, but answers only once `answer` is set: a registry that hangs
    rather than refuses. `requests` holds each request's first line, `asked` is set at the first."""

    def __init__(self, schema: str) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[str] = []
        self.asked, self.answer = threading.Semaphore(0), threading.Event()
        self.body = json.dumps({"schema": schema}).encode()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._hang, args=(connection,), daemon=True).start()

    def _hang(self, connection: socket.socket) -> None:
        with connection:
            request = connection.recv(65536).decode()
            self.requests.append(request.split("\r\n", 1)[0])
            self.asked.release()
            self.answer.wait()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
            connection.sendall(head.encode() + self.body)

    def close(self) -> None:
        self.answer.set()
        self.listener.close()


@pytest.fixture
def hanging() -> Iterator[HangingRegistry]:
    registry = HangingRegistry('"string"')
    yield registry
    registry.close()


def test_a_hanging_registry_holds_the_caller_wait_s_then_is_unavailable_and_asked_once(
    hanging: HangingRegistry,
) -> None:
    """The HTTP timeout is long (60 s) and the caller's wait short: the call is RegistryUnavailable though the
    registry has not answered, and a second try while it still hangs sends nothing more."""
    client = SchemaRegistryClient(hanging.url, timeout=60, wait_s=0.05)

    with pytest.raises(RegistryUnavailable, match=r"has not answered GET /schemas/ids/7 within 0.05 s"):
        client.get_schema(7)
    assert hanging.asked.acquire(timeout=10)
    with pytest.raises(RegistryUnavailable, match=r"has not answered GET /schemas/ids/7 yet"):
        client.get_schema(7)
    assert hanging.requests == ["GET /schemas/ids/7 HTTP/1.1"]

    # Another ID while the registry hangs: asked in the background, the caller not held at all.
    with pytest.raises(RegistryUnavailable, match=r"has not answered GET /schemas/ids/8 yet"):
        client.get_schema(8)
    assert hanging.asked.acquire(timeout=10)
    assert hanging.requests == ["GET /schemas/ids/7 HTTP/1.1", "GET /schemas/ids/8 HTTP/1.1"]


def test_the_answer_that_comes_late_is_there_for_the_next_try(hanging: HangingRegistry) -> None:
    client = SchemaRegistryClient(hanging.url, timeout=60, wait_s=0.05)
    with pytest.raises(RegistryUnavailable):
        client.get_schema(7)
    assert hanging.asked.acquire(timeout=10)

    hanging.answer.set()

    deadline = time.monotonic() + 10
    while True:  # the answer arrives on the background thread, when it does
        try:
            assert client.get_schema(7) == '"string"'
            break
        except RegistryUnavailable:
            assert time.monotonic() < deadline, "the late answer never became available"
            time.sleep(0.01)
    assert hanging.requests == ["GET /schemas/ids/7 HTTP/1.1"]  # the answer was the one asked for, not asked again


def test_a_hanging_registry_never_ties_up_more_than_a_few_threads(hanging: HangingRegistry) -> None:
    client = SchemaRegistryClient(hanging.url, timeout=60, wait_s=0.01)
    for schema_id in range(MAX_IN_FLIGHT):
        with pytest.raises(RegistryUnavailable, match="has not answered"):
            client.get_schema(schema_id)
    with pytest.raises(RegistryUnavailable, match=f"{MAX_IN_FLIGHT} calls are still waiting"):
        client.get_schema(MAX_IN_FLIGHT)


def test_a_redirect_is_not_followed_with_the_registrys_credentials() -> None:
    """A registry answering 307 to another server: the basic authentication never goes there."""
    elsewhere = FakeRegistry()
    elsewhere.add({"schema": '"string"'})
    other = Serving(elsewhere)
    redirecting = FakeRegistry()
    redirecting.fail_with = (307, b"")
    redirecting.location = f"http://127.0.0.1:{other.port}"
    front = Serving(redirecting)
    try:
        client = SchemaRegistryClient(f"http://u:secret@127.0.0.1:{front.port}")
        with pytest.raises(RegistryUnavailable, match=f"answered 307, a redirect to {redirecting.location}/") as caught:
            client.get_schema(FIRST_ID)
        assert "secret" not in str(caught.value)
        assert redirecting.authorizations and elsewhere.authorizations == []
    finally:
        front.stop()
        other.stop()
