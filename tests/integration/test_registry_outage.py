"""A schema registry that goes away while a real `poa-filter worker` runs (contract 6, issue 9 item 5).

The registry is the fake one (tests/unit/wire/fake_registry.py) on a loopback port of this process, stopped
mid-scenario and started again on the same port. Records in Confluent framing name schema IDs the worker has
not seen yet (the DSP registered them under subjects of its own), so the worker must ask the registry for
them while it is down. The worker must keep running and say so on /ready and in a metric; the service
request it cannot read waits (nothing dead-lettered, nothing lost), the AD1s that need it are forwarded once
held POA_MAX_HOLD_SECONDS (rule 8), an alert it cannot decode is forwarded as it came; once the registry is
back the request is applied and later AD1s are suppressed by it.
"""

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import SchemaRegistryClient
from tests.integration import worker_harness
from tests.integration.worker_harness import DspProducer, OutputReader, WorkerProcess, wait_until
from tests.unit.wire.fake_registry import FakeRegistry, Serving

pytestmark = pytest.mark.broker

T = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MIN = 60_000
CHF = "00-DB-12-34-56-78-90-C0"
ESME = "00-DB-12-34-56-78-90-A0"
REQUEST_ID = f"90-B3-D5-1F-30-01-00-00:{ESME}:1"
HOLD_S = "3"


@pytest.fixture
def registry() -> Iterator[Serving]:
    serving = Serving(FakeRegistry())
    yield serving
    if serving.server is not None:
        serving.stop()


def alert(alert_id: str, at: int, code: str = "AD1") -> dict[str, Any]:
    return {"alert_id": alert_id, "alert_code": code, "device_id": CHF, "mpxn": None, "raised_at": None,
            "received_at": at, "payload": b"\x00\x01"}  # fmt: skip


def ready_body(worker: WorkerProcess) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=5) as response:
            return str(response.read().decode())
    except OSError as exc:  # 503 while unready: the body is still the reason
        return str(getattr(exc, "read", lambda: b"")().decode())


def test_a_registry_outage_neither_stops_the_worker_nor_loses_or_dead_letters_records(
    settings: Settings, registry: Serving, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{registry.port}"
    codec = AvroCodec(registry=SchemaRegistryClient(url))
    monkeypatch.setattr(worker_harness, "CODEC", codec)  # the outputs are in Confluent framing too
    t = settings.topics
    dsp = DspProducer(settings)
    for device, kind, chf in [(CHF, "CHF", None), (ESME, "ESME", CHF)]:
        datum = {"device_id": device, "device_type": kind, "chf_id": chf, "mpxn": None, "updated_at": T}
        dsp.send(t.inventory, device, codec.encode("InventoryRecord", datum, t.inventory))
    tracked = {"device_id": ESME, "manufacturer": None, "model": None, "firmware_version": None,
               "list_version": None, "added_at": T}  # fmt: skip
    dsp.send(t.tracked_devices, ESME, codec.encode("TrackedDevice", tracked, t.tracked_devices))
    dsp.flush()
    # Written during the outage under schema IDs the worker has never seen (registered now, under other subjects).
    request = {"request_id": REQUEST_ID, "service_reference_variant": "11.3", "target_device_id": ESME,
               "execution_datetime": None, "firmware_hash": None, "received_at": T + 10 * MIN}  # fmt: skip
    unseen_request = codec.encode("ServiceRequest", request, "dsp.v2")
    unseen_alert = codec.encode("DeviceAlert", alert("undecodable", T + 11 * MIN), "dsp.v2")
    held_ad1 = codec.encode("DeviceAlert", alert("held", T + 12 * MIN), t.alerts)

    worker = WorkerProcess(settings, tmp_path, POA_SCHEMA_REGISTRY_URL=url, POA_MAX_HOLD_SECONDS=HOLD_S).start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        first = codec.encode("DeviceAlert", alert("before", T + MIN, "8F36"), t.alerts)
        dsp.send(t.alerts, CHF, first)
        dsp.flush()
        reader.wait_for(lambda o: len(o.forwarded) == 1, 60, "the first alert forwarded", worker)

        registry.stop()
        dsp.send(t.service_requests, ESME, unseen_request)
        dsp.flush()
        dsp.send(t.alerts, CHF, unseen_alert)
        dsp.send(t.alerts, CHF, held_ad1)
        dsp.flush()
        outputs = reader.wait_for(lambda o: len(o.forwarded) == 3, 60, "both alerts forwarded after the hold", worker)
        assert [v for _, v in outputs.forwarded] == [first, unseen_alert, held_ad1], "forwarded as they came"
        wait_until(lambda: "schema registry unreachable" in ready_body(worker), 30, "/ready to say so", worker)
        metrics = worker.metrics()
        assert 'poa_dependency_waits{dependency="schema_registry",input="state_partitions"} 1.0' in metrics
        assert 'poa_alerts_total{alert_code="",decision="forwarded",reason="registry_unavailable"} 1.0' in metrics
        assert 'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="hold_expired"} 1.0' in metrics
        assert worker.alive()

        registry.start()
        wait_until(lambda: "schema registry unreachable" not in ready_body(worker), 30, "the wait to end", worker)
        after = [codec.encode("DeviceAlert", alert(f"after-{i}", T + (13 + i) * MIN), framing)
                 for i, framing in enumerate([t.alerts, "dsp.v2"])]  # fmt: skip
        for value in after:
            dsp.send(t.alerts, CHF, value)
        dsp.flush()
        outputs = reader.wait_for(lambda o: len(o.suppressed) == 2, 60, "the later AD1s suppressed", worker)
        assert [s["alert"]["alert_id"] for _, s in outputs.suppressed] == ["after-0", "after-1"]
        assert {s["activation_request_id"] for _, s in outputs.suppressed} == {REQUEST_ID}, "the request was applied"
        assert len(outputs.forwarded) == 3
        assert outputs.dead_letters == [], "nothing dead-lettered for the outage"
        assert 'poa_dependency_waits{dependency="schema_registry",input="state_partitions"} 0.0' in worker.metrics()
        assert worker.alive()
    finally:
        worker.stop()
        reader.close()
