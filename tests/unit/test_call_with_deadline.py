"""The deadline the worker puts around transactional calls that librdkafka may block past their timeout."""

import threading

import pytest

from pipeline.worker import TransactionStuck, call_with_deadline


def test_a_call_that_returns_in_time_is_waited_for() -> None:
    seen = []
    call_with_deadline(lambda: seen.append("done"), 5, "quick")
    assert seen == ["done"]


def test_the_calls_own_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("from the client")

    with pytest.raises(ValueError, match="from the client"):
        call_with_deadline(fail, 5, "failing")


def test_a_call_that_blocks_past_the_deadline_is_abandoned() -> None:
    release = threading.Event()
    with pytest.raises(TransactionStuck, match="blocked did not return within 0s"):
        call_with_deadline(lambda: release.wait(10) and None, 0.2, "blocked")
    release.set()
