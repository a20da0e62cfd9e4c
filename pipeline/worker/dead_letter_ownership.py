"""Dead letters of the state topics, written exactly once whatever the number of workers (contract 6).

Every worker reads every state partition (a global table), so every worker meets every bad state record.
Each records the bad records it reads in its local state (`dl/` meta keys, in the same write batch as
the state and read positions), and only one worker writes them: the worker that owns alert partition 0.
The group gives every alert partition exactly one owner, and partition 0 exists whatever the partition
count, so every worker agrees on it even while partitions are added to the alert topic (a hash of (T, p)
modulo the count would let two workers briefly disagree). Bad records are rare: one writer is enough.

How far a state partition is dead-lettered is the alert consumer group's committed offset of (T, p),
sent with `send_offsets_to_transaction` in the transaction that writes those dead letters, with the
alert consumer's group metadata: a zombie owner's transaction is fenced (KIP-447), and a new owner, a
restarted worker or one that rebuilt its state from the topics writes only the recorded bad records at
or past that offset. Committed offsets of topics the group does not subscribe to are allowed (the
coordinator checks the generation, not the subscription).
"""

import logging
import struct
from collections.abc import Callable, Collection, Iterable, Mapping

from confluent_kafka import KafkaException, TopicPartition

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.filter_state import FilterState
from pipeline.core.read_frontier import Partition
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Output
from pipeline.wire.schema_registry import SchemaRegistryError
from pipeline.worker.dead_letters import dead_letter_record
from pipeline.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

BAD_RECORD = "dl/"  # meta key prefix: dl/<topic>/<partition>/<offset, 20 digits> -> the bad record
PRUNE_INTERVAL_S = 300.0  # how often recorded bad records below the group's offsets leave the local state
LOOKUP_TIMEOUT_S = 5.0
OWNING_ALERT_PARTITION = 0
_LENGTHS = struct.Struct(">ii")  # key and value lengths, -1 for None


def record_bad(state: FilterState, source: tuple[str, int, int], key: bytes | None, value: bytes | None,
               error: str) -> None:  # fmt: skip
    """Stage a bad state record (topic, partition, offset) with the state read beside it."""
    topic, partition, offset = source
    lengths = _LENGTHS.pack(-1 if key is None else len(key), -1 if value is None else len(value))
    state.put_meta(_key(topic, partition, offset), lengths + (key or b"") + (value or b"") + error.encode())


def _key(topic: str, partition: int, offset: int) -> str:
    return f"{BAD_RECORD}{topic}/{partition}/{offset:020d}"


def _unpack(raw: bytes) -> tuple[bytes | None, bytes | None, str]:
    key_len, value_len = _LENGTHS.unpack_from(raw)
    at = _LENGTHS.size
    key = None if key_len < 0 else raw[at : at + key_len]
    at += max(key_len, 0)
    value = None if value_len < 0 else raw[at : at + value_len]
    at += max(value_len, 0)
    return key, value, raw[at:].decode()


class DeadLetterOwnership:
    """Whether this worker dead-letters the state topics, how far the group has dead-lettered each state
    partition, and the dead letters and offsets for the next transaction."""

    def __init__(
        self,
        state: FilterState,
        codec: AvroCodec,
        dead_letter_topic: str,
        metrics: WorkerMetrics,
        committed: Callable[[list[TopicPartition], float], list[TopicPartition]],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`committed` fetches the alert group's committed offsets (the alert consumer's `committed`; it may
        raise KafkaException)."""
        self._state = state
        self._codec = codec
        self._topic = dead_letter_topic
        self._metrics = metrics
        self._committed = committed
        self._owner = False  # alert partition 0 is assigned to this worker
        self._done: dict[Partition, int] = {}  # state partition -> the group's committed offset, once looked up
        self._in_flight: dict[Partition, tuple[int, int]] = {}  # offset sent, dead letters written
        self._clock = clock
        self._last_prune = clock.monotonic()

    def assigned(self, partitions: Collection[int]) -> None:
        if OWNING_ALERT_PARTITION in partitions:
            self._owner = True
            self._done.clear()  # another owner may have moved the group's offsets since: look them up

    def revoked(self, partitions: Collection[int]) -> None:
        """Runs after the transaction in flight is settled: nothing of these partitions is under way."""
        if OWNING_ALERT_PARTITION in partitions:
            self.revoked_all()

    def revoked_all(self) -> None:
        """No longer the owner (or the alert consumer was replaced: its successor is assigned afresh)."""
        self._owner = False
        self._done.clear()

    def due(
        self, positions: Mapping[Partition, int], transaction_anyway: bool
    ) -> tuple[list[Output], list[TopicPartition]]:
        """The dead letters of the state partitions read since the group's committed offsets, and the offsets
        that record them (nothing unless this worker is the owner). With `transaction_anyway` (alerts
        decided), every state partition read further is committed; otherwise offsets come only with dead
        letters, so state traffic alone starts no transaction. What is returned must go in the next
        transaction, and its outcome be told to `settled`."""
        assert not self._in_flight, "settle the transaction in flight first"
        if not self._owner or not self._looked_up(positions):
            return [], []
        records: list[Output] = []
        offsets: list[TopicPartition] = []
        for (topic, partition), done in self._done.items():
            position = positions.get((topic, partition), 0)
            if position <= done:
                continue
            try:
                letters = self._dead_letters(topic, partition, done, position)
            except SchemaRegistryError as exc:
                log.warning("dead letters of %s[%d] wait for the schema registry: %s", topic, partition, exc)
                continue
            if letters or transaction_anyway:
                records += letters
                offsets.append(TopicPartition(topic, partition, position))
                self._in_flight[(topic, partition)] = (position, len(letters))
        return records, offsets

    def settled(self, committed: bool | None) -> None:
        """The outcome of the transaction that carried `due`'s records (None: there was none)."""
        in_flight, self._in_flight = self._in_flight, {}
        if not committed:  # aborted: the group's offsets did not move; fenced: the partitions move, see `revoked`
            return
        for (topic, partition), (offset, letters) in in_flight.items():
            if (topic, partition) in self._done:  # not forgotten meanwhile (an assignment during the commit)
                self._done[(topic, partition)] = offset
            if letters:
                self._prune(topic, partition, offset)
                self._metrics.dead_letters.labels(topic).inc(letters)

    def prune_if_due(self, state_partitions: Iterable[Partition]) -> None:
        """Now and then, drop the recorded bad records below the group's committed offsets, on every worker
        (never needed for correctness: they are never written again)."""
        now = self._clock.monotonic()
        if now - self._last_prune < PRUNE_INTERVAL_S or next(self._state.meta_items(BAD_RECORD), None) is None:
            return
        self._last_prune = now
        try:
            committed = self._committed([TopicPartition(t, p) for t, p in state_partitions], LOOKUP_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("looking up dead-lettered offsets to prune: %s", exc)
            return
        for tp in committed:
            if tp.error is None and tp.offset > 0:
                self._prune(tp.topic, tp.partition, tp.offset)

    def _looked_up(self, positions: Mapping[Partition, int]) -> bool:
        """The group's committed offsets of the state partitions not looked up since this worker became the
        owner (all of them then; later, partitions added to a state topic)."""
        missing = [TopicPartition(t, p) for t, p in positions if (t, p) not in self._done]
        if not missing:
            return True
        try:
            committed = self._committed(missing, LOOKUP_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("looking up how far the state topics are dead-lettered: %s", exc)
            return False
        errors = [tp.error for tp in committed if tp.error is not None]
        if errors:
            log.warning("looking up how far the state topics are dead-lettered: %s", errors[0])
            return False
        self._done.update({(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed})
        return True

    def _dead_letters(self, topic: str, partition: int, start: int, end: int) -> list[Output]:
        letters = []
        for name, raw in self._state.meta_items(f"{BAD_RECORD}{topic}/{partition}/"):
            offset = int(name.rsplit("/", 1)[1])
            if start <= offset < end:
                key, value, error = _unpack(raw)
                letters.append(dead_letter_record(self._codec, self._topic, (topic, partition, offset), key, value,
                                                  error))  # fmt: skip
        return letters

    def _prune(self, topic: str, partition: int, below: int) -> None:
        """Staged: durable with the next state commit."""
        for name, _ in self._state.meta_items(f"{BAD_RECORD}{topic}/{partition}/"):
            if int(name.rsplit("/", 1)[1]) >= below:
                break
            self._state.delete_meta(name)
