"""Operator modes through the real interface (contract 8): `poa-filter mode` writes the schedule, real
`poa-filter worker` processes decide a campaign on a real broker.

Each alert must end as the mode in force at its own `received_at` says, whichever worker decides it and
whether the change was written live, mid-stream, or before a backlog was read: filter = the rules; shadow =
forwarded byte for byte, plus a `shadow:` record on the shadow topic for each AD1 the rules would suppress;
pass-through = every decodable alert forwarded, bad input still dead-lettered.
"""

import urllib.request
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.kafka.topics import read_to_end
from pipeline.settings import Settings, Topics
from tests.conftest import create_topics
from tests.integration.scenario import Scenario, campaign
from tests.integration.scenario_play import (
    ready_worker,
    write_activation_inputs,
    write_alerts,
    write_live,
    write_reference,
)
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, Outputs, WorkerProcess, wait_until

pytestmark = pytest.mark.broker

Expected = dict[str, tuple[str, str | None]]  # alert ID -> ("forward", None) or ("suppress", request ID)


def set_mode(settings: Settings, mode: Mode, from_ms: int) -> None:
    """`poa-filter mode MODE --reason ... --from FROM_MS`, as an operator runs it."""
    code = cli.main([
        "mode", mode.value, "--reason", f"test: {mode.value} from {from_ms}", "--from", str(from_ms),
        "--bootstrap-servers", settings.bootstrap_servers, "--app-id", settings.app_id,
        "--topic-control", settings.topics.control,
    ])  # fmt: skip
    assert code == 0


def mode_changes(sc: Scenario) -> list[tuple[Mode, int]]:
    """Shadow from the received_at of an alert a quarter into the campaign, pass-through from half-way,
    filter again from three quarters: each change at an alert's own millisecond (at or after applies)."""
    times = sorted(d["received_at"] for d in sc.alerts)
    n = len(times)
    return [(Mode.SHADOW, times[n // 4]), (Mode.PASS_THROUGH, times[n // 2]), (Mode.FILTER, times[3 * n // 4])]


def expectations(sc: Scenario, schedule: ModeSchedule) -> tuple[Expected, Expected]:
    """What each alert ends as under `schedule` (on dno.alerts or the audit topic), and the shadow records."""
    outputs: Expected = {}
    shadow: Expected = {}
    for alert_id, (decision, request_id) in sc.reference_decisions().items():
        received_at = next(d["received_at"] for d in sc.alerts if d["alert_id"] == alert_id)
        mode = schedule.mode_at(received_at)
        if mode is Mode.FILTER or decision == "forward":
            outputs[alert_id] = (decision, request_id)
        else:
            outputs[alert_id] = ("forward", None)
            if mode is Mode.SHADOW:
                shadow[alert_id] = (decision, request_id)
    return outputs, shadow


def decided(outputs: Outputs) -> Expected:
    """Every alert output, each exactly once."""
    ids = outputs.forwarded_ids() + outputs.suppressed_ids()
    assert [a for a, n in Counter(ids).items() if n > 1] == [], "an alert was output more than once"
    result: Expected = {a: ("forward", None) for a in outputs.forwarded_ids()}
    result.update({s["alert"]["alert_id"]: ("suppress", s["activation_request_id"]) for _, s in outputs.suppressed})
    return result


def shadow_records(settings: Settings) -> dict[str, tuple[str, str, str]]:
    """Alert ID -> (ESME, request ID, reason) of every record on the shadow topic, each exactly once."""
    records = [CODEC.decode("SuppressedAlert", m.value()) for m in read_to_end(settings, settings.topics.shadow, 60)]
    ids = [r["alert"]["alert_id"] for r in records]
    assert [a for a, n in Counter(ids).items() if n > 1] == [], "a shadow record was written more than once"
    return {r["alert"]["alert_id"]: (r["esme_id"], r["activation_request_id"], r["reason"]) for r in records}


def wait_for_shadow_records(settings: Settings, count: int, worker: WorkerProcess) -> None:
    """Shadow mode forwards an AD1 in a window at once; its shadow record follows once its evidence is complete."""
    wait_until(lambda: len(shadow_records(settings)) >= count, 120, "the shadow records", alive=worker)


def check_modes(settings: Settings, sc: Scenario, sent: dict[str, bytes], reader: OutputReader,
                workers: list[WorkerProcess], schedule: ModeSchedule) -> None:  # fmt: skip
    expected, expected_shadow = expectations(sc, schedule)
    outputs = reader.wait_for(lambda o: o.alert_outputs >= len(sc.alerts), 180, "every alert decided", workers[0])
    assert decided(outputs) == expected
    assert outputs.dead_letters == []
    for key, value in outputs.forwarded:
        alert_id = CODEC.decode("DeviceAlert", value)["alert_id"]
        assert value == sent[alert_id], "forwarded bytes must be the input bytes, in every mode"
        assert key == CODEC.decode("DeviceAlert", value)["device_id"].encode()
    wait_for_shadow_records(settings, len(expected_shadow), workers[0])
    shadow = shadow_records(settings)
    assert {a: ("suppress", request) for a, (_, request, _) in shadow.items()} == expected_shadow
    assert all(reason.startswith("shadow:") and "tracked ESME" in reason for _, _, reason in shadow.values())
    assert expected_shadow, "the scenario has suppressions in shadow mode"
    assert any(d == "suppress" for d, _ in expected.values()), "and in filter mode"


def schedule_of(changes: list[tuple[Mode, int]]) -> ModeSchedule:
    return ModeSchedule.of(Mode.FILTER, [ModeChange(m, t, "test", "test", i) for i, (m, t) in enumerate(changes)])


def ready_body(worker: WorkerProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=5) as response:
        return str(response.read().decode())


def test_mode_changes_written_mid_stream_apply_from_their_time_live(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=18, seed=3)
    changes = mode_changes(sc)
    with ready_worker(settings, tmp_path, sc) as (dsp, worker, reader):
        assert "mode: filter" in ready_body(worker)
        assert 'poa_mode{mode="filter"} 1.0' in worker.metrics()
        events = sc.events()
        pending = list(changes)

        def before(i: int) -> None:  # each change written just before the first alert it applies to
            while pending and events[i][2] == "alert" and events[i][0] >= pending[0][1]:
                mode, at = pending.pop(0)
                set_mode(settings, mode, at)

        sent = write_live(dsp, sc, before)
        assert pending == []
        check_modes(settings, sc, sent, reader, [worker], schedule_of(changes))
        assert "mode: filter" in ready_body(worker)  # the mode for the newest alerts: the last change
        metrics = worker.metrics()
        assert 'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="shadow"}' in metrics
        assert 'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="pass_through"}' in metrics


def test_a_backlog_is_decided_in_the_modes_of_its_alerts_times_as_live(settings: Settings, tmp_path: Path) -> None:
    """Alerts first, then the mode changes, then the requests; the worker starts afterwards."""
    sc = campaign(homes=18, seed=3)
    changes = mode_changes(sc)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    sent = write_alerts(dsp, sc)
    dsp.flush()
    for mode, at in changes:
        set_mode(settings, mode, at)
    write_activation_inputs(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        check_modes(settings, sc, sent, reader, [worker], schedule_of(changes))
        assert "mode: filter" in ready_body(worker)
    finally:
        worker.stop()
        reader.close()


def test_two_workers_decide_under_the_same_schedule(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=18, seed=5)
    changes = mode_changes(sc)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    workers = [WorkerProcess(settings, tmp_path, POA_DATA_DIR=str(tmp_path / f"state{i}")) for i in range(2)]
    reader = OutputReader(settings)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        events = sc.events()
        pending = list(changes)

        def before(i: int) -> None:
            while pending and events[i][2] == "alert" and events[i][0] >= pending[0][1]:
                mode, at = pending.pop(0)
                set_mode(settings, mode, at)

        sent = write_live(dsp, sc, before)
        check_modes(settings, sc, sent, reader, workers, schedule_of(changes))
        decided_by = [w.metrics() for w in workers]
        assert all('decision="forwarded",reason="not_ad1"' in m for m in decided_by)
    finally:
        for worker in workers:
            worker.stop()
        reader.close()


def other_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Another set of topics and an app ID of their own, made like the `settings` fixture's."""
    tag = uuid.uuid4().hex[:10]
    names = Topics(**{name: f"t{tag}.{default}" for name, default in vars(Topics()).items()})
    compacted = {"cleanup.policy": "compact"}
    create_topics(
        settings.bootstrap_servers,
        {names.service_requests: 3, names.activation_outcomes: 2, names.alerts: 3, names.inventory: 3,
         names.tracked_devices: 2},
        {names.inventory: compacted, names.tracked_devices: compacted},
    )  # fmt: skip
    return replace(settings, app_id=f"poa-filter-test-{tag}", data_dir=str(tmp_path / "other-state"), topics=names)


def run_backlog(
    settings: Settings, sc: Scenario, tmp_path: Path, shadow_records_due: int = 0, **env: str
) -> tuple[Outputs, dict[str, bytes]]:
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    write_activation_inputs(dsp, sc)
    sent = write_alerts(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path, **env).start()
    reader = OutputReader(settings)
    try:
        outputs = reader.wait_for(lambda o: o.alert_outputs >= len(sc.alerts), 180, "every alert decided", worker)
        wait_for_shadow_records(settings, shadow_records_due, worker)
        return outputs, sent
    finally:
        worker.stop()
        reader.close()


def test_shadow_records_exactly_what_filter_mode_suppresses_on_the_same_input(
    settings: Settings, tmp_path: Path
) -> None:
    sc = campaign(homes=24, seed=9)
    filtered, _ = run_backlog(settings, sc, tmp_path)
    suppressed = {s["alert"]["alert_id"]: (s["esme_id"], s["activation_request_id"]) for _, s in filtered.suppressed}
    shadowed_settings = other_settings(settings, tmp_path)
    shadowed, sent = run_backlog(shadowed_settings, sc, tmp_path, len(suppressed), POA_INITIAL_MODE="shadow")

    shadow = shadow_records(shadowed_settings)
    assert suppressed, "filter mode suppresses something in this scenario"
    assert {a: (esme, request) for a, (esme, request, _) in shadow.items()} == suppressed
    assert shadowed.suppressed == [], "shadow mode suppresses nothing"
    assert sorted(shadowed.forwarded_ids()) == sorted(sent), "shadow mode forwards every alert, once"
    assert all(value == sent[CODEC.decode("DeviceAlert", value)["alert_id"]] for _, value in shadowed.forwarded)
    filtered_reasons = {s["alert"]["alert_id"]: s["reason"] for _, s in filtered.suppressed}
    assert {a: reason for a, (_, _, reason) in shadow.items()} == {
        a: "shadow: " + reason for a, reason in filtered_reasons.items()
    }


def test_pass_through_forwards_every_decodable_alert_and_still_dead_letters_bad_ones(
    settings: Settings, tmp_path: Path
) -> None:
    sc = campaign(homes=12, seed=4)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    write_activation_inputs(dsp, sc)
    sent = write_alerts(dsp, sc)
    bad = dict(sc.alerts[0], alert_id="bad-device", device_id="not-a-device")
    dsp.send(settings.topics.alerts, "not-a-device", CODEC.encode("DeviceAlert", bad))
    dsp.send(settings.topics.alerts, "x", b"not avro at all")
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path, POA_INITIAL_MODE="pass-through").start()
    reader = OutputReader(settings)
    try:
        outputs = reader.wait_for(
            lambda o: o.alert_outputs >= len(sent) and len(o.dead_letters) >= 2, 180, "every alert decided", worker
        )
        assert sorted(outputs.forwarded_ids()) == sorted(sent), "every decodable alert forwarded, once"
        assert all(value == sent[CODEC.decode("DeviceAlert", value)["alert_id"]] for _, value in outputs.forwarded)
        assert outputs.suppressed == []
        assert any(d == "suppress" for d, _ in sc.reference_decisions().values()), "the rules would suppress some"
        assert sorted(d["value"] for d in outputs.alert_dead_letters(settings.topics.alerts)) == sorted(
            [b"not avro at all", CODEC.encode("DeviceAlert", bad)]
        )
        wait_until(lambda: "mode: pass-through" in ready_body(worker), 10, "the mode on /ready")
        assert 'poa_mode{mode="pass-through"} 1.0' in worker.metrics()
        assert list(read_to_end(settings, settings.topics.shadow, 30)) == []
    finally:
        worker.stop()
        reader.close()
