"""The worker's transaction commit on a helper thread: errors reach the loop, retriable ones are retried,
and a commit that blocks past the deadline is abandoned. (The real producer is exercised by the
integration and fault suites; here a stand-in decides how each call behaves.)"""

import threading
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.worker.transactions import PendingCommit, TransactionStuck


class ScriptedProducer:
    """Answers commit_transaction with the scripted outcomes in turn (None: success)."""

    def __init__(self, outcomes: list[BaseException | None], block: threading.Event | None = None) -> None:
        self.outcomes = outcomes
        self.block = block
        self.calls: list[str] = []

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], metadata: Any, timeout: float) -> None:
        self.calls.append(f"offsets {[(tp.partition, tp.offset) for tp in offsets]}")

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        if self.block is not None:
            self.block.wait(10)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def pending(deadline_s: float = 5) -> PendingCommit:
    return PendingCommit(Counter(), Counter(), deadline_s=deadline_s)


def retriable() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))


def fatal() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


def test_offsets_are_sent_then_the_transaction_committed() -> None:
    producer = ScriptedProducer([None])
    commit = pending()
    commit.start(producer, [TopicPartition("alerts", 3, 42)], object(), lambda: False)  # type: ignore[arg-type]
    commit.wait()
    assert producer.calls == ["offsets [(3, 42)]", "commit"]


def test_without_offsets_only_the_commit_is_made() -> None:
    producer = ScriptedProducer([None])
    commit = pending()
    commit.start(producer, [], None, lambda: False)  # type: ignore[arg-type]
    commit.wait()
    assert producer.calls == ["commit"]


def test_a_retriable_commit_error_is_retried() -> None:
    producer = ScriptedProducer([retriable(), retriable(), None])
    commit = pending()
    commit.start(producer, [], None, lambda: False)  # type: ignore[arg-type]
    commit.wait()
    assert producer.calls == ["commit"] * 3


def test_a_retriable_error_while_stopping_reaches_the_loop() -> None:
    producer = ScriptedProducer([retriable(), None])
    commit = pending()
    commit.start(producer, [], None, lambda: True)  # type: ignore[arg-type]
    with pytest.raises(KafkaException, match="timed out"):
        commit.wait()
    assert producer.calls == ["commit"]


def test_a_fatal_commit_error_reaches_the_loop() -> None:
    producer = ScriptedProducer([fatal()])
    commit = pending()
    commit.start(producer, [], None, lambda: False)  # type: ignore[arg-type]
    with pytest.raises(KafkaException, match="fenced"):
        commit.wait()


def test_a_failure_before_the_commit_reaches_the_loop() -> None:
    commit = pending()
    commit.failed(fatal())
    with pytest.raises(KafkaException, match="fenced"):
        commit.wait()


def test_a_commit_blocked_past_the_deadline_is_abandoned() -> None:
    release = threading.Event()
    producer = ScriptedProducer([None], block=release)
    commit = pending(deadline_s=0.2)
    commit.start(producer, [], None, lambda: False)  # type: ignore[arg-type]
    with pytest.raises(TransactionStuck, match="did not finish within 0s"):
        commit.wait()
    release.set()
