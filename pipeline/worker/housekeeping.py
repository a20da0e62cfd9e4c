"""Work the loop does between decisions, a slice at a time so that it never stalls them: purging
activation data that a rebuild from the topics could no longer restore, and the gauges.

The sweep's horizon comes from the wall clock less the inputs' retention (FilterState.start_sweep), never
from record times: no outlying record can move it, and every worker sweeps the same way whatever alert
partitions it owns (contract 6: housekeeping never changes a decision, state stays bounded)."""

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.filter_state import FilterState, SweepPass
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.triage import AlertTriage

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
SWEEP_SLICE = 200  # keys per loop iteration, so housekeeping never stalls decisions
GAUGE_INTERVAL_S = 2.0


class Housekeeping:
    def __init__(
        self, state: FilterState, metrics: WorkerMetrics, state_size: Callable[[], tuple[int, int]],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:  # fmt: skip
        self._state = state
        self._clock = clock
        self._metrics = metrics
        self._state_size = state_size  # RocksDB's estimated keys and bytes
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
        self._metrics.set_held(inputs=sum(triage.holds.sizes().values()), evidence=triage.held_for_evidence())
        self._metrics.set_state_size(*self._state_size())
        for partition in triage.holds.sizes():
            self._metrics.set_event_time_lag(partition, *triage.event_times(partition))
        self._metrics.tracked_devices.set(self._state.tracked_count())
        for consumer in consumers:
            try:
                positions = consumer.position(consumer.assignment())
            except KafkaException:
                continue
            for tp in positions:
                _low, high = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                if high >= 0 and tp.offset >= 0:
                    self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))
