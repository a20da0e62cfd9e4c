"""Properties of the decision core over random small scenarios (a few ESMEs and CHFs, requests with
repeats and cancellations, outcomes, alerts), on a 5-minute grid with +-1 ms jitter so that ties and
window edges are common.

`reference_justifications` is an independent model written from contract 5.1-5.6 alone: it looks at the
set of records, never at `pipeline`, so it also pins down what "order-independent" must converge to.
"""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Decision, Forward, Suppress
from pipeline.core.bad_input import BadInput
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.records import ActivationOutcome, DeviceAlert, InventoryRecord, Outcome, ServiceRequest


def epoch_ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000


MIN = 60_000
DAY = 86_400_000
WINDOW = 30 * MIN
HORIZON = 30 * DAY
STEP = 5 * MIN
BASE = epoch_ms(2024, 6, 1)
YEAR_3000 = epoch_ms(3000, 1, 1)
CANCEL_X = epoch_ms(3000, 12, 31)
ESMES = ("00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-A1", "00-DB-12-34-56-78-90-A2")
CHFS = ("00-DB-12-34-56-78-90-C0", "00-DB-12-34-56-78-90-C1")
UNKNOWN_CHF = "00-DB-12-34-56-78-90-CF"
WITHDRAWING = {"NO_IMAGE_HELD", "HASH_MISMATCH"}


# --- the scenario, as plain records ---------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    device_id: str
    device_type: str
    chf: str | None
    tracked: bool


@dataclass(frozen=True)
class Req:
    esme: str
    request_id: str
    r: int
    x: int | None
    variant: str = "11.3"

    @property
    def is_cancellation(self) -> bool:
        return self.variant == "11.3" and self.x is not None and self.x >= YEAR_3000

    @property
    def is_bad(self) -> bool:
        return self.variant == "11.3" and not self.is_cancellation and self.x is not None and self.x - self.r > HORIZON

    @property
    def is_activation(self) -> bool:
        return self.variant == "11.3" and not self.is_cancellation and not self.is_bad

    @property
    def activation_time(self) -> int:
        return self.r if self.x is None or self.x <= self.r else self.x


@dataclass(frozen=True)
class Out:
    request_id: str
    outcome: str
    at: int


@dataclass(frozen=True)
class Alert:
    chf: str
    code: str
    t: int


@dataclass(frozen=True)
class Scenario:
    lead_in: int
    devices: tuple[Device, ...]
    requests: tuple[Req, ...]
    outcomes: tuple[Out, ...]
    alerts: tuple[Alert, ...]

    @property
    def records(self) -> list[Req | Out]:
        return [*self.requests, *self.outcomes]


# --- the reference model: contract 5.1-5.6 over the set of records -------------------------------

Justification = tuple[str, str, int, int]  # esme, request ID, request received_at, T


def reference_justifications(s: Scenario, alert: Alert) -> set[Justification]:
    """Every activation that justifies suppressing the alert; an empty set means forward."""
    if alert.code != "AD1":  # 5.4
        return set()
    t = alert.t
    on_han = {  # 5.5
        d.device_id for d in s.devices if d.device_type.upper() == "ESME" and d.chf == alert.chf and d.tracked
    }
    activations = [q for q in s.requests if q.is_activation]

    def replaced(q: Req) -> bool:  # 5.1: a later sighting of the request ID replaces it from its own r on
        return any(p.request_id == q.request_id and q.r < p.r <= t for p in activations)

    def cancelled(q: Req) -> bool:  # 5.2
        return any(
            c.is_cancellation and c.esme == q.esme and q.r <= c.r <= t and q.activation_time > c.r for c in s.requests
        )

    def withdrawn(q: Req) -> bool:  # 5.3
        return any(o.request_id == q.request_id and o.outcome in WITHDRAWING and o.at <= t for o in s.outcomes)

    return {
        (q.esme, q.request_id, q.r, q.activation_time)
        for q in activations
        if q.esme in on_han
        and q.r <= t
        and q.activation_time - s.lead_in <= t <= q.activation_time + WINDOW
        and not (replaced(q) or cancelled(q) or withdrawn(q))
    }


# --- random scenarios -----------------------------------------------------------------------------

ticks = st.integers(0, 24).map(lambda n: BASE + n * STEP)
jitter = st.sampled_from([-1, 0, 0, 0, 1])


def request_id(esme: str, counter: int) -> str:
    return f"90-B3-D5-1F-30-01-00-00:{esme}:{counter}"


@st.composite
def requests(draw: st.DrawFn, counters: int = 3) -> Req:
    esme = draw(st.sampled_from(ESMES))
    r = draw(ticks)
    kind = draw(
        st.sampled_from(
            ["immediate", "past", "equal", "future", "future", "future", "cancel", "cancel"]
            + ["horizon", "beyond", "variant"]
        )
    )
    x: int | None = {
        "immediate": None,
        "past": r - draw(st.integers(1, 4)) * STEP,
        "equal": r,
        "future": r + draw(st.integers(1, 8)) * STEP + draw(jitter),
        "cancel": draw(st.sampled_from([YEAR_3000, CANCEL_X])),
        "horizon": r + HORIZON,
        "beyond": r + HORIZON + 1,
        "variant": draw(st.sampled_from([None, r + STEP, CANCEL_X])),
    }[kind]
    variant = "11.1" if kind == "variant" else "11.3"
    return Req(esme, request_id(esme, draw(st.integers(1, counters))), r, x, variant)


outcomes = st.builds(
    Out,
    request_id=st.builds(request_id, st.sampled_from(ESMES), st.integers(1, 3)),
    outcome=st.sampled_from([o.value for o in Outcome]),
    at=st.builds(int.__add__, ticks, jitter),
)
alerts = st.builds(
    Alert,
    chf=st.sampled_from([*CHFS, CHFS[0], UNKNOWN_CHF]),
    code=st.sampled_from(["AD1", "AD1", "AD1", "AD1", "ad1", "8F36"]),
    t=st.builds(lambda n, j: BASE + n * STEP + j, st.integers(-1, 40), jitter),
)


def without_conflicting_sightings(reqs: Sequence[Req]) -> tuple[Req, ...]:
    """Drops what the contract leaves undefined: a request ID seen twice at the same millisecond with
    different activation times (which sighting replaces which?)."""
    first: dict[tuple[str, int], Req] = {}
    return tuple(
        q
        for q in reqs
        if not q.is_activation or first.setdefault((q.request_id, q.r), q).activation_time == q.activation_time
    )


@st.composite
def scenarios(draw: st.DrawFn, counters: int = 3) -> Scenario:
    """`counters` request IDs per ESME: with one, every two activations of an ESME share a request ID."""
    devices = tuple(
        Device(
            esme,
            draw(st.sampled_from(["ESME", "esme", "ESME", "GSME"])),
            draw(st.sampled_from([CHFS[0], CHFS[0], CHFS[1], None])),
            draw(st.sampled_from([True, True, False])),
        )
        for esme in ESMES
    )
    return Scenario(
        lead_in=draw(st.sampled_from([0, 0, 10 * MIN])),
        devices=devices,
        requests=without_conflicting_sightings(draw(st.lists(requests(counters), max_size=8))),
        outcomes=tuple(draw(st.lists(outcomes, max_size=4))),
        alerts=tuple(draw(st.lists(alerts, min_size=1, max_size=15))),
    )


# --- the code under test, fed the same scenario ---------------------------------------------------


def applied(s: Scenario, records: Sequence[Req | Out], commit_each: bool = False) -> FilterState:
    """Reference data first (as the worker bootstraps it), then the records in the order given."""
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy(lead_in_ms=s.lead_in))
    for d in s.devices:
        state.put_inventory(d.device_id, InventoryRecord(d.device_id, d.device_type, d.chf, None, BASE))
        state.put_tracked(d.device_id, d.tracked)
    for record in records:
        if isinstance(record, Req):
            request = ServiceRequest(record.request_id, record.variant, record.esme, record.x, "AB" * 32, record.r)
            with contextlib.suppress(BadInput):  # dead-lettered
                state.apply_service_request(request)
        else:
            state.apply_outcome(ActivationOutcome(record.request_id, ESMES[0], Outcome(record.outcome), record.at))
        if commit_each:
            state.commit()
    return state


def decide(state: FilterState, alert: Alert) -> Decision:
    return state.decide(DeviceAlert(f"a-{alert.t}", alert.code, alert.chf, None, None, alert.t, b"gbcs"))


def decide_all(state: FilterState, alerts: Sequence[Alert]) -> list[Decision]:
    return [decide(state, a) for a in alerts]


def describe(decision: Decision) -> Justification | None:
    if isinstance(decision, Forward):
        return None
    v = decision.activation.version
    return (v.esme_id, v.request_id, v.received_at, v.activation_time)


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(s=scenarios())
def test_decisions_agree_with_the_reference_model(s: Scenario) -> None:
    state = applied(s, s.records)
    for alert in s.alerts:
        expected = reference_justifications(s, alert)
        decision = decide(state, alert)
        if not expected:
            assert isinstance(decision, Forward), f"{alert} suppressed by {describe(decision)}; reference forwards"
            continue
        assert isinstance(decision, Suppress), f"{alert} forwarded; reference suppresses by {expected}"
        assert describe(decision) in expected
        activation_time = decision.activation.version.activation_time
        window = decision.activation.window
        assert (window.start, window.end) == (activation_time - s.lead_in, activation_time + WINDOW)


@PROPERTY
@given(s=scenarios())
def test_bad_input_exactly_for_non_cancellations_beyond_the_horizon(s: Scenario) -> None:
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy(lead_in_ms=s.lead_in))
    for q in s.requests:
        try:
            state.apply_service_request(ServiceRequest(q.request_id, q.variant, q.esme, q.x, None, q.r))
        except BadInput:
            assert q.is_bad, f"{q} rejected"
        else:
            assert not q.is_bad, f"{q} accepted"


@PROPERTY
@given(s=scenarios(), data=st.data())
def test_decisions_do_not_depend_on_the_order_records_are_applied(s: Scenario, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(s.records), label="application order")
    commit_each = data.draw(st.booleans(), label="commit after each record")
    assert decide_all(applied(s, shuffled, commit_each), s.alerts) == decide_all(applied(s, s.records), s.alerts)


@PROPERTY
@given(s=scenarios(), data=st.data())
def test_replayed_records_change_no_decision(s: Scenario, data: st.DataObject) -> None:
    replays = data.draw(st.lists(st.sampled_from(s.records), max_size=6) if s.records else st.just([]))
    replayed = applied(s, [*s.records, *replays])
    assert decide_all(replayed, s.alerts) == decide_all(applied(s, s.records), s.alerts)


RETENTIONS = st.sampled_from([0, 1, 10 * MIN, 60 * MIN, DAY])


def replacement_moved_earlier() -> Scenario:
    """A future-dated request whose repeat makes it immediate: the repeat's window ends first."""
    esme, counter = ESMES[0], 1
    return Scenario(
        lead_in=0,
        devices=(Device(esme, "ESME", CHFS[0], True),),
        requests=(
            Req(esme, request_id(esme, counter), BASE, BASE + 8 * STEP),
            Req(esme, request_id(esme, counter), BASE + STEP, None),
        ),
        outcomes=(),
        alerts=(Alert(CHFS[0], "AD1", BASE + 9 * STEP),),
    )


@example(s=replacement_moved_earlier(), now=BASE + 8 * STEP, retention=0)
@PROPERTY
@given(s=st.one_of(scenarios(), scenarios(counters=1)), now=ticks, retention=RETENTIONS)
def test_sweep_changes_no_decision_for_alerts_within_retention(s: Scenario, now: int, retention: int) -> None:
    state = applied(s, s.records)
    recent = [a for a in s.alerts if a.t >= now - retention]
    before = decide_all(state, recent)
    state.sweep(now, retention)
    assert decide_all(state, recent) == before
