"""A Kafka transaction's commit, on a helper thread and under our own deadline.

Two reasons for the thread. Throughput: sending the offsets and committing are broker round trips (about
a quarter of the loop's time at full speed, measured); on a helper thread they overlap with reading and
triaging the next alerts. Safety: after a broker restart, librdkafka 2.16's `send_offsets_to_transaction`
was seen blocking for minutes past its own timeout (cf. confluentinc/librdkafka#5456); the call cannot be
cancelled, but the loop can stop waiting, fence that producer with a new one, and carry on.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

log = logging.getLogger(__name__)

TXN_TIMEOUT_S = 20.0  # librdkafka's own timeout for each transactional call
TXN_DEADLINE_S = TXN_TIMEOUT_S + 10  # ours, for the whole commit: librdkafka can block past its timeout


class TransactionStuck(Exception):
    """The commit did not finish within the deadline."""


class PendingCommit:
    """One transaction from `start` to the end of its commit, with its decisions for the metrics (counted
    only once it is committed)."""

    def __init__(
        self,
        tally: Counter[tuple[str, str, str]],
        latencies: Counter[float],
        deadline_s: float = TXN_DEADLINE_S,
        expired: Counter[str] | None = None,
        evidence_latencies: Counter[float] | None = None,
    ) -> None:
        """`latencies` and `evidence_latencies` (AD1s decided after waiting for evidence): decided alerts by the
        monotonic time they were read."""
        self.tally = tally
        self.latencies = latencies
        self.evidence_latencies = evidence_latencies or Counter()
        self.expired = expired or Counter()
        self._deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        self._done = threading.Event()
        self._error: BaseException | None = None

    def failed(self, error: BaseException) -> None:
        """The transaction failed before its commit started (begin or produce)."""
        self._error = error
        self._done.set()

    def start(
        self,
        producer: Producer,
        offsets: list[TopicPartition],
        group_metadata: Any,
        stopping: Callable[[], bool],
    ) -> None:
        """Send the consumer offsets (if any) and commit, retrying what librdkafka calls retriable."""

        def commit() -> None:
            try:
                if offsets:
                    producer.send_offsets_to_transaction(offsets, group_metadata, TXN_TIMEOUT_S)
                while True:
                    try:
                        producer.commit_transaction(TXN_TIMEOUT_S)
                        return
                    except KafkaException as exc:
                        err: KafkaError = exc.args[0]
                        if not err.retriable() or stopping():
                            raise
                        log.warning("transaction commit will be retried: %s", err)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread by wait()
                self._error = exc
            finally:
                self._done.set()

        self._deadline = time.monotonic() + self._deadline_s
        threading.Thread(target=commit, name="transaction-commit", daemon=True).start()

    def wait(self) -> None:
        """Return once committed; raise the commit's error, or TransactionStuck past the deadline."""
        if not self._done.wait(max(self._deadline - time.monotonic(), 0.0)):
            raise TransactionStuck(f"the transaction commit did not finish within {self._deadline_s:.0f}s")
        if self._error is not None:
            raise self._error
