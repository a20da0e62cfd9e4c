"""Contract 5.7: an AD1 at event time t waits until every service-request and outcome partition has been
read past t (a record with received_at > t) or read to an end offset looked up after the alert was read.

An alert is identified by its read sequence number `seq`; an end-offset snapshot taken after the alert
with sequence number n was read covers alerts with seq <= n (`reads_before=n + 1`).
"""

import pytest

from pipeline.core.read_frontier import Partition, ReadFrontier

SR0: Partition = ("dsp.service-requests", 0)
SR1: Partition = ("dsp.service-requests", 1)
OUT0: Partition = ("dsp.activation-outcomes", 0)
ALL = (SR0, SR1, OUT0)

T = 1_717_200_000_000  # the alert's event time
SEQ = 7  # the alert's read sequence number
AFTER_THE_ALERT = SEQ + 1  # `reads_before` of a snapshot taken after the alert was read
BEFORE_THE_ALERT = SEQ


def frontier(start: dict[Partition, int] | None = None) -> ReadFrontier:
    f = ReadFrontier()
    f.track(ALL, start or {})
    return f


def read(f: ReadFrontier, partition: Partition, *event_times: int | None) -> None:
    """Read records with these event times (None: dead-lettered) at the partition's next offsets."""
    for event_time in event_times:
        f.observe(partition, f.next_offsets()[partition], event_time)


def read_past_t(f: ReadFrontier, *partitions: Partition) -> None:
    for p in partitions:
        read(f, p, T - 5, T + 1)


def test_nothing_read_blocks_on_every_partition() -> None:
    f = frontier()
    assert not f.may_decide(T, SEQ)
    assert sorted(f.lagging(T, SEQ)) == sorted(ALL)


def test_read_past_t_on_every_partition_unblocks() -> None:
    f = frontier()
    read_past_t(f, *ALL)
    assert f.may_decide(T, SEQ)
    assert f.lagging(T, SEQ) == []


@pytest.mark.parametrize(
    ("last_event_time", "unblocks"),
    [
        pytest.param(T - 1, False, id="earlier record"),
        pytest.param(T, False, id="equal received_at"),
        pytest.param(T + 1, True, id="1 ms later"),
    ],
)
def test_only_a_strictly_later_record_moves_a_partition_past_t(last_event_time: int, unblocks: bool) -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 10, last_event_time)
    assert f.may_decide(T, SEQ) is unblocks
    assert f.lagging(T, SEQ) == ([] if unblocks else [SR1])


def test_record_out_of_received_at_order_does_not_move_the_clock_back() -> None:
    f = frontier()
    read_past_t(f, *ALL)
    read(f, SR1, T - 60_000)
    assert f.clock(SR1) == T + 1
    assert f.may_decide(T, SEQ)


def test_dead_lettered_record_moves_the_offset_but_not_the_clock() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 1, None)  # the dead-lettered record would have been past t
    assert (f.clock(SR1), f.next_offsets()[SR1]) == (T - 1, 2)
    assert f.lagging(T, SEQ) == [SR1]
    f.set_end_offsets({SR0: 2, SR1: 2, OUT0: 2}, reads_before=AFTER_THE_ALERT)
    assert f.may_decide(T, SEQ)


@pytest.mark.parametrize(
    ("reads_before", "sr1_read", "unblocks"),
    [
        pytest.param(AFTER_THE_ALERT, 3, True, id="snapshot after the alert, read to the end"),
        pytest.param(AFTER_THE_ALERT + 5, 4, True, id="later snapshot, read beyond its end"),
        pytest.param(AFTER_THE_ALERT, 2, False, id="snapshot after the alert, one record short"),
        pytest.param(BEFORE_THE_ALERT, 3, False, id="snapshot before the alert, read to its end"),
    ],
)
def test_partition_read_to_an_end_offset_snapshot_taken_after_the_alert_is_caught_up(
    reads_before: int, sr1_read: int, unblocks: bool
) -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, *[T - 100 + i for i in range(sr1_read)])
    f.set_end_offsets({SR0: 2, SR1: 3, OUT0: 2}, reads_before=reads_before)
    assert f.may_decide(T, SEQ) is unblocks
    assert f.lagging(T, SEQ) == ([] if unblocks else [SR1])


def test_snapshot_covers_only_alerts_read_before_it() -> None:
    f = frontier()
    f.set_end_offsets(dict.fromkeys(ALL, 0), reads_before=AFTER_THE_ALERT)
    assert (f.may_decide(T, SEQ), f.may_decide(T, SEQ + 1)) == (True, False)


def test_empty_partitions_are_caught_up_once_a_snapshot_after_the_alert_says_so() -> None:
    f = frontier()
    assert not f.may_decide(T, SEQ)
    f.set_end_offsets(dict.fromkeys(ALL, 0), reads_before=AFTER_THE_ALERT)
    assert f.may_decide(T, SEQ)


def test_resumed_partition_at_its_end_offset_is_caught_up() -> None:
    f = frontier(start={SR0: 10, SR1: 4, OUT0: 0})
    f.set_end_offsets({SR0: 10, SR1: 5, OUT0: 0}, reads_before=AFTER_THE_ALERT)
    assert f.lagging(T, SEQ) == [SR1]
    f.observe_position(SR1, 5)  # e.g. a transaction marker or compacted-away record
    assert f.may_decide(T, SEQ)


def test_partitions_past_t_and_caught_up_partitions_combine() -> None:
    f = frontier()
    read_past_t(f, SR0)  # offsets 0-1, past t
    read(f, SR1, T - 3, T - 2)  # offsets 0-1, at its end
    f.set_end_offsets({SR0: 50, SR1: 2, OUT0: 0}, reads_before=AFTER_THE_ALERT)
    assert f.may_decide(T, SEQ)


def test_partition_first_seen_in_a_record_blocks_until_read_past_t() -> None:
    f = frontier()
    read_past_t(f, *ALL)
    extra: Partition = ("dsp.service-requests", 2)
    f.observe(extra, 0, T)
    assert f.lagging(T, SEQ) == [extra]


def test_partition_absent_from_the_snapshot_is_not_caught_up() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 2)
    f.set_end_offsets({SR0: 2, OUT0: 2}, reads_before=AFTER_THE_ALERT)  # no end offset known for SR1
    assert f.lagging(T, SEQ) == [SR1]
