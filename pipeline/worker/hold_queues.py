"""Alerts between being read and being decided: decoded once, held per alert partition in offset order.

Decisions (and so commits) go strictly in offset order within a partition: an AD1 that must wait for
the activation inputs (contract 5.7) holds the alerts behind it, which keeps exactly-once offsets simple.
"""

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pipeline.core.bad_input import BadInput
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.wire import input_records
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import RegistryUnavailable

Item = TypeVar("Item")
# Held alerts decided at most in one pass of the loop: about a batch's worth of work, so that when the inputs an
# hour's backlog waited for arrive, no step outlasts a batch (the consumer polls within max.poll.interval.ms).
RELEASE_PER_PASS = 5_000


@dataclass(slots=True)
class ReadAlert:
    """An alert that could not be decided the moment it was read, or that the fast reader left alone."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    read_seq: int
    read_at: float  # monotonic seconds, for the hold bound and the latency histogram
    timestamp: int | None = None  # the Kafka record's (ms): a DUIS alert's received_at (input_records)
    datum: dict[str, Any] | None = None  # decoded by the generic path; None when read by alert_wire
    alert: AlertFacts | None = None
    error: str | None = None
    # Why it waits for the schema registry (contract 6: a dependency outage), None when it does not: its
    # value could not be decoded, or its audit or dead-letter record not encoded, for want of the registry.
    registry_error: str | None = None

    @property
    def waits_for_inputs(self) -> bool:
        return self.alert is not None and self.alert.alert_code == OUTAGE_ALERT_CODE


def read_alert(
    codec: AvroCodec,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    read_seq: int,
    read_at: float,
    *,
    timestamp: int | None,
) -> ReadAlert:
    """The alert at `offset`, written with Kafka `timestamp`, decoded and validated by the generic reader: its
    facts, or why it is bad input, or why it waits for the schema registry."""
    return decode_again(codec, ReadAlert(partition, offset, key, value, read_seq, read_at, timestamp))


def decode_again(codec: AvroCodec, item: ReadAlert) -> ReadAlert:
    """Decode `item`'s value (again, when the registry failed it before); returns the item."""
    item.registry_error = None
    try:
        item.datum, item.alert = input_records.device_alert(codec, item.value, item.timestamp)
    except BadInput as exc:
        item.error = str(exc)
    except RegistryUnavailable as exc:
        item.registry_error = str(exc)
    return item


class HeldAlerts(Protocol):
    """Where the triage keeps the alerts of this worker's partitions that it could not decide when read.

    The held alerts move with their partitions: `assigned` and `revoked` follow the consumer group. Today's
    store, `AlertQueues`, keeps them in memory in offset order: a waiting AD1 blocks the alerts behind it,
    and a revoked partition's alerts are dropped, to be read again by the next owner from the committed
    offset, which never passes a held alert. The outage-evidence feature (contract rule 7) holds some AD1s
    for minutes, across rebalances and crashes, without blocking the alerts behind them: its store keeps
    those AD1s durably (a changelog written in the transaction whose offsets pass them, restored for a
    partition on assignment), while the alerts behind them are decided and committed as they come.
    """

    def assigned(self, partitions: Iterable[int]) -> None: ...
    def revoked(self, partitions: Iterable[int]) -> None: ...

    def waiting(self, partition: int) -> deque[ReadAlert] | None:
        """The partition's undecided alerts in offset order, to hold one more behind them; None when the
        partition is not assigned here."""
        ...

    def release(self, decide: Callable[[ReadAlert], bool]) -> None:
        """Offer each partition's held alerts to `decide` in order, up to the first it keeps (False), at most
        RELEASE_PER_PASS in all: the rest in the next pass."""
        ...

    def first_waiting_for_inputs(self) -> ReadAlert | None:
        """The earliest read of the held AD1s that block their partitions."""
        ...

    def restart_holds(self, now: float) -> None:
        """Count every hold from `now` (a broker outage ended)."""
        ...

    def clear(self) -> None:
        """Forget every held alert (a transaction failed: all are read again)."""
        ...

    def sizes(self) -> dict[int, int]: ...


class PartitionQueues(Generic[Item]):
    """One queue per assigned partition, each decided strictly in offset order: what waits in memory."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[Item]] = {}
        self._first = 0  # which partition the next pass offers first

    def assigned(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._queues.setdefault(p, deque())

    def revoked(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._queues.pop(p, None)

    def release(self, decide: Callable[[Item], bool], budget: int = RELEASE_PER_PASS) -> None:
        """Offer each partition's items to `decide` in order, up to the first it keeps (False), at most `budget`
        decisions in all, the partitions taking turns at coming first: the rest in the next pass."""
        queues = list(self._queues.values())
        if not queues:
            return
        self._first = (self._first + 1) % len(queues)
        for items in queues[self._first :] + queues[: self._first]:
            while items and budget > 0 and decide(items[0]):
                items.popleft()
                budget -= 1

    def clear(self) -> None:
        for items in self._queues.values():
            items.clear()

    def sizes(self) -> dict[int, int]:
        return {p: len(items) for p, items in self._queues.items()}


class AlertQueues(PartitionQueues[ReadAlert]):
    """The in-memory `HeldAlerts`."""

    def waiting(self, partition: int) -> deque[ReadAlert] | None:
        return self._queues.get(partition)

    def first_waiting_for_inputs(self) -> ReadAlert | None:
        heads = [items[0] for items in self._queues.values() if items and items[0].waits_for_inputs]
        return min(heads, key=lambda i: i.read_seq, default=None)

    def restart_holds(self, now: float) -> None:
        for items in self._queues.values():
            for item in items:
                item.read_at = max(item.read_at, now)
