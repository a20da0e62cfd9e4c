"""The transactional output, like Kafka Streams' StreamsProducer: the decided records, the state-topic
dead letters and the alert offsets they stand for go in one Kafka transaction, so every alert's decision
is written exactly once.

One transaction at a time: `start` begins it and produces its records, its commit runs on a helper
thread (`PendingCommit`) while the loop reads on, and `settle` waits for it. A failed transaction is
aborted, or its producer fenced by a new one; its dead letters stay pending for the next transaction.
Metrics count a transaction's decisions once it commits, so an aborted and re-read alert counts once.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicPartition

from pipeline.kafka.batches import produce_when_room
from pipeline.wire.output_records import Output
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.transactions import TXN_TIMEOUT_S, PendingCommit, TransactionStuck
from pipeline.worker.triage import Decided

log = logging.getLogger(__name__)


class TransactionalOutput:
    def __init__(
        self, new_producer: Callable[[], Producer], metrics: WorkerMetrics, alerts_topic: str,
        stopping: Callable[[], bool],
    ) -> None:  # fmt: skip
        self._new_producer = new_producer
        self._metrics = metrics
        self._alerts_topic = alerts_topic
        self._stopping = stopping
        self._producer: Producer | None = None
        self._in_flight: PendingCommit | None = None
        self._dead_letters: list[Output] = []  # state-topic dead letters, for the next transaction

    @property
    def opened(self) -> bool:
        return self._producer is not None

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    @property
    def has_dead_letters(self) -> bool:
        return bool(self._dead_letters)

    def add_dead_letter(self, record: Output) -> None:
        self._dead_letters.append(record)

    def open(self) -> None:
        """A producer with transactions initialised; blocks until a broker answers (or the worker stops)."""
        self._producer = self._initialised_producer()

    def renew(self) -> None:
        """A new producer with the same transactional ID, fencing the old one (nothing may be in flight)."""
        assert self._in_flight is None
        self._producer = self._initialised_producer()

    def start(self, decided: Decided, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Begin a transaction with the pending dead letters, the decided records and the alert offsets;
        its commit starts on a helper thread, and nothing else touches the producer until `settle`."""
        assert self._in_flight is None and self._producer is not None
        producer = self._producer
        dead_letters, self._dead_letters = self._dead_letters, []
        commit = PendingCommit(dead_letters, decided.tally, decided.latencies)
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
        """Wait for the transaction in flight: True once committed, False if it failed (it is then aborted
        and its dead letters pending again), None if none was in flight."""
        commit, self._in_flight = self._in_flight, None
        if commit is None:
            return None
        try:
            commit.wait()
        except (KafkaException, TransactionStuck) as exc:
            self._dead_letters[:0] = commit.dead_letters
            self._abandon(exc)
            return False
        self._metrics.transactions.labels("committed").inc()
        self._observe_committed(commit.latencies, commit.tally)
        return True

    def _abandon(self, exc: KafkaException | TransactionStuck) -> None:
        """Abort (or fence, with a new producer) a failed transaction."""
        self._metrics.transactions.labels("aborted").inc()
        if isinstance(exc, TransactionStuck):
            log.error("%s; fencing this producer with a new one and re-reading uncommitted alerts", exc)
            self._producer = self._initialised_producer()
        elif exc.args[0].fatal():
            log.warning("transaction failed, re-reading uncommitted alerts with a new producer: %s", exc)
            self._producer = self._initialised_producer()
        else:
            log.warning("transaction failed, aborting and re-reading uncommitted alerts: %s", exc)
            try:
                assert self._producer is not None
                self._producer.abort_transaction(TXN_TIMEOUT_S)
            except KafkaException as abort_exc:
                log.warning("abort failed, recreating the producer: %s", abort_exc)
                self._producer = self._initialised_producer()

    def _observe_committed(self, latencies: Counter[float], tally: Counter[tuple[str, str, str]]) -> None:
        """`latencies` counts the decided alerts by the time they were read."""
        now = time.monotonic()
        for read_at, count in latencies.items():
            self._metrics.decision_latency.observe_many(now - read_at, count)
        for (decision, code, reason), count in tally.items():
            self._metrics.alerts.labels(decision, code, reason).inc(count)
            if decision == "dead_letter":
                self._metrics.dead_letters.labels(self._alerts_topic).inc(count)

    def _initialised_producer(self) -> Producer:
        producer = self._new_producer()
        while True:
            try:
                producer.init_transactions(TXN_TIMEOUT_S)
                return producer
            except KafkaException as exc:
                if self._stopping():
                    raise InterruptedError from exc
                log.warning("could not initialise transactions, retrying: %s", exc)
                time.sleep(1)
