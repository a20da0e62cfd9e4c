"""A clock the test moves (Kafka Streams' MockTime): the worker's loop reads only this."""

import time


class FakeClock:
    def __init__(self, wall_ms: int | None = None) -> None:
        """Starts at `wall_ms` (default: the real time once, so event times near it are not outliers)."""
        self._wall_ms = time.time_ns() // 1_000_000 if wall_ms is None else wall_ms
        self._monotonic = 1_000.0

    def monotonic(self) -> float:
        return self._monotonic

    def wall_ms(self) -> int:
        return self._wall_ms + int((self._monotonic - 1_000.0) * 1000)

    def sleep(self, seconds: float) -> None:
        """A loop that waits for time to pass moves it, as MockTime.sleep does: no real wait."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
