"""When may an AD1 with event time t be decided? (contract 5.7)

Only once every service-request and outcome partition has either been read past t (so by 5.6 every
record at t is in) or been read to an end offset that was looked up *after* the alert was read. The
second condition is what makes live processing safe: any request the DSP wrote before the alert is below
that end offset. Together they make the decision independent of how reads interleave, so a backlog is
decided exactly as live traffic would be.

"Read past t" rests on the DSP writing each partition in `received_at` order, which one outlying record
breaks: a single request or outcome stamped in 2999 (an ignored variant, a SUCCESS outcome) would make
its partition count as past every t until restart, and AD1s would be decided with earlier requests
still unread (contract 6: an outlier never switches the guard off). So a record's time counts only when
it is corroborated, two ways:

- by its neighbours: a partition's clock is the largest minimum over any `CORROBORATING_RECORDS`
  consecutive records read from it. The DSP's in-order records are sorted among themselves, so as long
  as no run of that many records is all outliers ahead of them, every such minimum is at most the time
  of an in-order record already read, and every in-order record at or before it has been read too. Past
  outliers only lower a minimum (a wait, never an early decision);
- by the wall clock: a record stamped more than `max_ahead_ms` (POA_MAX_CLOCK_AHEAD_SECONDS) after the wall
  clock when it is read is not a time the DSP can have received anything at, so it moves no clock, however
  many there are.

Both only ever make an AD1 wait, never decide earlier than the records allow; the end-offset condition
still lets a caught-up worker decide at once, and the wait stays bounded (POA_MAX_HOLD_SECONDS). The wall
clock here only decides whether a record may end a wait; it never enters a decision.
"""

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.core.event_time import HOUR_MS

Partition = tuple[str, int]

# A run of up to CORROBORATING_RECORDS - 1 outliers ahead of their partition cannot move its clock.
CORROBORATING_RECORDS = 4
# received_at is when the DSP received the record, so it cannot be ahead of the wall clock but for clock
# skew between the DSP and the worker; an hour covers any sane skew (and a DSP an hour off by a time-zone slip),
# as Kafka's own log.message.timestamp.after.max.ms. The default of POA_MAX_CLOCK_AHEAD_SECONDS (contract 6).
DEFAULT_MAX_AHEAD_MS = HOUR_MS


@dataclass
class _Progress:
    next_offset: int = 0
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=CORROBORATING_RECORDS))
    clock: int | None = None  # every in-order record of this partition up to this time has been read


class ReadFrontier:
    def __init__(self, max_ahead_ms: int = DEFAULT_MAX_AHEAD_MS) -> None:
        """`max_ahead_ms`: how far ahead of the wall clock when it is read a record's time may be and still
        move a clock (a replay of data dated in the future raises it)."""
        self._max_ahead_ms = max_ahead_ms
        self._progress: dict[Partition, _Progress] = {}
        self._end_offsets: dict[Partition, int] = {}
        self._ends_cover_reads_before = 0  # alerts with read_seq < this are covered by _end_offsets

    def track(self, partitions: Iterable[Partition], next_offsets: Mapping[Partition, int]) -> None:
        for p in partitions:
            self._progress.setdefault(p, _Progress(next_offset=next_offsets.get(p, 0)))

    @property
    def partitions(self) -> list[Partition]:
        return list(self._progress)

    def observe(
        self, partition: Partition, offset: int, event_time: int | None, wall_clock_ms: int | None = None
    ) -> None:
        """A record was read at `offset`; `event_time` is None for a record without one (a reference record)
        or one that was dead-lettered: those move the offset but no clock. `wall_clock_ms` is the time it was
        read (None: unknown, then only its neighbours corroborate it)."""
        progress = self._progress_of(partition)
        progress.next_offset = max(progress.next_offset, offset + 1)
        if event_time is None or (wall_clock_ms is not None and event_time > wall_clock_ms + self._max_ahead_ms):
            return
        recent = progress.recent
        recent.append(event_time)
        if len(recent) == CORROBORATING_RECORDS:
            corroborated = min(recent)
            if progress.clock is None or corroborated > progress.clock:
                progress.clock = corroborated

    def observe_times(
        self, partition: Partition, next_offset: int, event_times: Sequence[int | None], wall_clock_ms: int | None
    ) -> None:
        """Records read up to `next_offset` with these event times, in offset order, all read at `wall_clock_ms`:
        the same as `observe` of each in turn, in one pass (a reader of every alert of the topic)."""
        progress = self._progress_of(partition)
        progress.next_offset = max(progress.next_offset, next_offset)
        limit = None if wall_clock_ms is None else wall_clock_ms + self._max_ahead_ms
        times = [*progress.recent]
        times += (t for t in event_times if t is not None and (limit is None or t <= limit))
        if len(times) <= len(progress.recent):
            return
        # The windows of CORROBORATING_RECORDS consecutive times that end in this batch (and the one that ended
        # before it, which changes nothing): their largest minimum.
        windows = zip(*(times[i:] for i in range(CORROBORATING_RECORDS)), strict=False)
        corroborated = max(map(min, windows), default=None)
        if corroborated is not None and (progress.clock is None or corroborated > progress.clock):
            progress.clock = corroborated
        progress.recent.extend(times[max(len(progress.recent), len(times) - CORROBORATING_RECORDS) :])

    def clock(self, partition: Partition) -> int | None:
        """Every in-order record of the partition up to this event time has been read (None: no time yet)."""
        progress = self._progress.get(partition)
        return None if progress is None else progress.clock

    def observe_position(self, partition: Partition, next_offset: int) -> None:
        """The consumer's position moved without a record (end of partition, compaction, markers)."""
        progress = self._progress_of(partition)
        progress.next_offset = max(progress.next_offset, next_offset)

    def _progress_of(self, partition: Partition) -> _Progress:
        progress = self._progress.get(partition)
        if progress is None:
            progress = self._progress[partition] = _Progress()
        return progress

    def set_end_offsets(self, end_offsets: Mapping[Partition, int], reads_before: int) -> None:
        """End offsets looked up after the alert with sequence number `reads_before - 1` was read."""
        self._end_offsets = dict(end_offsets)
        self._ends_cover_reads_before = reads_before

    def covers(self, read_seq: int) -> bool:
        """Whether the current end-offset snapshot was taken after the alert `read_seq` was read."""
        return read_seq < self._ends_cover_reads_before

    def lagging(self, t: int, read_seq: int) -> list[Partition]:
        """Partitions that still block a decision at event time t for the alert read as `read_seq`."""
        use_ends = self.covers(read_seq)
        blocking = []
        for p, progress in self._progress.items():
            if progress.clock is not None and progress.clock > t:
                continue
            end = self._end_offsets.get(p) if use_ends else None
            if end is not None and progress.next_offset >= end:
                continue
            blocking.append(p)
        return blocking

    def may_decide(self, t: int, read_seq: int) -> bool:
        return not self.lagging(t, read_seq)

    def next_offsets(self) -> dict[Partition, int]:
        return {p: progress.next_offset for p, progress in self._progress.items()}
