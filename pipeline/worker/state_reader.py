"""The state reader: every partition of the four state topics, read into FilterState, like Kafka Streams'
global state consumer (GlobalStreamThread.StateConsumer), so any worker can decide any alert on its own.

Read positions live in the local state beside what they produced (`pos/` meta keys) and are committed
with it, so a restarted worker resumes where its state ends. Each record read moves the read frontier;
a record that cannot be used is recorded in the same write batch, for the one worker that dead-letters
its partition (`dead_letter_ownership`).
"""

import logging
from collections import Counter
from collections.abc import Callable, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.filter_state import FilterState
from pipeline.core.read_frontier import Partition, ReadFrontier
from pipeline.kafka.batches import coordinates
from pipeline.wire.schema_registry import RegistryUnavailable
from pipeline.worker.dead_letter_ownership import record_bad
from pipeline.worker.metrics import WorkerMetrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.state_feed import StateFeed, written

log = logging.getLogger(__name__)

STATE_COMMIT_INTERVAL_S = 0.2
POSITION = "pos/"  # meta key prefix: pos/<topic>/<partition> -> next offset to read


class StateReader:
    def __init__(
        self,
        new_consumer: Callable[[], Consumer],
        feed: StateFeed,
        state: FilterState,
        frontier: ReadFrontier,
        metrics: WorkerMetrics,
        broker_answered: Callable[[], None],
        permissions: PermissionWatch,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`broker_answered` runs when records arrive, before they are applied."""
        self._new_consumer = new_consumer
        self._feed = feed
        self._state = state
        self._frontier = frontier
        self._metrics = metrics
        self._broker_answered = broker_answered
        self._permissions = permissions
        self._clock = clock
        self._consumer: Consumer | None = None
        self._partition_counts: dict[str, int] = {}
        self.dirty = False  # read (or swept) since the last commit
        self._last_commit = 0.0

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None, "the state consumer is made by start()"
        return self._consumer

    @property
    def topics(self) -> list[str]:
        return list(self._partition_counts)

    def start(self, partition_counts: Mapping[str, int]) -> None:
        """Read every partition of the state topics (name -> partition count) from its stored position."""
        self._partition_counts = dict(partition_counts)
        partitions = [(t, p) for t, count in partition_counts.items() for p in range(count)]
        stored = self._stored_positions()
        self._frontier.track(partitions, stored)
        self._consumer = self._new_consumer()
        self._consumer.assign([TopicPartition(t, p, stored.get((t, p), OFFSET_BEGINNING)) for t, p in partitions])

    def read(self, max_records: int) -> int:
        """Apply what is already fetched, at most `max_records`; returns how many messages were read."""
        self._feed.registry_waits.resume_due(self.consumer)
        try:
            messages = self.consumer.consume(max_records, 0)
        except KafkaException as exc:
            log.warning("reading state topics: %s", exc)
            return 0
        if self._permissions.denied:
            self._permissions.state_group_quiet()
        if not messages:
            return 0
        self._broker_answered()
        apply, observe, waits = self._feed.apply, self._frontier.observe, self._feed.registry_waits
        # Read time: a record far ahead of it moves no clock of the read frontier (an outlier, contract 6).
        wall_ms = self._clock.wall_ms()
        records: Counter[str] = Counter()
        for msg in messages:
            if waits.stopped and waits.skips(msg.topic(), msg.partition()):
                continue  # stopped for the schema registry: nothing of it counts, its end included
            err = msg.error()
            if err is not None:
                self._read_error(err, msg)
                continue
            topic, partition, offset = coordinates(msg)
            try:
                applied = apply(topic, msg.key(), msg.value(), written(msg.timestamp(), partition, offset))
            except RegistryUnavailable as exc:  # not the record's fault: it waits (state_feed.RegistryWaits)
                waits.stop(self.consumer, topic, partition, offset, exc)
                continue
            if waits.stopped:
                waits.passed(topic, partition)
            records[topic] += 1
            if applied.error is not None:
                record_bad(self._state, (topic, partition, offset), msg.key(), msg.value(), applied.error)
            observe((topic, partition), offset, applied.event_time, wall_ms)
        for topic, count in records.items():
            self._metrics.input_records.labels(topic).inc(count)
        if records and self._permissions.denied:
            self._permissions.state_read(records)
        self.dirty = True
        return len(messages)

    def _read_error(self, err: KafkaError, msg: Message) -> None:
        """The end of a partition moves the read frontier; a missing permission is reported by name; the rest
        is logged. Checked before the coordinates: a consumer-level error (the group's coordinator) has none."""
        if err.code() == KafkaError._PARTITION_EOF:
            topic, partition, offset = coordinates(msg)
            self._frontier.observe_position((topic, partition), offset)
            if self._permissions.denied:
                self._permissions.state_read([topic])
        elif not self._permissions.state_read_error(err, msg.topic()):
            log.warning("state topic read error: %s", err)

    def read_to(self, end_offsets: Mapping[Partition, int]) -> bool:
        """Whether every partition named is read up to its end offset."""
        positions = self._frontier.next_offsets()
        return all(positions.get(p, 0) >= end for p, end in end_offsets.items())

    def commit(self) -> None:
        """Staged state and the positions it was read up to become durable together."""
        for (topic, partition), offset in self._frontier.next_offsets().items():
            self._state.put_meta(f"{POSITION}{topic}/{partition}", str(offset).encode())
        self._state.commit()
        self.dirty = False
        self._last_commit = self._clock.monotonic()

    def commit_due(self) -> bool:
        return self.dirty and self._clock.monotonic() - self._last_commit > STATE_COMMIT_INTERVAL_S

    def read_added_partitions(self, partition_counts: Mapping[str, int]) -> None:
        """Partitions the DSP added to a state topic while the worker runs are read from their start, and
        join the read frontier, so AD1s wait for them like any other."""
        added: list[TopicPartition] = []
        for topic, known in self._partition_counts.items():
            count = partition_counts.get(topic, known)
            if count > known:
                added += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(known, count)]
                self._partition_counts[topic] = count
        if added:
            log.info("reading partitions added to the state topics: %s",
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in added))  # fmt: skip
            self._frontier.track([(tp.topic, tp.partition) for tp in added], {})
            self.consumer.incremental_assign(added)

    def close(self) -> None:
        if self._consumer is None:
            return
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the state consumer: %s", exc)

    def _stored_positions(self) -> dict[Partition, int]:
        positions = {}
        for name, value in self._state.meta_items(POSITION):
            _, topic, partition = name.rsplit("/", 2)
            positions[(topic, int(partition))] = int(value)
        return positions
