"""AD1s waiting for rule 9's evidence, out of their partition, on the filter's own topic `<app id>.held-ad1s`.

An AD1 that rule 5 suppresses and that no evidence releases yet must wait until evidence up to t + A can
no longer appear (rule 7), minutes live; it must not hold the alerts behind it. Offsets are committed in
order, so it leaves its partition: the transaction that commits its offset writes it to the held topic
(the alert's key, and its value behind a small envelope: where it was read from, and when). The alert
consumer group reads that topic too; the worker owning a held partition keeps its records here, in offset
order, until they are decided, and the transaction with their outputs commits the held topic's offsets.

Held AD1s are decided out of order (decision record 5: supply evidence releases an AD1 at once, wherever it
sits; an AD1 with an outlying time must not hold up its partition): each transaction commits the held offset
up to the first undecided AD1, with the offsets decided beyond it in the commit's metadata (runs of them,
at most DECIDED_RUNS_MAX). Whoever reads the partition again (after a crash, a failed transaction or a
rebalance) reads that metadata back with the committed offset and decides only the others: each held AD1 is
decided once, and its outputs written once, with the offsets that say so.
"""

import heapq
import logging
import struct
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Message, TopicPartition

from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.settings import Settings
from pipeline.wire import duis
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Outgoing
from pipeline.worker.hold_queues import ReadAlert, read_alert

log = logging.getLogger(__name__)

# The envelope's first four bytes say whether the AD1 was forwarded already (shadow mode: its decision writes its
# shadow record at most), the fifth its layout.
_HELD, _FORWARDED = b"POAH", b"POAF"
_AVRO_LAYOUT = b"\x01"
_KIND_AND_LAYOUT = 5
_METADATA = "poa-decided:"  # the held offset's commit metadata: runs decided beyond it, "a-b" relative to it
DECIDED_RUNS_MAX = 100  # runs of held AD1s decided beyond the first undecided: about 1.5 kB of metadata at most
# Held AD1s looked at, at most, in one pass of the loop (decided or not): about 100 ms of work with storm look-ups,
# so that after a stall, when tens of thousands become decidable together, no step outlasts a batch's worth of
# work (the alerts no window covers wait meanwhile, and the consumer must poll within max.poll.interval.ms).
DECISIONS_PER_PASS = 1_000
FRESH_ENDS_WAIT_MS = 10_000  # how long an AD1 past its bound waits at most for end offsets looked up after it
_ENVELOPE = struct.Struct(">iqq")  # source partition, source offset, wall-clock ms when first read
# A DUIS alert's received_at is its record's Kafka timestamp (contract 9), which the held record does not keep:
# its envelope carries it too. Held Avro alerts keep the first envelope, which workers of earlier versions read.
_DUIS_LAYOUT = b"\x02"
_DUIS_ENVELOPE = struct.Struct(">iqqq")  # as _ENVELOPE, then the source record's Kafka timestamp (ms)


def held_topic(app_id: str) -> str:
    """The held topic's name (`Settings.held_topic`)."""
    return Settings(app_id=app_id).held_topic


def held_record(
    topic: str,
    item_key: bytes | None,
    value: bytes,
    partition: int,
    offset: int,
    read_ms: int,
    timestamp: int | None = None,
    forwarded: bool = False,
) -> Outgoing:
    """The record that takes an AD1 out of its alert partition to the held topic; `timestamp` is its Kafka
    record's, kept for a DUIS alert (a DUIS alert always has one: it was decoded with it); `forwarded` when it
    went to the DNO already (shadow mode), so that its decision writes at most its shadow record."""
    kind = _FORWARDED if forwarded else _HELD
    if timestamp is not None and duis.is_duis(value):
        return topic, item_key, kind + _DUIS_LAYOUT + _DUIS_ENVELOPE.pack(partition, offset, read_ms, timestamp) + value
    return topic, item_key, kind + _AVRO_LAYOUT + _ENVELOPE.pack(partition, offset, read_ms) + value


def _unwrap(value: bytes) -> tuple[bool, int, int, int, int | None, int] | None:
    """A held record's envelope: (forwarded, source partition, source offset, read ms, DUIS timestamp or None,
    where the alert's value starts), None for a record this filter did not write."""
    kind, layout = value[:4], value[4:5]
    if kind not in (_HELD, _FORWARDED):
        return None
    if layout == _AVRO_LAYOUT and len(value) > (head := _KIND_AND_LAYOUT + _ENVELOPE.size):
        return (kind == _FORWARDED, *_ENVELOPE.unpack_from(value, _KIND_AND_LAYOUT), None, head)
    if layout == _DUIS_LAYOUT and len(value) > (head := _KIND_AND_LAYOUT + _DUIS_ENVELOPE.size):
        return (kind == _FORWARDED, *_DUIS_ENVELOPE.unpack_from(value, _KIND_AND_LAYOUT), head)
    return None


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
    forwarded: bool = False  # forwarded when read (shadow mode): its decision writes its shadow record at most
    decided: bool = False

    @property
    def inputs_seq(self) -> int:
        """The batch number the activation inputs must be read after: its own read, or its storm AD1s'."""
        return max(self.alert.read_seq, self.storm_seq or 0)

    def __post_init__(self) -> None:
        self.bound_from_ms = max(self.bound_from_ms, self.first_read_ms)


@dataclass(slots=True)
class Budget:
    """How many more held AD1s this pass of the loop may look at."""

    left: int


def _event_time(held: HeldAD1) -> int:
    return 0 if held.alert.alert is None else held.alert.alert.received_at  # a bad record: decided at once


@dataclass
class HeldPartition:
    """One held partition's records from its committed offset on, as read: the undecided AD1s, each looked
    at when it may have become decidable (read just now, supply evidence for its CH Function, its evidence
    complete: by event time, or past its bound: in offset order), and which were decided beyond the first
    undecided one."""

    restored: bool = False  # its committed offset and metadata are known: records may be decided
    read: OrderedDict[int, HeldAD1 | None] = field(default_factory=OrderedDict)  # None once decided; the first
    # entry, if any, is undecided: it is the offset to commit
    next_read: int | None = None  # the offset after the last record read (or the committed offset)
    skip: list[tuple[int, int]] = field(default_factory=list)  # runs decided before this read (metadata)
    fresh: list[HeldAD1] = field(default_factory=list)  # to be looked at in the next pass: just read, or kept
    # back by the bound on the metadata when they could be decided
    by_time: list[tuple[int, int, HeldAD1]] = field(default_factory=list)  # heap: event time, offset
    by_offset: deque[HeldAD1] = field(default_factory=deque)
    by_device: dict[str, list[HeldAD1]] = field(default_factory=dict)
    waiting: int = 0  # undecided AD1s
    runs: int = 0  # at least the runs decided beyond the first undecided (recounted when it reaches the cap)
    changed: bool = False  # decided since its commit point was last taken
    full: bool = False  # the metadata was found at its bound in this pass

    def add(self, held: HeldAD1) -> None:
        offset = held.held_offset
        self.next_read = offset + 1
        starts = [a for a, _ in self.skip]
        k = bisect_right(starts, offset) - 1
        if k >= 0 and offset <= self.skip[k][1]:  # decided before this read: not again
            if self.read:
                self.read[offset] = None
            return
        self.read[offset] = held
        self.waiting += 1
        self.fresh.append(held)
        heapq.heappush(self.by_time, (_event_time(held), offset, held))
        self.by_offset.append(held)
        if held.alert.alert is not None:
            self.by_device.setdefault(held.alert.alert.device_id, []).append(held)

    def release(self, decide: Callable[[HeldAD1], bool], devices: Collection[str],
                overdue: Callable[[HeldAD1], bool], budget: "Budget",
                pending: Callable[[HeldAD1], bool] = lambda held: False) -> None:  # fmt: skip
        """Offer `decide` the AD1s that may be decidable now: those from `devices` (new supply evidence), those
        in event-time order up to the first it keeps (evidence completes in event-time order), those `overdue`
        in offset order up to the first it keeps, and those read since the last pass or kept back then; at
        most `budget` of them, the rest in the next pass (those it could not look at wait as just read).

        In event-time order, those `pending` (evidence complete, waiting for an end-offset look-up that will
        cover them all) are passed over, not offered: the ones behind them are looked at in the same pass, so
        that one look-up decides them together (issue 20: one look-up each made a backlog's AD1s leave at
        about 60 a second)."""
        self.full = False
        for device in devices:
            for held in list(self.by_device.get(device, ())):
                self._attempt_or_keep(held, decide, budget)
        passed: list[tuple[int, int, HeldAD1]] = []
        while self.by_time and budget.left > 0:
            held = self.by_time[0][2]
            if not held.decided:
                if pending(held):
                    budget.left -= 1
                    passed.append(heapq.heappop(self.by_time))
                    continue
                if not self._attempt(held, decide, budget):
                    break
            heapq.heappop(self.by_time)
        for entry in passed:
            heapq.heappush(self.by_time, entry)
        while self.by_offset:
            held = self.by_offset[0]
            if not held.decided and not (overdue(held) and self._attempt(held, decide, budget)):
                break
            self.by_offset.popleft()
        fresh, self.fresh, self.full = self.fresh, [], False  # the AD1s ahead may have been decided meanwhile
        for held in fresh:
            self._attempt_or_keep(held, decide, budget)

    def _attempt_or_keep(self, held: HeldAD1, decide: Callable[[HeldAD1], bool], budget: "Budget") -> None:
        """Look at an AD1 that nothing else brings back, or keep it for the next pass once the budget is spent."""
        if budget.left <= 0 and not held.decided:
            self.fresh.append(held)
        else:
            self._attempt(held, decide, budget)

    def _attempt(self, held: HeldAD1, decide: Callable[[HeldAD1], bool], budget: "Budget") -> bool:
        if held.decided:
            return True
        if budget.left <= 0:  # the heaps' heads come back in the next pass by themselves
            return False
        head = next(iter(self.read)) == held.held_offset
        if not head and not self._room_for_a_run():
            self.fresh.append(held)  # looked at again once the AD1s ahead of it are decided
            return False
        budget.left -= 1
        if not decide(held):
            return False
        held.decided, self.changed = True, True
        self.waiting -= 1
        self.read[held.held_offset] = None
        if held.alert.alert is not None:
            self.by_device[held.alert.alert.device_id].remove(held)
            if not self.by_device[held.alert.alert.device_id]:
                del self.by_device[held.alert.alert.device_id]
        if head:
            while self.read and next(iter(self.read.values())) is None:
                self.read.popitem(last=False)
        else:
            self.runs += 1
        return True

    def _room_for_a_run(self) -> bool:
        """Whether one more run fits in the metadata (counted again, once a pass, when the count says no)."""
        if self.runs < DECIDED_RUNS_MAX:
            return True
        if not self.full:
            self.runs = len(self.decided_runs())
            self.full = self.runs >= DECIDED_RUNS_MAX
        return not self.full

    def commit_point(self) -> int | None:
        """The offset to commit: the first undecided AD1's, or the one after the last record read."""
        return next(iter(self.read)) if self.read else self.next_read

    def decided_runs(self) -> list[tuple[int, int]]:
        """The offsets decided beyond the commit point, as runs (first, last) of records read in a row (the
        offsets between them, transaction markers, hold no record), and the runs of the metadata not read yet."""
        point = self.commit_point()
        if point is None:
            return []
        runs: list[tuple[int, int]] = []
        first = last = None
        for offset, held in self.read.items():
            if held is None:
                first = offset if first is None else first
                last = offset
            elif first is not None and last is not None:
                runs.append((first, last))
                first = last = None
        if first is not None and last is not None:
            runs.append((first, last))
        runs.extend((max(a, point), b) for a, b in self.skip if b >= point)  # the part not read yet
        merged: list[tuple[int, int]] = []
        for a, b in sorted(runs):
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return merged

    def metadata(self) -> str:
        point = self.commit_point() or 0
        runs = self.decided_runs()
        self.runs = len(runs)
        return _METADATA + ",".join(f"{a - point}-{b - point}" for a, b in runs) if runs else ""

    def undecided(self) -> int:
        return len(self.read)


def decided_runs_of(offset: int, metadata: str | None) -> list[tuple[int, int]]:
    """The runs a committed held offset's metadata says were decided beyond it (none if it says nothing)."""
    if offset < 0 or not metadata or not metadata.startswith(_METADATA):
        return []
    runs = []
    try:
        for run in metadata[len(_METADATA) :].split(","):
            a, _, b = run.partition("-")
            runs.append((offset + int(a), offset + int(b)))
    except ValueError:  # not as this filter writes it: deciding them again forwards at worst (fail open)
        log.error("the held offset %d has unreadable metadata %r: its AD1s are all decided again", offset, metadata)
        return []
    return runs


class EvidenceHolds:
    """The held topic's records of this worker's held partitions (`HeldPartition`)."""

    def __init__(self, codec: AvroCodec) -> None:
        self._codec = codec
        self._partitions: dict[int, HeldPartition] = {}
        self._first = 0  # which restored partition the next pass looks at first

    def assigned(self, partitions: Iterable[int]) -> None:
        """Partitions given to this worker: their records are decided once `restore` has their committed
        offsets (and what was decided beyond them)."""
        for p in partitions:
            self._partitions[p] = HeldPartition()

    def revoked(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._partitions.pop(p, None)

    def clear(self) -> None:
        """Forget every held AD1 and what was decided (a transaction failed): all are read again, from the
        committed offsets, which `restore` gives again."""
        for p in self._partitions:
            self._partitions[p] = HeldPartition()

    def restore(self, committed: Iterable[TopicPartition]) -> None:
        """The committed offsets of held partitions and their metadata: records are decided from there on,
        those the metadata names never again."""
        for tp in committed:
            part = self._partitions.get(tp.partition)
            if part is None or part.restored:
                continue
            part.restored = True
            part.next_read = tp.offset if tp.offset >= 0 else None
            part.skip = decided_runs_of(tp.offset, tp.metadata)
            part.runs = len(part.skip)

    def unrestored(self) -> list[int]:
        return [p for p, part in self._partitions.items() if not part.restored]

    def add(self, msg: Message, read_seq: int, read_at: float) -> None:
        """A record read from the held topic in batch `read_seq` at monotonic time `read_at`; its alert is
        read by the generic reader (held AD1s are few)."""
        partition: int = msg.partition()  # type: ignore[assignment]  # always set on a consumed message
        part = self._partitions.get(partition)
        if part is None or not part.restored:  # revoked meanwhile, or to be read again once restored
            return
        value = msg.value() or b""
        envelope = _unwrap(value)
        if envelope is None:
            log.error("skipping a record on the held topic that this filter did not write (offset %s)", msg.offset())
            part.next_read = msg.offset() + 1  # type: ignore[operator]
            if part.read:
                part.read[msg.offset()] = None  # type: ignore[index]
            return
        forwarded, source_partition, source_offset, read_ms, timestamp, head = envelope
        alert = read_alert(self._codec, source_partition, source_offset, msg.key(), value[head:], read_seq, read_at,
                           timestamp=timestamp)  # fmt: skip
        held = HeldAD1(partition, msg.offset(), read_ms, alert, forwarded=forwarded)  # type: ignore[arg-type]
        part.add(held)

    def release(self, decide: Callable[[HeldAD1], bool], devices: Collection[str] = (),
                overdue: Callable[[HeldAD1], bool] = lambda held: True,
                budget: int = DECISIONS_PER_PASS, pending: Callable[[HeldAD1], bool] = lambda held: False,
                ) -> bool:  # fmt: skip
        """Offer each restored partition's AD1s that may be decidable to `decide` (True: decided), at most
        `budget` of them, passing over those `pending` (`HeldPartition.release`); True when it ran out, so that
        the next pass goes on at once. The partitions take turns at coming first, so that none waits behind
        another's backlog."""
        left = Budget(budget)
        order = [p for p, part in self._partitions.items() if part.restored]
        if order:
            self._first = self._first % len(order)
            order = order[self._first :] + order[: self._first]
            self._first += 1
        for p in order:
            self._partitions[p].release(decide, devices, overdue, left, pending)
        return left.left <= 0

    def commit_points(self) -> dict[int, tuple[int, str]]:
        """For each partition with decisions since the last call: the offset to commit and its metadata."""
        points = {}
        for p, part in self._partitions.items():
            point = part.commit_point()
            if part.changed and point is not None:
                points[p] = (point, part.metadata())
            part.changed = False
        return points

    def restart_bounds(self, wall_ms: int) -> None:
        """Count every bound from `wall_ms` (a broker outage ended: nothing could be forwarded during it, and
        forwarding at its end would make decisions depend on its length)."""
        for part in self._partitions.values():
            for held in part.read.values():
                if held is not None:
                    held.bound_from_ms, held.over_seen_ms = max(held.bound_from_ms, wall_ms), None

    def count(self) -> int:
        return sum(part.waiting for part in self._partitions.values())

    def sizes(self) -> dict[int, int]:
        """Records kept per partition (undecided, and decided beyond the first undecided): what pauses it."""
        return {p: part.undecided() for p, part in self._partitions.items()}

    def inputs_seq(self) -> int | None:
        """The latest batch number the activation inputs must be read after, for the AD1s looked at first."""
        seqs = [part.by_offset[0].inputs_seq for part in self._partitions.values() if part.by_offset]
        seqs += [part.by_time[0][2].inputs_seq for part in self._partitions.values() if part.by_time]
        return max(seqs, default=None)


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
