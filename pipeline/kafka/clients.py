"""Every Kafka client the project makes is configured here: the connection once, each role's tuning beside it.

The connection (brokers, and on a secured cluster TLS and SASL settings) is the same for every client;
what differs by role is how it reads or writes. Keeping both here is what lets one client-configuration
file reach the worker, the loaders, the simulator and the benchmark alike.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from pipeline.kafka.client_config import load_client_config, redact_text
from pipeline.log_format import redacted
from pipeline.settings import Settings

Client = TypeVar("Client", AdminClient, Consumer, Producer)

log = logging.getLogger(__name__)
_announced: set[str] = set()  # client-configuration files already logged by this process

# The worker's alert consumer. Shared with the benchmark's pass-through, so the ceiling it measures uses
# the worker's own client settings.
ALERT_CONSUMER_TUNING: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "queued.max.messages.kbytes": 65536,
    "fetch.wait.max.ms": 50,
}

# How the worker's alert consumer takes part in its group.
ALERT_GROUP_MEMBERSHIP: dict[str, Any] = {
    # No static membership (group.instance.id): with it, librdkafka fenced our own member with a fatal
    # error after a broker outage (confluentinc/librdkafka#3437) and even right after a cooperative join,
    # after which send_offsets_to_transaction hung. A crashed worker's partitions therefore wait one
    # session timeout (6 s, the broker's minimum) before moving.
    # Range splits each subscribed topic on its own: the alert topic is shared out evenly, and the held-AD1
    # topic (as many partitions) alike. Cooperative-sticky
    # balanced the two topics' partitions together and once gave a second worker only held partitions.
    "partition.assignment.strategy": "range",
    "session.timeout.ms": 6_000,
    "heartbeat.interval.ms": 1_000,
}

# The worker's transactional producer (outputs and alert offsets in one transaction).
TRANSACTIONAL_PRODUCER_TUNING: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 2,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "transaction.timeout.ms": 60_000,
    "queue.buffering.max.messages": 1_000_000,
    # A transaction's first request right after the previous commit often gets CONCURRENT_TRANSACTIONS
    # while the broker writes the commit markers; at librdkafka's default 100 ms retry back-off that
    # stalled one transaction in ten for 100 ms (measured). Back-off still grows exponentially from here.
    "retry.backoff.ms": 10,
}

# The worker's reader of the state topics: assigned every partition, never commits (positions live in the
# local state beside what they produced).
STATE_READER_TUNING: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": True,
    "isolation.level": "read_committed",
    "queued.max.messages.kbytes": 65536,
    "fetch.wait.max.ms": 100,
}

# Tools that read a topic from its start by assignment (no offsets committed): loaders, demo summary, tests.
ASSIGNED_READER_TUNING: dict[str, Any] = {
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
}

# Loaders and the simulator: many keyed records, last row for a key wins.
BULK_PRODUCER_TUNING: dict[str, Any] = {
    "enable.idempotence": True,  # no duplicates or reordering on retry: last row wins holds
    "acks": "all",
    "linger.ms": 30,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "delivery.report.only.error": True,  # no Python call per successful record
}


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def connection(settings: Settings) -> dict[str, Any]:
    """What every client needs to reach the cluster: the brokers, and the client-configuration file's
    properties (TLS, SASL) when KAFKA_CLIENT_CONFIG names one. Read at each call, so a client made after
    the file changed (rotated credentials) uses the new one."""
    path = settings.client_config_file
    properties: dict[str, Any] = load_client_config(path) if path else {}
    if path and path not in _announced:
        _announced.add(path)
        shown = ", ".join(f"{key}={value}" for key, value in redacted(properties).items())
        log.info("Kafka client configuration from %s: %s", path, shown)
    # librdkafka's own log lines go through Python logging (the configured format, JSON included), not
    # straight to stderr, where they would break a log shipper's one-object-a-line.
    return {**properties, "bootstrap.servers": settings.bootstrap_servers, "logger": LIBRDKAFKA_LOG}


def _made(kind: Callable[[dict[str, Any]], Client], config: dict[str, Any]) -> Client:
    """librdkafka quotes a value it rejects in its error: take the secrets out of that message."""
    try:
        return kind(config)
    except KafkaException as exc:
        raise KafkaException(redact_text(str(exc), config)) from None


def admin_client(settings: Settings, **extra: Any) -> AdminClient:
    return _made(AdminClient, {**connection(settings), **extra})


def consumer(settings: Settings, group_id: str, tuning: dict[str, Any], **extra: Any) -> Consumer:
    return _made(Consumer, {**connection(settings), "group.id": group_id, **tuning, **extra})


def producer(settings: Settings, tuning: dict[str, Any], **extra: Any) -> Producer:
    return _made(Producer, {**connection(settings), **tuning, **extra})
