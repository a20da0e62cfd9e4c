"""Work the loop does between decisions, a slice at a time so that it never stalls them: purging
activation windows that ended long before every alert partition's decided time, and the gauges."""

import logging
import time

from confluent_kafka import Consumer, KafkaException

from pipeline.core.filter_state import FilterState, SweepPass
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.triage import AlertTriage

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
SWEEP_SLICE = 200  # keys per loop iteration, so housekeeping never stalls decisions
SWEEP_RETENTION_MS = 2 * 86_400_000  # keep expired windows two days past their end, for late alerts
GAUGE_INTERVAL_S = 2.0


class Housekeeping:
    def __init__(self, state: FilterState, metrics: WorkerMetrics) -> None:
        self._state = state
        self._metrics = metrics
        self.alert_partitions = 0  # of the alert topic: every one counts for the sweep's horizon
        self._sweep: SweepPass | None = None
        self._last_sweep = self._last_gauges = 0.0

    def alert_topic_has(self, partitions: int) -> None:
        if partitions > self.alert_partitions:
            log.info("the alert topic grew from %d to %d partitions", self.alert_partitions, partitions)
            self.alert_partitions = partitions

    def tick(self, triage: AlertTriage, consumers: list[Consumer]) -> bool:
        """One slice of housekeeping; True when a sweep pass finished, leaving staged state changes."""
        now = time.monotonic()
        if now - self._last_gauges >= GAUGE_INTERVAL_S:
            self._last_gauges = now
            self._update_gauges(triage, consumers)
        if self._sweep is None:
            slowest = triage.decided_up_to(self.alert_partitions)
            if now - self._last_sweep >= SWEEP_INTERVAL_S and slowest is not None:
                self._last_sweep = now
                self._sweep = SweepPass(slowest, SWEEP_RETENTION_MS)
            return False
        if not self._state.sweep_some(self._sweep, SWEEP_SLICE):
            return False
        counts, self._sweep = self._sweep.counts, None
        self._metrics.activation_windows.labels("pending").set(counts.pending)
        self._metrics.activation_windows.labels("active").set(counts.active)
        if counts.purged:
            log.info("purged %d expired activation versions", counts.purged)
        return True

    def _update_gauges(self, triage: AlertTriage, consumers: list[Consumer]) -> None:
        self._metrics.held_alerts.set(sum(triage.holds.sizes().values()))
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
