"""The progress line: rows, rate and time left on a terminal, redrawn in place; nothing at all in a pipe."""

import io
import os

import pytest

from pipeline.tools.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drawn(screen: Terminal) -> list[str]:
    """Each redraw of the line, without the carriage return and clear-to-end codes."""
    return [part.replace("\x1b[K", "") for part in screen.getvalue().split("\r") if part]


def test_on_a_terminal_it_shows_rows_rate_share_and_time_left_and_ends_with_the_total():
    screen, clock = Terminal(), Clock()
    with Progress("load big.csv", total=10_000, stream=screen, clock=clock) as progress:
        clock.now += 2
        progress.update(2_500)
        clock.now += 0.1
        progress.update(2_600)  # within half a second of the last draw: not redrawn
        clock.now += 2
        progress.update(5_000)
        clock.now += 1
        progress.finish(10_000)
    assert drawn(screen) == [
        "load big.csv: 2,500 rows, 1,250 rows/s, 25% of 10,000, 6s left",
        "load big.csv: 5,000 rows, 1,220 rows/s, 50% of 10,000, 4s left",
        "load big.csv: 10,000 rows, 1,961 rows/s, 5s\n",
    ]


def test_without_a_total_it_shows_rows_and_rate_only_and_long_waits_in_minutes_and_hours():
    screen, clock = Terminal(), Clock()
    with Progress("play scenario", stream=screen, clock=clock) as progress:
        clock.now += 1
        progress.update(10)
    with Progress("load", total=1_000_000, stream=screen, clock=clock) as slow:
        clock.now += 100
        slow.update(100)
        clock.now += 20
        slow.update(10_000)
    assert drawn(screen) == [
        "play scenario: 10 rows, 10 rows/s\n",
        "load: 100 rows, 1 rows/s, 0% of 1,000,000, 277h45m left",
        "load: 10,000 rows, 83 rows/s, 1% of 1,000,000, 3h18m left\n",
    ]


def test_the_line_is_ended_when_the_work_fails():
    screen, clock = Terminal(), Clock()
    with pytest.raises(RuntimeError), Progress("load", stream=screen, clock=clock) as progress:
        clock.now += 1
        progress.update(1)
        raise RuntimeError("broker gone")
    assert screen.getvalue().endswith("\n")


def test_in_a_pipe_it_writes_nothing():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reader, os.fdopen(write_end, "w") as pipe:
        clock = Clock()
        with Progress("load", total=10, stream=pipe, clock=clock) as progress:
            assert not progress.active
            for n in range(10):
                clock.now += 1
                progress.update(n)
            progress.finish(10)
        pipe.write("end")
        pipe.close()
        assert reader.read() == b"end"
