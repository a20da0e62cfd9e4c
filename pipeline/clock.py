"""The one clock the worker reads: monotonic seconds for pacing, bounds and latencies, wall-clock
milliseconds for what is compared with event times or stored (a held AD1's first read, a record's read time).

Passed into the worker and its parts, as Kafka Streams passes `Time` into `StreamThread`: production runs on
`SYSTEM_CLOCK`; a loop test gives a clock it moves itself, so nothing in the loop sleeps or needs patching.
Decisions never read it (contract 5: the wall clock ends waits, it never makes a decision). Real time is
kept by what waits on another thread or on a client's I/O (a transaction commit's deadline, start-up
retries, the tools' blocking look-ups) and by stamps no wait depends on (audit records' `decided_at`).
"""

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds, for intervals only."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the epoch (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass (a test's clock moves itself forward instead)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
