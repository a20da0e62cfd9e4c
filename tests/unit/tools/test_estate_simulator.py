"""The simulated estate and scenario: deterministic, complete, and labelled as the contract's rules require.

The labels are checked against a small oracle written here from contract section 5, independent of both
the simulator's construction and the filter's decision code.
"""

import hashlib
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.core.bad_input import BadInput
from pipeline.settings import Settings
from pipeline.tools.csv_loaders import INVENTORY, TRACKED, LoadReport, read_csv
from pipeline.tools.estate_simulator import (
    AVRO,
    CANCEL_AT_MS,
    DEAD_LETTER,
    DUIS,
    DUIS_MAX_AGE_DAYS,
    FORMATS,
    FORWARD,
    MIN_HOMES,
    MIN_SECTORS,
    RECORD_NAMES,
    SECTOR_HOMES,
    SUPPRESS,
    Estate,
    Event,
    ExpectedEvidence,
    Scenario,
    SimulationError,
    build_estate,
    build_scenario,
    check_stamps,
    parse_base_time,
    write_expected,
)
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import is_duis, read_activation_outcome, read_device_alert, read_service_request

BASE = parse_base_time("2025-01-15T08:00:00Z")
EUI64 = re.compile(r"[0-9A-F]{2}(?:-[0-9A-F]{2}){7}")
MINUTE = 60_000
GB_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][ABD-HJLNP-UW-Z]{2}", re.IGNORECASE)


def simulate(
    seed: int = 7, homes: int = 200, settings: Settings | None = None, record_format: str = AVRO
) -> tuple[Estate, Scenario]:
    estate = build_estate(homes, seed, 0.3, BASE)
    return estate, build_scenario(estate, seed, BASE, settings or Settings(), record_format)


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
    # 0x8F66/0x8F67 answer the Supplier's future-dated 11.3: outcomes, never alerts for the DNO (issue 21 item 8)
    assert not {"8F66", "8F67"} & set(codes)
    assert outcomes["SUCCESS"] >= len(future) // 2
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


def sector_of(postcode: str) -> str | None:
    """Rule 9's sector, written here from the contract's sentence: upper case, spaces removed, 5 to 7 characters,
    less the last two, a space before the last remaining one."""
    compact = postcode.upper().replace(" ", "")
    return f"{compact[:-3]} {compact[-3]}" if 5 <= len(compact) <= 7 else None


def han_sectors(estate: Estate) -> dict[str, str | None]:
    """CH Function -> sector, from the inventory rows as written: the CHF's postcode, else its first ESME's."""
    rows = [row for h in estate.homes for row in h.inventory_rows(0)]
    own = {device: postcode for device, kind, _, _, postcode, _ in rows if kind == "CHF" and postcode}
    esmes: dict[str, list[tuple[str, str]]] = {}
    for device, kind, chf, _, postcode, _ in rows:
        if kind == "ESME" and postcode:
            esmes.setdefault(chf, []).append((device, postcode))
    sectors: dict[str, str | None] = {}
    for device, kind, _, _, _, _ in rows:
        if kind == "CHF":
            postcode = own.get(device) or min(esmes.get(device, [("", "")]))[1]
            sectors[device] = sector_of(postcode) if postcode else None
    return sectors


Oracle = dict[str, tuple[str, set[tuple[str, str]], ExpectedEvidence | None]]


def oracle(estate: Estate, scenario: Scenario, settings: Settings) -> Oracle:
    """Contract 5 applied directly: alert ID -> (decision, {(ESME, request ID) justifying a suppression}, the
    rule-9 evidence that releases an AD1 rule 5 would suppress)."""
    esmes_on = {h.chf: h.esme for h in estate.homes}
    tracked = {h.esme for h in estate.tracked}
    events = scenario.ordered()
    requests = [e.datum for e in events if e.topic == "service_requests" and e.datum and not e.ignored]
    outcomes = [e.datum for e in events if e.topic == "activation_outcomes" and e.datum]

    def rule_5(chf: str, t: int) -> set[tuple[str, str]]:
        esme = esmes_on.get(chf)
        if esme not in tracked:
            return set()
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
        return justified

    valid = [
        (alert, event.datum["received_at"], event.datum["device_id"].upper(), event.datum["alert_code"])
        for event, alert in _alert_events(scenario)
        if event.datum is not None and EUI64.fullmatch(event.datum["device_id"].upper())
    ]
    ad1s_forwarded = [(chf, t) for _, t, chf, code in valid if code == "AD1" and not rule_5(chf, t)]
    sectors = han_sectors(estate)
    before = settings.evidence_before_minutes * MINUTE
    after = settings.evidence_after_minutes * MINUTE

    def evidence(chf: str, t: int) -> ExpectedEvidence | None:
        supply = sorted(
            (s_t, a.alert_id, a.key, code)
            for a, s_t, device, code in valid
            if code in ("8F35", "8F36") and device == esmes_on.get(chf) and t - before <= s_t <= t + after
        )
        if supply:
            _, alert_id, esme, code = supply[0]
            return ExpectedEvidence("supply", esme_id=esme, alert_id=alert_id, alert_code=code)
        sector = sectors.get(chf)
        k = settings.storm_min_hans
        others = {
            o for o, o_t in ad1s_forwarded if o != chf and sectors.get(o) == sector and t - before <= o_t <= t + after
        }
        if k > 0 and sector is not None and len(others) >= k:
            return ExpectedEvidence("storm", sector=sector, chf_ids=tuple(sorted(others)))
        return None

    decisions: Oracle = {a.alert_id: (DEAD_LETTER, set(), None) for a in scenario.alerts}
    for alert, t, chf, code in valid:
        justified = rule_5(chf, t) if code == "AD1" else set()
        released = evidence(chf, t) if justified else None
        decisions[alert.alert_id] = (SUPPRESS if justified and not released else FORWARD, justified, released)
    return decisions


SETTINGS = {
    "default": Settings(),
    "longer-window-and-lead-in": replace(Settings(), window_minutes=45, lead_in_minutes=20),
    "one-minute-window": replace(Settings(), window_minutes=1),
    "no-span": replace(Settings(), evidence_before_minutes=0, evidence_after_minutes=0),
    "wide-span": replace(Settings(), evidence_before_minutes=240, evidence_after_minutes=60),
    "storm-of-one": replace(Settings(), storm_min_hans=1),
    "storm-of-eight": replace(Settings(), storm_min_hans=8),
    "storms-off": replace(Settings(), storm_min_hans=0),
}


@pytest.mark.parametrize("record_format", FORMATS)
@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_every_label_is_what_the_contract_rules_give(settings, seed, record_format):
    estate, scenario = simulate(seed, settings=settings, record_format=record_format)
    decisions = oracle(estate, scenario, settings)
    for alert in scenario.alerts:
        decision, justified, released = decisions[alert.alert_id]
        assert alert.expected == decision, alert
        if decision == SUPPRESS:
            assert justified == {(alert.esme_id, alert.activation_request_id)}, alert
        assert alert.evidence == released, alert
        assert alert.reason == ("outage_evidence" if released else None), alert


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_the_evidence_cases_are_all_there_released_and_near_misses(settings):
    _, scenario = simulate(settings=settings)
    cases = Counter(a.case for a in scenario.alerts)
    released = Counter((a.case, a.evidence.kind) for a in scenario.alerts if a.evidence)
    assert released[("genuine-in-window-supply-evidence", "supply")] == 2
    assert released[("genuine-in-window-supply-at-span-start", "supply")] == 1
    assert released[("genuine-in-window-supply-at-span-end", "supply")] == 1
    suppressed = Counter(a.case for a in scenario.alerts if a.expected == SUPPRESS)
    assert suppressed["in-window-supply-before-span"] == suppressed["in-window-supply-after-span"] == 1
    assert suppressed["storm-in-window-without-postcode"] == 1
    k = settings.storm_min_hans
    storm_released = released[("genuine-storm-in-activation-window", "storm")]
    assert storm_released == (2 if k else 0) and suppressed["genuine-storm-in-activation-window"] == (0 if k else 2)
    assert suppressed["storm-in-window-k-minus-one-hans"] == 1  # K - 1 other HANs, or storms off
    assert cases["genuine-storm-near-miss-sector"] == max(0, k - 1)
    assert cases["genuine-storm"] >= max(k, 5)


def test_supply_alerts_sit_inside_the_span_or_one_millisecond_outside():
    settings = Settings()
    _, scenario = simulate(settings=settings)
    at = {a.alert_id: e.received_at for e, a in _alert_events(scenario)}
    b, a_ = 10 * MINUTE, 3 * MINUTE
    supply_of = {}  # ESME -> time of its Supply Outage Restored alert
    for e, alert in _alert_events(scenario):
        if alert.case == "supply-restored-evidence":
            supply_of[alert.key] = e.received_at
    by_case: dict[str, list[int]] = {}
    for _, alert in _alert_events(scenario):
        if "supply" in alert.case and alert.alert_code == "AD1":
            esme = alert.evidence.esme_id if alert.evidence else alert.esme_id
            by_case.setdefault(alert.case, []).append(supply_of[esme] - at[alert.alert_id])
    assert by_case["genuine-in-window-supply-at-span-start"] == [-b]
    assert by_case["genuine-in-window-supply-at-span-end"] == [a_]
    assert by_case["in-window-supply-before-span"] == [-b - 1]
    assert by_case["in-window-supply-after-span"] == [a_ + 1]
    assert all(-b <= d <= a_ for d in by_case["genuine-in-window-supply-evidence"])


def test_homes_have_gb_postcodes_in_sectors_of_the_claimed_size():
    homes = 1000
    estate = build_estate(homes, 3, 0.3, BASE)
    rows = [row for h in estate.homes for row in h.inventory_rows(0)]
    written = [postcode for _, _, _, _, postcode, _ in rows if postcode]
    assert written and all(GB_POSTCODE.fullmatch(p) for p in written)
    sectors = Counter(h.sector for h in estate.homes if h.sector)
    assert len(sectors) == homes // SECTOR_HOMES
    assert max(sectors.values()) - min(sectors.values()) <= 1 and min(sectors.values()) >= 0.9 * SECTOR_HOMES
    assert han_sectors(estate) == {h.chf: h.sector for h in estate.homes}  # as written, read as rule 9 reads it
    where = Counter((h.chf_postcode is not None, h.esme_postcode is not None) for h in estate.homes)
    assert where[(False, True)] > 0.6 * homes  # mostly on the ESME row
    assert where[(True, True)] > 0 and where[(True, False)] > 0 and 0 < where[(False, False)] < 0.05 * homes
    assert any(not h.sector for h in estate.tracked)
    assert any(p != p.upper() for p in written) and any(" " not in p for p in written)  # as DSPs spell them
    small = build_estate(200, 3, 0.3, BASE)
    assert len({h.sector for h in small.homes if h.sector}) == MIN_SECTORS


@pytest.mark.parametrize("seed", range(20))
def test_the_smallest_estate_holds_every_case(seed):
    estate = build_estate(MIN_HOMES, seed, 0.3, BASE)
    scenario = build_scenario(estate, seed, BASE, Settings())
    decisions = oracle(estate, scenario, Settings())
    assert all(decisions[a.alert_id][0] == a.expected for a in scenario.alerts)


def test_a_storm_threshold_the_estate_cannot_meet_is_refused_naming_k():
    with pytest.raises(SimulationError, match="K = 500"):
        simulate(settings=replace(Settings(), storm_min_hans=500))


def test_the_expected_file_names_every_alert_once_with_the_evidence_of_those_released(tmp_path):
    _, scenario = simulate()
    write_expected(scenario, tmp_path / "expected.json", seed=7)
    expected = json.loads((tmp_path / "expected.json").read_text())
    ids = [a["alert_id"] for a in expected["alerts"]]
    assert len(ids) == len(set(ids)) == len(scenario.alerts)
    assert expected["seed"] == 7
    released = [a for a in expected["alerts"] if a["reason"] == "outage_evidence"]
    assert len(released) == len(scenario.released_on_evidence()) == 6
    supply = next(a for a in released if a["evidence"]["kind"] == "supply")
    assert EUI64.fullmatch(supply["evidence"]["esme_id"]) and supply["evidence"]["alert_code"] in ("8F35", "8F36")
    storm = next(a for a in released if a["evidence"]["kind"] == "storm")
    assert sector_of(storm["evidence"]["sector"] + "AA") == storm["evidence"]["sector"]
    assert len(storm["evidence"]["chf_ids"]) >= 3


# --- the campaign written as DUIS documents (simulate --format duis) ---------------------------------------


def document(event: Event) -> bytes:
    assert event.raw is not None, event
    return event.raw


READERS = {
    "service_requests": (
        lambda v, t: read_service_request(v, t, Settings().command_variants),
        validation.service_request,
    ),
    "activation_outcomes": (read_activation_outcome, validation.activation_outcome),
    "alerts": (read_device_alert, validation.device_alert),
}


@pytest.mark.parametrize("seed", [1, 7])
def test_each_duis_document_reads_back_through_the_workers_readers_as_the_record_it_stands_for(seed):
    _, scenario = simulate(seed, record_format=DUIS)
    bad, ignored = [], []
    for event in scenario.events:
        assert is_duis(event.raw), event
        read, validate = READERS[event.topic]
        try:
            datum = read(document(event), event.received_at)
        except BadInput as exc:
            assert str(exc).startswith(("/Request/", "/Response/")), exc  # the element path, for the DSP engineer
            bad.append(event.key)
            continue
        if datum is None:
            ignored.append(event)
            continue
        assert not event.ignored and event.datum is not None, event
        assert validate(datum) == validate(event.datum)
        if event.topic == "alerts":
            assert datum["payload"] == event.raw == event.datum["payload"]
    planned = [a.key for a in scenario.alerts if a.expected == DEAD_LETTER]
    assert sorted(bad) == sorted(planned + [d.key for d in scenario.other_dead_letters])
    assert ignored == [e for e in scenario.events if e.ignored] and len(ignored) == 2  # variant 4, never signed too


def test_duis_and_avro_write_the_same_campaign_for_a_seed():
    (_, avro), (_, duis) = simulate(7), simulate(7, record_format=DUIS)
    assert [(e.topic, e.key, e.received_at) for e in avro.events] == [
        (e.topic, e.key, e.received_at) for e in duis.events
    ]
    assert [(a.key, a.alert_code, a.case, a.expected) for a in avro.alerts] == [
        (a.key, a.alert_code, a.case, a.expected) for a in duis.alerts
    ]
    assert all(a.value_sha256 is None for a in avro.alerts)
    by_id = {e.datum["alert_id"]: e for e in duis.events if e.topic == "alerts" and e.datum}
    for alert in duis.alerts:
        if alert.expected != DEAD_LETTER:
            assert alert.value_sha256 == hashlib.sha256(document(by_id[alert.alert_id])).hexdigest()


def test_duis_outcomes_are_responses_and_future_dated_alerts_on_the_outcome_topic_never_on_the_alert_topic():
    _, scenario = simulate(record_format=DUIS)
    on = {topic: [document(e) for e in scenario.events if e.topic == topic] for topic in READERS}
    future_dated = [v for v in on["activation_outcomes"] if b"FutureDatedDeviceAlertMessage" in v]
    assert any(b"<sr:FutureDatedAlertCode>8F66<" in v for v in future_dated)
    assert sum(b"<sr:FutureDatedAlertCode>8F67<" in v for v in future_dated) == 1
    assert len(future_dated) < len(on["activation_outcomes"])  # and immediate outcomes
    assert not any(b"FutureDated" in v for v in on["alerts"])
    requests = on["service_requests"]
    assert any(b"<sr:CommandVariant>4<" in v for v in requests) and any(b"<sr:CommandVariant>7<" in v for v in requests)


@pytest.mark.parametrize("record_format", FORMATS)
def test_the_bad_alert_is_a_duis_device_alert_whose_frame_disagrees_with_its_header(record_format):
    _, scenario = simulate(record_format=record_format)
    (expected,) = [a for a in scenario.alerts if a.case == "frame-disagrees-with-header"]
    (event,) = [e for e in scenario.events if e.topic == "alerts" and e.key == expected.key]
    assert expected.expected == DEAD_LETTER and event.datum is None
    with pytest.raises(BadInput, match="^/Response/Body/DeviceAlertMessage/GBCSPayload: the GBCS alert is from "):
        read_device_alert(document(event), event.received_at)


def test_a_duis_scenario_is_refused_when_variant_4_would_count():
    with pytest.raises(SimulationError, match="POA_DUIS_COMMAND_VARIANTS"):
        simulate(settings=replace(Settings(), duis_command_variants="4,5,7"), record_format=DUIS)


def test_the_expected_file_says_the_format():
    for record_format in FORMATS:
        assert simulate(record_format=record_format)[1].expected_json()["format"] == record_format


def test_a_duis_campaign_stamped_too_long_ago_is_refused_an_avro_one_is_not():
    _, duis = simulate(record_format=DUIS)
    _, avro = simulate()
    start = min(e.received_at for e in duis.events)
    check_stamps(duis, start + DUIS_MAX_AGE_DAYS * 24 * 60 * MINUTE)  # just within
    check_stamps(avro, start + 400 * 24 * 60 * MINUTE)
    with pytest.raises(SimulationError, match="give a --base-time within the last 30 days"):
        check_stamps(duis, start + DUIS_MAX_AGE_DAYS * 24 * 60 * MINUTE + 1)
