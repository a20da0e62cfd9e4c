"""The worker's start-up steps, each retried until it works: they wait out a broker outage and a missing
permission instead of exiting (contract 6 and 7).

Finding the input topics, checking (or creating) the output topics and looking up where the reference
topics end all ask the cluster. A step that fails is retried with back-off (up to RETRY_MAX_S apart);
what it waits for is said on /ready and logged once, then once a minute; SIGTERM ends the wait within a
back-off (InterruptedError, which the worker's run loop takes as a stop).
"""

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.core.read_frontier import Partition
from pipeline.kafka.admin import EndOffsetLookup, ensure_output_topics, refused_topics, topic_partitions
from pipeline.worker.metrics import Readiness
from pipeline.worker.permissions import PermissionWatch, is_denied, kafka_error

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
REPEAT_LOG_S = 60.0  # what a step waits for is logged again this often
METADATA_TIMEOUT_S = 5.0  # one look at the cluster; short, so that SIGTERM is not kept waiting
UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                         KafkaError._RESOLVE, KafkaError._WAIT_COORD, KafkaError.REQUEST_TIMED_OUT})  # fmt: skip


class Refused(Exception):
    """A start-up step was refused a permission on a named resource."""

    def __init__(self, error: KafkaError, resource: str) -> None:
        super().__init__(f"{error.name()} on {resource}")
        self.error = error
        self.resource = resource


class Waiting(Exception):
    """A step cannot finish yet for a reason that is not an error (a topic the DSP has not created)."""


class StartupSteps:
    def __init__(
        self, admin: AdminClient, readiness: Readiness, permissions: PermissionWatch, stopping: Callable[[], bool]
    ) -> None:
        self._admin = admin
        self._readiness = readiness
        self._permissions = permissions
        self._stopping = stopping

    def input_topics(self, topics: Iterable[str]) -> dict[str, int]:
        """Partition counts of the input topics, once every one exists: the DSP owns them, so the worker
        waits rather than creating them. One it may not Describe is reported by name (a plain listing
        leaves such topics out, which would look like a topic never created)."""
        wanted = list(topics)

        def attempt() -> dict[str, int]:
            counts = topic_partitions(self._admin, wanted, timeout=METADATA_TIMEOUT_S)
            missing = [t for t in wanted if t not in counts]
            if missing:
                self._raise_refused(missing)
                raise Waiting("waiting for input topics: " + ", ".join(missing))
            return counts

        return self._until("finding the input topics", attempt)

    def output_topics(self, names: Iterable[str], partitions: int, like: Sequence[str]) -> None:
        """The output topics exist, created where missing (and allowed) with `partitions` partitions and as
        durable as the topics `like` (contract 6)."""
        wanted = list(names)

        def attempt() -> None:
            try:
                ensure_output_topics(self._admin, wanted, partitions, like, timeout=METADATA_TIMEOUT_S)
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    existing = topic_partitions(self._admin, wanted, timeout=METADATA_TIMEOUT_S)
                    missing = ", ".join(name for name in wanted if name not in existing)
                    raise Refused(err, f"topic {missing} (grant Create, or have the DSP create it)") from exc
                raise

        self._until("checking the output topics", attempt)

    def end_offsets(self, lookup: EndOffsetLookup, partitions: list[Partition]) -> dict[Partition, int]:
        """Where the partitions end now (read_committed)."""

        def attempt() -> dict[Partition, int]:
            if lookup.can_start():
                lookup.start(partitions, 0)
            lookup.settle(METADATA_TIMEOUT_S)
            result = lookup.poll()
            if result is not None:
                return result[0]
            if lookup.last_error is not None:
                err, topic = lookup.last_error
                if topic is not None and is_denied(err):
                    raise Refused(err, f"topic {topic} (grant Describe)")
                raise KafkaException(err)
            raise Waiting("looking up the end offsets of the reference topics")

        return self._until("looking up where the reference topics end", attempt)

    def _raise_refused(self, topics: list[str]) -> None:
        for topic, err in refused_topics(self._admin, topics, timeout=METADATA_TIMEOUT_S):
            raise Refused(err, f"topic {topic} (grant Describe)")

    def _until(self, step: str, attempt: Callable[[], T]) -> T:
        delay, said, said_at = RETRY_FIRST_S, "", 0.0
        while True:
            try:
                result = attempt()
                self._permissions.permitted("start-up")
                if said:
                    log.info("%s: done", step)
                return result
            except Waiting as waiting:
                reason, delay = str(waiting), RETRY_FIRST_S
            except Refused as refused:  # reported (and logged) by the permission watch
                self._permissions.report(refused.error, refused.resource, "start-up")
                reason = ""
            except KafkaException as exc:
                err = kafka_error(exc)
                unreachable = err is not None and err.code() in UNREACHABLE
                reason = f"no Kafka broker reachable ({step})" if unreachable else f"{step} failed: {err or exc}"
            if reason:
                self._readiness.set(reason)
                now = time.monotonic()
                if reason != said or now - said_at >= REPEAT_LOG_S:
                    log.warning("%s; retrying", reason)
                    said, said_at = reason, now
            self._sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopping():
                raise InterruptedError("stopped during start-up")
            # Waiting serves the admin client's queue: librdkafka's own log lines (a refused password, an
            # untrusted CA, naming the broker) reach the worker's log only when it is polled.
            self._admin.poll(0.1)
        if self._stopping():
            raise InterruptedError("stopped during start-up")
