"""Batch reads and writes shared by every Kafka client of the project, and where a consumed message came from.

Reading a batch from a consumer without waiting for a full batch:

librdkafka's `consume(n, timeout)` returns only when n messages are queued or the timeout has passed,
so a caught-up reader that asks for 5,000 messages always waits the whole timeout: latency for nothing.
Here the wait ends as soon as one message is there, and whatever else is already queued comes with it.
"""

from typing import Any

from confluent_kafka import Consumer, Message, Producer


def next_batch(consumer: Consumer, max_messages: int, wait_s: float) -> list[Message]:
    """Up to `max_messages` queued messages; if none are queued, wait at most `wait_s` for the first."""
    messages = consumer.consume(max_messages, 0)
    if messages or wait_s <= 0:
        return messages
    first = consumer.poll(wait_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)]


def produce_when_room(
    producer: Producer, topic: str, value: bytes | None, key: str | bytes | None = None, poll_s: float = 0.05,
    **extra: Any,
) -> None:
    """Produce one record; while librdkafka's queue is full (BufferError), serve deliveries and retry."""
    while True:
        try:
            producer.produce(topic, value, key, **extra)
            return
        except BufferError:
            producer.poll(poll_s)


def coordinates(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed message (always set on those, whatever the stubs say)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset
