"""The explanation of a device at a time, against FilterState on the in-memory store: the decision it reports
is the state's own (each rule outcome of 5.5), and what it shows of the HAN and its activations is what the
records said, cancellations, withdrawals and replacements included."""

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Forward, Suppress
from pipeline.core.bad_input import BadInput
from pipeline.core.event_time import MINUTE_MS
from pipeline.core.explanation import MAX_LISTED_ESMES, MAX_STORM_SCAN_HANS, explain, iso_utc, parse_time
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.operating_mode import Mode
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.records import ActivationOutcome, DeviceAlert, InventoryRecord, Outcome, ServiceRequest
from pipeline.tools.explain_client import describe

BASE = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MIN = MINUTE_MS
CANCEL_X = 32_535_129_600_000  # 3000-12-31: the DUIS cancellation convention

CHF = "00-DB-12-34-56-78-90-C0"
ESME = "00-DB-12-34-56-78-90-A0"
ESME_B = "00-DB-12-34-56-78-90-B0"
LONE_CHF = "00-DB-12-34-56-78-90-EE"


def at(minutes: float) -> int:
    return BASE + round(minutes * MIN)


def rid(n: int, esme: str = ESME) -> str:
    return f"90-B3-D5-1F-30-01-00-00:{esme}:{n}"


def new_state() -> FilterState:
    return FilterState(StagedStore(MemoryBackend()), WindowPolicy())


def han(state: FilterState, *esmes: tuple[str, bool], chf: str = CHF) -> None:
    for esme, tracked in esmes:
        state.put_esme_han(esme, chf)
        state.put_tracked(esme, tracked)


def request(state: FilterState, request_id: str, received: int, execution: int | None, esme: str = ESME) -> None:
    state.apply_service_request(ServiceRequest(request_id, "11.3", esme, execution, None, received))


def worker_decision(state: FilterState, chf: str, t: int) -> Forward | Suppress:
    return state.decide(DeviceAlert("a-1", "AD1", chf, None, None, t, None))


def esme_of(answer: dict[str, Any], esme: str) -> dict[str, Any]:
    (found,) = [e for e in answer["han"]["esmes"] if e["device_id"] == esme]
    return found


def test_suppressed_by_an_activation_names_the_esme_request_window_and_rule() -> None:
    state = new_state()
    han(state, (ESME, True), (ESME_B, False))
    request(state, rid(1), at(0), at(60))
    answer = explain(state, CHF.lower(), at(75))
    assert answer["device_id"] == CHF
    assert answer["role"] == "ch_function"
    assert answer["at"] == {"iso": "2026-03-01T01:15:00.000Z", "epoch_ms": at(75)}
    assert [(e["device_id"], e["tracked"]) for e in answer["han"]["esmes"]] == [(ESME, True), (ESME_B, False)]
    (activation,) = esme_of(answer, ESME)["activations"]
    assert activation["request_id"] == rid(1)
    assert activation["received_at"]["epoch_ms"] == at(0)
    assert activation["activation_time"]["epoch_ms"] == at(60)
    assert activation["window"] == {
        "start": {"iso": iso_utc(at(60)), "epoch_ms": at(60)},
        "end": {"iso": iso_utc(at(90)), "epoch_ms": at(90)},
    }
    assert (activation["replaced"], activation["cancelled"], activation["withdrawn"]) == (None, None, None)
    assert activation["in_force"] is True
    decision = answer["decision"]
    assert decision["outcome"] == "suppressed" and decision["rule"] == "5.5"
    assert (decision["esme_id"], decision["request_id"]) == (ESME, rid(1))
    assert decision["window"] == activation["window"]
    assert f"activation {rid(1)} of ESME {ESME}" in decision["text"]
    assert decision["alert"] == {"alert_code": "AD1", "device_id": CHF, "received_at": answer["at"]}
    expected = worker_decision(state, CHF, at(75))
    assert isinstance(expected, Suppress) and expected.activation.version.request_id == decision["request_id"]


def test_the_evidence_section_is_empty_without_evidence_and_the_suppression_stands() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    answer = explain(state, CHF, at(5))
    evidence = answer["evidence"]
    assert evidence["evaluated"] is True
    assert (evidence["span"]["from"]["epoch_ms"], evidence["span"]["to"]["epoch_ms"]) == (at(-5), at(8))
    assert evidence["supply"] == [] and evidence["releases"] is None
    assert evidence["storm"] == {"postcode": None, "sector": None, "min_other_hans": 3, "hans": [], "hans_looked_at": 0,
                                 "whole_sector": True}  # fmt: skip
    assert (answer["decision"]["outcome"], answer["decision"]["pending"]) == ("suppressed", False)


def test_supply_evidence_in_the_span_is_listed_and_releases_the_ad1() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    state.put_evidence_alert(DeviceAlert("restored", "8F35", ESME, None, None, at(7), None))
    state.put_evidence_alert(DeviceAlert("too-late", "8F36", ESME, None, None, at(8) + 1, None))
    answer = explain(state, CHF, at(5))
    assert [a["alert_id"] for a in answer["evidence"]["supply"]] == ["restored"]
    decision = answer["decision"]
    assert (decision["outcome"], decision["reason"], decision["rule"]) == ("forwarded", "outage_evidence", "9")
    assert "supply evidence: 8F35 restored from ESME" in decision["text"]
    assert answer["evidence"]["releases"] == decision["text"].split(": ", 1)[1]


class Incomplete:
    """The worker's evidence status while alert partitions are not yet read past t + A."""

    policy = EvidencePolicy()

    def complete(self, t: int) -> bool:
        return False


def test_a_suppression_is_pending_while_evidence_may_still_come() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    assert explain(state, CHF, at(5), evidence=Incomplete())["decision"]["pending"] is True
    forwarded = explain(state, CHF, at(45), evidence=Incomplete())
    assert forwarded["decision"]["pending"] is False  # forwarded: nothing to wait for


def test_storm_hans_of_the_sector_are_listed_with_the_sector() -> None:
    state = new_state()
    state.put_inventory(CHF, InventoryRecord(CHF, "CHF", None, None, at(-60), "SW1A 1AA"))
    for n in range(2):
        other = f"00-DB-12-34-56-78-9{n}-C1"
        state.put_inventory(other, InventoryRecord(other, "CHF", None, None, at(-60), "sw1a 1ab"))
        state.put_evidence_alert(DeviceAlert(f"storm-{n}", "AD1", other, None, None, at(n), None))
    storm = explain(state, CHF, at(0))["evidence"]["storm"]
    assert (storm["postcode"], storm["sector"]) == ("SW1A 1AA", "SW1A 1")
    assert [h["alert_id"] for h in storm["hans"]] == ["storm-0", "storm-1"]


@pytest.mark.parametrize(
    ("setup", "t", "reason", "words"),
    [
        ("no esme", at(10), "no_esme_on_han", "no ESME is associated"),
        ("untracked", at(10), "no_tracked_esme", "tracked list"),
        ("tracked, outside the window", at(31), "no_activation_window", "no tracked ESME"),
        ("tracked, before the request", at(-1), "no_activation_window", "no tracked ESME"),
    ],
)
def test_each_forward_reason_of_rule_5_5_is_the_states_own(setup: str, t: int, reason: str, words: str) -> None:
    state = new_state()
    if setup == "untracked":
        han(state, (ESME, False))
    elif setup.startswith("tracked"):
        han(state, (ESME, True))
    if setup != "no esme":
        request(state, rid(1), at(0), None)
    answer = explain(state, CHF, t)
    decision = answer["decision"]
    expected = worker_decision(state, CHF, t)
    assert isinstance(expected, Forward) and expected.reason.value == reason
    assert (decision["outcome"], decision["reason"], decision["rule"]) == ("forwarded", reason, "5.5")
    assert words in decision["text"]
    assert "esme_id" not in decision


def test_an_esme_is_explained_from_its_side_with_the_decision_for_its_chf() -> None:
    state = new_state()
    han(state, (ESME, True), (ESME_B, True))
    request(state, rid(1, ESME_B), at(0), None, esme=ESME_B)
    answer = explain(state, ESME, at(5))
    assert answer["role"] == "esme"
    assert answer["han"]["chf_id"] == CHF
    assert esme_of(answer, ESME) == {"device_id": ESME, "tracked": True, "activations": [], "cancellations": []}
    assert answer["decision"]["alert"]["device_id"] == CHF
    assert (answer["decision"]["outcome"], answer["decision"]["esme_id"]) == ("suppressed", ESME_B)


def test_an_unknown_device_is_said_to_be_unknown_and_an_ad1_from_it_forwarded() -> None:
    answer = explain(new_state(), LONE_CHF, at(0))
    assert answer["role"] == "unknown"
    assert answer["in_inventory"] is False
    assert answer["han"] == {"chf_id": LONE_CHF, "esmes": [], "more_esmes": False}
    assert "unplaced_esme" not in answer
    assert (answer["decision"]["outcome"], answer["decision"]["reason"]) == ("forwarded", "no_esme_on_han")


def test_a_tracked_esme_on_no_han_is_shown_as_suppressing_nothing() -> None:
    state = new_state()
    state.put_esme_han(ESME, None)
    state.put_tracked(ESME, True)
    request(state, rid(1), at(0), None)
    answer = explain(state, ESME, at(5))
    assert (answer["role"], answer["in_inventory"]) == ("unknown", True)
    assert answer["unplaced_esme"]["tracked"] is True
    assert [a["request_id"] for a in answer["unplaced_esme"]["activations"]] == [rid(1)]
    assert answer["decision"]["reason"] == "no_esme_on_han"


def test_a_cancelled_activation_shows_from_when_by_which_request_and_is_not_in_force() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), at(120))
    request(state, rid(2), at(60), CANCEL_X)  # the DUIS cancellation, received before the activation starts
    answer = explain(state, CHF, at(130))
    esme = esme_of(answer, ESME)
    (activation,) = esme["activations"]  # the cancellation itself opens no activation
    assert activation["cancelled"] == {"from": {"iso": iso_utc(at(60)), "epoch_ms": at(60)}, "request_id": rid(2)}
    assert activation["in_force"] is False
    assert esme["cancellations"] == [{"iso": iso_utc(at(60)), "epoch_ms": at(60), "request_id": rid(2)}]
    assert answer["decision"]["reason"] == "no_activation_window"
    # before the cancellation was received, the activation was pending, not cancelled, and it stays listed
    earlier = explain(state, CHF, at(30))
    assert esme_of(earlier, ESME)["activations"][0]["cancelled"]["from"]["epoch_ms"] == at(60)
    printed = [line for line in describe(answer) if f"activation {rid(1)}" in line]
    assert len(printed) == 1 and f"cancelled from {iso_utc(at(60))} by request {rid(2)}" in printed[0]


def test_of_two_cancellations_at_one_millisecond_the_least_request_id_is_named_whatever_the_read_order() -> None:
    named = set()
    for order in ((2, 3), (3, 2)):
        state = new_state()
        han(state, (ESME, True))
        request(state, rid(1), at(0), at(120))
        for n in order:
            request(state, rid(n), at(60), CANCEL_X)
        named.add(esme_of(explain(state, CHF, at(130)), ESME)["activations"][0]["cancelled"]["request_id"])
    assert named == {rid(2)}


def test_a_withdrawn_activation_shows_from_when_and_counts_until_then() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    state.apply_outcome(ActivationOutcome(rid(1), ESME, Outcome.HASH_MISMATCH, at(10)))
    after = explain(state, CHF, at(15))
    (activation,) = esme_of(after, ESME)["activations"]
    assert activation["withdrawn"] == {"from": {"iso": iso_utc(at(10)), "epoch_ms": at(10)}}
    assert activation["in_force"] is False
    assert after["decision"]["outcome"] == "forwarded"
    before = explain(state, CHF, at(5))
    assert esme_of(before, ESME)["activations"][0]["in_force"] is True
    assert before["decision"]["outcome"] == "suppressed"


def test_a_replaced_sighting_shows_its_replacement_and_the_decision_follows_the_new_window() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), at(60))
    request(state, rid(1), at(30), at(300))  # the signed command, same request ID, later execution
    answer = explain(state, CHF, at(70))
    first, second = esme_of(answer, ESME)["activations"]
    assert first["replaced"] == {"from": {"iso": iso_utc(at(30)), "epoch_ms": at(30)}}
    assert (first["in_force"], second["replaced"], second["in_force"]) == (False, None, False)
    assert answer["decision"]["reason"] == "no_activation_window"
    assert explain(state, CHF, at(310))["decision"]["request_id"] == rid(1)


def test_a_crowded_han_is_listed_up_to_the_limit_and_says_there_are_more() -> None:
    state = new_state()
    esmes = [f"00-DB-12-34-56-78-{i // 256:02X}-{i % 256:02X}" for i in range(MAX_LISTED_ESMES + 1)]
    han(state, *[(e, False) for e in esmes])
    answer = explain(state, CHF, at(0))
    assert len(answer["han"]["esmes"]) == MAX_LISTED_ESMES
    assert answer["han"]["more_esmes"] is True


def test_explaining_writes_nothing() -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    state.commit()
    explain(state, CHF, at(5))
    explain(state, ESME, at(5))
    assert state.pending_changes == 0


@pytest.mark.parametrize("bad", ["", "00-DB-12-34-56-78-90", "00:DB:12:34:56:78:90:A0", "not a device"])
def test_a_malformed_device_id_is_bad_input_naming_the_device(bad: str) -> None:
    with pytest.raises(BadInput, match="device"):
        explain(new_state(), bad, at(0))


def test_times_are_iso_8601_or_epoch_ms_within_the_valid_range() -> None:
    assert parse_time(str(at(0))) == at(0)
    assert parse_time("2026-03-01T00:00:00Z") == at(0)
    assert parse_time("2026-03-01T01:00:00+01:00") == at(0)
    assert parse_time("2026-03-01T00:00:00.250") == at(0) + 250  # no offset: UTC
    for bad in ["yesterday", "1999-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "-5", "１２３"]:
        with pytest.raises(BadInput, match="time"):
            parse_time(bad)


@pytest.mark.parametrize(
    ("mode", "outcome", "reason"),
    [(Mode.FILTER, "suppressed", "activation_window"), (Mode.SHADOW, "forwarded", "shadow"),
     (Mode.PASS_THROUGH, "forwarded", "pass_through")],
)  # fmt: skip
def test_the_decision_is_the_one_of_the_operator_mode_at_the_time(mode: Mode, outcome: str, reason: str) -> None:
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), at(60))
    answer = explain(state, CHF, at(75), mode)
    assert answer["mode"]["in_force"] == mode.value
    decision = answer["decision"]
    assert (decision["outcome"], decision["reason"]) == (outcome, reason)
    assert decision["request_id"] == rid(1), "the activation the rules would suppress it for is still named"
    assert (mode is Mode.FILTER) == decision["text"].startswith("suppressed by activation")


@pytest.mark.parametrize(("mode", "pending"), [(Mode.FILTER, True), (Mode.SHADOW, True), (Mode.PASS_THROUGH, False)])
def test_a_suppression_waits_for_evidence_in_filter_and_shadow_mode_only(mode: Mode, pending: bool) -> None:
    """Shadow mode records what rules 5 and 9 would suppress, so whether it records waits for the evidence;
    pass-through forwards at once."""
    state = new_state()
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    assert explain(state, CHF, at(5), mode, Incomplete())["decision"]["pending"] is pending


def storm_sector(state: FilterState, others: int, storm_at: tuple[int, ...] = ()) -> None:
    """CHF (in a window) and `others` other CH Functions of its sector; those numbered in `storm_at` raised
    an AD1 outside any window at T + 1 min."""
    han(state, (ESME, True))
    request(state, rid(1), at(0), None)
    state.put_inventory(CHF, InventoryRecord(CHF, "CHF", None, None, at(-60), "SW1A 1AA"))
    for n in range(others):
        other = f"00-DB-12-34-{n >> 16 & 0xFF:02X}-{n >> 8 & 0xFF:02X}-{n & 0xFF:02X}-C1"
        state.put_inventory(other, InventoryRecord(other, "CHF", None, None, at(-60), "SW1A 1AB"))
        if n in storm_at:
            state.put_evidence_alert(DeviceAlert(f"storm-{n}", "AD1", other, None, None, at(6), None))


def test_storm_evidence_not_yet_final_leaves_the_suppression_pending_as_the_worker_does() -> None:
    """The triage looks for storm evidence only once it is final (evidence complete, inputs read past t + A):
    until then it holds the AD1, and may still suppress it (issue 18, item 12)."""
    state = new_state()
    storm_sector(state, 3, storm_at=(0, 1, 2))
    waiting = explain(state, CHF, at(5), evidence=Incomplete())
    assert (waiting["decision"]["outcome"], waiting["decision"]["pending"]) == ("suppressed", True)
    assert len(waiting["evidence"]["storm"]["hans"]) == 3 and waiting["evidence"]["releases"] is None
    final = explain(state, CHF, at(5))
    assert (final["decision"]["reason"], final["decision"]["pending"]) == ("outage_evidence", False)


class CountingStore(StagedStore):
    """Counts the keys every get and scan reads: the work an explanation does, whatever the machine."""

    def __init__(self) -> None:
        super().__init__(MemoryBackend())
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for item in super().scan(prefix, after):
            self.reads += 1
            yield item


def reads_to_explain(others: int) -> tuple[int, dict[str, Any]]:
    store = CountingStore()
    state = FilterState(store, WindowPolicy())
    storm_sector(state, others)
    before = store.reads
    answer = explain(state, CHF, at(5))
    return store.reads - before, answer


def test_a_question_about_a_crowded_sector_costs_a_bounded_scan_and_is_pending_past_it() -> None:
    """Each question runs on the worker's loop: it looks at MAX_STORM_SCAN_HANS other CH Functions at most,
    once, and says pending when the rest of the sector could still release the AD1."""
    within, answer = reads_to_explain(MAX_STORM_SCAN_HANS)
    assert answer["evidence"]["storm"]["whole_sector"] is True and answer["decision"]["pending"] is False
    crowded, answer = reads_to_explain(4 * MAX_STORM_SCAN_HANS)
    assert crowded <= within + 10, (within, crowded)
    storm = answer["evidence"]["storm"]
    assert (storm["whole_sector"], storm["hans_looked_at"]) == (False, MAX_STORM_SCAN_HANS)
    assert (answer["decision"]["outcome"], answer["decision"]["pending"]) == ("suppressed", True)
    assert f"  (only the first {MAX_STORM_SCAN_HANS} other HANs of the sector were looked at)" in describe(answer)


def test_storm_evidence_found_among_the_hans_looked_at_releases_the_ad1_in_a_crowded_sector() -> None:
    state = new_state()
    storm_sector(state, 2 * MAX_STORM_SCAN_HANS, storm_at=(0, 1, 2))
    answer = explain(state, CHF, at(5))
    assert (answer["decision"]["reason"], answer["decision"]["pending"]) == ("outage_evidence", False)
    assert worker_decision_with_evidence(state) is not None  # the worker's full scan finds it too


def worker_decision_with_evidence(state: FilterState) -> object:
    return state.evidence_for(DeviceAlert("a", "AD1", CHF, None, None, at(5), None), EvidencePolicy())
