"""Topic administration, one attempt each: create the filter's own topics as durable as the alert topic, find
input partitions (and those the worker may not see), look up end offsets. The worker's start-up retries them
(`worker.startup`)."""

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec, ResourceType

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.read_frontier import Partition

log = logging.getLogger(__name__)


def topic_partitions(admin: AdminClient, topics: Iterable[str], timeout: float = 10) -> dict[str, int]:
    """Partition counts of the topics that exist (missing ones are left out)."""
    metadata = admin.list_topics(timeout=timeout)
    counts = {}
    for name in topics:
        topic = metadata.topics.get(name)
        if topic is not None and topic.error is None and topic.partitions:
            counts[name] = len(topic.partitions)
    return counts


def refused_topics(admin: AdminClient, names: Iterable[str], timeout: float = 10) -> list[tuple[str, KafkaError]]:
    """The topics among `names` this principal may not Describe, with the broker's error: a listing of all
    topics leaves them out silently, as if they did not exist, so they are looked up by name."""
    futures = admin.describe_topics(TopicCollection(list(names)), request_timeout=timeout)
    refused = []
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                refused.append((name, error))
    return refused


@dataclass(frozen=True)
class ModelTopic:
    """What a topic the filter creates is made as durable as (contract 6): the alert topic, and for the
    released topic also the audit topic. `configs` holds the effective values read, none when unreadable."""

    name: str
    replication_factor: int
    configs: Mapping[str, str | None]


def durable_topic(models: Sequence[ModelTopic], cluster_default_rf: int | None) -> tuple[int, dict[str, str]]:
    """Replication factor and configuration of a new topic as durable as every model: their replication factor
    (or the cluster's default if higher), cleanup.policy=delete, their longest retention.ms, no size limit,
    and their highest min.insync.replicas (never above that replication factor). A retention that could not
    be read keeps the records for ever: longer than needed rather than shorter."""
    factors = [m.replication_factor for m in models if m.replication_factor > 0]
    factor = max([*factors, cluster_default_rf or 0]) or -1  # -1: the broker's default
    retentions = [_int(m.configs.get("retention.ms")) for m in models]
    known = [r for r in retentions if r is not None]
    longest = -1 if not known or len(known) < len(retentions) or -1 in known else max(known)
    config = {"cleanup.policy": "delete", "retention.ms": str(longest), "retention.bytes": "-1"}
    insync = [i for i in (_int(m.configs.get("min.insync.replicas")) for m in models) if i is not None]
    if insync and factor > 0:
        config["min.insync.replicas"] = str(min(max(insync), factor))
    return factor, config


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def model_topics(admin: AdminClient, names: Iterable[str], timeout: float = 10) -> tuple[list[ModelTopic], int | None]:
    """The models among `names` that exist, as the cluster describes them, and the cluster's
    `default.replication.factor` (None when this client may not read a broker's configuration, which the
    minimum ACLs do not grant). A topic configuration that cannot be read is left empty."""
    metadata = admin.list_topics(timeout=timeout)
    models = []
    for name in names:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            continue
        factor = min(len(p.replicas) for p in topic.partitions.values())
        models.append(ModelTopic(name, factor, _configs(admin, ConfigResource(ResourceType.TOPIC, name), timeout)))
    default_rf = None
    if metadata.brokers:
        broker = ConfigResource(ResourceType.BROKER, str(min(metadata.brokers)))
        default_rf = _int(_configs(admin, broker, timeout).get("default.replication.factor"))
    return models, default_rf


def _configs(admin: AdminClient, resource: ConfigResource, timeout: float) -> dict[str, str | None]:
    """Effective values; none when they cannot be read (the caller says what it does without them)."""
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout + 5)
    except (KafkaException, FutureTimeout) as exc:
        log.debug("cannot read the configuration of %s %s: %s", resource.restype.name.lower(), resource.name, exc)
        return {}
    return {key: entry.value for key, entry in entries.items()}


def ensure_output_topics(
    admin: AdminClient, names: Iterable[str], partitions: int, like: Sequence[str], timeout: float = 10
) -> list[str]:
    """Create those of the filter's own topics that do not exist, as durable as the topics `like` (one attempt;
    KafkaException if refused). Returns the names created; a topic that exists is left as it is (the cluster
    checks judge it)."""
    existing = admin.list_topics(timeout=timeout).topics
    missing = [n for n in names if n not in existing]
    if not missing:
        return []
    models, default_rf = model_topics(admin, like, timeout)
    factor, config = durable_topic(models, default_rf)
    unread = [m.name for m in models if _int(m.configs.get("retention.ms")) is None]
    if unread:
        log.warning("retention of %s unknown (grant DescribeConfigs): %s created keeping records for ever "
                    "(retention.ms=-1); lower it to theirs", ", ".join(unread), ", ".join(missing))  # fmt: skip
    new = [NewTopic(n, num_partitions=partitions, replication_factor=factor, config=config) for n in missing]
    created = []
    for name, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result(timeout=30)
            log.info("created topic %s with %d partitions, replication factor %s, %s, as durable as %s", name,
                     partitions, factor if factor > 0 else "the broker's default",
                     ", ".join(f"{k}={v}" for k, v in config.items()), " and ".join(like))  # fmt: skip
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


class EndOffsetLookup:
    """Asynchronous read_committed end-offset look-ups, so the decision loop never blocks on them.

    A failed look-up backs off, and after repeated failures the admin client is replaced: after a
    broker restart its metadata can stay stale (FENCED_LEADER_EPOCH) for tens of seconds.

    The partitions of `high_watermark_topics` end at their high watermark (read_uncommitted) instead: a
    broker answers a transaction's commit before its markers are written, so for a moment after a
    `poa-filter mode` returns the read_committed end offset is still before the change it wrote (seen on
    a third of the look-ups right after a commit). A reader reaches the high watermark once the
    transaction is complete; only an open one makes it wait: a few milliseconds there, or, for a
    `poa-filter mode` killed mid-write, until the broker aborts it (its transaction timeout, 60 s).
    """

    RENEW_AFTER_FAILURES = 3

    def __init__(
        self,
        new_admin: Callable[[], AdminClient],
        clock: Clock = SYSTEM_CLOCK,
        high_watermark_topics: Iterable[str] = (),
    ) -> None:
        self._new_admin = new_admin
        self._clock = clock
        self._high_watermark_topics = frozenset(high_watermark_topics)
        self._admin = new_admin()
        self._futures: dict[TopicPartition, Future] | None = None
        self._tag = 0
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: tuple[KafkaError, str | None] | None = None  # of the last failed look-up, and its topic

    def can_start(self) -> bool:
        return self._futures is None and self._clock.monotonic() >= self._retry_at

    @property
    def in_flight(self) -> bool:
        return self._futures is not None

    def settle(self, timeout: float) -> None:
        """Wait at most `timeout` seconds for the look-up in flight to finish."""
        if self._futures is not None:
            wait(self._futures.values(), timeout=timeout)

    def start(self, partitions: Iterable[Partition], tag: int) -> None:
        requests: dict[IsolationLevel, dict[TopicPartition, OffsetSpec]] = {}
        for t, p in partitions:
            uncommitted = t in self._high_watermark_topics
            level = IsolationLevel.READ_UNCOMMITTED if uncommitted else IsolationLevel.READ_COMMITTED
            requests.setdefault(level, {})[TopicPartition(t, p)] = OffsetSpec.latest()
        self._futures = {}
        for level, request in requests.items():
            self._futures.update(self._admin.list_offsets(request, isolation_level=level, request_timeout=10))
        self._tag = tag

    def poll(self) -> tuple[dict[Partition, int], int] | None:
        """(end offsets, tag) once the look-up finished; None while pending or after a failure."""
        self._admin.poll(0)  # librdkafka's log lines reach Python logging only when the client is polled
        if self._futures is None or not all(f.done() for f in self._futures.values()):
            return None
        futures, self._futures = self._futures, None
        ends = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                self.last_error = (error or KafkaError(KafkaError._FAIL), tp.topic)
                self._failed(exc)
                return None
        self._failures = 0
        self.last_error = None
        return ends, self._tag

    def _failed(self, exc: KafkaException) -> None:
        self._failures += 1
        self._retry_at = self._clock.monotonic() + min(0.05 * 2**self._failures, 2.0)
        if self._failures == 1 or self._failures % 20 == 0:
            log.warning("end-offset look-up failed (%d in a row), will retry: %s", self._failures, exc)
        if self._failures % self.RENEW_AFTER_FAILURES == 0:
            self._admin = self._new_admin()

    def wait(self, partitions: Iterable[Partition], timeout: float = 30) -> dict[Partition, int]:
        """Blocking form with a deadline, for the tools (the worker's start-up waits as long as it takes:
        `worker.startup`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.can_start():
                self.start(partitions, 0)
            result = self.poll()
            if result is not None:
                return result[0]
            time.sleep(0.01)
        raise TimeoutError("end-offset look-up timed out")
