"""The filter's state (tracked list, HAN associations, activations), the AD1 decision over it (5.5), and
its housekeeping.

Keys are namespaced byte strings in one store, values compact JSON. Only what decisions need is kept:
the reference data as `reference_data` reduces it; activation data per request ID (versions, withdrawal)
and per ESME (request IDs, cancellations), so each rule of `activation_windows` reads exactly the records
it names, each with the Kafka time its last record was written, which housekeeping goes by.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

from pipeline.core.activation_windows import (
    Activation,
    Cancellation,
    RequestVersion,
    Window,
    WindowPolicy,
    add_version,
    earliest,
    effective_activation,
    interpret_request,
    is_cancelled,
    is_current_version,
    preferred,
    window_of,
)
from pipeline.core.alert_decisions import Decision, Forward, ForwardReason, Suppress
from pipeline.core.key_value import StagedStore
from pipeline.core.outage_evidence import (
    SUPPLY_RESTORED_CODES,
    Evidence,
    EvidenceAlert,
    EvidencePolicy,
    storm_evidence,
    supply_evidence,
)
from pipeline.core.records import (
    OUTAGE_ALERT_CODE,
    WITHDRAWING_OUTCOMES,
    ActivationOutcome,
    AlertFacts,
    InventoryRecord,
    ServiceRequest,
)
from pipeline.core.reference_data import SECTOR_OF, ReferenceData
from pipeline.core.written import UNKNOWN, Written

VERSIONS = b"req/"  # request id -> JSON {"sightings": [[esme, received_at, activation_time], ...], "written": ts}
WITHDRAWN = b"wdr/"  # request id -> JSON [withdrawal time, written]
# ESME id -> JSON {"requests": [...], "cancellations": [[time, written, request ID], ...]}
ESME_ACTIVITY = b"esm/"
# ESME ID b"/" received_at (15 digits) b"/" alert ID -> b"<alert code> <Kafka write time or ->"
SUPPLY_EVIDENCE = b"sup/"
AD1S = b"ad1/"  # CHF ID b"/" received_at (15 digits) b"/" alert ID -> b"<Kafka write time or ->": storm evidence
# sector b"/" received_at (15 digits) b"/" CHF ID b"/" alert ID -> b"": the AD1s above under their CH Function's
# sector as it stands (moved when it changes), so a storm look-up reads the AD1s of its span, not the sector's HANs
SECTOR_AD1S = b"sad/"
META = b"meta/"  # worker bookkeeping (read positions, format), see `put_meta`
FORMAT = "format"
# The layout of the keys above; a store in another layout is rebuilt from the topics (contract 6, upgrades).
# 2: reference records per raw key, the HAN index per (CHF, ESME), Kafka write times beside activations.
# 3: supply evidence and AD1s by CHF (rule 9) beside the alert topic's read positions; postcodes and sectors.
# 4: CH Functions alone in the sector index (inventory entries say whether a record is a CHF's); a cancellation
#    keeps the request ID that carried it.
# 5: AD1s also by their CH Function's sector and time (storm look-ups).
STATE_FORMAT_VERSION = 5
_RULE_5_VERDICTS_KEPT = 100_000  # storm look-ups' rule 5 verdicts remembered while no rule 5 input changes
_TIME_DIGITS = 15  # event times in keys, zero-padded so that key order is time order
_Cancelled = tuple[int | None, str]  # a cancellation's last Kafka write time (None: unknown), its request ID


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _latest_write(stored: int | None, new: int | None) -> int | None:
    """When the last of a key's records was written (None: unknown, so it is never purged)."""
    return None if stored is None or new is None else max(stored, new)


_SWEEP_PHASES = (VERSIONS, WITHDRAWN, ESME_ACTIVITY, SUPPLY_EVIDENCE, AD1S)


@dataclass
class WindowCounts:
    pending: int = 0
    active: int = 0
    purged: int = 0


@dataclass
class SweepPass:
    """An incremental housekeeping pass at wall-clock time `now`, resumable after any key.

    Its horizon is `now` less the inputs' retention, taken from the wall clock and never from record
    times, so no record, however outlying its time, can move it; and it is the same for every worker,
    whatever alert partitions it owns (none, some, all, idle ones). Only activation data whose records were
    all written before the horizon is purged, that is data a rebuild from the topics could not restore
    anyway, and of that only what no alert received at or after the horizon can need (see `sweep_some`).
    """

    now: int
    retention_ms: int
    phase: int = 0
    after: bytes | None = None
    counts: WindowCounts = field(default_factory=WindowCounts)

    @property
    def horizon(self) -> int:
        return self.now - self.retention_ms


@dataclass(frozen=True, slots=True)
class RequestHistory:
    """One request ID as the state holds it: its sightings in replacement order, and when an outcome withdrew
    it (None: never)."""

    request_id: str
    versions: tuple[RequestVersion, ...]
    withdrawn_at: int | None


@dataclass(frozen=True, slots=True)
class EsmeActivity:
    """An ESME's activation data as the state holds it: its request IDs, the times of its cancellations, and
    the request ID that carried each (of several at one millisecond, the least)."""

    requests: tuple[RequestHistory, ...]
    cancellations: tuple[int, ...]
    cancelled_by: tuple[str, ...] = ()  # beside `cancellations`


class FilterState:
    def __init__(self, store: StagedStore, policy: WindowPolicy) -> None:
        self._store = store
        self.policy = policy
        self.reference = ReferenceData(store, self._sector_changed)
        # (CH Function, t) -> whether rule 5 forwards its AD1 at t, as of store version `_verdicts_at`: the AD1s
        # of a campaign's sector are judged once for all the look-ups of that sector, not once per look-up
        self._forwards: dict[tuple[str, int], bool] = {}
        self._verdicts_at = -1

    # --- reference data: the latest value written applies (5.5, contract 6) ------------------------

    def put_inventory(self, key: str, record: InventoryRecord | None, written: Written = UNKNOWN) -> None:
        """An inventory record (None: a tombstone) under this raw key, a valid device ID in any case."""
        if record is None:
            self.reference.remove_inventory(key)
        else:
            chf_id = record.chf_id if record.is_esme else None
            self.put_esme_han(key, chf_id, written, record.postcode, record.is_ch_function)

    def put_esme_han(
        self, key: str, chf_id: str | None, written: Written = UNKNOWN, postcode: str | None = None,
        ch_function: bool = False,
    ) -> None:
        """An inventory record under this raw key: the device is an ESME on the HAN of this CHF, or (None)
        not an ESME on any HAN; `postcode` is its premises' postcode (None: none); `ch_function` when its
        device type is CHF (rule 9.b's sectors index CH Functions only)."""
        self.reference.put_inventory(key, chf_id or None, written, postcode, ch_function)

    def put_tracked(self, key: str, listed: bool) -> None:
        """A tracked-devices record (listed) or tombstone under this raw key."""
        self.reference.put_tracked(key, listed)

    def tracked_count(self) -> int:
        return self.reference.tracked_count()

    # --- activation events (5.1-5.3) ------------------------------------------------------------

    def apply_service_request(
        self, request: ServiceRequest, written: Written = UNKNOWN
    ) -> RequestVersion | Cancellation | None:
        """Record an SR; raises BadInput (beyond the horizon) before changing anything."""
        meaning = interpret_request(request, self.policy)
        if isinstance(meaning, RequestVersion):
            versions, stored_write = self._stored_versions(meaning.request_id)
            write = written.timestamp if not versions else _latest_write(stored_write, written.timestamp)
            self._put_versions(meaning.request_id, add_version(versions, meaning), write)
            self._update_activity(meaning.esme_id, request_id=meaning.request_id)
        elif isinstance(meaning, Cancellation):
            self._update_activity(meaning.esme_id, cancellation=(meaning.received_at, written.timestamp,
                                                                 meaning.request_id))  # fmt: skip
        return meaning

    def apply_outcome(self, outcome: ActivationOutcome, written: Written = UNKNOWN) -> bool:
        """Record a withdrawal (matched by request ID alone); True when the outcome withdraws."""
        if outcome.outcome not in WITHDRAWING_OUTCOMES:
            return False
        key = WITHDRAWN + outcome.request_id.encode()
        raw = self._store.get(key)
        if raw is None:
            withdrawn_at, write = outcome.received_at, written.timestamp
        else:
            stored_at, stored_write = json.loads(raw)
            withdrawn_at = earliest(stored_at, outcome.received_at)
            write = _latest_write(stored_write, written.timestamp)
        self._store.put(key, _dump([withdrawn_at, write]))
        return True

    def _stored_versions(self, request_id: str) -> tuple[tuple[RequestVersion, ...], int | None]:
        raw = self._store.get(VERSIONS + request_id.encode())
        if not raw:
            return (), None
        data = json.loads(raw)
        return tuple(RequestVersion(request_id, e, r, t) for e, r, t in data["sightings"]), data["written"]

    def _versions(self, request_id: str) -> tuple[RequestVersion, ...]:
        return self._stored_versions(request_id)[0]

    def _put_versions(self, request_id: str, versions: tuple[RequestVersion, ...], written: int | None) -> None:
        key = VERSIONS + request_id.encode()
        if versions:
            sightings = [[v.esme_id, v.received_at, v.activation_time] for v in versions]
            self._store.put(key, _dump({"sightings": sightings, "written": written}))
        else:
            self._store.delete(key)

    def _activity(self, esme_id: str) -> tuple[list[str], dict[int, _Cancelled]]:
        """The ESME's request IDs, and its cancellations: time -> (when the last record of it was written, the
        request ID that carried it)."""
        raw = self._store.get(ESME_ACTIVITY + esme_id.encode())
        if not raw:
            return [], {}
        data = json.loads(raw)
        return data["requests"], {at: (written, by) for at, written, by in data["cancellations"]}

    def _update_activity(
        self, esme_id: str, request_id: str | None = None, cancellation: tuple[int, int | None, str] | None = None
    ) -> None:
        requests, cancellations = self._activity(esme_id)
        if request_id is not None and request_id not in requests:
            requests = [*requests, request_id]
        if cancellation is not None:
            at, written, by = cancellation
            if at in cancellations:  # the least request ID, so that the order read in does not matter
                stored_write, stored_by = cancellations[at]
                written, by = _latest_write(stored_write, written), min(stored_by, by)
            cancellations[at] = (written, by)
        self._put_activity(esme_id, requests, cancellations)

    def _put_activity(self, esme_id: str, requests: list[str], cancellations: dict[int, _Cancelled]) -> None:
        key = ESME_ACTIVITY + esme_id.encode()
        if requests or cancellations:
            ordered = [[c, *cancellations[c]] for c in sorted(cancellations)]
            self._store.put(key, _dump({"requests": requests, "cancellations": ordered}))
        else:
            self._store.delete(key)

    def _withdrawn_at(self, request_id: str) -> int | None:
        raw = self._store.get(WITHDRAWN + request_id.encode())
        return json.loads(raw)[0] if raw else None

    # --- the decision (5.4, 5.5) ----------------------------------------------------------------

    def decide(self, alert: AlertFacts) -> Decision:
        """ESMEs on the HAN are looked at in device-ID order, one at a time, and the first tracked one with
        an activation in force at t justifies the suppression: a crowded HAN costs only what it takes."""
        if alert.alert_code != OUTAGE_ALERT_CODE:
            return Forward(ForwardReason.NOT_AD1)
        reason = ForwardReason.NO_ESME_ON_HAN
        for esme_id in self.reference.esmes_on_han(alert.device_id):
            if not self.reference.is_tracked(esme_id):
                if reason is ForwardReason.NO_ESME_ON_HAN:
                    reason = ForwardReason.NO_TRACKED_ESME
                continue
            reason = ForwardReason.NO_ACTIVATION_WINDOW
            best = preferred(self._activations_in_force(esme_id, alert.received_at))
            if best is not None:
                return Suppress(best)
        return Forward(reason)

    def _activations_in_force(self, esme_id: str, t: int) -> Iterator[Activation]:
        request_ids, cancellations = self._activity(esme_id)
        for request_id in request_ids:
            versions = self._versions(request_id)
            withdrawn_at = self._withdrawn_at(request_id)
            for version in versions:
                if version.esme_id != esme_id:
                    continue
                activation = effective_activation(version, versions, cancellations, withdrawn_at, t, self.policy)
                if activation is not None:
                    yield activation

    # --- evidence of a genuine outage (rule 9) ------------------------------------------------------

    def put_evidence_alert(self, alert: AlertFacts, written: int | None = None) -> bool:
        """Keep a valid alert that may be evidence, by its device and time, with when it was written to Kafka
        (None: unknown, never purged): a Supply Outage Restored alert (9.a) or an AD1 (9.b). Other alerts
        are not kept; True when this one was."""
        code = alert.alert_code
        if code == OUTAGE_ALERT_CODE:
            prefix, value = AD1S, "-" if written is None else str(written)
        elif code in SUPPLY_RESTORED_CODES:
            prefix, value = SUPPLY_EVIDENCE, f"{code} {'-' if written is None else written}"
        else:
            return False
        at = f"{alert.received_at:0{_TIME_DIGITS}d}".encode()
        device, alert_id = alert.device_id.encode(), alert.alert_id.encode()
        self._write_no_input(prefix + device + b"/" + at + b"/" + alert_id, value.encode())
        if prefix == AD1S:
            self._index_ad1(device, at, alert_id, self._store.get(SECTOR_OF + device), True)
        return True

    def _write_no_input(self, key: bytes, value: bytes | None) -> None:
        """Put (None: delete) a key that is no input of rule 5 (evidence, bookkeeping): verdicts remembered
        by storm look-ups still stand after it."""
        verdicts_stand = self._verdicts_at == self._store.version
        if value is None:
            self._store.delete(key)
        else:
            self._store.put(key, value)
        if verdicts_stand:
            self._verdicts_at = self._store.version

    def _index_ad1(self, chf: bytes, at: bytes, alert_id: bytes, sector: bytes | None, present: bool) -> None:
        """Put (or delete) an AD1 of this CH Function in the sector index, under `sector` (None: none)."""
        if sector is not None:
            key = SECTOR_AD1S + sector + b"/" + at + b"/" + chf + b"/" + alert_id
            self._write_no_input(key, b"" if present else None)

    def _sector_changed(self, chf: bytes, before: bytes | None, after: bytes | None) -> None:
        """A CH Function's sector changed: its AD1s move with it, as rule 9 takes postcodes as they stand."""
        prefix = AD1S + chf + b"/"
        for key in [key for key, _ in self._store.scan(prefix)]:
            at, alert_id = key[len(prefix) :].split(b"/", 1)
            self._index_ad1(chf, at, alert_id, before, False)
            self._index_ad1(chf, at, alert_id, after, True)

    def _kept_alerts(self, prefix: bytes, device_id: str, lo: int, hi: int) -> Iterator[tuple[int, str, bytes]]:
        """(received_at, alert ID, stored value) of the alerts kept under `prefix` for this device, received
        in [lo, hi], in time order."""
        full = prefix + device_id.encode() + b"/"
        after = full + f"{lo - 1:0{_TIME_DIGITS}d}/".encode() + b"\xff" if lo > 0 else None  # \xff: no UTF-8
        for key, value in self._store.scan(full, after):
            at, alert_id = key[len(full) :].split(b"/", 1)
            received_at = int(at)
            if received_at > hi:
                return
            yield received_at, alert_id.decode(), value

    def supply_alerts(self, device_id: str, lo: int, hi: int) -> Iterator[EvidenceAlert]:
        """The Supply Outage Restored alerts kept for this device, received in [lo, hi], in time order."""
        for at, alert_id, value in self._kept_alerts(SUPPLY_EVIDENCE, device_id, lo, hi):
            yield EvidenceAlert(device_id, value.split(b" ")[0].decode(), alert_id, at)

    def ad1s(self, chf_id: str, lo: int, hi: int) -> Iterator[EvidenceAlert]:
        """The AD1s kept for this CH Function, received in [lo, hi], in time order."""
        for at, alert_id, _ in self._kept_alerts(AD1S, chf_id, lo, hi):
            yield EvidenceAlert(chf_id, OUTAGE_ALERT_CODE, alert_id, at)

    def evidence_for(self, alert: AlertFacts, policy: EvidencePolicy, storm: bool = True) -> Evidence | None:
        """Evidence of a genuine outage for an AD1 that rule 5 suppresses, among the alerts kept so far, with
        the inventory as it stands: supply evidence (9.a), else, with `storm`, storm evidence (9.b). The
        caller asks for storm evidence only once the activation inputs are read past t + A, as rule 5 then
        decides the sector's AD1s for good."""
        lo, hi = policy.span(alert.received_at)
        candidates = (a for esme in self.esmes_on_han(alert.device_id) for a in self.supply_alerts(esme, lo, hi))
        supply = supply_evidence(alert.received_at, policy, candidates)
        if supply is not None or not storm or policy.storm_min_hans <= 0:
            return supply
        return self.storm_evidence_for(alert, policy)

    def storm_evidence_for(self, alert: AlertFacts, policy: EvidencePolicy) -> Evidence | None:
        """Storm evidence for the AD1 (9.b), among the AD1s kept so far."""
        chf_id = alert.device_id
        sector = self.reference.sector_of(chf_id)
        if sector is None:
            return None
        candidates = self.storm_candidates(chf_id, sector, *policy.span(alert.received_at))
        return storm_evidence(chf_id, sector, alert.received_at, policy, candidates)

    def storm_candidates(self, chf_id: str, sector: str, lo: int, hi: int) -> Iterator[EvidenceAlert]:
        """For each other CH Function of the sector, its earliest AD1 received in [lo, hi] that rule 5 alone
        forwards (no window covers it), in the order of those times. Only the sector's AD1s in the span are
        read, lazily, so a caller that stops at K pays for what the span holds, not for the sector's homes."""
        counted = {chf_id}
        for ad1 in self.sector_ad1s(sector, lo, hi):
            if ad1.device_id not in counted and self._rule_5_forwards(ad1):
                counted.add(ad1.device_id)
                yield ad1

    def _rule_5_forwards(self, ad1: EvidenceAlert) -> bool:
        """Whether rule 5 alone forwards this AD1, remembered until the state next changes otherwise than by
        evidence kept (`decide` reads only the code, CH Function and time of an alert)."""
        if self._verdicts_at != self._store.version or len(self._forwards) >= _RULE_5_VERDICTS_KEPT:
            self._forwards.clear()
            self._verdicts_at = self._store.version
        key = ad1.device_id, ad1.received_at
        verdict = self._forwards.get(key)
        if verdict is None:
            verdict = self._forwards[key] = isinstance(self.decide(ad1), Forward)
        return verdict

    def sector_ad1s(self, sector: str, lo: int, hi: int) -> Iterator[EvidenceAlert]:
        """The AD1s kept for the CH Functions of this sector as it stands, received in [lo, hi], in time order."""
        full = SECTOR_AD1S + sector.encode() + b"/"
        after = full + f"{lo - 1:0{_TIME_DIGITS}d}/".encode() + b"\xff" if lo > 0 else None  # \xff: no UTF-8
        last = full + f"{hi:0{_TIME_DIGITS}d}/".encode() + b"\xff"  # bytes, as a sector may hold a "/"
        for key, _ in self._store.scan(full, after):
            if key > last:
                return
            at, chf_id, alert_id = key[len(full) :].split(b"/", 2)
            yield EvidenceAlert(chf_id.decode(), OUTAGE_ALERT_CODE, alert_id.decode(), int(at))

    def storm_candidates_of(self, chf_id: str, lo: int, hi: int) -> Iterator[EvidenceAlert]:
        """The AD1s of this CH Function received in [lo, hi] that rule 5 alone forwards, in time order."""
        return (ad1 for ad1 in self.ad1s(chf_id, lo, hi) if isinstance(self.decide(ad1), Forward))

    def han_postcode(self, chf_id: str) -> str | None:
        return self.reference.han_postcode(chf_id)

    def sector_of(self, chf_id: str) -> str | None:
        return self.reference.sector_of(chf_id)

    # --- read-only queries (explanations) ---------------------------------------------------------

    def esmes_on_han(self, chf_id: str) -> Iterator[str]:
        """The ESMEs associated with this CHF, in device-ID order (the order `decide` looks at them in)."""
        return self.reference.esmes_on_han(chf_id)

    def chf_of(self, device_id: str) -> str | None:
        """The CHF of the HAN this device is on as an ESME; None when the inventory puts it on none."""
        return self.reference.chf_of(device_id)

    def in_inventory(self, device_id: str) -> bool:
        return self.reference.in_inventory(device_id)

    def is_tracked(self, device_id: str) -> bool:
        return self.reference.is_tracked(device_id)

    def activity_of(self, esme_id: str) -> EsmeActivity:
        """Every request ID of this ESME with its sightings and withdrawal, and its cancellation times."""
        request_ids, cancellations = self._activity(esme_id)
        requests = tuple(RequestHistory(r, self._versions(r), self._withdrawn_at(r)) for r in request_ids)
        times = tuple(sorted(cancellations))
        return EsmeActivity(requests, times, tuple(cancellations[c][1] for c in times))

    # --- housekeeping ---------------------------------------------------------------------------

    def start_sweep(self, wall_clock_ms: int) -> SweepPass:
        """A housekeeping pass at this wall-clock time, with the inputs' retention as its reach back."""
        return SweepPass(wall_clock_ms, self.policy.input_retention_ms)

    def sweep_some(self, sweep: SweepPass, limit: int) -> bool:
        """Advance a sweep pass by at most `limit` keys; True when the pass is complete.

        Nothing is purged unless every record it came from was written before the horizon (the topics no
        longer hold it, so a rebuild would not restore it either). Of that, a request ID's sightings go
        together once every window of them ended more than the reach (longest future-dating plus window)
        before the horizon: a sighting received later, even one read after the purge, is then received after
        all of them, so none of them could have replaced it. Withdrawals of request IDs without sightings and
        cancellations go once they are more than the reach before the horizon: no activation in a window at
        or after the horizon was received that early. So no decision on an alert received at or after the
        horizon changes, pending windows are never purged, and state stays bounded by the inputs' retention.
        The pass also counts windows pending and in force at `now`.
        """
        prefix = _SWEEP_PHASES[sweep.phase]
        batch = list(islice(self._store.scan(prefix, sweep.after), limit))
        for key, raw in batch:
            name = key[len(prefix) :].decode()
            if prefix == VERSIONS:
                self._sweep_versions(name, sweep)
            elif prefix in (SUPPLY_EVIDENCE, AD1S):
                written = raw.split(b" ")[-1]
                device, at, alert_id = key[len(prefix) :].split(b"/", 2)
                if self._purgeable(int(at), None if written == b"-" else int(written), sweep):
                    self._store.delete(key)
                    if prefix == AD1S:
                        self._index_ad1(device, at, alert_id, self._store.get(SECTOR_OF + device), False)
            elif prefix == WITHDRAWN:
                withdrawn_at, written = json.loads(raw)
                if self._purgeable(withdrawn_at, written, sweep) and not self._versions(name):
                    self._store.delete(key)
            else:
                self._sweep_activity(name, sweep)
        if len(batch) < limit:
            sweep.phase += 1
            sweep.after = None
        else:
            sweep.after = batch[-1][0]
        return sweep.phase >= len(_SWEEP_PHASES)

    def _purgeable(self, latest_time: int, written: int | None, sweep: SweepPass) -> bool:
        """Written before the horizon, and about times more than the reach before it."""
        cutoff = sweep.horizon
        return written is not None and written < cutoff and latest_time < cutoff - self.policy.reach_ms

    def _sweep_versions(self, request_id: str, sweep: SweepPass) -> None:
        versions, written = self._stored_versions(request_id)
        last_end = max(window_of(v, self.policy).end for v in versions)
        if self._purgeable(last_end, written, sweep):
            sweep.counts.purged += len(versions)
            self._put_versions(request_id, (), None)
            return
        window = self._window_in_force(request_id, versions, sweep.now)
        if window is not None:
            sweep.counts.pending += window.start > sweep.now
            sweep.counts.active += window.contains(sweep.now)

    def _sweep_activity(self, esme_id: str, sweep: SweepPass) -> None:
        requests, cancellations = self._activity(esme_id)
        live = [r for r in requests if any(v.esme_id == esme_id for v in self._versions(r))]
        recent = {c: w for c, w in cancellations.items() if not self._purgeable(c, w[0], sweep)}
        if (live, recent) != (requests, cancellations):
            self._put_activity(esme_id, live, recent)

    def _window_in_force(self, request_id: str, versions: tuple[RequestVersion, ...], now: int) -> Window | None:
        """The window of the request's current sighting at `now` if neither cancelled, withdrawn nor over."""
        current = [v for v in versions if is_current_version(v, versions, now) and v.received_at <= now]
        if not current:
            return None
        version = current[-1]
        withdrawn_at = self._withdrawn_at(request_id)
        _, cancellations = self._activity(version.esme_id)
        window = window_of(version, self.policy)
        if (withdrawn_at is not None and withdrawn_at <= now) or is_cancelled(version, cancellations, now):
            return None
        return window if window.end >= now else None

    # --- the stored format (contract 6: upgrades rebuild by themselves) --------------------------

    def format_version_ok(self) -> bool:
        """True when the store is empty or in this version's format; False when it holds state in an older
        (or no recorded) format, which the worker must then discard and rebuild from the topics."""
        stored = self.get_meta(FORMAT)
        if stored is not None:
            return stored == str(STATE_FORMAT_VERSION).encode()
        return next(self._store.scan(b""), None) is None

    def mark_format(self) -> None:
        """Record this version's format (staged: durable with the next commit)."""
        self.put_meta(FORMAT, str(STATE_FORMAT_VERSION).encode())

    # --- bookkeeping stored atomically with the state -------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        return self._store.get(META + name.encode())

    def put_meta(self, name: str, value: bytes) -> None:
        self._write_no_input(META + name.encode(), value)

    def delete_meta(self, name: str) -> None:
        self._write_no_input(META + name.encode(), None)

    def meta_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        full = META + prefix.encode()
        for key, value in self._store.scan(full):
            yield key[len(META) :].decode(), value

    @property
    def pending_changes(self) -> int:
        return self._store.pending

    def commit(self) -> None:
        self._store.commit()
