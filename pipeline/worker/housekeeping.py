"""Work the loop does between decisions, a slice at a time so that it never stalls them: purging
activation data that a rebuild from the topics could no longer restore, and the gauges.

The sweep's horizon comes from the wall clock less the inputs' retention (FilterState.start_sweep), never
from record times: no outlying record can move it, and every worker sweeps the same way whatever alert
partitions it owns (contract 6: housekeeping never changes a decision, state stays bounded)."""

import logging
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaException

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.filter_state import FilterState, SweepPass
from pipeline.kafka.admin import EndOffsetLookup
from pipeline.worker.evidence_reader import EvidenceReader
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.triage import AlertTriage

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
SWEEP_SLICE = 200  # keys per loop iteration, so housekeeping never stalls decisions
GAUGE_INTERVAL_S = 2.0


class HeldBacklog:
    """Held AD1s not fetched yet, on the held partitions this worker owns (rule 9's wait). A held partition
    paused beyond the in-memory cap is not fetched, so the consumer's cached high watermark of it goes stale:
    its end offsets are looked up instead, without blocking, each time the gauges are updated."""

    def __init__(self, topic: str, lookup: EndOffsetLookup) -> None:
        self.topic = topic
        self._lookup = lookup
        self._ends: dict[int, int] = {}

    def count(self, positions: Mapping[int, int]) -> int:
        """Records past these read positions (held partition -> next offset) by the last end offsets known."""
        result = self._lookup.poll()
        if result is not None:
            self._ends = {partition: end for (_topic, partition), end in result[0].items()}
        if positions and self._lookup.can_start():
            self._lookup.start([(self.topic, p) for p in positions], tag=0)
        return sum(max(self._ends.get(p, position) - position, 0) for p, position in positions.items())


class Housekeeping:
    def __init__(
        self,
        state: FilterState,
        metrics: WorkerMetrics,
        state_size: Callable[[], tuple[int, int]],
        evidence: EvidenceReader | None = None,
        held: HeldBacklog | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`evidence` and `held` (rule 9) have their lag and backlog reported with the gauges."""
        self._state = state
        self._clock = clock
        self._metrics = metrics
        self._state_size = state_size  # RocksDB's estimated keys and bytes
        self._evidence = evidence
        self._held = held
        self._sweep: SweepPass | None = None
        self._last_sweep = self._last_gauges = 0.0

    def tick(self, triage: AlertTriage, consumers: list[Consumer]) -> bool:
        """One slice of housekeeping; True when a sweep pass finished, leaving staged state changes."""
        now = self._clock.monotonic()
        if now - self._last_gauges >= GAUGE_INTERVAL_S:
            self._last_gauges = now
            self._update_gauges(triage, consumers)
        if self._sweep is None:
            if now - self._last_sweep >= SWEEP_INTERVAL_S:
                self._last_sweep = now
                self._sweep = self._state.start_sweep(self._clock.wall_ms())
            return False
        if not self._state.sweep_some(self._sweep, SWEEP_SLICE):
            return False
        counts, self._sweep = self._sweep.counts, None
        self._metrics.activation_windows.labels("pending").set(counts.pending)
        self._metrics.activation_windows.labels("active").set(counts.active)
        self._metrics.swept(counts.purged)
        if counts.purged:
            log.info("purged %d expired activation versions", counts.purged)
        return True

    def _update_gauges(self, triage: AlertTriage, consumers: list[Consumer]) -> None:
        self._metrics.set_state_size(*self._state_size())
        for partition in triage.holds.sizes():
            self._metrics.set_event_time_lag(partition, *triage.event_times(partition))
        self._metrics.tracked_devices.set(self._state.tracked_count())
        held_positions: dict[int, int] = {}
        for consumer in consumers:
            try:
                positions = consumer.position(consumer.assignment())
            except KafkaException:
                continue
            for tp in positions:
                if self._held is not None and tp.topic == self._held.topic and tp.offset >= 0:
                    held_positions[tp.partition] = tp.offset
                _low, high = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                if high >= 0 and tp.offset >= 0:
                    self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))
        on_broker = 0 if self._held is None else self._held.count(held_positions)  # behind a paused partition
        inputs, evidence = sum(triage.holds.sizes().values()), triage.held_for_evidence() + on_broker
        self._metrics.set_held(inputs=inputs, evidence=evidence)
        for partition, records, clock_lag_s in self._evidence.lag() if self._evidence is not None else ():
            self._metrics.set_evidence_lag(partition, records, clock_lag_s)
