"""Properties of rules 5 and 9 together over random small estates: inventory records that move ESMEs between
HANs, change postcodes and are tombstoned (under keys in either letter case), tracked ESMEs with immediate
activations, and alerts (AD1s, Supply Outage Restored and other codes) on a one-minute grid with +-1 ms
jitter, so that the edges of [t - B, t + A] and of the windows are common.

`reference_decision` is an independent model written from contract rules 5 and 9 alone: it looks at the
records, never at `pipeline`. The state is fed the same records in any order a set of partitions and
workers could read them (each compacted key in its own write order), with commits anywhere.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.outage_evidence import EvidencePolicy, StormEvidence
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest
from pipeline.core.written import Written

MIN = 60_000
BASE = 1_772_323_200_000
WINDOW = 30 * MIN
CHFS = tuple(f"00-DB-12-34-56-78-90-C{n}" for n in range(6))
ESMES = tuple(f"00-DB-12-34-56-78-90-A{n}" for n in range(6))
POSTCODES = ["SW1A 1AA", "sw1a1ab", "SW1A 1ZZ", "SW1A 2AA", "M1 1AE", "-", "XX", "SW1A 1AAX", None]
IN_SECTOR = ["SW1A 1AB", "SW1A1XY", "sw1a 1ab"]  # most homes in one sector, so that storms are common


# --- the estate, as plain records -----------------------------------------------------------------


@dataclass(frozen=True)
class InventoryWrite:
    key: str  # as written: the device ID in either letter case
    device_type: str
    chf: str | None
    postcode: str | None
    tombstone: bool


@dataclass(frozen=True)
class Alert:
    alert_id: str
    code: str
    device: str
    t: int


@dataclass(frozen=True)
class Estate:
    writes: tuple[InventoryWrite, ...]  # in write order
    tracked: frozenset[str]
    activations: tuple[tuple[str, int], ...]  # (ESME, r): immediate 11.3 requests
    alerts: tuple[Alert, ...]
    policy: EvidencePolicy


# --- the reference model: contract rules 5 and 9 over the records -------------------------------


def standing_records(e: Estate) -> dict[str, InventoryWrite]:
    """Device -> its record written last among those standing (contract 6: per key as written)."""
    last_per_key: dict[str, tuple[int, InventoryWrite]] = {}
    for i, w in enumerate(e.writes):
        last_per_key[w.key] = (i, w)
    best: dict[str, tuple[int, InventoryWrite]] = {}
    for i, w in last_per_key.values():
        device = w.key.upper()
        if not w.tombstone and (device not in best or best[device][0] < i):
            best[device] = (i, w)
    return {device: w for device, (_, w) in best.items()}


def esmes_of(records: dict[str, InventoryWrite], chf: str) -> list[str]:
    """The ESMEs associated with C (device type ESME in any letter case), in device-ID order."""
    return sorted(d for d, w in records.items() if w.device_type.upper() == "ESME" and w.chf == chf)


def sector_of(records: dict[str, InventoryWrite], chf: str) -> str | None:
    """9.b: C's own postcode, else that of its first ESME in device-ID order that has one; upper case,
    spaces removed; 5 to 7 characters; less the last two, a space before the last remaining one."""
    own = records.get(chf)
    postcode = own.postcode if own is not None else None
    if postcode is None:
        postcode = next((records[d].postcode for d in esmes_of(records, chf) if records[d].postcode), None)
    if postcode is None:
        return None
    chars = [c for c in postcode.upper() if c != " "]
    if len(chars) < 5 or len(chars) > 7:
        return None
    kept = chars[:-2]
    return "".join(kept[:-1]) + " " + kept[-1]


def rule_5_suppresses(e: Estate, records: dict[str, InventoryWrite], alert: Alert) -> bool:
    if alert.code != "AD1":
        return False
    on_han = {d for d in esmes_of(records, alert.device) if d in e.tracked}
    return any(esme in on_han and r <= alert.t <= r + WINDOW for esme, r in e.activations)


def reference_decision(e: Estate, alert: Alert) -> str:
    """'suppress' or 'forward' for an AD1 from C at t, with every record read."""
    records = standing_records(e)
    if not rule_5_suppresses(e, records, alert):
        return "forward"
    lo, hi = alert.t - e.policy.before_ms, alert.t + e.policy.after_ms
    in_span = [a for a in e.alerts if lo <= a.t <= hi]
    han = set(esmes_of(records, alert.device))
    if any(a.code in ("8F35", "8F36") and a.device in han for a in in_span):
        return "forward"  # 9.a
    sector = sector_of(records, alert.device)
    storm_hans = {
        a.device
        for a in in_span
        if a.code == "AD1" and a.device != alert.device and a.device in CHFS
        and sector is not None and sector_of(records, a.device) == sector
        and not rule_5_suppresses(e, records, a)
    }  # fmt: skip
    if e.policy.storm_min_hans > 0 and len(storm_hans) >= e.policy.storm_min_hans:
        return "forward"  # 9.b
    return "suppress"


# --- random estates -------------------------------------------------------------------------------

jitter = st.sampled_from([-1, 0, 0, 1])
times = st.builds(lambda n, j: BASE + n * MIN + j, st.integers(0, 25), jitter)


@st.composite
def inventory_writes(draw: st.DrawFn) -> InventoryWrite:
    if draw(st.booleans()):
        device = draw(st.sampled_from(CHFS))
        kind, chf = "CHF", None
    else:
        device = draw(st.sampled_from(ESMES))
        kind = draw(st.sampled_from(["ESME", "esme", "ESME", "GSME"]))
        chf = draw(st.sampled_from([*CHFS, CHFS[0], None]))
    key = device.lower() if draw(st.integers(0, 4)) == 0 else device
    return InventoryWrite(key, kind, chf, draw(st.sampled_from(POSTCODES)), draw(st.integers(0, 7)) == 0)


@st.composite
def alerts(draw: st.DrawFn, n: int) -> Alert:
    if draw(st.integers(0, 2)) == 0:
        device = draw(st.sampled_from([*ESMES, CHFS[0]]))
        code = draw(st.sampled_from(["8F35", "8F36", "8F35", "8f35", "8F37"]))
    else:
        device, code = draw(st.sampled_from(CHFS)), "AD1"
    return Alert(f"alert-{n:02d}", code, device, draw(times))


@st.composite
def estates(draw: st.DrawFn) -> Estate:
    """Six homes (CH Function n, ESME n), most in one sector, then random changes: crowded enough that
    storms, windows and supply evidence meet often."""
    homes = [
        w
        for chf, esme in zip(CHFS, ESMES, strict=True)
        for w in (
            InventoryWrite(chf, "CHF", None, draw(st.sampled_from([*IN_SECTOR, *POSTCODES])), False),
            InventoryWrite(esme, "ESME", chf, draw(st.sampled_from([*IN_SECTOR, *POSTCODES])), False),
        )
    ]
    count = draw(st.integers(1, 30))
    return Estate(
        writes=(*homes, *draw(st.lists(inventory_writes(), max_size=8))),
        tracked=frozenset(ESMES) - draw(st.sets(st.sampled_from(ESMES), max_size=2)),
        activations=tuple(
            [(esme, r) for esme in ESMES if (r := draw(st.one_of(st.none(), times))) is not None]
            + draw(st.lists(st.tuples(st.sampled_from(ESMES), times), max_size=2))
        ),
        alerts=tuple(draw(alerts(n)) for n in range(count)),
        policy=EvidencePolicy(
            before_ms=draw(st.sampled_from([10 * MIN, 2 * MIN])),
            after_ms=draw(st.sampled_from([3 * MIN, MIN, 0])),
            storm_min_hans=draw(st.sampled_from([0, 1, 2, 2, 3])),
        ),
    )


# --- the code under test, fed the same records in a reading order -------------------------------

Step = tuple[str, int]  # (what, index): an inventory write, a tracked device, an activation or an alert


def canonical_order(e: Estate) -> list[Step]:
    return (
        [("inventory", i) for i in range(len(e.writes))]
        + [("tracked", i) for i in range(len(ESMES))]
        + [("activation", i) for i in range(len(e.activations))]
        + [("alert", i) for i in range(len(e.alerts))]
    )


def reading_orders(e: Estate) -> st.SearchStrategy[list[Step]]:
    """Any interleaving that keeps each compacted key's records in their write order (one partition)."""
    steps = canonical_order(e)

    def keep_key_order(shuffled: list[Step]) -> list[Step]:
        writes_of: dict[str, list[int]] = {}
        for i, w in enumerate(e.writes):
            writes_of.setdefault(w.key, []).append(i)
        next_of = {key: iter(indexes) for key, indexes in writes_of.items()}
        return [("inventory", next(next_of[e.writes[i].key])) if what == "inventory" else (what, i)
                for what, i in shuffled]  # fmt: skip

    return st.permutations(steps).map(keep_key_order)


def fed(e: Estate, order: Sequence[Step], commits: Sequence[bool] = (), with_alerts: bool = True) -> FilterState:
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    for n, (what, i) in enumerate(order):
        if what == "inventory":
            w = e.writes[i]
            record = InventoryRecord(w.key.upper(), w.device_type, w.chf, None, BASE, w.postcode)
            state.put_inventory(w.key, None if w.tombstone else record, Written(BASE + i, 0, i))
        elif what == "tracked":
            state.put_tracked(ESMES[i], ESMES[i] in e.tracked)
        elif what == "activation":
            esme, r = e.activations[i]
            state.apply_service_request(ServiceRequest(f"request-{i}", "11.3", esme, None, None, r))
        elif with_alerts:
            state.put_evidence_alert(device_alert(e.alerts[i]))
        if n < len(commits) and commits[n]:
            state.commit()
    return state


def device_alert(a: Alert) -> DeviceAlert:
    return DeviceAlert(a.alert_id, a.code, a.device, None, None, a.t, None)


def decision(state: FilterState, e: Estate, a: Alert) -> str:
    alert = device_alert(a)
    if isinstance(state.decide(alert), Suppress) and state.evidence_for(alert, e.policy) is None:
        return "suppress"
    return "forward"


def ad1s(e: Estate) -> list[Alert]:
    return [a for a in e.alerts if a.code == "AD1"]


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(e=estates(), data=st.data())
def test_decisions_agree_with_the_reference_model_whatever_the_reading_order(e: Estate, data: st.DataObject) -> None:
    order = data.draw(reading_orders(e), label="reading order")
    commits = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)), label="commits")
    state = fed(e, order, commits)
    for a in ad1s(e):
        assert decision(state, e, a) == reference_decision(e, a), f"{a} decided against rules 5 and 9"


@PROPERTY
@given(e=estates(), data=st.data())
def test_sectors_stand_as_the_latest_inventory_records_say_whatever_the_reading_order(
    e: Estate, data: st.DataObject
) -> None:
    state = fed(e, data.draw(reading_orders(e), label="reading order"))
    records = standing_records(e)
    for chf in CHFS:
        sector = sector_of(records, chf)
        assert state.sector_of(chf) == sector, chf
        if sector is not None:
            members = {c for c in CHFS if sector_of(records, c) == sector}
            assert set(state.reference.chfs_in_sector(sector)) & set(CHFS) == members


@PROPERTY
@given(e=estates(), data=st.data())
def test_rule_9_only_releases_and_more_evidence_never_takes_a_release_back(e: Estate, data: st.DataObject) -> None:
    """Evidence never turns a forward into a suppression, recording it changes no decision of rule 5, and
    releases only grow as evidence is read (so the worker may forward on evidence as soon as it finds it)."""
    order = canonical_order(e)
    without = fed(e, order, with_alerts=False)
    some = data.draw(st.lists(st.booleans(), min_size=len(e.alerts), max_size=len(e.alerts)), label="read so far")
    partial = fed(e, [s for s in order if s[0] != "alert" or some[s[1]]])
    complete = fed(e, order)
    for a in ad1s(e):
        rule_5 = without.decide(device_alert(a))
        assert complete.decide(device_alert(a)) == rule_5
        if not isinstance(rule_5, Suppress):
            assert decision(complete, e, a) == "forward"
        if decision(partial, e, a) == "forward":
            assert decision(complete, e, a) == "forward"


def brute_force_storm_hans(state: FilterState, e: Estate, a: Alert) -> set[str]:
    """Rule 9.b by a scan of every CH Function the state places in the AD1's sector and all its AD1s in the
    span, each decided by rule 5 (the look-up before issue 20): what the indexed look-up must agree with."""
    sector = state.sector_of(a.device)
    if sector is None:
        return set()
    lo, hi = e.policy.span(a.t)
    return {
        other
        for other in state.reference.chfs_in_sector(sector)
        if other != a.device and any(not isinstance(state.decide(x), Suppress) for x in state.ad1s(other, lo, hi))
    }


@PROPERTY
@given(e=estates(), data=st.data())
def test_the_indexed_storm_look_up_agrees_with_a_scan_of_the_sector_after_sectors_move(
    e: Estate, data: st.DataObject
) -> None:
    """AD1s indexed by the sector their CH Function had when they were kept, then inventory writes that move
    CH Functions between sectors (postcodes changed, ESMEs moved, tombstones), in any reading order, with
    commits anywhere: the storm look-up finds K HANs exactly when the scan does, and only HANs the scan finds,
    with verdicts remembered across look-ups and alerts kept in between."""
    order = data.draw(reading_orders(e), label="reading order")
    commits = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)), label="commits")
    state = fed(e, order, commits)
    k = max(e.policy.storm_min_hans, 1)
    policy = EvidencePolicy(e.policy.before_ms, e.policy.after_ms, k)
    moves = data.draw(st.lists(inventory_writes(), max_size=6), label="moves")
    for n, w in enumerate([None, *moves]):
        if w is not None:
            record = InventoryRecord(w.key.upper(), w.device_type, w.chf, None, BASE, w.postcode)
            state.put_inventory(w.key, None if w.tombstone else record, Written(BASE + 100 + n, 0, 100 + n))
        for a in ad1s(e):
            expected = brute_force_storm_hans(state, e, a)
            sector = state.sector_of(a.device)
            found = None if sector is None else state.storm_evidence_for(device_alert(a), policy)
            assert (found is not None) is (len(expected) >= k), a
            if found is not None:
                assert isinstance(found, StormEvidence) and {h for h, _, _ in found.hans} <= expected
            state.put_meta("position", str(n).encode())  # bookkeeping between look-ups leaves verdicts standing
