"""Contract section 5, rule by rule: the expected decisions are derived from the contract text alone.

Times are written relative to a base instant in minutes (`at(15)` is 15 minutes after it); every test
builds a HAN with the `han()` builder, applies the records it names, and asks for decisions.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from pipeline.core.activation_windows import Activation, WindowPolicy
from pipeline.core.alert_decisions import Decision, Suppress
from pipeline.core.bad_input import BadInput
from pipeline.core.filter_state import FilterState, SweepPass, WindowCounts
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.records import ActivationOutcome, DeviceAlert, InventoryRecord, Outcome, ServiceRequest
from pipeline.core.written import Written


def epoch_ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000


MIN = 60_000
DAY = 86_400_000
WINDOW = 30 * MIN
BASE = epoch_ms(2024, 6, 1)
CANCEL_X = epoch_ms(3000, 12, 31)  # the DUIS cancellation convention
YEAR_3000 = epoch_ms(3000, 1, 1)

ESME = "00-DB-12-34-56-78-90-A0"
ESME_B = "00-DB-12-34-56-78-90-B0"
CHF = "00-DB-12-34-56-78-90-C0"
CHF_B = "00-DB-12-34-56-78-90-D0"
UNKNOWN_CHF = "00-DB-12-34-56-78-90-EE"
ORIGINATOR = "90-B3-D5-1F-30-01-00-00"
HASH = "AB" * 32

SUPPRESS = "suppress"
FORWARD = "forward"


def at(minutes: float) -> int:
    return BASE + round(minutes * MIN)


def rid(counter: int, esme: str = ESME) -> str:
    """A DUIS RequestID: originator:target:counter."""
    return f"{ORIGINATOR}:{esme}:{counter}"


REQUEST_ID = rid(1)

R = at(0)  # the default receipt time of the request under test


def written_when_received(received_at: int) -> Written:
    """Where the DSP's producer puts a record: on its topic as it receives it."""
    return Written(received_at, 0, 0)


@dataclass
class Han:
    """A filter state holding one or more HANs; each method applies one kind of input record."""

    state: FilterState

    def inventory(self, device: str, device_type: str = "ESME", chf: str | None = CHF) -> None:
        self.state.put_inventory(device, InventoryRecord(device, device_type, chf, None, BASE))

    def remove_from_inventory(self, device: str) -> None:
        self.state.put_inventory(device, None)

    def track(self, device: str, listed: bool = True) -> None:
        self.state.put_tracked(device, listed)

    def request(
        self,
        r: int,
        x: int | None = None,
        *,
        esme: str = ESME,
        request_id: str = REQUEST_ID,
        variant: str = "11.3",
        firmware_hash: str | None = HASH,
    ) -> object:
        request = ServiceRequest(request_id, variant, esme, x, firmware_hash, r)
        return self.state.apply_service_request(request, written_when_received(r))

    def cancel(
        self, r: int, *, esme: str = ESME, request_id: str = rid(99), firmware_hash: str | None = HASH
    ) -> object:
        return self.request(r, CANCEL_X, esme=esme, request_id=request_id, firmware_hash=firmware_hash)

    def outcome(self, received_at: int, outcome: Outcome, request_id: str = REQUEST_ID, device: str = ESME) -> None:
        outcome_record = ActivationOutcome(request_id, device, outcome, received_at)
        self.state.apply_outcome(outcome_record, written_when_received(received_at))

    def decide(self, t: int, chf: str = CHF, code: str = "AD1") -> Decision:
        return self.state.decide(DeviceAlert(f"alert-{t}", code, chf, "1234567890123", None, t, b"\x01"))

    def verdict(self, t: int, chf: str = CHF, code: str = "AD1") -> str:
        return SUPPRESS if isinstance(self.decide(t, chf, code), Suppress) else FORWARD

    def verdicts(self, times: dict[str, int], chf: str = CHF) -> dict[str, str]:
        return {label: self.verdict(t, chf) for label, t in times.items()}

    def activation(self, t: int, chf: str = CHF) -> Activation:
        decision = self.decide(t, chf)
        assert isinstance(decision, Suppress), f"expected a suppression at {t}, got {decision}"
        return decision.activation


Step = Callable[[Han], object]
TimedStep = Callable[[Han, int], object]


def han(
    policy: WindowPolicy | None = None,
    on_han: Iterable[tuple[str, str | None]] = ((ESME, CHF),),
    tracked: Iterable[str] = (ESME,),
    device_type: str = "ESME",
) -> Han:
    """A fresh state with the given ESMEs in inventory (ESME -> CHF) and the given devices tracked."""
    h = Han(FilterState(StagedStore(MemoryBackend()), policy or WindowPolicy()))
    for device, chf in on_han:
        h.inventory(device, device_type, chf)
    for device in tracked:
        h.track(device)
    return h


def edges(start: int, end: int) -> dict[str, int]:
    """The instants that pin down a window [start, end], both ends inclusive."""
    return {
        "start-1ms": start - 1,
        "start": start,
        "middle": (start + end) // 2,
        "end": end,
        "end+1ms": end + 1,
    }


INCLUSIVE = {"start-1ms": FORWARD, "start": SUPPRESS, "middle": SUPPRESS, "end": SUPPRESS, "end+1ms": FORWARD}
NOTHING = dict.fromkeys(INCLUSIVE, FORWARD)


# --- 5.1 activation time and window ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("execution", "activation_time"),
    [
        pytest.param(None, R, id="immediate: null execution time, T = r"),
        pytest.param(R - 60 * MIN, R, id="execution time in the past, T = r"),
        pytest.param(R, R, id="execution time equal to r, T = r"),
        pytest.param(R + 120 * MIN, R + 120 * MIN, id="future-dated, T = x"),
        pytest.param(R + 1, R + 1, id="future-dated by 1 ms, T = x"),
    ],
)
def test_window_is_T_to_T_plus_30_minutes_both_ends_inclusive(execution: int | None, activation_time: int) -> None:
    h = han()
    h.request(R, execution)
    assert h.verdicts(edges(activation_time, activation_time + WINDOW)) == INCLUSIVE


def test_audit_names_the_request_and_its_own_window() -> None:
    h = han()
    h.request(R, at(120), request_id=rid(7))
    activation = h.activation(at(130))
    assert (activation.version.esme_id, activation.version.request_id) == (ESME, rid(7))
    assert (activation.version.received_at, activation.version.activation_time) == (R, at(120))
    assert (activation.window.start, activation.window.end) == (at(120), at(150))


@pytest.mark.parametrize(
    ("policy", "start", "end"),
    [
        pytest.param(WindowPolicy(window_ms=10 * MIN), at(120), at(130), id="10-minute window"),
        pytest.param(WindowPolicy(window_ms=45 * MIN), at(120), at(165), id="45-minute window"),
        pytest.param(WindowPolicy(lead_in_ms=5 * MIN), at(115), at(150), id="5-minute lead-in"),
        pytest.param(WindowPolicy(window_ms=20 * MIN, lead_in_ms=2 * MIN), at(118), at(140), id="both"),
    ],
)
def test_window_length_and_lead_in_are_configurable(policy: WindowPolicy, start: int, end: int) -> None:
    h = han(policy)
    h.request(R, at(120))
    assert h.verdicts(edges(start, end)) == INCLUSIVE
    window = h.activation(start).window
    assert (window.start, window.end) == (start, end)


@pytest.mark.parametrize(
    "execution",
    [
        pytest.param(at(5), id="future-dated, lead-in reaches back before r"),
        pytest.param(at(-20), id="past execution time, lead-in before T = r"),
        pytest.param(None, id="immediate, lead-in before T = r"),
    ],
)
def test_activation_counts_only_for_alerts_received_at_or_after_its_request(execution: int | None) -> None:
    h = han(WindowPolicy(lead_in_ms=10 * MIN))
    h.request(R, execution)
    assert h.verdicts({"lead-in start": at(-5), "r-1ms": R - 1, "r": R}) == {
        "lead-in start": FORWARD,
        "r-1ms": FORWARD,
        "r": SUPPRESS,
    }


def test_repeated_request_id_replaces_the_earlier_activation_from_its_own_receipt_on() -> None:
    h = han()
    h.request(at(0), None)  # window [0, 30]
    h.request(at(10), at(120))  # the same request ID, seen again: window [120, 150]
    assert h.verdicts({"before repeat": at(5), "at repeat": at(10), "after repeat": at(15), "new": at(130)}) == {
        "before repeat": SUPPRESS,
        "at repeat": FORWARD,
        "after repeat": FORWARD,
        "new": SUPPRESS,
    }
    assert h.activation(at(5)).version.received_at == at(0)
    assert h.activation(at(130)).version.received_at == at(10)


def test_repeated_request_id_moving_the_activation_earlier_ends_the_later_window() -> None:
    h = han()
    h.request(at(0), at(60))  # window [60, 90]
    h.request(at(10), None)  # replacement: window [10, 40]
    assert h.verdicts({"new": at(20), "old": at(70)}) == {"new": SUPPRESS, "old": FORWARD}


def test_request_seen_twice_with_the_same_execution_time_is_one_activation_named_by_the_later_sighting() -> None:
    h = han()
    h.request(at(0), at(60))  # pre-command
    h.request(at(5), at(60))  # signed command
    assert h.verdicts(edges(at(60), at(90))) == INCLUSIVE
    assert h.activation(at(70)).version.received_at == at(5)


def test_request_with_another_request_id_does_not_replace() -> None:
    h = han()
    h.request(at(0), None, request_id=rid(1))
    h.request(at(10), at(120), request_id=rid(2))
    assert h.verdicts({"first": at(20), "second": at(130)}) == {"first": SUPPRESS, "second": SUPPRESS}


@pytest.mark.parametrize("variant", ["11.1", "8.1.1", "11.3 ", "113", ""])
def test_other_service_reference_variants_are_ignored(variant: str) -> None:
    h = han()
    h.request(R, None, variant=variant)
    assert h.verdicts(edges(R, R + WINDOW)) == NOTHING


@pytest.mark.parametrize(
    "execution",
    [pytest.param(None, id="would-be activation"), pytest.param(CANCEL_X, id="would-be cancellation")],
)
def test_other_variant_with_a_repeated_request_id_neither_replaces_nor_cancels(execution: int | None) -> None:
    h = han()
    h.request(at(0), at(60))
    h.request(at(10), execution, variant="11.1")
    assert h.verdict(at(70)) == SUPPRESS


def test_other_variant_far_in_the_future_is_ignored_not_bad_input() -> None:
    h = han()
    assert h.request(R, R + 100 * DAY, variant="11.1") is None


@pytest.mark.parametrize(
    ("policy", "horizon"),
    [
        pytest.param(WindowPolicy(), 30 * DAY, id="30 days"),
        pytest.param(WindowPolicy(max_future_ms=2 * DAY), 2 * DAY),
    ],
)
def test_execution_time_exactly_at_the_horizon_is_accepted(policy: WindowPolicy, horizon: int) -> None:
    h = han(policy)
    h.request(R, R + horizon)
    assert h.verdicts(edges(R + horizon, R + horizon + WINDOW)) == INCLUSIVE


@pytest.mark.parametrize(
    ("policy", "execution"),
    [
        pytest.param(WindowPolicy(), R + 30 * DAY + 1, id="30 days + 1 ms"),
        pytest.param(WindowPolicy(), YEAR_3000 - 1, id="last ms of year 2999"),
        pytest.param(WindowPolicy(max_future_ms=2 * DAY), R + 2 * DAY + 1, id="configured 2 days + 1 ms"),
    ],
)
def test_execution_time_beyond_the_horizon_is_bad_input_and_changes_nothing(
    policy: WindowPolicy, execution: int
) -> None:
    h = han(policy)
    with pytest.raises(BadInput, match="execution_datetime"):
        h.request(R, execution)
    h.request(at(10), None, request_id=rid(2))  # an activation the bad request must not have cancelled
    assert h.verdicts({"window of the bad request": execution + 1, "other": at(20)}) == {
        "window of the bad request": FORWARD,
        "other": SUPPRESS,
    }


# --- 5.2 cancellation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cancel_x", [pytest.param(YEAR_3000, id="3000-01-01"), pytest.param(CANCEL_X, id="3000-12-31")]
)
def test_cancellation_ends_a_pending_activation_from_its_receipt_on(cancel_x: int) -> None:
    h = han()
    h.request(at(0), at(120))
    h.request(at(60), cancel_x, request_id=rid(5))
    assert h.verdicts(edges(at(120), at(150))) == NOTHING


def test_cancellation_applies_from_its_own_receipt_on_not_before() -> None:
    h = han(WindowPolicy(lead_in_ms=90 * MIN))  # window [30, 150], so it starts before the cancellation
    h.request(at(0), at(120))
    h.cancel(at(60))
    assert h.verdicts({"before cancellation": at(45), "at cancellation": at(60), "after": at(130)}) == {
        "before cancellation": SUPPRESS,
        "at cancellation": FORWARD,
        "after": FORWARD,
    }


@pytest.mark.parametrize(
    ("execution", "cancelled_at"),
    [
        pytest.param(None, at(10), id="immediate activation, cancelled 10 min later"),
        pytest.param(at(-30), at(10), id="past execution time, cancelled later"),
        pytest.param(at(60), at(60), id="future-dated, cancelled at exactly T"),
        pytest.param(at(60), at(70), id="future-dated, cancelled after T"),
    ],
)
def test_cancellation_never_ends_an_activation_that_has_started(execution: int | None, cancelled_at: int) -> None:
    h = han()
    h.request(R, execution)
    h.cancel(cancelled_at)
    start = R if execution is None or execution <= R else execution
    assert h.verdicts(edges(start, start + WINDOW)) == INCLUSIVE


def test_cancellation_one_ms_before_T_cancels() -> None:
    h = han()
    h.request(R, at(60))
    h.cancel(at(60) - 1)
    assert h.verdicts(edges(at(60), at(90))) == NOTHING


def test_activation_requested_after_the_cancellation_is_not_cancelled() -> None:
    h = han()
    h.cancel(at(0))
    h.request(at(10), at(120))
    assert h.verdicts(edges(at(120), at(150))) == INCLUSIVE


def test_activation_requested_at_the_same_millisecond_as_the_cancellation_is_cancelled() -> None:
    h = han()
    h.cancel(at(10))
    h.request(at(10), at(120))
    assert h.verdicts(edges(at(120), at(150))) == NOTHING


@pytest.mark.parametrize(
    "execution", [pytest.param(None, id="immediate"), pytest.param(at(-5), id="past execution time")]
)
def test_cancellation_reusing_the_request_id_of_a_started_activation_does_not_end_it(
    execution: int | None,
) -> None:
    h = han()
    h.request(R, execution, request_id=rid(3))
    h.cancel(at(10), request_id=rid(3))
    assert h.verdicts(edges(R, R + WINDOW)) == INCLUSIVE


def test_cancellation_reusing_the_request_id_of_a_pending_activation_cancels_it() -> None:
    h = han()
    h.request(R, at(60), request_id=rid(3))
    h.cancel(at(10), request_id=rid(3))
    assert h.verdict(at(70)) == FORWARD


def test_cancellation_of_another_esme_does_nothing() -> None:
    h = han(on_han=((ESME, CHF), (ESME_B, CHF)), tracked=(ESME, ESME_B))
    h.request(R, at(60))
    h.cancel(at(10), esme=ESME_B)
    assert h.verdicts(edges(at(60), at(90))) == INCLUSIVE


@pytest.mark.parametrize("cancel_hash", [HASH, "CD" * 32, None])
def test_cancellation_need_not_match_the_firmware_hash(cancel_hash: str | None) -> None:
    h = han()
    h.request(R, at(60))
    h.cancel(at(10), firmware_hash=cancel_hash)
    assert h.verdict(at(70)) == FORWARD


def test_repeat_of_a_cancelled_request_received_after_the_cancellation_is_live() -> None:
    h = han()
    h.request(at(0), at(180))
    h.cancel(at(60))
    h.request(at(120), at(180))  # the same request ID, sent again after the cancellation
    assert h.verdicts({"before repeat": at(100), "window": at(190)}) == {
        "before repeat": FORWARD,
        "window": SUPPRESS,
    }


def test_cancellation_ends_every_pending_activation_of_the_esme() -> None:
    h = han()
    h.request(at(0), at(120), request_id=rid(1))
    h.request(at(5), at(200), request_id=rid(2))
    h.request(at(6), None, request_id=rid(3))  # started: survives
    h.cancel(at(10))
    assert h.verdicts({"first": at(125), "second": at(205), "started": at(20)}) == {
        "first": FORWARD,
        "second": FORWARD,
        "started": SUPPRESS,
    }


# --- 5.3 withdrawal by outcome --------------------------------------------------------------------

WITHDRAWING = [Outcome.NO_IMAGE_HELD, Outcome.HASH_MISMATCH]
NOT_WITHDRAWING = [Outcome.SUCCESS, Outcome.ACTIVATION_FAILURE, Outcome.UNKNOWN]


@pytest.mark.parametrize("outcome", WITHDRAWING)
@pytest.mark.parametrize("outcome_first", [False, True], ids=["request read first", "outcome read first"])
def test_no_image_or_hash_mismatch_withdraws_from_the_outcome_receipt_on(outcome: Outcome, outcome_first: bool) -> None:
    h = han()
    records = [lambda: h.request(R, at(60)), lambda: h.outcome(at(70), outcome)]
    for apply in reversed(records) if outcome_first else records:
        apply()
    assert h.verdicts({"before": at(65), "at outcome": at(70), "after": at(75)}) == {
        "before": SUPPRESS,
        "at outcome": FORWARD,
        "after": FORWARD,
    }


@pytest.mark.parametrize("outcome", WITHDRAWING)
def test_withdrawal_is_matched_by_request_id_alone(outcome: Outcome) -> None:
    h = han()
    h.request(R, at(60))
    h.outcome(at(10), outcome, device=ESME_B)  # another device ID in the outcome
    assert h.verdict(at(70)) == FORWARD


@pytest.mark.parametrize("outcome", WITHDRAWING)
def test_withdrawal_received_before_the_request_withdraws_it_throughout(outcome: Outcome) -> None:
    h = han()
    h.outcome(at(-10), outcome)
    h.request(R, None)
    assert h.verdicts(edges(R, R + WINDOW)) == NOTHING


@pytest.mark.parametrize("outcome", NOT_WITHDRAWING)
def test_other_outcomes_change_nothing(outcome: Outcome) -> None:
    h = han()
    h.request(R, at(60))
    h.outcome(at(10), outcome)
    h.outcome(at(65), outcome)
    assert h.verdicts(edges(at(60), at(90))) == INCLUSIVE


@pytest.mark.parametrize("outcome", WITHDRAWING)
def test_withdrawal_of_another_request_id_changes_nothing(outcome: Outcome) -> None:
    h = han()
    h.request(R, at(60))
    h.outcome(at(10), outcome, request_id=rid(2))
    assert h.verdicts(edges(at(60), at(90))) == INCLUSIVE


@pytest.mark.parametrize("outcome", WITHDRAWING)
@pytest.mark.parametrize("withdrawn_at", [at(30), at(130)], ids=["before the repeat", "after the repeat"])
def test_withdrawal_applies_to_a_replacement_with_the_same_request_id(outcome: Outcome, withdrawn_at: int) -> None:
    h = han()
    h.request(at(0), at(120))
    h.request(at(60), at(120))
    h.outcome(withdrawn_at, outcome)
    assert h.verdict(withdrawn_at) == FORWARD
    assert h.verdict(at(150)) == FORWARD


# --- 5.4 alert codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AD1", SUPPRESS),
        ("ad1", FORWARD),
        ("Ad1", FORWARD),
        ("AD1 ", FORWARD),
        ("AD10", FORWARD),
        ("8F36", FORWARD),
        ("8F35", FORWARD),
        ("", FORWARD),
    ],
)
def test_only_the_exact_code_AD1_is_suppressed(code: str, expected: str) -> None:
    h = han()
    h.request(R, None)
    assert h.verdict(at(10), code=code) == expected


# --- 5.5 who is on the HAN ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_type", "expected"),
    [
        ("ESME", SUPPRESS),
        ("esme", SUPPRESS),
        ("Esme", SUPPRESS),
        ("GSME", FORWARD),
        ("CHF", FORWARD),
        ("IHD", FORWARD),
        ("HCALCS", FORWARD),
        ("ESME ", FORWARD),
    ],
)
def test_only_a_device_of_type_esme_in_any_case_counts(device_type: str, expected: str) -> None:
    h = han(device_type=device_type)
    h.request(R, None)
    assert h.verdict(at(10)) == expected


def test_untracked_esme_with_an_activation_is_forwarded() -> None:
    h = han(tracked=())
    h.request(R, None)
    assert h.verdict(at(10)) == FORWARD


def test_removal_from_the_tracked_list_applies_to_later_decisions() -> None:
    h = han()
    h.request(R, None)
    h.track(ESME, listed=False)
    assert h.verdict(at(10)) == FORWARD
    h.track(ESME)
    assert h.verdict(at(10)) == SUPPRESS


def test_inventory_tombstone_forwards() -> None:
    h = han()
    h.request(R, None)
    h.remove_from_inventory(ESME)
    assert h.verdict(at(10)) == FORWARD


@pytest.mark.parametrize(
    "reassign",
    [
        pytest.param(lambda h: h.inventory(ESME, "ESME", None), id="no CHF any more"),
        pytest.param(lambda h: h.inventory(ESME, "GSME", CHF), id="no longer an ESME"),
    ],
)
def test_latest_inventory_value_applies(reassign: Step) -> None:
    h = han()
    h.request(R, None)
    reassign(h)
    assert h.verdict(at(10)) == FORWARD


def test_esme_moved_to_another_chf_suppresses_only_on_the_new_han() -> None:
    h = han()
    h.request(R, None)
    h.inventory(ESME, "ESME", CHF_B)
    assert {chf: h.verdict(at(10), chf) for chf in (CHF, CHF_B)} == {CHF: FORWARD, CHF_B: SUPPRESS}


def test_esme_without_a_chf_never_suppresses() -> None:
    h = han(on_han=((ESME, None),))
    h.request(R, None)
    assert h.verdict(at(10)) == FORWARD


@pytest.mark.parametrize(
    ("tracked", "with_activation", "expected"),
    [
        pytest.param((ESME,), ESME, SUPPRESS, id="tracked ESME has the activation"),
        pytest.param((ESME_B,), ESME, FORWARD, id="untracked ESME has the activation"),
        pytest.param((ESME, ESME_B), ESME_B, SUPPRESS, id="both tracked, second has the activation"),
    ],
)
def test_two_esmes_on_one_han(tracked: tuple[str, ...], with_activation: str, expected: str) -> None:
    h = han(on_han=((ESME, CHF), (ESME_B, CHF)), tracked=tracked)
    h.request(R, None, esme=with_activation, request_id=rid(1, with_activation))
    assert h.verdict(at(10)) == expected
    if expected == SUPPRESS:
        assert h.activation(at(10)).version.esme_id == with_activation


def test_tracked_non_esme_with_an_activation_on_the_same_han_is_forwarded() -> None:
    h = han(on_han=((ESME, CHF),), tracked=(ESME, ESME_B))
    h.inventory(ESME_B, "GSME", CHF)
    h.request(R, None, esme=ESME_B, request_id=rid(1, ESME_B))
    assert h.verdict(at(10)) == FORWARD


def test_alert_from_an_unknown_chf_is_forwarded() -> None:
    h = han()
    h.request(R, None)
    assert h.verdict(at(10), UNKNOWN_CHF) == FORWARD


def test_activation_of_a_tracked_esme_on_another_han_does_not_suppress() -> None:
    h = han(on_han=((ESME, CHF), (ESME_B, CHF_B)), tracked=(ESME, ESME_B))
    h.request(R, None, esme=ESME_B, request_id=rid(1, ESME_B))
    assert {chf: h.verdict(at(10), chf) for chf in (CHF, CHF_B)} == {CHF: FORWARD, CHF_B: SUPPRESS}


def test_reference_data_read_after_the_request_applies() -> None:
    h = han(on_han=(), tracked=())
    h.request(R, None)
    assert h.verdict(at(10)) == FORWARD
    h.inventory(ESME)
    h.track(ESME)
    assert h.verdict(at(10)) == SUPPRESS


@pytest.mark.parametrize(
    "t",
    [at(5), at(25), at(35), at(45), at(65)],
)
def test_audit_names_an_activation_whose_window_contains_the_alert(t: int) -> None:
    h = han(on_han=((ESME, CHF), (ESME_B, CHF)), tracked=(ESME, ESME_B))
    h.request(at(0), None, request_id=rid(1))  # [0, 30]
    h.request(at(1), at(20), request_id=rid(2))  # [20, 50]
    h.request(at(2), at(40), esme=ESME_B, request_id=rid(1, ESME_B))  # [40, 70]
    activation = h.activation(t)
    assert activation.window.start <= t <= activation.window.end
    assert activation.window.end - activation.window.start == WINDOW
    assert activation.window.start == activation.version.activation_time


# --- 5.6 ties at the same millisecond -------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(lambda h, t: h.request(t, None, request_id=rid(2)), SUPPRESS, id="request at t"),
        pytest.param(lambda h, t: h.cancel(t), FORWARD, id="cancellation at t"),
        pytest.param(lambda h, t: h.outcome(t, Outcome.NO_IMAGE_HELD), FORWARD, id="withdrawal at t"),
        pytest.param(lambda h, t: h.request(t, at(300)), FORWARD, id="replacement at t"),
    ],
)
@pytest.mark.parametrize("alert_first", [False, True], ids=["record applied first", "alert decided first"])
def test_records_at_the_alert_millisecond_apply_before_the_alert(
    record: TimedStep, expected: str, alert_first: bool
) -> None:
    h = han(WindowPolicy(lead_in_ms=10 * MIN))
    h.request(R, at(60))  # [50, 90]: t is inside the window and before T, so a cancellation at t applies
    t = at(55)
    if alert_first:
        h.decide(t)  # deciding must leave no trace in the state
    record(h, t)
    assert h.verdict(t) == expected


# --- housekeeping ---------------------------------------------------------------------------------

REACH = WindowPolicy().reach_ms  # 30 days and 30 minutes: the longest a request can matter after its receipt


def sweep(h: Han, now: int, retention_ms: int) -> WindowCounts:
    """One whole housekeeping pass, in slices of two keys as the worker runs it in slices."""
    sweep_pass = SweepPass(now, retention_ms)
    while not h.state.sweep_some(sweep_pass, limit=2):
        pass
    return sweep_pass.counts


def three_windows(policy: WindowPolicy | None = None) -> Han:
    h = han(policy)
    h.request(at(0), None, request_id=rid(1))  # [0, 30]
    h.request(at(0), at(60), request_id=rid(2))  # [60, 90]
    h.request(at(0), at(100), request_id=rid(3))  # [100, 130]
    return h


@pytest.mark.parametrize(
    ("now", "pending", "active"),
    [
        pytest.param(at(0), 2, 1, id="first window starts"),
        pytest.param(at(30), 2, 1, id="first window's last ms"),
        pytest.param(at(30) + 1, 2, 0, id="between windows"),
        pytest.param(at(60) - 1, 2, 0, id="just before the second"),
        pytest.param(at(60), 1, 1, id="second starts"),
        pytest.param(at(131), 0, 0, id="all over"),
    ],
)
def test_sweep_counts_pending_and_active_windows_at_now(now: int, pending: int, active: int) -> None:
    counts = sweep(three_windows(), now, retention_ms=DAY)
    assert (counts.pending, counts.active, counts.purged) == (pending, active, 0)


def test_sweep_counts_the_lead_in_as_part_of_the_window() -> None:
    counts = sweep(three_windows(WindowPolicy(lead_in_ms=5 * MIN)), at(55), retention_ms=DAY)
    assert (counts.pending, counts.active) == (1, 1)


@pytest.mark.parametrize(("beyond", "purged"), [(0, 0), (1, 1)], ids=["at the boundary", "1 ms beyond"])
def test_sweep_purges_windows_that_ended_more_than_retention_and_reach_before_now(beyond: int, purged: int) -> None:
    h = han()
    h.request(at(0), None)  # window ends at(30)
    retention = 60 * MIN
    now = at(30) + REACH + retention + beyond
    first = sweep(h, now, retention)
    again = sweep(h, now, retention)
    assert (first.purged, again.purged) == (purged, 0)
    assert h.verdict(at(10)) == (FORWARD if purged else SUPPRESS)


def test_sweep_keeps_what_was_written_after_the_horizon_however_old_its_times() -> None:
    """A replay of old records (or a record with a far-past received_at) is still on its topic: a rebuild
    would restore it, so housekeeping keeps it."""
    h = han()
    written_later = Written(at(0) + 90 * DAY, 0, 5)
    h.state.apply_service_request(ServiceRequest(REQUEST_ID, "11.3", ESME, None, HASH, at(0)), written_later)
    counts = sweep(h, at(0) + 90 * DAY + DAY, retention_ms=DAY)
    assert (counts.purged, h.verdict(at(10))) == (0, SUPPRESS)


def test_sweep_never_purges_records_whose_write_time_is_unknown() -> None:
    h = han()
    h.state.apply_service_request(ServiceRequest(REQUEST_ID, "11.3", ESME, None, HASH, at(0)))
    assert sweep(h, at(0) + 365 * DAY, retention_ms=DAY).purged == 0


def test_sweep_never_purges_a_pending_window_however_long_ago_it_was_written() -> None:
    h = han()
    far = epoch_ms(2999, 1, 1)
    h.state.apply_service_request(
        ServiceRequest(REQUEST_ID, "11.3", ESME, far + 10 * DAY, HASH, far), Written(at(0), 0, 5)
    )
    counts = sweep(h, at(0) + 400 * DAY, retention_ms=31 * DAY)
    assert (counts.purged, h.verdict(far + 10 * DAY)) == (0, SUPPRESS)


def test_sweep_purges_only_activation_data_no_alert_after_the_horizon_can_need() -> None:
    policy = WindowPolicy(lead_in_ms=5 * MIN, max_future_ms=8 * 60 * MIN)  # reach 510 minutes
    h = han(policy, on_han=((ESME, CHF), (ESME_B, CHF_B)), tracked=(ESME, ESME_B))
    h.request(at(0), None, request_id=rid(1))  # [-5, 30]: ends long before the horizon
    h.request(at(1), at(300), request_id=rid(2))  # cancelled at 100
    h.request(at(2), at(320), request_id=rid(3))  # withdrawn at 310
    h.request(at(3), at(150), request_id=rid(4))  # [145, 180]
    h.request(at(4), at(400), request_id=rid(5))  # repeated at 200 -> [500, 530]
    h.request(at(200), at(500), request_id=rid(5))
    h.request(at(6), None, request_id=rid(6))  # [1, 36] has ended, but its repeat at 30 -> [255, 290] has not
    h.request(at(30), at(260), request_id=rid(6))
    h.request(at(7), at(460), request_id=rid(7))  # [455, 490], replaced by its repeat at 40 -> [35, 70]
    h.request(at(40), None, request_id=rid(7))
    h.cancel(at(100), request_id=rid(2))
    h.outcome(at(310), Outcome.HASH_MISMATCH, request_id=rid(3))
    h.request(at(5), at(250), esme=ESME_B, request_id=rid(1, ESME_B))
    alerts = [(t, chf) for t in range(120, 700, 5) for chf in (CHF, CHF_B)]
    before = [h.decide(at(t), chf) for t, chf in alerts]
    retention = 120 * MIN
    counts = sweep(h, at(100) + policy.reach_ms + retention, retention)  # horizon at(610), reach back to at(100)
    assert counts.purged == 1
    assert [h.decide(at(t), chf) for t, chf in alerts] == before


def test_sweep_keeps_a_cancellation_that_a_window_after_the_horizon_still_needs() -> None:
    h = han()
    h.request(at(0), at(60))  # [60, 90]
    h.cancel(at(10))
    sweep(h, at(70) + DAY, retention_ms=DAY)  # horizon at(70): the cancellation was written long before it
    assert h.verdict(at(75)) == FORWARD


def test_sweep_of_an_ended_sighting_does_not_revive_an_earlier_sighting_read_after_it() -> None:
    h = han()
    h.request(at(5), None)  # [5, 35], replaces from at(5) on the sighting below, written and read later
    sweep(h, at(50) + DAY, retention_ms=DAY)  # horizon at(50)
    late = ServiceRequest(REQUEST_ID, "11.3", ESME, at(40), HASH, at(0))  # [40, 70]
    h.state.apply_service_request(late, Written(at(50) + DAY, 0, 9))
    assert h.verdict(at(55)) == FORWARD


def test_sweep_does_not_resurrect_a_replaced_activation() -> None:
    h = han()
    h.request(at(0), at(0) + 10 * DAY)  # future-dated ...
    h.request(at(60), None)  # ... then the same request ID as an immediate one: replaces it from at(60) on
    later = at(0) + 10 * DAY + 10 * MIN
    assert h.verdict(later) == FORWARD
    sweep(h, at(0) + REACH + 2 * DAY, retention_ms=DAY)  # the replacement's window ended long before
    assert h.verdict(later) == FORWARD


@pytest.mark.parametrize(
    "supersede",
    [
        pytest.param(lambda h: h.request(at(10), at(120)), id="request seen twice"),
        pytest.param(lambda h: h.cancel(at(10)), id="cancelled"),
        pytest.param(lambda h: h.outcome(at(10), Outcome.NO_IMAGE_HELD), id="withdrawn"),
    ],
)
def test_sweep_counts_each_live_activation_once(supersede: Step) -> None:
    h = han()
    h.request(at(0), at(120))
    supersede(h)
    live = 1 if h.verdict(at(130)) == SUPPRESS else 0
    counts = sweep(h, at(20), retention_ms=DAY)
    assert (counts.pending, counts.active) == (live, 0)
