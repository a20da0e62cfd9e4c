"""AD1s waiting for rule 9's evidence, out of their partition, on the filter's own topic `<app id>.held-ad1s`.

An AD1 that rule 5 suppresses and that no evidence releases yet must wait until evidence up to t + A can
no longer appear (rule 7), minutes live; it must not hold the alerts behind it. Offsets are committed in
order, so it leaves its partition: the transaction that commits its offset writes it to the held topic
(the alert's key, and its value behind a small envelope: where it was read from, and when). The alert
consumer group reads that topic too; the worker owning a held partition keeps its records here, in offset
order, until they are decided, and the transaction with their outputs commits the held topic's offsets.
An uncommitted held record is read again by whoever owns its partition next, and decided again.
"""

import logging
import struct
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Message

from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.settings import Settings
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Outgoing
from pipeline.worker.hold_queues import PartitionQueues, ReadAlert, read_alert

log = logging.getLogger(__name__)

_MAGIC = b"POAH\x01"
FRESH_ENDS_WAIT_MS = 10_000  # how long an AD1 past its bound waits at most for end offsets looked up after it
_ENVELOPE = struct.Struct(">iqq")  # source partition, source offset, wall-clock ms when first read


def held_topic(app_id: str) -> str:
    """The held topic's name (`Settings.held_topic`)."""
    return Settings(app_id=app_id).held_topic


def held_record(
    topic: str, item_key: bytes | None, value: bytes, partition: int, offset: int, read_ms: int
) -> Outgoing:
    """The record that takes an AD1 out of its alert partition to the held topic."""
    return topic, item_key, _MAGIC + _ENVELOPE.pack(partition, offset, read_ms) + value


@dataclass(slots=True)
class HeldAD1:
    """An AD1 read back from the held topic: where it waits (held partition and offset), when it was first
    read (wall-clock ms: the bound of rule 7 survives restarts), since when its bound counts (the first read,
    or the end of a broker outage, whichever is later), and the alert itself."""

    held_partition: int
    held_offset: int
    first_read_ms: int
    alert: ReadAlert
    bound_from_ms: int = 0
    over_seen_ms: int | None = None  # when first seen past its bound (wall clock), waiting for fresh end offsets
    storm_seq: int | None = None  # the batch number by which its evidence was complete (`AlertTriage`)

    @property
    def inputs_seq(self) -> int:
        """The batch number the activation inputs must be read after: its own read, or its storm AD1s'."""
        return max(self.alert.read_seq, self.storm_seq or 0)

    def __post_init__(self) -> None:
        self.bound_from_ms = max(self.bound_from_ms, self.first_read_ms)


class EvidenceHolds(PartitionQueues[HeldAD1]):
    """The held topic's records of this worker's held partitions, in offset order per partition."""

    def __init__(self, codec: AvroCodec) -> None:
        super().__init__()
        self._codec = codec

    def add(self, msg: Message, read_seq: int, read_at: float) -> None:
        """A record read from the held topic in batch `read_seq` at monotonic time `read_at`; its alert is
        read by the generic reader (held AD1s are few)."""
        partition: int = msg.partition()  # type: ignore[assignment]  # always set on a consumed message
        queue = self._queues.get(partition)
        if queue is None:  # revoked meanwhile: its new owner reads it again
            return
        value = msg.value() or b""
        head = len(_MAGIC) + _ENVELOPE.size
        if not value.startswith(_MAGIC) or len(value) <= head:
            log.error("skipping a record on the held topic that this filter did not write (offset %s)", msg.offset())
            return
        source_partition, source_offset, read_ms = _ENVELOPE.unpack_from(value, len(_MAGIC))
        alert = read_alert(self._codec, source_partition, source_offset, msg.key(), value[head:], read_seq, read_at)
        queue.append(HeldAD1(partition, msg.offset(), read_ms, alert))  # type: ignore[arg-type]

    def restart_bounds(self, wall_ms: int) -> None:
        """Count every bound from `wall_ms` (a broker outage ended: nothing could be forwarded during it, and
        forwarding at its end would make decisions depend on its length)."""
        for items in self._queues.values():
            for held in items:
                held.bound_from_ms, held.over_seen_ms = max(held.bound_from_ms, wall_ms), None

    def count(self) -> int:
        return sum(len(items) for items in self._queues.values())

    def first_read_seq(self) -> int | None:
        """The batch number the activation inputs must be read after for the heads of the held partitions."""
        return min((items[0].inputs_seq for items in self._queues.values() if items), default=None)


class EvidenceCompleteness(Protocol):
    """Says when no more evidence for an AD1 can appear (`EvidenceReader`)."""

    policy: EvidencePolicy

    def complete(self, t: int) -> bool: ...

    def ends_looked_up_after(self, wall_ms: int) -> bool:
        """Whether the end offsets it knows were looked up after `wall_ms` (wall clock)."""
        ...


@dataclass(frozen=True)
class EvidenceWait:
    """What the triage needs to hold AD1s for evidence: when evidence is complete, the held AD1s of this
    worker's held partitions, the held topic, and how long an AD1 may wait at most after it was first read
    (A + grace + POA_MAX_HOLD_SECONDS, rule 7), in wall-clock ms.

    An AD1 past its bound is forwarded only once end offsets looked up after the bound say its evidence is
    still not complete (after a stall, the first look at it would otherwise see end offsets older than its
    t + A + grace), or FRESH_ENDS_WAIT_MS after it was first seen past its bound if no look-up succeeds."""

    completeness: EvidenceCompleteness
    holds: EvidenceHolds
    topic: str
    max_wait_ms: int
