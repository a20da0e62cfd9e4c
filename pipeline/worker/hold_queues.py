"""Alerts between being read and being decided: decoded once, queued per partition in offset order.

Decisions (and so commits) go strictly in offset order within a partition: an AD1 that must wait for
the activation inputs (contract 5.7) holds the alerts behind it, which keeps exactly-once offsets simple.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec


@dataclass(slots=True)
class ReadAlert:
    """An alert that could not be decided the moment it was read, or that the fast reader left alone."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    read_seq: int
    read_at: float  # monotonic seconds, for the hold bound and the latency histogram
    datum: dict[str, Any] | None = None  # decoded by the generic path; None when read by alert_wire
    alert: AlertFacts | None = None
    error: str | None = None

    @property
    def waits_for_inputs(self) -> bool:
        return self.alert is not None and self.alert.alert_code == OUTAGE_ALERT_CODE


def read_alert(
    codec: AvroCodec, partition: int, offset: int, key: bytes | None, value: bytes | None, read_seq: int, read_at: float
) -> ReadAlert:
    item = ReadAlert(partition, offset, key, value, read_seq, read_at)
    try:
        item.datum = codec.decode("DeviceAlert", value)
        item.alert = validation.device_alert(item.datum)
    except BadInput as exc:
        item.error = str(exc)
    return item


@dataclass
class PartitionQueue:
    items: deque[ReadAlert] = field(default_factory=deque)
    paused: bool = False


class AlertQueues:
    def __init__(self) -> None:
        self._queues: dict[int, PartitionQueue] = {}

    def add_partitions(self, partitions: list[int]) -> None:
        for p in partitions:
            self._queues.setdefault(p, PartitionQueue())

    def drop_partitions(self, partitions: list[int]) -> None:
        for p in partitions:
            self._queues.pop(p, None)

    def clear(self) -> None:
        for queue in self._queues.values():
            queue.items.clear()

    def queues(self) -> dict[int, PartitionQueue]:
        return self._queues

    def held(self) -> int:
        return sum(len(q.items) for q in self._queues.values())
