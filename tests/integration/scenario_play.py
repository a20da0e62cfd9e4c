"""The scenario played as the DSP writes it, a worker ready over its reference data, and the check of the
worker's decisions against the rules: what every integration test that runs a scenario shares."""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from tests.integration.scenario import Scenario
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess


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


# The alert partition for the i-th alert written (to put evidence on another partition than its AD1).
AlertPartition = Callable[[dict[str, Any], int], int]


def send_alert(dsp: DspProducer, d: dict[str, Any], i: int, partition: AlertPartition | None) -> bytes:
    """Write alert `d` (the i-th), to the partition its key hashes to or to `partition(d, i)`; its bytes."""
    value = CODEC.encode("DeviceAlert", d)
    if partition is None:
        dsp.send(dsp.topics.alerts, d["device_id"], value)
    else:
        dsp.producer.produce(dsp.topics.alerts, value, d["device_id"].encode(), partition=partition(d, i))
    return value


def write_alerts(
    dsp: DspProducer, sc: Scenario, partition: AlertPartition | None = None, time_order: bool = False
) -> dict[str, bytes]:
    """The scenario's alerts (in received_at order with `time_order`, as the DSP writes them live)."""
    alerts = sorted(sc.alerts, key=lambda d: d["received_at"]) if time_order else sc.alerts
    return {d["alert_id"]: send_alert(dsp, d, i, partition) for i, d in enumerate(alerts)}


def write_live(
    dsp: DspProducer,
    sc: Scenario,
    before: Callable[[int], None] | None = None,
    partition: AlertPartition | None = None,
) -> dict[str, bytes]:
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
            sent[d["alert_id"]] = send_alert(dsp, d, i, partition)
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


@contextmanager
def ready_worker(
    settings: Settings, folder: Path, sc: Scenario, **env: str
) -> Iterator[tuple[DspProducer, WorkerProcess, OutputReader]]:
    """The scenario's reference data written (as the DSP bootstraps), then a worker started and ready, and a
    reader of its outputs; both stopped afterwards."""
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, folder, **env).start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        yield dsp, worker, reader
    finally:
        worker.stop()
        reader.close()
