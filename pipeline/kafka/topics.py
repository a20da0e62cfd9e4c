"""Topics as every tool, test and benchmark handles them: create them, wait for them, read them to their end.

One helper each, so that the worker, the loaders, the simulator, the demo summary, the benchmark and the
tests do these the same way, through the clients configured in `clients` (a client-configuration file
reaches them all).
"""

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.core.read_frontier import Partition
from pipeline.kafka import clients
from pipeline.kafka.admin import EndOffsetLookup, topic_partitions
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class TopicsMissing(Exception):
    """Topics that do not exist (or a broker that does not answer) when the wait for them ran out."""

    def __init__(self, missing: list[str], unreachable: KafkaException | None = None) -> None:
        self.missing = missing
        self.unreachable = unreachable
        super().__init__(
            f"cannot reach Kafka: {unreachable}" if unreachable else f"topic(s) {', '.join(missing)} do not exist"
        )


def create_topics(
    admin: AdminClient,
    partitions: Mapping[str, int],
    config: Mapping[str, Mapping[str, str]] | None = None,
    replication_factor: int = -1,
) -> list[str]:
    """Create those of the topics (name -> partition count, optional name -> topic config) that do not exist.

    Returns the names created. A topic already there, or created meanwhile by another client, is left as it
    is. The replication factor defaults to the broker's `default.replication.factor`.
    """
    existing = admin.list_topics(timeout=10).topics
    configs = config or {}
    new = [
        NewTopic(name, num_partitions=count, replication_factor=replication_factor, config=dict(configs.get(name, {})))
        for name, count in partitions.items()
        if name not in existing
    ]
    created = []
    for name, future in admin.create_topics(new, operation_timeout=30).items() if new else ():
        try:
            future.result(timeout=60)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
            continue
        log.info("created topic %s with %d partitions", name, partitions[name])
        created.append(name)
    return created


def wait_for_topics(
    admin: AdminClient,
    topics: Iterable[str],
    timeout_s: float | None = None,
    on_wait: Callable[[TopicsMissing], None] | None = None,
    poll_s: float = 0.5,
) -> dict[str, int]:
    """Partition counts of the topics once every one exists.

    Until then `on_wait` hears what is missing on each look (it may raise to stop waiting); after `timeout_s`
    seconds (None: no limit) TopicsMissing is raised. A broker that does not answer counts as missing topics.
    """
    wanted = list(topics)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            counts, unreachable = topic_partitions(admin, wanted), None
        except KafkaException as exc:
            counts, unreachable = {}, exc
        missing = [t for t in wanted if t not in counts]
        if not missing:
            return counts
        waiting = TopicsMissing(missing, unreachable)
        if deadline is not None and time.monotonic() >= deadline:
            raise waiting
        if on_wait is not None:
            on_wait(waiting)
        time.sleep(poll_s)


def read_to_end(
    settings: Settings,
    topics: str | Iterable[str],
    timeout_s: float = 300.0,
    group_id: str | None = None,
    since_ms: int | None = None,
) -> Iterator[Message]:
    """Every record of the topic (or topics), from the beginning to the end offsets they had when the read
    started (at the first record asked for), read_committed. With `since_ms`, each partition is read from its
    first record stamped at or after that time (offsets_for_times) instead of its beginning.

    Partitions are assigned directly and no offset is committed, so the read leaves no trace on the cluster.
    A topic that does not exist raises TopicsMissing; not reaching the end within `timeout_s`, KafkaException.
    """
    wanted = [topics] if isinstance(topics, str) else list(topics)
    admin = clients.admin_client(settings)
    counts = topic_partitions(admin, wanted)
    missing = [t for t in wanted if t not in counts]
    if missing:
        raise TopicsMissing(missing)
    ends = EndOffsetLookup(lambda: admin).wait([(t, p) for t, n in counts.items() for p in range(n)])
    pending = {tp: end for tp, end in ends.items() if end > 0}
    if not pending:
        return
    group = group_id or f"{settings.app_id}.read-to-end"
    consumer = clients.consumer(settings, group, clients.ASSIGNED_READER_TUNING)
    try:
        starts = _start_offsets(consumer, pending, since_ms)
        pending = {tp: end for tp, end in pending.items() if starts[tp] < end}
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise KafkaException(f"timed out reading {', '.join(wanted)} to their end offsets")
            for message in consumer.consume(10_000, timeout=0.5):
                error, where = message.error(), (message.topic() or "", message.partition() or 0)
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                end = pending.get(where)
                if end is None:
                    continue  # a partition already read to its end
                offset = message.offset() or 0
                if error is None and offset < end:
                    yield message
                if error is not None or offset + 1 >= end:
                    del pending[where]  # at the end (EOF), or at the offset that was the end
    finally:
        consumer.close()


def _start_offsets(consumer: Consumer, ends: Mapping[Partition, int], since_ms: int | None) -> dict[Partition, int]:
    """Where each partition's read starts: its beginning, or the first record stamped at or after `since_ms`
    (its end offset when it has none)."""
    if since_ms is None:
        return {tp: OFFSET_BEGINNING for tp in ends}
    found = consumer.offsets_for_times([TopicPartition(t, p, since_ms) for t, p in ends], timeout=30)
    starts = {}
    for tp in found:
        if tp.error is not None:
            raise KafkaException(tp.error)
        starts[(tp.topic, tp.partition)] = ends[(tp.topic, tp.partition)] if tp.offset < 0 else tp.offset
    return starts
