"""A Kafka producer for bulk writes (loaders, simulator): tuned for throughput, yet every record is
acknowledged by all in-sync replicas or the run fails loudly; a partial load must not pass for a full one."""

import logging

from confluent_kafka import KafkaError, Message

from pipeline.kafka import clients
from pipeline.kafka.batches import produce_when_room
from pipeline.kafka.topics import TopicsMissing, wait_for_topics
from pipeline.settings import Settings

log = logging.getLogger(__name__)
# Serving delivery reports every so often keeps the error count current without a call per record.
_POLL_EVERY = 50_000


class DeliveryFailed(Exception):
    """Some records were not acknowledged by the broker; the message says how many and why."""


class TopicMissing(Exception):
    """A topic to write to does not exist; the DSP creates its input topics, loaders never do."""


def require_topics(settings: Settings, *topics: str, wait_s: float = 5.0) -> None:
    """Fail before reading a file rather than after: an absent topic would otherwise be auto-created
    by the broker with the wrong settings (not compacted) or time out record by record. A topic created
    a moment ago may take a few seconds to show in the metadata, hence the short wait."""
    # The first contact with the broker: quiet, so that a broker that is down gives one clear message.
    try:
        wait_for_topics(clients.admin_client(settings, log_level=2), topics, timeout_s=wait_s)
    except TopicsMissing as exc:
        where = settings.bootstrap_servers
        raise TopicMissing(
            f"cannot reach Kafka at {where}: {exc.unreachable}" if exc.unreachable is not None
            else f"topic(s) {', '.join(exc.missing)} do not exist on {where}"
        ) from None


class BulkProducer:
    """Keyed produce with back-pressure handling; `flush()` raises DeliveryFailed if anything was lost."""

    def __init__(self, settings: Settings, client_id: str = "poa-filter-loader") -> None:
        self._failed = 0
        self._first_error: KafkaError | None = None
        self._since_poll = 0
        self._reported: set[str] = set()
        self.produced = 0
        self._producer = clients.producer(
            settings,
            clients.BULK_PRODUCER_TUNING,
            **{"client.id": client_id},
            on_delivery=self._on_delivery,
            # librdkafka logs every reconnect attempt; say each distinct problem once instead.
            log_level=2,
            error_cb=self._on_error,
        )

    def _on_error(self, err: KafkaError) -> None:
        if str(err) not in self._reported:
            self._reported.add(str(err))
            log.warning("kafka: %s (retrying until delivered or timed out)", err.str())

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed += 1
            self._first_error = self._first_error or err

    def produce(self, topic: str, key: str | bytes, value: bytes | None, timestamp_ms: int | None = None) -> None:
        """Queue one record, stamped `timestamp_ms` when given (else the time of producing); when librdkafka's
        queue is full, wait for deliveries and retry."""
        stamp = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
        produce_when_room(self._producer, topic, value, key, **stamp)
        self.produced += 1
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def flush(self) -> None:
        """Wait for every queued record (bounded by librdkafka's message.timeout.ms, 5 minutes)."""
        self._producer.flush()
        if self._failed:
            raise DeliveryFailed(
                f"{self._failed} of {self.produced} records were not delivered "
                f"(first error: {self._first_error}); the write is incomplete, run it again"
            )
