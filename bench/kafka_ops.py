"""Broker-side helpers for the benchmark: per-run topics, progress from committed offsets, output counts.

Progress is read from the consumer group's committed offsets (what a transaction commits atomically
with the outputs), not by consuming the outputs while the worker runs: on a 2-core machine a counting
consumer would steal CPU from the very process being measured.
"""

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.scenario import alert_id_of
from pipeline.kafka import clients
from pipeline.kafka.admin import EndOffsetLookup, topic_partitions
from pipeline.kafka.topics import read_to_end
from pipeline.settings import Settings


def settings_for(bootstrap: str) -> Settings:
    """The benchmark's clients connect as the project's do (settings from the environment), to its broker."""
    return replace(Settings.from_env(), bootstrap_servers=bootstrap)


def admin(bootstrap: str) -> AdminClient:
    return clients.admin_client(settings_for(bootstrap), log_level=4)  # no INFO lines about purged queues


def check_broker(bootstrap: str, timeout: float = 15) -> None:
    """Fail at once with a readable message rather than minutes later in some phase."""
    try:
        admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise SystemExit(f"no Kafka broker answers at {bootstrap} ({exc}); start one with `make kafka-up`") from None


def delete_topics(client: AdminClient, prefix: str) -> list[str]:
    """Every topic of this run (named with its unique prefix); errors are ignored: clean-up is best effort."""
    names = [t for t in client.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        _wait_best_effort(client.delete_topics(names, operation_timeout=30).values())
    return names


def delete_groups(client: AdminClient, prefix: str) -> list[str]:
    """This run's consumer groups (worker, pass-through), so a shared broker is left as it was found."""
    try:
        listed = client.list_consumer_groups(request_timeout=10).result(timeout=15)
    except KafkaException:
        return []
    names = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    if names:
        _wait_best_effort(client.delete_consumer_groups(names, request_timeout=30).values())
    return names


def _wait_best_effort(futures: Iterable[Future[Any]]) -> None:
    """Wait for each admin request of a clean-up; one that fails is left as it is."""
    for future in futures:
        with contextlib.suppress(KafkaException):
            future.result(timeout=60)


def end_offsets(client: AdminClient, topic: str) -> dict[int, int]:
    """Last stable offsets of every partition of a topic (the high watermarks, on one written without
    transactions)."""
    partitions = [(topic, p) for p in range(topic_partitions(client, [topic])[topic])]
    return {p: end for (_, p), end in EndOffsetLookup(lambda: client).wait(partitions).items()}


def committed_offsets(client: AdminClient, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The group's committed offset per partition (0 where it has none yet)."""
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])]
    result = client.list_consumer_group_offsets(request, request_timeout=10)[group].result(timeout=15)
    return {tp.partition: max(tp.offset, 0) for tp in result.topic_partitions}


class Progress:
    """Samples a group's committed offsets on a topic until they reach given end offsets.

    `samples` is [(monotonic time, records committed since the start)], from which the report takes the
    sustained rate (the slope between 10% and 90% of the records), free of start-up and tail effects.
    """

    def __init__(self, bootstrap: str, group: str, topic: str, ends: dict[int, int], start: dict[int, int]) -> None:
        self.client = admin(bootstrap)
        self.group, self.topic, self.ends, self.start = group, topic, ends, start
        self.total = sum(ends[p] - start.get(p, 0) for p in ends)
        self.samples: list[tuple[float, int]] = []

    def done_count(self) -> int:
        committed = committed_offsets(self.client, self.group, self.topic, self.ends)
        return sum(min(committed.get(p, 0), self.ends[p]) - self.start.get(p, 0) for p in self.ends)

    def wait(self, timeout: float, interval: float = 0.2, alive: Callable[[], bool] | None = None) -> float:
        """Block until everything is committed; returns the monotonic time it was first seen complete."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                done = self.done_count()
            except KafkaException:
                done = self.samples[-1][1] if self.samples else 0
            now = time.monotonic()
            self.samples.append((now, done))
            if done >= self.total:
                return now
            if now > deadline:
                raise TimeoutError(f"{self.group}: {done} of {self.total} records committed after {timeout:.0f} s")
            if alive is not None and not alive():
                raise RuntimeError(f"{self.group}: a worker exited with {done} of {self.total} records committed")
            time.sleep(interval)


def sustained_rate(samples: list[tuple[float, int]], total: int, lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Records/s between the first samples at or past lo*total and hi*total (linear interpolation)."""
    if total <= 0 or len(samples) < 2:
        return None

    def crossing(target: float) -> float | None:
        for (t0, n0), (t1, n1) in zip(samples, samples[1:], strict=False):
            if n1 >= target:
                if n1 == n0:
                    return t1
                return t0 + (t1 - t0) * max(0.0, (target - n0)) / (n1 - n0)
        return None

    a, b = crossing(lo * total), crossing(hi * total)
    if a is None or b is None or b <= a:
        return None
    return (hi - lo) * total / (b - a)


def count_outputs(bootstrap: str, topics: dict[str, str], timeout: float = 300) -> dict[str, object]:
    """Read every output topic to its last stable offset (read_committed, as a DNO would) and count records
    by kind and alert ID: every input alert must appear exactly once across the three outputs."""
    settings = settings_for(bootstrap)
    existing = topic_partitions(admin(bootstrap), topics.values())  # one never written to may not exist
    kinds = {topic: kind for kind, topic in topics.items()}
    counts: Counter[str] = Counter()
    ids: Counter[bytes] = Counter()
    complete = True
    try:
        for msg in read_to_end(settings, existing, timeout, group_id="bench-output-count"):
            kind = kinds[msg.topic()]  # type: ignore[index]  # set on every consumed message
            counts[kind] += 1
            value = msg.value()
            if kind != "dead_letter" and value:
                ids[alert_id_of(value)] += 1
    except KafkaException:
        complete = False  # not read to the end in time: the check reports it
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    return {"by_topic": dict(counts), "distinct_alert_ids": len(ids), "duplicates": duplicates, "complete": complete}


def uncommitted_records(bootstrap: str, group: str, topic: str, timeout: float = 60) -> int:
    """Records of a transactionally written topic at or after the group's committed offsets. Not end offset
    minus committed offset: a transaction marker after the last record takes an offset no consumer commits."""
    client = admin(bootstrap)
    committed = committed_offsets(client, group, topic, end_offsets(client, topic))
    records = read_to_end(settings_for(bootstrap), topic, timeout, group_id=f"{group}.bench-count")
    uncommitted = 0
    for msg in records:
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None  # set on every consumed message
        uncommitted += offset >= committed.get(partition, 0)
    return uncommitted
