"""Stand-ins for the few confluent-kafka calls the worker makes, over one in-memory cluster, so the real
worker loop can be driven without a broker (in the spirit of Kafka Streams' TopologyTestDriver).

The cluster keeps what a read_committed reader of a real one would see: records written in a transaction
appear when it commits, and not at all when it aborts; consumer-group offsets move with the transaction
that carries them, with their metadata. A test can hold a partition back from the state reader (a slow
fetch), hold back or fail transaction commits, hold back the answers to end-offset look-ups, and hold the
last records of a partition back from read_committed readers and look-ups as a real broker does for a moment after a
transaction's commit returns, until its markers are written (`marker_lag`), and refuse writes to topics
(`refuse_writes`: a Write ACL taken away) as librdkafka reports it to a transactional producer: the delivery
reports fail with TOPIC_AUTHORIZATION_FAILED, the transaction is then in an abortable error state, and
`commit_transaction` raises that error (txn_requires_abort); the topic's authorized operations, as
`describe_topics` gives them, lack WRITE (confluentinc/librdkafka#3062).
"""

import threading
from collections.abc import Iterable
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AclOperation

TP = tuple[str, int]
Stored = tuple[bytes | None, bytes | None, int | None]  # key, value, timestamp (ms; None: the record has none)
NO_OFFSET = -1001  # what librdkafka reports for a partition with no committed offset


class Cluster:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, list[list[Stored]]] = {}
        self._group_offsets: dict[tuple[str, str, int], tuple[int, str | None]] = {}  # offset, its metadata
        self.slow: set[TP] = set()  # partitions the consumers get nothing from for now
        self.marker_lag: dict[TP, int] = {}  # last records of a partition committed, not yet read_committed-visible
        self.lookups_answer = True  # end-offset look-ups complete at once; False: when `answer_lookups` is called
        self._unanswered: list[tuple[TopicPartition, Future[Any]]] = []
        self.commit_gate = threading.Event()  # transaction commits wait for it
        self.commit_gate.set()
        self.commit_failures: list[KafkaException] = []  # raised by the next commits, in turn
        self.refuse_writes: set[str] = set()  # topics this principal may not write (no Write ACL)

    def create(self, topic: str, partitions: int) -> None:
        with self._lock:
            self._logs.setdefault(topic, [[] for _ in range(partitions)])

    def partitions(self, topic: str) -> int:
        return len(self._logs.get(topic, []))

    def topics(self) -> dict[str, int]:
        return {name: len(parts) for name, parts in self._logs.items()}

    def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, timestamp: int | None = None
    ) -> int:
        """A committed write (the DSP's), with its Kafka timestamp (ms) if it has one; returns its offset."""
        with self._lock:
            log = self._logs[topic][partition]
            log.append((key, value, timestamp))
            return len(log) - 1

    def records(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        with self._lock:
            return [(key, value) for log in self._logs.get(topic, []) for key, value, _ in log]

    def end(self, topic: str, partition: int) -> int:
        with self._lock:
            return len(self._logs[topic][partition])

    def visible_end(self, topic: str, partition: int) -> int:
        """The end a read_committed reader sees (the last stable offset)."""
        return self.end(topic, partition) - self.marker_lag.get((topic, partition), 0)

    def read(self, tp: TP, offset: int, limit: int) -> list[Stored]:
        """What a read_committed reader gets."""
        end = self.visible_end(*tp)
        with self._lock:
            return self._logs[tp[0]][tp[1]][offset : min(offset + limit, end)]

    def unanswered(self, tp: TopicPartition, future: Future[Any]) -> None:
        with self._lock:
            self._unanswered.append((tp, future))

    def answer_lookups(self) -> None:
        """Answer the look-ups waiting so far with today's end offsets, and the next ones at once."""
        self.lookups_answer = True
        with self._lock:
            waiting, self._unanswered = self._unanswered, []
        for tp, future in waiting:
            future.set_result(SimpleNamespace(offset=self.visible_end(tp.topic, tp.partition)))

    def committed_offset(self, group: str, tp: TP) -> int:
        return self.committed_with_metadata(group, tp)[0]

    def committed_with_metadata(self, group: str, tp: TP) -> tuple[int, str | None]:
        with self._lock:
            return self._group_offsets.get((group, *tp), (NO_OFFSET, None))

    def commit(self, records: list[tuple[str, bytes | None, bytes | None]], offsets: list[TopicPartition],
               group: str | None) -> None:  # fmt: skip
        with self._lock:
            for topic, key, value in records:
                self._logs[topic][0].append((key, value, None))  # the worker's own writes: no timestamp kept
            for tp in offsets:
                assert group is not None
                self._group_offsets[(group, tp.topic, tp.partition)] = tp.offset, tp.metadata


class StandInConsumer:
    """Assigned partitions (`assign`) or the whole of the subscribed topics (`subscribe`: this member is the
    group's only one, given every partition at its first poll)."""

    def __init__(self, cluster: Cluster, group_id: str, config: dict[str, Any]) -> None:
        self._cluster = cluster
        self._group = group_id
        self._eof_events = bool(config.get("enable.partition.eof"))
        self._positions: dict[TP, int] = {}
        self._eof_at: dict[TP, int] = {}
        self._paused: set[TP] = set()
        self._fetched_end: dict[TP, int] = {}  # each partition's end when it was last fetched (not while paused)
        self._subscription: tuple[list[str], Any] | None = None
        self.closed = False

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions[(tp.topic, tp.partition)] = max(tp.offset, 0)

    incremental_assign = assign

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self._positions]

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None) -> None:
        self._subscription = (topics, on_assign)

    def _join(self) -> None:
        if self._subscription is None or self._positions:
            return
        topics, on_assign = self._subscription
        given = []
        for topic in topics:
            for p in range(self._cluster.partitions(topic)):
                committed = self._cluster.committed_offset(self._group, (topic, p))
                given.append(TopicPartition(topic, p, committed if committed >= 0 else OFFSET_BEGINNING))
        self.assign(given)
        on_assign(self, given)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        self._join()
        messages: list[Message] = []
        for tp, position in sorted(self._positions.items()):
            if tp in self._paused or tp in self._cluster.slow:
                continue
            self._fetched_end[tp] = self._cluster.end(*tp)
            records = self._cluster.read(tp, position, num_messages - len(messages))
            for i, (key, value, timestamp) in enumerate(records):
                stamp = (TIMESTAMP_NOT_AVAILABLE, 0) if timestamp is None else (TIMESTAMP_CREATE_TIME, timestamp)
                messages.append(Message(topic=tp[0], partition=tp[1], offset=position + i, key=key, value=value,
                                        timestamp=stamp))  # fmt: skip
            self._positions[tp] = position = position + len(records)
            if self._eof_events and position == self._cluster.visible_end(*tp) and self._eof_at.get(tp) != position:
                self._eof_at[tp] = position
                eof = KafkaError(KafkaError._PARTITION_EOF)
                messages.append(Message(topic=tp[0], partition=tp[1], offset=position, error=eof))
        return messages

    def poll(self, timeout: float | None = None) -> Message | None:
        messages = self.consume(1, 0)
        return messages[0] if messages else None

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        group, cluster = self._group, self._cluster
        committed = []
        for tp in partitions:
            offset, metadata = cluster.committed_with_metadata(group, (tp.topic, tp.partition))
            committed.append(TopicPartition(tp.topic, tp.partition, offset, metadata=metadata or ""))
        return committed

    def seek(self, tp: TopicPartition) -> None:
        self._positions[(tp.topic, tp.partition)] = max(tp.offset, 0)
        self._eof_at.pop((tp.topic, tp.partition), None)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self._positions[(tp.topic, tp.partition)]) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float | None = None,
                              cached: bool = False) -> tuple[int, int]:  # fmt: skip
        """Cached, as librdkafka's: the high watermark of the last fetch, stale while the partition is paused."""
        if cached:
            return 0, self._fetched_end.get((tp.topic, tp.partition), NO_OFFSET)
        return 0, self._cluster.end(tp.topic, tp.partition)

    def consumer_group_metadata(self) -> str:
        return self._group

    def close(self) -> None:
        self.closed = True


class StandInProducer:
    """A transactional producer: records and offsets of a transaction reach the cluster when it commits."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._records: list[tuple[str, bytes | None, bytes | None]] | None = None
        self._offsets: list[TopicPartition] = []
        self._group: str | None = None

    def init_transactions(self, timeout: float | None = None) -> None:
        pass

    def begin_transaction(self) -> None:
        assert self._records is None, "a transaction is already open"
        self._records, self._offsets, self._group = [], [], None

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **extra: Any) -> None:
        assert self._records is not None, "produce outside a transaction"
        self._records.append((topic, key, value))

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], metadata: str, timeout: float | None = None
                                    ) -> None:  # fmt: skip
        self._offsets, self._group = offsets, metadata

    def commit_transaction(self, timeout: float | None = None) -> None:
        self._cluster.commit_gate.wait()
        if self._cluster.commit_failures:
            raise self._cluster.commit_failures.pop(0)
        assert self._records is not None
        if any(topic in self._cluster.refuse_writes for topic, _, _ in self._records):
            raise KafkaException(KafkaError(
                KafkaError.TOPIC_AUTHORIZATION_FAILED, "Failed to produce 1 message(s): Broker: Topic authorization "
                "failed", txn_requires_abort=True,
            ))  # fmt: skip
        self._cluster.commit(self._records, self._offsets, self._group)
        self._records = None

    def abort_transaction(self, timeout: float | None = None) -> None:
        self._records = None

    def poll(self, timeout: float = 0) -> int:
        return 0


class StandInAdmin:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def poll(self, timeout: float = 0) -> int:
        return 0  # no log lines to serve

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> SimpleNamespace:
        one_replica = SimpleNamespace(replicas=[0])  # a single broker, 0
        topics = {
            name: SimpleNamespace(error=None, partitions=dict.fromkeys(range(count), one_replica))
            for name, count in self._cluster.topics().items()
        }
        return SimpleNamespace(topics=topics, brokers={0: SimpleNamespace(id=0)})

    def describe_topics(self, topics: TopicCollection, **options: Any) -> dict[str, Future[SimpleNamespace]]:
        """Each topic with this principal's authorized operations: all but WRITE where writes are refused."""
        futures: dict[str, Future[SimpleNamespace]] = {}
        for name in topics.topic_names:
            allowed = [op for op in (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)
                       if op is not AclOperation.WRITE or name not in self._cluster.refuse_writes]  # fmt: skip
            futures[name] = Future()
            futures[name].set_result(SimpleNamespace(authorized_operations=allowed))
        return futures

    def describe_configs(self, resources: Iterable[Any], **options: Any) -> dict[Any, Future[dict[str, Any]]]:
        """Every topic and the broker with Kafka's defaults: no configuration set."""
        futures: dict[Any, Future[dict[str, Any]]] = {}
        for resource in resources:
            futures[resource] = Future()
            futures[resource].set_result({})
        return futures

    def create_topics(self, new_topics: Iterable[Any], **options: Any) -> dict[str, Future[None]]:
        futures: dict[str, Future[None]] = {}
        for new in new_topics:
            self._cluster.create(new.topic, new.num_partitions)
            futures[new.topic] = Future()
            futures[new.topic].set_result(None)
        return futures

    def list_offsets(self, request: dict[TopicPartition, Any], **options: Any) -> dict[TopicPartition, Future[Any]]:
        futures: dict[TopicPartition, Future[Any]] = {}
        end = self._cluster.end if options.get("isolation_level") == IsolationLevel.READ_UNCOMMITTED else (
            self._cluster.visible_end
        )  # fmt: skip
        for tp in request:
            futures[tp] = Future()
            if self._cluster.lookups_answer:
                futures[tp].set_result(SimpleNamespace(offset=end(tp.topic, tp.partition)))
            else:
                self._cluster.unanswered(tp, futures[tp])
        return futures


class StandInClients:
    """Takes the place of `pipeline.kafka.clients` for the worker: every client it makes uses `cluster`."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def admin_client(self, settings: Any, **extra: Any) -> StandInAdmin:
        return StandInAdmin(self._cluster)

    def consumer(self, settings: Any, group_id: str, tuning: dict[str, Any], **extra: Any) -> StandInConsumer:
        return StandInConsumer(self._cluster, group_id, {**tuning, **extra})

    def producer(self, settings: Any, tuning: dict[str, Any], **extra: Any) -> StandInProducer:
        return StandInProducer(self._cluster)
