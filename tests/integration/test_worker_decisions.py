"""The worker through its real interface: a `poa-filter worker` process, a real broker, real topics."""

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.scenario import Scenario, campaign
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess

pytestmark = pytest.mark.broker


def write_reference(dsp: DspProducer, sc: Scenario) -> None:
    t = dsp.topics
    for key, datum in sc.inventory:
        dsp.send(t.inventory, key, None if datum is None else CODEC.encode("InventoryRecord", datum))
    for key, datum in sc.tracked:
        dsp.send(t.tracked_devices, key, None if datum is None else CODEC.encode("TrackedDevice", datum))


def write_activation_inputs(dsp: DspProducer, sc: Scenario) -> None:
    for d in sc.requests:
        dsp.record(dsp.topics.service_requests, d["target_device_id"], "ServiceRequest", d)
    for d in sc.outcomes:
        dsp.record(dsp.topics.activation_outcomes, d["device_id"], "ActivationOutcome", d)


def write_alerts(dsp: DspProducer, sc: Scenario) -> dict[str, bytes]:
    sent = {}
    for d in sc.alerts:
        value = CODEC.encode("DeviceAlert", d)
        dsp.send(dsp.topics.alerts, d["device_id"], value)
        sent[d["alert_id"]] = value
    return sent


def write_live(dsp: DspProducer, sc: Scenario, before: Callable[[int], None] | None = None) -> dict[str, bytes]:
    """The scenario in event order, as the DSP writes it: each request and outcome acknowledged before
    any later alert (records on different topics have no order in Kafka). `before(i)` runs ahead of
    event i. Returns the alert bytes sent, by alert ID."""
    t = dsp.topics
    sent = {}
    for i, (_, _, kind, d) in enumerate(sc.events()):
        if before is not None:
            before(i)
        if kind == "request":
            dsp.record(t.service_requests, d["target_device_id"], "ServiceRequest", d)
            dsp.flush()
        elif kind == "outcome":
            dsp.record(t.activation_outcomes, d["device_id"], "ActivationOutcome", d)
            dsp.flush()
        else:
            sent[d["alert_id"]] = CODEC.encode("DeviceAlert", d)
            dsp.send(t.alerts, d["device_id"], sent[d["alert_id"]])
    dsp.flush()
    return sent


def check_decisions(out_reader: OutputReader, sc: Scenario, sent: dict[str, bytes], worker: WorkerProcess) -> None:
    outputs = out_reader.wait_for(lambda o: o.alert_outputs >= len(sc.alerts), 120, "every alert decided", worker)
    counts = Counter(outputs.forwarded_ids() + outputs.suppressed_ids())
    assert [a for a, n in counts.items() if n != 1] == [], "an alert was output more than once"
    assert set(counts) == set(sent)

    reference = sc.reference_decisions()
    decided = {a: ("forward", None) for a in outputs.forwarded_ids()}
    decided.update({s["alert"]["alert_id"]: ("suppress", s["activation_request_id"]) for _, s in outputs.suppressed})
    assert decided == reference
    assert {a: d for a, (d, _) in decided.items()} == sc.intent

    by_id = {CODEC.decode("DeviceAlert", v)["alert_id"]: (k, v) for k, v in outputs.forwarded}
    for alert_id, (key, value) in by_id.items():
        assert value == sent[alert_id], "forwarded bytes must be the input bytes"
        assert key == CODEC.decode("DeviceAlert", value)["device_id"].encode()
    for _key, s in outputs.suppressed:
        assert CODEC.encode("DeviceAlert", s["alert"]) == sent[s["alert"]["alert_id"]]
        assert s["window_start"] <= s["alert"]["received_at"] <= s["window_end"]
        assert s["esme_id"] == s["esme_id"].upper() and s["activation_request_id"]
        assert "tracked ESME" in s["reason"]
    assert outputs.dead_letters == []


def test_live_processing_decides_by_the_rules(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=30)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        sent = write_live(dsp, sc)
        check_decisions(reader, sc, sent, worker)
        metrics = worker.metrics()
        assert 'poa_alerts_total{alert_code="AD1",decision="suppressed",reason="activation_window"}' in metrics
        assert "poa_decision_latency_seconds_bucket" in metrics
        assert "poa_tracked_devices 25.0" in metrics
    finally:
        worker.stop()
        reader.close()


def test_backlog_with_alerts_written_before_requests_decides_as_live(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=30, seed=11)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    sent = write_alerts(dsp, sc)
    dsp.flush()
    write_activation_inputs(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        check_decisions(reader, sc, sent, worker)
    finally:
        worker.stop()
        reader.close()
