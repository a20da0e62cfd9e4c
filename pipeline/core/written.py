"""Where and when an input record was written: what housekeeping and the compacted topics' write order need.

The state keeps, beside what a record means, when its topic got it, because the inputs' retention is
counted from that time (a rebuild can restore only what the topics still hold), and because on a
compacted topic "the value written last" is a matter of write order, not of event time.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Written:
    """A record's Kafka timestamp (epoch ms; None when the broker gives none), partition and offset."""

    timestamp: int | None
    partition: int
    offset: int

    @property
    def order(self) -> tuple[int, int, int]:
        """Write order across partitions: by timestamp, then partition and offset (offset order within one
        partition whenever its timestamps do not go backwards, as with one producer or LogAppendTime)."""
        return (-1 if self.timestamp is None else self.timestamp, self.partition, self.offset)


UNKNOWN = Written(None, -1, -1)  # a record applied without its coordinates: never purged, ordered as read
