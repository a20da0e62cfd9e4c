"""Bad input on every input topic ends on the dead-letter topic, readable, and the worker keeps deciding."""

import struct
from pathlib import Path

import pytest

from pipeline.kafka import clients
from pipeline.settings import Settings
from tests.integration.scenario import BASE, MIN
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess

pytestmark = pytest.mark.broker

CHF, ESME = "AA-00-00-00-00-00-00-01", "AA-00-00-00-00-00-00-02"
T0 = BASE + 60 * MIN


def alert(alert_id: str, t: int, device: str = CHF, code: str = "AD1") -> dict:
    return {"alert_id": alert_id, "alert_code": code, "device_id": device, "mpxn": None, "raised_at": None,
            "received_at": t, "payload": None}


def request(rid: str, r: int, execution: int | None, esme: str = ESME) -> dict:
    return {"request_id": rid, "service_reference_variant": "11.3", "target_device_id": esme,
            "execution_datetime": execution, "firmware_hash": None, "received_at": r}


def single_object(name: str, body: bytes) -> bytes:
    return CODEC.single_object_header(name) + body


def bad_records(settings: Settings) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(topic, key, value, words the error must contain)."""
    t = settings.topics
    good_alert = CODEC.encode("DeviceAlert", alert("x", T0))
    return [
        (t.alerts, b"k1", b"not avro at all", "C3 01"),
        (t.alerts, b"k2", b"\xc3\x01" + struct.pack("<q", 12345) + good_alert[10:], "fingerprint"),
        (t.alerts, b"k3", good_alert[:-3], "DeviceAlert"),
        (t.alerts, b"k4", None, "null value"),
        (t.alerts, b"k5", CODEC.encode("TrackedDevice", {"device_id": ESME, "manufacturer": None, "model": None,
                                                         "firmware_version": None, "list_version": None,
                                                         "added_at": T0}), "TrackedDevice"),
        (t.alerts, b"k6", CODEC.encode("DeviceAlert", alert("bad-id", T0, device="AA:00:00:00:00:00:00:01")),
         "device_id"),
        (t.alerts, b"k7", CODEC.encode("DeviceAlert", alert("old", 900_000_000_000)), "2000-01-01"),
        (t.service_requests, ESME.encode(), CODEC.encode("ServiceRequest", request("r-far", T0, T0 + 31 * 1440 * MIN)),
         "horizon"),
        (t.service_requests, b"sr-garbage", b"\x00\x01garbage", "C3 01"),
        (t.service_requests, b"k",
         CODEC.encode("ServiceRequest", request("r-bad", T0, None, esme="AA-00-00-00-00-00-02")), "target_device_id"),
        (t.activation_outcomes, ESME.encode(), CODEC.encode("DeviceAlert", alert("y", T0)), "ActivationOutcome"),
        (t.inventory, b"not-a-device", CODEC.encode("InventoryRecord", {"device_id": ESME, "device_type": "ESME",
                                                                         "chf_id": CHF, "mpxn": None,
                                                                         "updated_at": T0}), "key"),
        (t.inventory, CHF.encode(), CODEC.encode("InventoryRecord", {"device_id": CHF, "device_type": "CHF",
                                                                      "chf_id": "AA-00 00-00-00-00-00-01", "mpxn": None,
                                                                      "updated_at": T0}), "chf_id"),
        (t.tracked_devices, ESME.encode(), b"\xc3\x01\x00", "TrackedDevice"),
    ]


def test_bad_records_are_dead_lettered_and_valid_traffic_is_unaffected(settings: Settings, tmp_path: Path) -> None:
    t = settings.topics
    dsp = DspProducer(settings)
    dsp.tracked_esme_on(CHF, ESME, T0, tracked_key=ESME.lower())
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        # Bad records first, then valid traffic that depends on state written after them.
        delivered: dict[tuple[str, bytes | None], tuple[int, int]] = {}
        producer = clients.producer(settings, {})
        cases = bad_records(settings)
        for topic, key, value, _ in cases:
            producer.produce(topic, value, key, on_delivery=lambda err, msg: delivered.__setitem__(
                (msg.topic(), msg.key()), (msg.partition(), msg.offset())))  # type: ignore[index,assignment]
        producer.flush(30)
        dsp.record(t.service_requests, ESME, "ServiceRequest", request("r-ok", T0, None))
        dsp.record(t.alerts, CHF, "DeviceAlert", alert("ota", T0 + 5 * MIN))
        dsp.record(t.alerts, CHF, "DeviceAlert", alert("genuine", T0 + 31 * MIN))
        dsp.flush()

        outputs = reader.wait_for(lambda o: len(o.dead_letters) >= len(cases) and o.alert_outputs >= 2, 60,
                                  "dead letters and decisions", worker)
        assert worker.alive()
        assert outputs.suppressed_ids() == ["ota"]
        assert outputs.forwarded_ids() == ["genuine"]
        assert len(outputs.dead_letters) == len(cases)
        letters = {(d["source_topic"], d["key"]): d for _, d in outputs.dead_letters}
        for topic, key, value, words in cases:
            letter = letters[(topic, key)]
            assert (letter["partition"], letter["offset"]) == delivered[(topic, key)]
            assert letter["value"] == value
            assert words.lower() in letter["error"].lower(), (words, letter["error"])
        metrics = worker.metrics()
        assert f'poa_dead_letters_total{{topic="{t.alerts}"}} 7.0' in metrics
    finally:
        worker.stop()
        reader.close()
