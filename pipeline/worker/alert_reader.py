"""The alert consumer: this worker's membership of the consumer group that spreads the alert partitions.

It reads batches of alerts, follows the group's assignments (the worker's hooks are told which partitions
come and go), pauses a partition whose held alerts pile up, seeks back to the committed offsets after a
failed transaction, and is replaced after a fatal error. Offsets are never committed here: they go in
the output transaction (`TransactionalOutput`), with the decisions they stand for.
"""

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.kafka.batches import next_batch
from pipeline.worker.broker_watch import BrokerWatch
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.transactions import TXN_TIMEOUT_S

log = logging.getLogger(__name__)

MAX_QUEUED_PER_PARTITION = 20_000  # pause a partition's fetching beyond this many undecided alerts (or held AD1s)

PartitionsHook = Callable[[list[int]], None]


class AlertReader:
    def __init__(
        self,
        topic: str,
        new_consumer: Callable[[], Consumer],
        watch: BrokerWatch,
        metrics: WorkerMetrics,
        stopping: Callable[[], bool],
        permissions: PermissionWatch,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._topic = topic
        self._clock = clock
        self._new_consumer = new_consumer
        self._watch = watch
        self._metrics = metrics
        self._stopping = stopping
        self._permissions = permissions
        self._consumer: Consumer | None = None
        self._hooks: tuple[PartitionsHook, PartitionsHook] | None = None  # assigned, revoked
        # Topics of the filter's own read in the same group (the held AD1s), with their hooks.
        self._also: dict[str, tuple[PartitionsHook, PartitionsHook]] = {}
        self._paused: set[tuple[str, int]] = set()  # (topic, partition)

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None, "the alert consumer is made by open()"
        return self._consumer

    def open(self) -> None:
        self._consumer = self._new_consumer()

    def also_subscribe(self, topic: str, assigned: PartitionsHook, revoked: PartitionsHook) -> None:
        """Read `topic` in the same group too (before `subscribe`): its partitions go to these hooks, its
        records come out of `read` with the alerts, and its offsets commit in the same transactions."""
        self._also[topic] = (assigned, revoked)

    def subscribe(self, assigned: PartitionsHook, revoked: PartitionsHook) -> None:
        """Join the group; `revoked` runs before partitions move away (inside a poll of this consumer)."""
        self._hooks = (assigned, revoked)
        self.consumer.subscribe([self._topic, *self._also], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)  # fmt: skip

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._hooks is not None
        self._permissions.alerts_read()
        for topic, (assigned, _) in self._also.items():
            if mine := [tp.partition for tp in partitions if tp.topic == topic]:
                assigned(mine)
        self._hooks[0]([tp.partition for tp in partitions if tp.topic == self._topic])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._hooks is not None
        revoked = [tp.partition for tp in partitions if tp.topic == self._topic]
        self._paused.difference_update((tp.topic, tp.partition) for tp in partitions)
        self._hooks[1](revoked)
        for topic, (_, revoked_hook) in self._also.items():
            if mine := [tp.partition for tp in partitions if tp.topic == topic]:
                revoked_hook(mine)

    def read(self, max_records: int, wait_s: float) -> list[Message]:
        """The alerts of one batch (read errors and events left out); waits at most `wait_s` for the first."""
        try:
            messages = next_batch(self.consumer, max_records, wait_s)
        except KafkaException as exc:
            log.warning("reading alerts: %s", exc)
            return []
        records = [msg for msg in messages if msg.error() is None]
        if len(records) < len(messages):
            for msg in messages:
                err = msg.error()
                if err is None:
                    continue
                if err.fatal():
                    self._watch.fatal_error = True
                elif err.code() != KafkaError._PARTITION_EOF and not self._permissions.alert_read_error(
                    err, msg.topic()
                ):
                    log.warning("alert read error: %s", err)
        if records:
            # Each under its own topic: held AD1s read back are not alerts read again.
            for topic, count in Counter(msg.topic() for msg in records).items():
                self._metrics.input_records.labels(topic).inc(count)
            if self._permissions.denied:
                self._permissions.alerts_read()
        return records

    def offsets_to_commit(
        self, next_offsets: Mapping[int, int], also: list[TopicPartition]
    ) -> tuple[list[TopicPartition], Any]:
        """The offsets to commit in a transaction (the alerts' next offsets, and `also` others in this group),
        and the group metadata that fences them (None if none)."""
        offsets = [TopicPartition(self._topic, p, o) for p, o in next_offsets.items()] + also
        return offsets, self.consumer.consumer_group_metadata() if offsets else None

    def rewind(self) -> list[TopicPartition]:
        """Seek every assigned partition back to its committed offset; returns the committed offsets."""
        assignment = self.consumer.assignment()
        if not assignment:
            return []
        while True:
            try:
                committed = self.consumer.committed(assignment, timeout=TXN_TIMEOUT_S)
                break
            except KafkaException as exc:
                if self._stopping():
                    return []
                if not self._permissions.alert_read_error(exc.args[0], None):
                    log.warning("reading committed offsets: %s", exc)
                self._clock.sleep(0.5)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        return committed

    def pause_or_resume(self, waiting: Mapping[int, int], topic: str | None = None) -> None:
        """Stop fetching a partition with too many undecided alerts (`waiting`), resume at half as many: the
        alert topic's, or those of `topic`, one of the filter's own (held AD1s wait minutes for evidence,
        in memory: a campaign's worth must not grow without bound; unread, they wait on the broker)."""
        topic = topic or self._topic
        for partition, size in waiting.items():
            key, tp = (topic, partition), [TopicPartition(topic, partition)]
            if key not in self._paused and size >= MAX_QUEUED_PER_PARTITION:
                self.consumer.pause(tp)
                self._paused.add(key)
            elif key in self._paused and size < MAX_QUEUED_PER_PARTITION // 2:
                self.consumer.resume(tp)
                self._paused.discard(key)

    def pause_all(self) -> None:
        """Stop fetching every assigned partition (the group membership is kept: reads go on, getting nothing)."""
        self.consumer.pause(self.consumer.assignment())

    def resume_all(self) -> None:
        self.consumer.resume(self.consumer.assignment())
        self._paused.clear()

    def replace(self) -> None:
        """A fatal consumer error ends that consumer for good; a new one rejoins the group."""
        self._paused.clear()
        self.close()
        self._consumer = self._new_consumer()
        assert self._hooks is not None
        self.subscribe(*self._hooks)

    def close(self) -> None:
        if self._consumer is None:
            return
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the alert consumer: %s", exc)
