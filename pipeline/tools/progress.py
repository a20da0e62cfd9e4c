"""Progress of a long write (loaders, simulator) for a person at a terminal: rows, rate and, when the total is
known, time left, redrawn on one line of stderr. Silent when stderr is a pipe or a file, so logs stay clean."""

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

_CLEAR_TO_END = "\x1b[K"


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


class Progress:
    """`update(done)` as the work goes, `finish(done)` at the end; use as a context manager so the line is ended
    even when the work fails. Redraws at most every `every_s` seconds, and never when `active` is false."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 0.5,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.active = self.stream.isatty()
        self._clock = clock
        self._every_s = every_s
        self._started = clock()
        self._drawn_at = self._started
        self._open_line = False
        self.done = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def update(self, done: int) -> None:
        if not self.active:
            return
        self.done = done
        now = self._clock()
        if now - self._drawn_at >= self._every_s:
            self._draw(done, now, finished=False)

    def finish(self, done: int | None = None) -> None:
        """The final line (rows, default the last update's, rate, elapsed time), ended with a newline."""
        if self.active:
            self._draw(self.done if done is None else done, self._clock(), finished=True)
            self.__exit__(None, None, None)

    def _line(self, done: int, now: float, finished: bool) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = done / elapsed
        text = f"{self.label}: {done:,} rows, {rate:,.0f} rows/s"
        if finished:
            return f"{text}, {_duration(elapsed)}"
        if self.total:
            share = min(done / self.total, 1.0)
            left = f", {_duration((self.total - done) / rate)} left" if rate > 0 and done < self.total else ""
            text = f"{text}, {share:.0%} of {self.total:,}{left}"
        return text

    def _draw(self, done: int, now: float, finished: bool) -> None:
        self.stream.write(f"\r{self._line(done, now, finished)}{_CLEAR_TO_END}")
        self.stream.flush()
        self._drawn_at = now
        self._open_line = True
