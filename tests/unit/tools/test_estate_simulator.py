"""The simulated estate and scenario: deterministic, complete, and labelled as the contract's rules require.

The labels are checked against a small oracle written here from contract section 5, independent of both
the simulator's construction and the filter's decision code.
"""

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.core.bad_input import BadInput
from pipeline.settings import Settings
from pipeline.tools.csv_loaders import INVENTORY, TRACKED, LoadReport, read_csv
from pipeline.tools.estate_simulator import (
    CANCEL_AT_MS,
    DEAD_LETTER,
    FORWARD,
    RECORD_NAMES,
    SUPPRESS,
    Estate,
    Scenario,
    SimulationError,
    build_estate,
    build_scenario,
    parse_base_time,
    write_expected,
)
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec

BASE = parse_base_time("2025-01-15T08:00:00Z")
EUI64 = re.compile(r"[0-9A-F]{2}(?:-[0-9A-F]{2}){7}")
MINUTE = 60_000


def simulate(seed: int = 7, homes: int = 200, settings: Settings | None = None) -> tuple[Estate, Scenario]:
    estate = build_estate(homes, seed, 0.3, BASE)
    return estate, build_scenario(estate, seed, BASE, settings or Settings())


def written(tmp_path: Path, seed: int) -> dict[str, bytes]:
    estate, scenario = simulate(seed)
    out = tmp_path / str(seed)
    estate.write_csvs(out)
    write_expected(scenario, out / "expected.json", seed=seed)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_same_seed_same_files_and_records_other_seed_other_estate(tmp_path):
    first, again = written(tmp_path / "a", 7), written(tmp_path / "b", 7)
    assert first == again
    assert simulate(7)[1].ordered() == simulate(7)[1].ordered()
    assert written(tmp_path / "c", 8)["tracked.csv"] != first["tracked.csv"]


def test_the_estate_has_a_chf_and_esme_per_home_unique_ids_and_the_tracked_share(tmp_path):
    estate, _ = simulate()
    ids = [d for h in estate.homes for d in (h.chf, h.esme, h.gsme, h.gpf, h.ihd, h.ppmid) if d]
    assert len(ids) == len(set(ids))
    assert all(EUI64.fullmatch(d) for d in ids)
    assert len(estate.tracked) == 60
    assert 0 < sum(1 for h in estate.homes if h.gsme) < len(estate.homes)


def test_the_written_csvs_load_without_a_rejection(tmp_path):
    estate, _ = simulate()
    tracked_csv, inventory_csv = estate.write_csvs(tmp_path)
    for kind, path in ((TRACKED, tracked_csv), (INVENTORY, inventory_csv)):
        report = LoadReport(str(path))
        rows = list(read_csv(kind, str(path), 0, report))
        assert report.rejected == 0 and report.duplicates == 0
        assert len(rows) == (
            len(estate.tracked) if kind is TRACKED else sum(1 for h in estate.homes for _ in h.inventory_rows(0))
        )


def test_too_few_homes_is_refused_with_a_reason():
    with pytest.raises(SimulationError, match="at least"):
        build_estate(5, 1, 0.3, BASE)


def test_records_are_in_received_at_order_requests_before_alerts_at_the_same_millisecond():
    _, scenario = simulate()
    events = scenario.ordered()
    assert [e.received_at for e in events] == sorted(e.received_at for e in events)
    rank = {"service_requests": 0, "activation_outcomes": 1, "alerts": 2}
    for a, b in zip(events, events[1:], strict=False):
        if a.received_at == b.received_at:
            assert rank[a.topic] <= rank[b.topic]


def test_keys_are_the_target_or_originating_device_in_canonical_form():
    _, scenario = simulate()
    for event in scenario.events:
        if event.datum is None:
            continue
        device = event.datum.get("target_device_id") or event.datum["device_id"]
        assert event.key == device.upper()


def test_every_valid_record_encodes_and_validates_and_only_the_planned_ones_are_bad():
    _, scenario = simulate()
    codec = AvroCodec()
    validators = {
        "ServiceRequest": validation.service_request,
        "ActivationOutcome": validation.activation_outcome,
        "DeviceAlert": validation.device_alert,
    }
    bad = []
    for event in scenario.events:
        name = RECORD_NAMES[event.topic]
        try:
            value = event.raw if event.datum is None else codec.encode(name, event.datum, "t")
            validators[name](codec.decode(name, value))
        except BadInput:
            bad.append(event.key)
    planned = [a.key for a in scenario.alerts if a.expected == DEAD_LETTER]
    planned += [d.key for d in scenario.other_dead_letters]
    assert sorted(bad) == sorted(planned)
    assert len(scenario.other_dead_letters) == 1


def test_the_scenario_has_every_kind_of_record_the_demo_needs():
    estate, scenario = simulate()
    tracked = {h.esme for h in estate.tracked}
    requests = [e.datum for e in scenario.events if e.topic == "service_requests" and e.datum]
    activations = [r for r in requests if r["service_reference_variant"] == "11.3"]
    immediate = [r for r in activations if r["execution_datetime"] is None and r["target_device_id"] in tracked]
    future = [r for r in activations if r["execution_datetime"] and r["execution_datetime"] < CANCEL_AT_MS]
    cancels = [r for r in activations if r["execution_datetime"] == CANCEL_AT_MS]
    assert len(immediate) >= 10 and len(future) >= 10 and len(cancels) == 1
    assert any(r["service_reference_variant"] != "11.3" for r in requests)
    untracked = {h.esme for h in estate.homes if not h.tracked}
    assert any(r["target_device_id"] in untracked for r in activations)
    assert max(r["execution_datetime"] - r["received_at"] for r in future) > 24 * 60 * MINUTE
    cancel = cancels[0]
    original = next(r for r in future if r["target_device_id"] == cancel["target_device_id"])
    assert original["received_at"] < cancel["received_at"] < original["execution_datetime"]
    outcomes = Counter(e.datum["outcome"] for e in scenario.events if e.topic == "activation_outcomes" and e.datum)
    assert outcomes["NO_IMAGE_HELD"] == 1 and outcomes["HASH_MISMATCH"] == 1 and outcomes["SUCCESS"] >= 3
    for request in requests:
        originator, target, counter = request["request_id"].split(":")
        assert EUI64.fullmatch(originator) and target == request["target_device_id"] and int(counter) > 0
    alerts = [e.datum for e in scenario.events if e.topic == "alerts" and e.datum]
    codes = Counter(a["alert_code"] for a in alerts)
    assert codes["8F36"] >= 10 and codes["8F35"] >= 1 and codes["AD1"] >= 40
    assert any(e.raw for e in scenario.events)
    labels = Counter(a.expected for a in scenario.alerts)
    assert labels[SUPPRESS] >= 20 and labels[FORWARD] >= 30 and labels[DEAD_LETTER] == 2
    assert any(a["device_id"] != a["device_id"].upper() for a in alerts)  # lower-case IDs occur


def test_there_is_a_storm_many_genuine_ad1s_within_a_few_minutes():
    _, scenario = simulate(homes=400)
    storm = sorted(
        e.received_at
        for e, a in _alert_events(scenario)
        if a.case.startswith("genuine-storm") and e.datum and e.datum["alert_code"] == "AD1"
    )
    assert len(storm) >= 20
    assert storm[-1] - storm[0] <= 6 * MINUTE


def _alert_events(scenario: Scenario):
    events = [e for e in scenario.events if e.topic == "alerts"]
    assert len(events) == len(scenario.alerts)
    return zip(events, scenario.alerts, strict=True)


def oracle(estate: Estate, scenario: Scenario, settings: Settings) -> dict[str, tuple[str, set[tuple[str, str]]]]:
    """Contract 5 applied directly: alert ID -> (decision, {(ESME, request ID) justifying a suppression})."""
    esmes_on = {h.chf: h.esme for h in estate.homes}
    tracked = {h.esme for h in estate.tracked}
    events = scenario.ordered()
    requests = [e.datum for e in events if e.topic == "service_requests" and e.datum]
    outcomes = [e.datum for e in events if e.topic == "activation_outcomes" and e.datum]
    decisions: dict[str, tuple[str, set[tuple[str, str]]]] = {}
    for event, alert in _alert_events(scenario):
        datum = event.datum
        if datum is None or not EUI64.fullmatch(datum["device_id"].upper()):
            decisions[alert.alert_id] = (DEAD_LETTER, set())
            continue
        t, chf = datum["received_at"], datum["device_id"].upper()
        esme = esmes_on.get(chf)
        if datum["alert_code"] != "AD1" or esme not in tracked:
            decisions[alert.alert_id] = (FORWARD, set())
            continue
        mine = [r for r in requests if r["target_device_id"] == esme and r["service_reference_variant"] == "11.3"]
        cancels = [r["received_at"] for r in mine if (r["execution_datetime"] or 0) >= CANCEL_AT_MS]
        justified = set()
        for request_id in {r["request_id"] for r in mine}:
            versions = [r for r in mine if r["request_id"] == request_id and r["received_at"] <= t]
            if not versions or (versions[-1]["execution_datetime"] or 0) >= CANCEL_AT_MS:
                continue
            r = versions[-1]["received_at"]
            x = versions[-1]["execution_datetime"]
            start = r if x is None or x <= r else x
            cancelled = any(r <= c <= t and start > c for c in cancels)
            withdrawn = any(
                o["request_id"] == request_id
                and o["outcome"] in ("NO_IMAGE_HELD", "HASH_MISMATCH")
                and o["received_at"] <= t
                for o in outcomes
            )
            if start - settings.lead_in_ms <= t <= start + settings.window_ms and not cancelled and not withdrawn:
                justified.add((esme, request_id))
        decisions[alert.alert_id] = (SUPPRESS if justified else FORWARD, justified)
    return decisions


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        replace(Settings(), window_minutes=45, lead_in_minutes=20),
        replace(Settings(), window_minutes=1),
    ],
    ids=["default", "longer-window-and-lead-in", "one-minute-window"],
)
@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_every_label_is_what_the_contract_rules_give(settings, seed):
    estate, scenario = simulate(seed, settings=settings)
    decisions = oracle(estate, scenario, settings)
    for alert in scenario.alerts:
        decision, justified = decisions[alert.alert_id]
        assert alert.expected == decision, alert
        if decision == SUPPRESS:
            assert justified == {(alert.esme_id, alert.activation_request_id)}, alert


def test_the_expected_file_names_every_alert_once(tmp_path):
    _, scenario = simulate()
    write_expected(scenario, tmp_path / "expected.json", seed=7)
    import json

    expected = json.loads((tmp_path / "expected.json").read_text())
    ids = [a["alert_id"] for a in expected["alerts"]]
    assert len(ids) == len(set(ids)) == len(scenario.alerts)
    assert expected["seed"] == 7
