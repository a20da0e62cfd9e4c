"""Dead letters of the state topics, without a broker: workers that all record the same bad records write
each exactly once between them, however the alert partitions are split, and never again once the group's
committed offset has passed them (or after a handover)."""

from collections.abc import Iterable

from confluent_kafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.read_frontier import Partition
from pipeline.wire.avro_codec import AvroCodec
from pipeline.worker.dead_letter_ownership import BAD_RECORD, DeadLetterOwnership, record_bad
from pipeline.worker.metrics import WorkerMetrics

CODEC = AvroCodec()
ALERT_PARTITIONS = 4
STATE_PARTITIONS: list[Partition] = [(t, p) for t, n in (("requests", 3), ("outcomes", 2), ("inventory", 5),
                                                         ("tracked", 1)) for p in range(n)]  # fmt: skip
BAD = {tp: [1, 4, 5] for tp in STATE_PARTITIONS}  # offsets of the bad records of every partition
POSITIONS = {tp: 10 for tp in STATE_PARTITIONS}


class Group:
    """The alert consumer group's committed offsets, as the transactions leave them."""

    def __init__(self) -> None:
        self.offsets: dict[Partition, int] = {}

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), -1001))
                for tp in partitions]  # fmt: skip

    def commit(self, offsets: Iterable[TopicPartition]) -> None:
        for tp in offsets:
            self.offsets[(tp.topic, tp.partition)] = tp.offset


def worker(group: Group, alert_partitions: Iterable[int], state: FilterState | None = None) -> DeadLetterOwnership:
    """A worker whose state reader has read every state partition to POSITIONS, meeting every bad record."""
    state = state or FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    for (topic, partition), offsets in BAD.items():
        for offset in offsets:
            record_bad(state, (topic, partition, offset), b"k" if offset % 2 else None, b"bad", f"error {offset}")
    owner = DeadLetterOwnership(state, CODEC, "dead-letters", WorkerMetrics(), group.committed)
    owner.assigned(list(alert_partitions))
    return owner


def run_transaction(owner: DeadLetterOwnership, group: Group, committed: bool = True) -> list[tuple[str, int, int]]:
    records, offsets = owner.due(POSITIONS, transaction_anyway=False)
    if committed:
        group.commit(offsets)
    owner.settled(committed if records or offsets else None)
    letters = [CODEC.decode("DeadLetter", value) for _, _, value in records] if committed else []
    return [(d["source_topic"], d["partition"], d["offset"]) for d in letters]


@given(st.lists(st.integers(0, 2), min_size=ALERT_PARTITIONS, max_size=ALERT_PARTITIONS))
def test_workers_splitting_the_alert_partitions_write_every_bad_state_record_once(split: list[int]) -> None:
    group = Group()
    workers = [worker(group, [q for q, w in enumerate(split) if w == n]) for n in range(3)]
    written = [letter for _ in range(2) for w in workers for letter in run_transaction(w, group)]
    expected = [(t, p, o) for (t, p), offsets in BAD.items() for o in offsets]
    assert sorted(written) == sorted(expected)


def test_a_new_owner_or_a_rebuilt_worker_writes_nothing_the_group_has_committed() -> None:
    group = Group()
    first = run_transaction(worker(group, range(ALERT_PARTITIONS)), group)
    assert len(first) == sum(map(len, BAD.values()))
    assert run_transaction(worker(group, range(ALERT_PARTITIONS)), group) == []  # state rebuilt, all met again


def test_a_failed_transaction_is_written_again_and_pruning_waits_for_the_commit() -> None:
    group, state = Group(), FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    owner = worker(group, range(ALERT_PARTITIONS), state)
    assert run_transaction(owner, group, committed=False) == []
    assert len(list(state.meta_items(BAD_RECORD))) == sum(map(len, BAD.values()))
    assert len(run_transaction(owner, group)) == sum(map(len, BAD.values()))
    assert list(state.meta_items(BAD_RECORD)) == []


def test_a_worker_without_alert_partitions_writes_nothing() -> None:
    group = Group()
    assert run_transaction(worker(group, []), group) == []
    assert group.offsets == {}


def test_after_a_handover_the_new_owner_writes_only_what_the_old_one_did_not() -> None:
    group = Group()
    old, new = worker(group, [0, 1]), worker(group, [2, 3])
    assert len(run_transaction(old, group)) == sum(map(len, BAD.values()))
    old.revoked([0])
    new.assigned([0])
    assert run_transaction(new, group) == [] and run_transaction(old, group) == []
