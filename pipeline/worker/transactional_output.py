"""The transactional output, like Kafka Streams' StreamsProducer: the decided records, the state-topic
dead letters and the offsets they stand for (alert offsets, and the state partitions' dead-lettered
offsets, see `dead_letter_ownership`) go in one Kafka transaction, so each is written exactly once.

One transaction at a time: `start` begins it and produces its records, its commit runs on a helper
thread (`PendingCommit`) while the loop reads on, and `settle` waits for it. A failed transaction is
aborted, or its producer fenced by a new one; what it carried is read or looked up again by the loop.
Metrics count a transaction's decisions once it commits, so an aborted and re-read alert counts once.
"""

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicPartition

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.kafka.batches import produce_when_room
from pipeline.wire.output_records import Output
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.transactions import TXN_TIMEOUT_S, PendingCommit, TransactionStuck
from pipeline.worker.triage import Decided

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


class TransactionalOutput:
    def __init__(
        self, new_producer: Callable[[], Producer], metrics: WorkerMetrics, alerts_topic: str,
        stopping: Callable[[], bool], permissions: PermissionWatch, clock: Clock = SYSTEM_CLOCK,
    ) -> None:  # fmt: skip
        self._new_producer = new_producer
        self._metrics = metrics
        self._alerts_topic = alerts_topic
        self._stopping = stopping
        self._permissions = permissions
        self._clock = clock
        self._retry_delay = RETRY_FIRST_S  # before the next attempt after a refused one
        self._producer: Producer | None = None
        self._in_flight: PendingCommit | None = None

    @property
    def opened(self) -> bool:
        return self._producer is not None

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    def open(self) -> None:
        """A producer with transactions initialised; blocks until a broker answers (or the worker stops)."""
        self._producer = self._initialised_producer()

    def renew(self) -> None:
        """A new producer with the same transactional ID, fencing the old one (nothing may be in flight)."""
        assert self._in_flight is None
        self._producer = self._initialised_producer()

    def start(
        self, decided: Decided, dead_letters: list[Output], offsets: list[TopicPartition], group_metadata: Any
    ) -> None:
        """Begin a transaction with state-topic dead letters, the decided records and the offsets; its
        commit starts on a helper thread, and nothing else touches the producer until `settle`."""
        assert self._in_flight is None and self._producer is not None
        producer = self._producer
        commit = PendingCommit(decided.tally, decided.latencies, expired=decided.expired,
                               evidence_latencies=decided.evidence_latencies)  # fmt: skip
        self._in_flight = commit
        try:
            producer.begin_transaction()
            produce = producer.produce
            for records in (dead_letters, decided.records):
                for topic, key, value in records:
                    try:
                        produce(topic, value, key)
                    except BufferError:
                        produce_when_room(producer, topic, value, key, poll_s=0.01)
        except KafkaException as exc:
            commit.failed(exc)
            return
        commit.start(producer, offsets, group_metadata, self._stopping)

    def settle(self) -> bool | None:
        """Wait for the transaction in flight: True once committed, False if it failed (it is then aborted),
        None if none was in flight."""
        commit, self._in_flight = self._in_flight, None
        if commit is None:
            return None
        try:
            commit.wait()
        except (KafkaException, TransactionStuck) as exc:
            self._abandon(exc)
            return False
        self._metrics.transactions.labels("committed").inc()
        self._observe_committed(commit)
        self._permissions.permitted("transaction")
        self._retry_delay = RETRY_FIRST_S
        return True

    def _abandon(self, exc: KafkaException | TransactionStuck) -> None:
        """Abort (or fence, with a new producer) a failed transaction."""
        self._metrics.transactions.labels("aborted").inc()
        denied = not isinstance(exc, TransactionStuck) and self._permissions.producer_error(exc.args[0], "transaction")
        say = log.debug if denied else log.warning  # a missing permission is logged by the permission watch
        if isinstance(exc, TransactionStuck):
            log.error("%s; fencing this producer with a new one and re-reading uncommitted alerts", exc)
            self._producer = self._initialised_producer()
        elif exc.args[0].fatal():
            say("transaction failed, re-reading uncommitted alerts with a new producer: %s", exc)
            self._producer = self._initialised_producer()
        else:
            say("transaction failed, aborting and re-reading uncommitted alerts: %s", exc)
            try:
                assert self._producer is not None
                self._producer.abort_transaction(TXN_TIMEOUT_S)
            except KafkaException as abort_exc:
                say("abort failed, recreating the producer: %s", abort_exc)
                self._producer = self._initialised_producer()
        if denied:
            self._back_off()  # the uncommitted alerts are read again and retried, not in a tight loop

    def _observe_committed(self, commit: PendingCommit) -> None:
        """Its `latencies` count the decided alerts by the time they were read (first read, for AD1s decided
        after waiting on the held topic for evidence)."""
        now = self._clock.monotonic()
        for waited, latencies in (("false", commit.latencies), ("true", commit.evidence_latencies)):
            for read_at, count in latencies.items():
                self._metrics.decision_latency.observe_many(now - read_at, count, waited)
        for (decision, code, reason), count in commit.tally.items():
            self._metrics.alerts.labels(decision, code, reason).inc(count)
            if decision == "dead_letter":
                self._metrics.dead_letters.labels(self._alerts_topic).inc(count)
        for held_for, count in commit.expired.items():
            self._metrics.holds_expired.labels(held_for).inc(count)

    def _initialised_producer(self) -> Producer:
        """A new producer with transactions initialised, retried with back-off until a broker answers and
        the transactional ID is granted; a producer failed for good (fatal error) is replaced."""
        producer = self._new_producer()
        while True:
            try:
                producer.init_transactions(TXN_TIMEOUT_S)
                self._permissions.permitted("producer")
                self._retry_delay = RETRY_FIRST_S
                return producer
            except KafkaException as exc:
                if not self._stopping() and not self._permissions.producer_error(exc.args[0], "producer"):
                    log.warning("could not initialise transactions, retrying: %s", exc)
                if exc.args[0].fatal():
                    producer = self._new_producer()
                self._back_off()
                if self._stopping():
                    raise InterruptedError from exc

    def _back_off(self) -> None:
        """Wait before retrying what was refused, longer each time (up to RETRY_MAX_S); SIGTERM cuts it short."""
        deadline = self._clock.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_S)
        while self._clock.monotonic() < deadline and not self._stopping():
            self._clock.sleep(0.05)
