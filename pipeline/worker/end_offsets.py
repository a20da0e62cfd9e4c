"""Keeps the read frontier's end-offset snapshot fresh (contract 5.7).

An AD1 may be decided once every activation input partition is read to an end offset looked up after
the alert was read. The look-ups run asynchronously (`EndOffsetLookup`), tagged with the batch number
they follow, so the loop never blocks on them for long: it waits a few milliseconds after reading a
batch, and otherwise starts one whenever a held AD1 waits for it.
"""

from collections.abc import Callable

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.read_frontier import ReadFrontier
from pipeline.kafka.admin import EndOffsetLookup

END_OFFSET_INTERVAL_S = 0.005  # at most this often, look up end offsets again for held AD1s
END_OFFSET_WAIT_S = 0.02  # after reading a batch, wait at most this long for its end-offset look-up


class EndOffsetWatch:
    def __init__(
        self, lookup: EndOffsetLookup, frontier: ReadFrontier, broker_answered: Callable[[], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:  # fmt: skip
        """`broker_answered` runs when a look-up returns, before the frontier takes its offsets."""
        self.lookup = lookup
        self._clock = clock
        self._frontier = frontier
        self._broker_answered = broker_answered
        self._last_start = 0.0

    def poll(self) -> None:
        """Hand a finished look-up to the frontier."""
        result = self.lookup.poll()
        if result is not None:
            self._broker_answered()
            ends, tag = result
            self._frontier.set_end_offsets(ends, reads_before=tag)

    def await_covering(self, read_seq: int) -> None:
        """End offsets looked up after batch `read_seq` was read, waited for at most END_OFFSET_WAIT_S (about
        a millisecond on a healthy broker): with them, the AD1s of the batch just read are decided as they
        are triaged, instead of one transaction later, live and in a backlog alike."""
        deadline = self._clock.monotonic() + END_OFFSET_WAIT_S
        while not self._frontier.covers(read_seq):
            if self.lookup.can_start():
                self._last_start = self._clock.monotonic()
                self.lookup.start(self._frontier.partitions, tag=read_seq + 1)
            elif not self.lookup.in_flight:
                return  # backing off after a failed look-up; `request_if_held` retries
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return
            self.lookup.settle(remaining)
            self.poll()
            if self.lookup.in_flight:
                return  # not answered within the wait

    def request_if_held(self, held_seq: int | None, read_seq: int) -> None:
        """Start a look-up covering batches up to `read_seq` if an AD1 read in batch `held_seq` waits for it."""
        if held_seq is None or self._frontier.covers(held_seq) or not self.lookup.can_start():
            return
        now = self._clock.monotonic()
        if now - self._last_start >= END_OFFSET_INTERVAL_S:
            self._last_start = now
            self.lookup.start(self._frontier.partitions, tag=read_seq + 1)
