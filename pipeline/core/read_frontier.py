"""When may an AD1 with event time t be decided? (contract 5.7)

Only once every service-request and outcome partition has either been read past t (a record with
received_at > t, so by 5.6 every record at t is in) or been read to an end offset that was looked up
*after* the alert was read. The second condition is what makes live processing safe: any request the
DSP wrote before the alert is below that end offset. Together they make the decision independent of how
reads interleave, so a backlog is decided exactly as live traffic would be.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Partition = tuple[str, int]


@dataclass
class _Progress:
    next_offset: int = 0
    clock: int | None = None  # highest received_at of a valid record read; dead letters move no clock


class ReadFrontier:
    def __init__(self) -> None:
        self._progress: dict[Partition, _Progress] = {}
        self._end_offsets: dict[Partition, int] = {}
        self._ends_cover_reads_before = 0  # alerts with read_seq < this are covered by _end_offsets

    def track(self, partitions: Iterable[Partition], next_offsets: Mapping[Partition, int]) -> None:
        for p in partitions:
            self._progress.setdefault(p, _Progress(next_offset=next_offsets.get(p, 0)))

    @property
    def partitions(self) -> list[Partition]:
        return list(self._progress)

    def observe(self, partition: Partition, offset: int, event_time: int | None) -> None:
        progress = self._progress.setdefault(partition, _Progress())
        progress.next_offset = max(progress.next_offset, offset + 1)
        if event_time is not None and (progress.clock is None or event_time > progress.clock):
            progress.clock = event_time

    def observe_position(self, partition: Partition, next_offset: int) -> None:
        """The consumer's position moved without a record (end of partition, compaction, markers)."""
        progress = self._progress.setdefault(partition, _Progress())
        progress.next_offset = max(progress.next_offset, next_offset)

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

    def clock(self, partition: Partition) -> int | None:
        progress = self._progress.get(partition)
        return None if progress is None else progress.clock

    def next_offsets(self) -> dict[Partition, int]:
        return {p: progress.next_offset for p, progress in self._progress.items()}
