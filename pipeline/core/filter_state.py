"""The filter's state (tracked list, HAN associations, activations) and the AD1 decision over it (5.5).

Keys are namespaced byte strings in one store, values compact JSON. Only what decisions need is kept:
the inventory is reduced to ESME -> CHF associations and a CHF -> ESMEs index, the tracked list to
membership. Activation data is kept per request ID (versions, withdrawal) and per ESME (request IDs,
cancellations), so each rule of `activation_windows` reads exactly the records it names.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

from pipeline.core.activation_windows import (
    Cancellation,
    RequestVersion,
    Window,
    WindowPolicy,
    add_time,
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
from pipeline.core.records import (
    OUTAGE_ALERT_CODE,
    WITHDRAWING_OUTCOMES,
    ActivationOutcome,
    AlertFacts,
    InventoryRecord,
    ServiceRequest,
)

ESME_OF = b"inv/"  # ESME id -> its CHF id
HAN = b"han/"  # CHF id -> JSON list of ESME ids
TRACKED = b"trk/"  # ESME id -> b"1"
VERSIONS = b"req/"  # request id -> JSON [[esme, received_at, activation_time], ...]
WITHDRAWN = b"wdr/"  # request id -> withdrawal time
ESME_ACTIVITY = b"esm/"  # ESME id -> JSON {"requests": [...], "cancellations": [...]}
META = b"meta/"  # worker bookkeeping (read positions, counts), see `put_meta`
TRACKED_COUNT = "tracked-count"


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_SWEEP_PHASES = (VERSIONS, WITHDRAWN, ESME_ACTIVITY)


@dataclass
class WindowCounts:
    pending: int = 0
    active: int = 0
    purged: int = 0


@dataclass
class SweepPass:
    """An incremental housekeeping pass at event time `now`, resumable after any key."""

    now: int
    retention_ms: int
    phase: int = 0
    after: bytes | None = None
    counts: WindowCounts = field(default_factory=WindowCounts)

    @property
    def horizon(self) -> int:
        return self.now - self.retention_ms


class FilterState:
    def __init__(self, store: StagedStore, policy: WindowPolicy) -> None:
        self._store = store
        self.policy = policy
        self._tracked_count: int | None = None

    # --- reference data: latest value wins (5.5) -------------------------------------------------

    def put_inventory(self, device_id: str, record: InventoryRecord | None) -> None:
        esme_chf = record.chf_id if record is not None and record.is_esme else None
        self.put_esme_han(device_id, esme_chf)

    def put_esme_han(self, device_id: str, chf_id: str | None) -> None:
        """The device is an ESME on the HAN of this CHF, or (None) not an ESME on any HAN."""
        key = ESME_OF + device_id.encode()
        old = self._store.get(key)
        new = chf_id.encode() if chf_id else None
        if old == new:
            return
        if old is not None:
            self._update_han(old, remove=device_id)
        if new is None:
            self._store.delete(key)
        else:
            self._store.put(key, new)
            self._update_han(new, add=device_id)

    def _update_han(self, chf_id: bytes, add: str | None = None, remove: str | None = None) -> None:
        key = HAN + chf_id
        raw = self._store.get(key)
        esmes = set(json.loads(raw)) if raw else set()
        if add:
            esmes.add(add)
        if remove:
            esmes.discard(remove)
        if esmes:
            self._store.put(key, _dump(sorted(esmes)))
        else:
            self._store.delete(key)

    def put_tracked(self, device_id: str, listed: bool) -> None:
        key = TRACKED + device_id.encode()
        was_listed = self._store.get(key) is not None
        if listed == was_listed:
            return
        if listed:
            self._store.put(key, b"1")
        else:
            self._store.delete(key)
        self._tracked_count = self.tracked_count() + (1 if listed else -1)
        self.put_meta(TRACKED_COUNT, str(self._tracked_count).encode())

    def esmes_on_han(self, chf_id: str) -> list[str]:
        raw = self._store.get(HAN + chf_id.encode())
        return json.loads(raw) if raw else []

    def is_tracked(self, esme_id: str) -> bool:
        return self._store.get(TRACKED + esme_id.encode()) is not None

    # --- activation events (5.1-5.3) ------------------------------------------------------------

    def apply_service_request(self, request: ServiceRequest) -> RequestVersion | Cancellation | None:
        """Record an SR; raises BadInput (beyond the horizon) before changing anything."""
        meaning = interpret_request(request, self.policy)
        if isinstance(meaning, RequestVersion):
            versions = self._versions(meaning.request_id)
            self._put_versions(meaning.request_id, add_version(versions, meaning))
            self._update_activity(meaning.esme_id, request_id=meaning.request_id)
        elif isinstance(meaning, Cancellation):
            self._update_activity(meaning.esme_id, cancellation=meaning.received_at)
        return meaning

    def apply_outcome(self, outcome: ActivationOutcome) -> bool:
        """Record a withdrawal (matched by request ID alone); True when the outcome withdraws."""
        if outcome.outcome not in WITHDRAWING_OUTCOMES:
            return False
        key = WITHDRAWN + outcome.request_id.encode()
        raw = self._store.get(key)
        self._store.put(key, str(earliest(int(raw) if raw else None, outcome.received_at)).encode())
        return True

    def _versions(self, request_id: str) -> tuple[RequestVersion, ...]:
        raw = self._store.get(VERSIONS + request_id.encode())
        if not raw:
            return ()
        return tuple(RequestVersion(request_id, e, r, t) for e, r, t in json.loads(raw))

    def _put_versions(self, request_id: str, versions: tuple[RequestVersion, ...]) -> None:
        key = VERSIONS + request_id.encode()
        if versions:
            self._store.put(key, _dump([[v.esme_id, v.received_at, v.activation_time] for v in versions]))
        else:
            self._store.delete(key)

    def _activity(self, esme_id: str) -> tuple[list[str], tuple[int, ...]]:
        raw = self._store.get(ESME_ACTIVITY + esme_id.encode())
        if not raw:
            return [], ()
        data = json.loads(raw)
        return data["requests"], tuple(data["cancellations"])

    def _update_activity(self, esme_id: str, request_id: str | None = None, cancellation: int | None = None) -> None:
        requests, cancellations = self._activity(esme_id)
        if request_id is not None and request_id not in requests:
            requests = [*requests, request_id]
        if cancellation is not None:
            cancellations = add_time(cancellations, cancellation)
        self._put_activity(esme_id, requests, cancellations)

    def _put_activity(self, esme_id: str, requests: list[str], cancellations: tuple[int, ...]) -> None:
        key = ESME_ACTIVITY + esme_id.encode()
        if requests or cancellations:
            self._store.put(key, _dump({"requests": requests, "cancellations": list(cancellations)}))
        else:
            self._store.delete(key)

    def _withdrawn_at(self, request_id: str) -> int | None:
        raw = self._store.get(WITHDRAWN + request_id.encode())
        return int(raw) if raw else None

    # --- the decision (5.4, 5.5) ----------------------------------------------------------------

    def decide(self, alert: AlertFacts) -> Decision:
        if alert.alert_code != OUTAGE_ALERT_CODE:
            return Forward(ForwardReason.NOT_AD1)
        esmes = self.esmes_on_han(alert.device_id)
        if not esmes:
            return Forward(ForwardReason.NO_ESME_ON_HAN)
        tracked = [e for e in esmes if self.is_tracked(e)]
        if not tracked:
            return Forward(ForwardReason.NO_TRACKED_ESME)
        t = alert.received_at
        candidates = []
        for esme_id in tracked:
            request_ids, cancellations = self._activity(esme_id)
            for request_id in request_ids:
                versions = self._versions(request_id)
                withdrawn_at = self._withdrawn_at(request_id)
                for version in versions:
                    if version.esme_id != esme_id:
                        continue
                    activation = effective_activation(version, versions, cancellations, withdrawn_at, t, self.policy)
                    if activation is not None:
                        candidates.append(activation)
        best = preferred(candidates)
        return Forward(ForwardReason.NO_ACTIVATION_WINDOW) if best is None else Suppress(best)

    # --- housekeeping ---------------------------------------------------------------------------

    def sweep(self, now: int, retention_ms: int) -> WindowCounts:
        """One whole sweep pass (see `SweepPass`); the worker runs passes in slices instead."""
        sweep = SweepPass(now, retention_ms)
        while not self.sweep_some(sweep, limit=1000):
            pass
        return sweep.counts

    def sweep_some(self, sweep: "SweepPass", limit: int) -> bool:
        """Advance a sweep pass by at most `limit` keys; True when the pass is complete.

        Versions are dropped once every sighting of their request ID has a window that ended more than
        the retention before `now` (sightings go together: dropping only an ended replacement would make
        the version it replaced current again); withdrawals and cancellations once no activation they
        could affect can still be in a kept window. The pass also counts windows pending and in force.
        """
        prefix = _SWEEP_PHASES[sweep.phase]
        batch = list(islice(self._store.scan(prefix, sweep.after), limit))
        for key, raw in batch:
            name = key[len(prefix) :].decode()
            if prefix == VERSIONS:
                self._sweep_versions(name, sweep)
            elif prefix == WITHDRAWN:
                if int(raw) < sweep.horizon - self._reach and not self._versions(name):
                    self._store.delete(key)
            else:
                self._sweep_activity(name, sweep)
        if len(batch) < limit:
            sweep.phase += 1
            sweep.after = None
        else:
            sweep.after = batch[-1][0]
        return sweep.phase >= len(_SWEEP_PHASES)

    @property
    def _reach(self) -> int:
        return self.policy.max_future_ms + self.policy.window_ms

    def _sweep_versions(self, request_id: str, sweep: "SweepPass") -> None:
        versions = self._versions(request_id)
        if all(window_of(v, self.policy).end < sweep.horizon for v in versions):
            sweep.counts.purged += len(versions)
            self._put_versions(request_id, ())
            return
        window = self._window_in_force(request_id, versions, sweep.now)
        if window is not None:
            sweep.counts.pending += window.start > sweep.now
            sweep.counts.active += window.contains(sweep.now)

    def _sweep_activity(self, esme_id: str, sweep: "SweepPass") -> None:
        requests, cancellations = self._activity(esme_id)
        live = [r for r in requests if any(v.esme_id == esme_id for v in self._versions(r))]
        recent = tuple(c for c in cancellations if c >= sweep.horizon - self._reach)
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

    def tracked_count(self) -> int:
        if self._tracked_count is None:  # kept in memory: a rebuild changes it 1.5 million times
            raw = self.get_meta(TRACKED_COUNT)
            self._tracked_count = int(raw) if raw else 0
        return self._tracked_count

    # --- bookkeeping stored atomically with the state -------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        return self._store.get(META + name.encode())

    def put_meta(self, name: str, value: bytes) -> None:
        self._store.put(META + name.encode(), value)

    def meta_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        full = META + prefix.encode()
        for key, value in self._store.scan(full):
            yield key[len(META) :].decode(), value

    @property
    def pending_changes(self) -> int:
        return self._store.pending

    def commit(self) -> None:
        self._store.commit()
