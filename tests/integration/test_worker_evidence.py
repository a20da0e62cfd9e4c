"""Rule 9 (evidence of a genuine outage) and rule 7's wait for it, through real `poa-filter worker` processes:
live, on a backlog, and with two workers, each held to the reference decisions of rules 5 and 9."""

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.settings import Settings
from tests.integration.scenario import BASE, HOUR, MIN, Scenario, campaign, with_storms, with_supply_evidence
from tests.integration.scenario_play import (
    check_decisions,
    write_activation_inputs,
    write_alerts,
    write_live,
    write_reference,
)
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess, wait_until

pytestmark = pytest.mark.broker

AD1_PARTITION = 0  # every AD1 on one partition, every other alert on the others: evidence on another partition
ALERT_PARTITIONS = 3
RELEASED_METRIC = 'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="outage_evidence"}'
Event = tuple[int, int, str, dict[str, Any]]  # as Scenario.events gives them
SOME_ASSIGNED = re.compile(r"assigned (alert|held-AD1) partitions \[\d")
HELD_METRIC = 'poa_held_alerts_by_reason{reason="evidence"}'


def partition_of(alert: dict[str, Any], i: int) -> int:
    return AD1_PARTITION if alert["alert_code"] == "AD1" else 1 + i % (ALERT_PARTITIONS - 1)


def tail_alerts(sc: Scenario, after: int) -> list[Event]:
    """The DSP moving on: four alerts (not AD1s) on every alert partition, received after `after` (the last
    AD1's t + A), so every partition is read past it (four: the read frontier corroborates a time by four
    records)."""
    events = []
    for n in range(4 * ALERT_PARTITIONS):
        d: dict[str, Any] = {"alert_id": f"tail-{n:03d}", "alert_code": "8F01", "device_id": "00-00-00-00-00-00-00-01",
             "mpxn": None, "raised_at": None, "received_at": after + 1 + n, "payload": None}  # fmt: skip
        sc.alerts.append(d)
        sc.intent[d["alert_id"]] = "forward"
        events.append((d["received_at"], 1, "alert", d))
    return events


def written_with_partitions(dsp: DspProducer, events: list[Event]) -> dict[str, bytes]:
    """Tail alerts spread over every partition in turn."""
    sent = {}
    for i, (_, _, _, d) in enumerate(events):
        sent[d["alert_id"]] = CODEC.encode("DeviceAlert", d)
        key = d["device_id"].encode()
        dsp.producer.produce(dsp.topics.alerts, sent[d["alert_id"]], key, partition=i % ALERT_PARTITIONS)
    dsp.flush()
    return sent


def metric_value(worker: WorkerProcess, name: str) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")


def live_run(settings: Settings, workers: list[WorkerProcess], crash_while_held: bool = False) -> None:
    """The scenario live, event times around the wall clock: AD1s in windows wait for evidence while the rest
    go through; once every partition has been read past t + A, the waiting ones are decided. With
    `crash_while_held`, the workers are killed (SIGKILL) while AD1s wait, and started again."""
    now = int(time.time() * 1000)
    sc = Scenario()
    homes = with_supply_evidence(sc, start=now - 6 * MIN)
    with_storms(sc, start=now - 6 * MIN)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    for worker in workers:
        worker.wait_ready()
    reader = OutputReader(settings)
    try:
        sent = write_live(dsp, sc, partition=partition_of)
        # AD1s in windows without supply evidence wait until evidence up to t + A is complete (two minutes
        # ahead): those to be suppressed, and those a storm releases (storm evidence is looked for once final).
        storm_released = {a for a in sc.released_on_evidence() if a.startswith("storm-alert-")}
        waiting = {a["alert_id"] for a in sc.alerts if sc.intent[a["alert_id"]] == "suppress"} | storm_released
        others = len(sc.alerts) - len(waiting)
        outputs = reader.wait_for(lambda o: o.alert_outputs >= others, 60, "every alert but those waiting", workers[0])
        # Not delayed: everything else, the AD1s of no window and those released on supply evidence included.
        assert waiting.isdisjoint(outputs.suppressed_ids() + outputs.forwarded_ids())
        assert {h.ad1_id for h in homes if h.kind in ("after", "before")} <= set(outputs.forwarded_ids())
        wait_until(lambda: sum(metric_value(w, HELD_METRIC) for w in workers) == len(waiting), 10, "held gauge")

        if crash_while_held:
            for worker in workers:
                worker.stop(signal.SIGKILL)
                worker.start()
            for worker in workers:
                worker.wait_ready()
        tail = tail_alerts(sc, max(d["received_at"] for d in sc.alerts) + EvidencePolicy().after_ms)
        sent |= written_with_partitions(dsp, tail)
        check_decisions(reader, sc, sent, workers[0])
        if not crash_while_held:  # after a crash, what was counted before it is gone with the process
            assert sum(metric_value(w, RELEASED_METRIC) for w in workers) == len(sc.released_on_evidence())
            assert any("supply evidence: 8F35" in w.log_path.read_text() for w in workers)
            assert any("storm evidence: AD1s from 3 other HANs in postcode sector ST1 1" in w.log_path.read_text()
                       for w in workers)  # fmt: skip
    finally:
        reader.close()


def test_live_ad1s_in_windows_wait_for_evidence_without_delaying_the_rest(settings: Settings, tmp_path: Path) -> None:
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        live_run(settings, [worker])
    finally:
        worker.stop()


def test_ad1s_waiting_for_evidence_survive_a_crash_and_are_decided_once(settings: Settings, tmp_path: Path) -> None:
    """Held AD1s are on the held topic, committed with the offsets that passed them: a worker killed while
    they wait reads them again after its restart, with the evidence positions its state committed."""
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        live_run(settings, [worker], crash_while_held=True)
    finally:
        worker.stop()


def test_two_workers_release_on_evidence_read_by_either(settings: Settings, tmp_path: Path) -> None:
    """Each worker owns part of the alert and held partitions; an AD1 read by one may wait on a held partition
    of the other, and its evidence (on another partition than the AD1) is read by both: decided exactly once."""
    first = WorkerProcess(settings, tmp_path).start()
    second = WorkerProcess(settings, tmp_path, POA_DATA_DIR=settings.data_dir + "-2")
    try:
        first.wait_ready()
        second.start()
        second.wait_ready()
        # The group splits the alert and held partitions between them: an AD1 may be read by one worker and
        # decided by the other, its evidence read by either.
        wait_until(lambda: SOME_ASSIGNED.search(second.log_path.read_text()) is not None, 60,
                   "partitions assigned to the second worker", alive=second)  # fmt: skip
        live_run(settings, [first, second])
    finally:
        second.stop()
        first.stop()


def test_backlog_with_alerts_before_requests_decides_evidence_as_live(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=12, seed=5)
    with_supply_evidence(sc, start=BASE + 3 * HOUR)
    with_storms(sc, start=BASE + 4 * HOUR)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    sent = write_alerts(dsp, sc, partition=partition_of, time_order=True)
    dsp.flush()
    write_activation_inputs(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        check_decisions(reader, sc, sent, worker)
        released = sc.released_on_evidence()
        assert len(released) == 6  # the "after" and "before" homes of ten, two AD1s of the storm sector
        wait_until(lambda: metric_value(worker, RELEASED_METRIC) == len(released), 10, "counted", alive=worker)
    finally:
        worker.stop()
        reader.close()


def test_supply_evidence_releases_a_held_ad1_behind_an_undecided_one_at_once_and_once_across_a_crash(
    settings: Settings, tmp_path: Path
) -> None:
    """Decision record 5 on the broker: an AD1 released by supply evidence leaves at once, though it sits on its
    held partition behind an AD1 dated twenty minutes ahead (undecided until every alert partition is read past
    its t + A). The worker is then killed: its successor reads the held partition again from the committed
    offset and its metadata, and forwards the released AD1 no second time."""
    t = settings.topics
    now = int(time.time() * 1000)
    chf, esme = "00-1B-C5-0C-00-00-0A-01", "00-1B-C5-0C-00-00-0A-02"
    dsp = DspProducer(settings)
    dsp.tracked_esme_on(chf, esme, now - HOUR)
    dsp.record(t.service_requests, esme, "ServiceRequest", {
        "request_id": f"r:{esme}:1", "service_reference_variant": "11.3", "target_device_id": esme,
        "execution_datetime": None, "firmware_hash": None, "received_at": now - 5 * MIN,
    })  # fmt: skip
    dsp.flush()
    env = {"POA_EVIDENCE_AFTER_MINUTES": "1", "POA_EVIDENCE_GRACE_SECONDS": "5", "POA_MAX_HOLD_SECONDS": "10"}
    worker = WorkerProcess(settings, tmp_path, **env).start()
    reader = OutputReader(settings)

    def alert(alert_id: str, code: str, device: str, received_at: int, partition: int) -> None:
        value = CODEC.encode("DeviceAlert", {"alert_id": alert_id, "alert_code": code, "device_id": device,
                                             "mpxn": None, "raised_at": None, "received_at": received_at,
                                             "payload": None})  # fmt: skip
        dsp.producer.produce(t.alerts, value, chf.encode(), partition=partition)
        dsp.flush()

    try:
        worker.wait_ready()
        alert("ahead", "AD1", chf, now + 20 * MIN, 0)
        alert("behind", "AD1", chf, now, 0)
        wait_until(lambda: metric_value(worker, HELD_METRIC) == 2, 30, "both AD1s held", alive=worker)
        alert("restored", "8F35", esme, now + 10_000, 1)
        outputs = reader.wait_for(lambda o: "behind" in o.forwarded_ids(), 30, "the AD1 behind released", worker)
        assert sorted(outputs.forwarded_ids()) == ["behind", "restored"] and outputs.suppressed_ids() == []
        worker.stop(signal.SIGKILL)
        worker.start()
        # Four alerts past the AD1 ahead's t + A on every alert partition: its evidence is complete, none came.
        for partition in range(3):
            for n in range(4):
                alert(f"later-{partition}-{n}", "8F01", "00-1B-C5-0C-00-00-0A-09", now + 22 * MIN + n, partition)
        outputs = reader.wait_for(lambda o: "ahead" in o.suppressed_ids(), 60, "the AD1 ahead decided", worker)
        assert sorted(i for i in outputs.forwarded_ids() if not i.startswith("later-")) == ["behind", "restored"], (
            "each alert once"
        )
    finally:
        worker.stop()
        reader.close()
