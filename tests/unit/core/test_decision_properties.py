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

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Decision, Forward, Suppress
from pipeline.core.bad_input import BadInput
from pipeline.core.filter_state import ESME_ACTIVITY, VERSIONS, WITHDRAWN, FilterState, SweepPass
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.records import ActivationOutcome, DeviceAlert, InventoryRecord, Outcome, ServiceRequest
from pipeline.core.written import UNKNOWN, Written


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


def new_state(s: Scenario, policy: WindowPolicy | None = None, store: StagedStore | None = None) -> FilterState:
    """A state holding the scenario's reference data (read first, as the worker bootstraps it)."""
    store = store or StagedStore(MemoryBackend())
    state = FilterState(store, policy or WindowPolicy(lead_in_ms=s.lead_in))
    for d in s.devices:
        state.put_inventory(d.device_id, InventoryRecord(d.device_id, d.device_type, d.chf, None, BASE))
        state.put_tracked(d.device_id, d.tracked)
    return state


def apply_records(state: FilterState, records: Sequence[tuple[Req | Out, Written]], commit_each: bool = False) -> None:
    for record, written in records:
        if isinstance(record, Req):
            request = ServiceRequest(record.request_id, record.variant, record.esme, record.x, "AB" * 32, record.r)
            with contextlib.suppress(BadInput):  # dead-lettered
                state.apply_service_request(request, written)
        else:
            outcome = ActivationOutcome(record.request_id, ESMES[0], Outcome(record.outcome), record.at)
            state.apply_outcome(outcome, written)
        if commit_each:
            state.commit()


def applied(s: Scenario, records: Sequence[Req | Out], commit_each: bool = False) -> FilterState:
    """Reference data first, then the records in the order given."""
    state = new_state(s)
    apply_records(state, [(record, UNKNOWN) for record in records], commit_each)
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


# --- housekeeping ---------------------------------------------------------------------------------

RETENTIONS = st.sampled_from([0, 1, 10 * MIN, 60 * MIN, DAY])
# A shorter future-dating limit than the contract's 30 days puts housekeeping's reach at the scenarios' scale.
SWEEP_POLICY_FUTURE = 8 * STEP
OUTLYING_TIMES = st.sampled_from(
    [epoch_ms(2000, 1, 1), epoch_ms(2001, 6, 1), epoch_ms(2999, 1, 1), YEAR_3000 - 20 * STEP]
)


@st.composite
def outlying_records(draw: st.DrawFn) -> Req | Out:
    """A request (activation, future-dated, cancellation, other variant) or an outcome at a time far in the
    past or the future, within the valid range, for the scenario's ESMEs and request IDs."""
    at = draw(OUTLYING_TIMES) + draw(st.integers(0, 8)) * STEP
    esme = draw(st.sampled_from(ESMES))
    rid = request_id(esme, draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["immediate", "future", "cancel", "variant", "outcome"]))
    if kind == "outcome":
        return Out(rid, draw(st.sampled_from([o.value for o in Outcome])), at)
    x = {"immediate": None, "future": at + draw(st.integers(1, 8)) * STEP, "cancel": CANCEL_X, "variant": None}[kind]
    return Req(esme, rid, at, x, "11.1" if kind == "variant" else "11.3")


def outlying_alerts(records: Sequence[Req | Out]) -> st.SearchStrategy[Alert]:
    """AD1s at or near the outlying records' times, so the outliers' own windows are decided too."""
    times = sorted({r.r if isinstance(r, Req) else r.at for r in records}) or [epoch_ms(2999, 1, 1)]
    return st.builds(
        lambda chf, t, n, j: Alert(chf, "AD1", t + n * STEP + j),
        st.sampled_from(CHFS),
        st.sampled_from(times),
        st.integers(-1, 10),
        jitter,
    )


@PROPERTY
@given(s=st.one_of(scenarios(), scenarios(counters=1)), data=st.data())
def test_housekeeping_changes_no_decision_for_alerts_after_the_horizon(s: Scenario, data: st.DataObject) -> None:
    """With outlying record times and any split of the alert partitions between workers: each worker sweeps
    at its own wall clock, with records written at any time before it (outcomes after the requests they
    answer, as the DSP writes them), and reads records still on their topics after its sweep too."""
    outliers = data.draw(st.lists(outlying_records(), max_size=6), label="outlying records")
    records = [*s.records, *outliers]
    alerts = [*s.alerts, *data.draw(st.lists(outlying_alerts(outliers), max_size=6), label="outlying alerts")]
    policy = WindowPolicy(lead_in_ms=s.lead_in, max_future_ms=SWEEP_POLICY_FUTURE)
    retention = data.draw(RETENTIONS, label="retention")
    now = BASE + data.draw(st.one_of(st.integers(-12, 60), st.sampled_from([120, 400])), label="now in steps") * STEP
    oldest = now - 2 * (retention + policy.reach_ms) - 30 * STEP
    writes = [data.draw(st.integers(oldest, now), label="written") for _ in records]
    for i, record in enumerate(records):  # an outcome is written after the requests it answers
        if isinstance(record, Out):
            answered = [
                w
                for q, w in zip(records, writes, strict=True)
                if isinstance(q, Req) and q.request_id == record.request_id
            ]
            writes[i] = max([writes[i], *answered])
    written = [(record, Written(w, 0, i)) for i, (record, w) in enumerate(zip(records, writes, strict=True))]
    workers = data.draw(st.integers(1, 3), label="workers")
    owner = data.draw(st.lists(st.integers(0, workers - 1), min_size=len(alerts), max_size=len(alerts)), label="split")
    unswept = new_state(s, policy)
    apply_records(unswept, written)
    for worker in range(workers):
        wall_clock = now + data.draw(st.integers(-STEP, STEP), label="worker's wall clock")
        sweep_pass = SweepPass(wall_clock, retention)
        still_held = [pair for pair, w in zip(written, writes, strict=True) if w >= sweep_pass.horizon]
        late = [pair for pair in still_held if data.draw(st.booleans(), label="read after the sweep")]
        swept = new_state(s, policy)
        apply_records(swept, [pair for pair in written if pair not in late])
        while not swept.sweep_some(sweep_pass, limit=3):
            pass
        apply_records(swept, late)
        mine = [a for a, o in zip(alerts, owner, strict=True) if o == worker and a.t >= sweep_pass.horizon]
        assert decide_all(swept, mine) == decide_all(unswept, mine)


@PROPERTY
@given(s=scenarios(), data=st.data())
def test_housekeeping_leaves_no_activation_data_once_every_record_is_written_and_over_beyond_retention(
    s: Scenario, data: st.DataObject
) -> None:
    """State is bounded by the inputs' retention: what the topics no longer hold and no window still needs
    is gone after one pass; records at far-future times stay until their windows are over."""
    outliers = data.draw(st.lists(outlying_records(), max_size=4), label="outlying records")
    policy = WindowPolicy(lead_in_ms=s.lead_in, max_future_ms=SWEEP_POLICY_FUTURE)
    store = StagedStore(MemoryBackend())
    state = new_state(s, policy, store)
    apply_records(state, [(record, Written(BASE, 0, i)) for i, record in enumerate([*s.records, *outliers])])
    state.commit()
    wall_clock = epoch_ms(2500, 1, 1)
    sweep_pass = SweepPass(wall_clock, DAY)
    while not state.sweep_some(sweep_pass, limit=3):
        pass
    state.commit()
    left = {key for prefix in (VERSIONS, WITHDRAWN, ESME_ACTIVITY) for key, _ in store.scan(prefix)}
    future = [r for r in outliers if (r.r if isinstance(r, Req) else r.at) > wall_clock]
    may_stay = {VERSIONS + r.request_id.encode() for r in future} | {WITHDRAWN + r.request_id.encode() for r in future}
    may_stay |= {ESME_ACTIVITY + r.esme.encode() for r in future if isinstance(r, Req)}
    assert left <= may_stay, f"left after the pass: {sorted(left - may_stay)}"


@PROPERTY
@given(s=scenarios(), data=st.data())
def test_housekeeping_changes_no_decision_while_the_topics_still_hold_every_record(
    s: Scenario, data: st.DataObject
) -> None:
    """Records written after the horizon (a replay of old data, records with far-past times) are still on
    their topics, so a rebuild would restore them: nothing of them is purged, whatever their times."""
    outliers = data.draw(st.lists(outlying_records(), max_size=4), label="outlying records")
    records = [*s.records, *outliers]
    alerts = [*s.alerts, *data.draw(st.lists(outlying_alerts(outliers), max_size=4), label="outlying alerts")]
    policy = WindowPolicy(lead_in_ms=s.lead_in, max_future_ms=SWEEP_POLICY_FUTURE)
    wall_clock = epoch_ms(2500, 1, 1)
    sweep_pass = SweepPass(wall_clock, data.draw(RETENTIONS, label="retention"))
    writes = [data.draw(st.integers(sweep_pass.horizon, wall_clock), label="written") for _ in records]
    written = [(record, Written(w, 0, i)) for i, (record, w) in enumerate(zip(records, writes, strict=True))]
    state = new_state(s, policy)
    apply_records(state, written)
    before = decide_all(state, alerts)
    while not state.sweep_some(sweep_pass, limit=3):
        pass
    assert decide_all(state, alerts) == before
