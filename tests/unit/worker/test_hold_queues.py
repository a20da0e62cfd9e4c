"""The alerts held for the activation inputs (rule 7) are released in bounded passes (issue 20)."""

from pipeline.worker.hold_queues import PartitionQueues


def test_a_release_decides_at_most_its_budget_in_offset_order_and_the_rest_in_the_next_passes() -> None:
    queues: PartitionQueues[tuple[int, int]] = PartitionQueues()
    queues.assigned([0, 1, 2])
    for p in (0, 1, 2):
        queues._queues[p].extend((p, offset) for offset in range(10_000))
    decided: list[tuple[int, int]] = []

    def decide(item: tuple[int, int]) -> bool:
        decided.append(item)
        return True

    passes = []
    while sum(queues.sizes().values()):
        before = len(decided)
        queues.release(decide, budget=4_000)
        passes.append(len(decided) - before)
    assert passes == [4_000] * 7 + [2_000], "each pass within its budget, every alert released"
    assert sorted(decided) == [(p, offset) for p in (0, 1, 2) for offset in range(10_000)], "each exactly once"
    for p in (0, 1, 2):
        assert [o for q, o in decided if q == p] == list(range(10_000)), "in offset order within a partition"
    first_pass = {p for p, _ in decided[:4_000]}
    assert len(first_pass) == 1 and decided[4_000][0] != decided[0][0], "the partitions take turns at coming first"


def test_a_release_stops_a_partition_at_the_first_alert_that_must_wait() -> None:
    queues: PartitionQueues[int] = PartitionQueues()
    queues.assigned([0])
    queues._queues[0].extend(range(5))
    queues.release(lambda offset: offset < 2)
    assert queues.sizes() == {0: 3}
