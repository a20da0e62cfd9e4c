"""Contract 5.7: an AD1 at event time t waits until every service-request and outcome partition has been
read past t (records with received_at > t, corroborated by their neighbours and not far ahead of the wall
clock) or read to an end offset looked up after the alert was read.

An alert is identified by its read sequence number `seq`; an end-offset snapshot taken after the alert
with sequence number n was read covers alerts with seq <= n (`reads_before=n + 1`).
"""

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.read_frontier import CORROBORATING_RECORDS, DEFAULT_MAX_AHEAD_MS, Partition, ReadFrontier

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


def read(f: ReadFrontier, partition: Partition, *event_times: int | None, wall_clock: int | None = None) -> None:
    """Read records with these event times (None: dead-lettered) at the partition's next offsets."""
    for event_time in event_times:
        f.observe(partition, f.next_offsets()[partition], event_time, wall_clock)


def corroborated(event_time: int) -> list[int]:
    """Enough records at this time for the partition's clock to reach it."""
    return [event_time] * CORROBORATING_RECORDS


def read_past_t(f: ReadFrontier, *partitions: Partition) -> None:
    for p in partitions:
        read(f, p, T - 5, *corroborated(T + 1))


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
    read(f, SR1, T - 10, *corroborated(last_event_time))
    assert f.may_decide(T, SEQ) is unblocks
    assert f.lagging(T, SEQ) == ([] if unblocks else [SR1])


def test_record_out_of_received_at_order_does_not_move_the_clock_back() -> None:
    f = frontier()
    read_past_t(f, *ALL)
    read(f, SR1, *corroborated(T - 60_000))
    assert f.may_decide(T, SEQ)


def test_dead_lettered_record_moves_the_offset_but_not_the_clock() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 1, *[None] * CORROBORATING_RECORDS)  # the dead-lettered records would have been past t
    assert f.next_offsets()[SR1] == CORROBORATING_RECORDS + 1
    assert f.lagging(T, SEQ) == [SR1]
    ends = f.next_offsets()
    f.set_end_offsets(ends, reads_before=AFTER_THE_ALERT)
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
    f.set_end_offsets({**f.next_offsets(), SR1: 3}, reads_before=reads_before)
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
    read_past_t(f, SR0)  # past t
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
    ends = f.next_offsets()
    del ends[SR1]  # no end offset known for SR1
    f.set_end_offsets(ends, reads_before=AFTER_THE_ALERT)
    assert f.lagging(T, SEQ) == [SR1]


# --- outlying times (contract 6: an outlier never switches the ordering guard off) ------------------

EARLIEST = 946_684_800_000  # 2000-01-01
YEAR_2999 = 32_472_144_000_000  # 2999-01-01
WALL = T + 60_000  # the wall clock when the records are read


@pytest.mark.parametrize("wall_clock", [None, WALL], ids=["wall clock unknown", "wall clock known"])
def test_one_far_future_record_does_not_move_its_partition_past_t(wall_clock: int | None) -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 10, YEAR_2999, T - 9, T - 8, T - 7, wall_clock=wall_clock)
    assert f.lagging(T, SEQ) == [SR1]


def test_a_run_of_outliers_one_short_of_corroborating_each_other_does_not_move_the_clock() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 10, *[YEAR_2999] * (CORROBORATING_RECORDS - 1), T - 9, T - 8, T - 7)
    assert f.lagging(T, SEQ) == [SR1]
    read(f, SR1, *corroborated(T + 1))  # the in-order records catch up
    assert f.may_decide(T, SEQ)


def test_any_number_of_records_far_ahead_of_the_wall_clock_move_no_clock() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 10, *[YEAR_2999] * 50, wall_clock=WALL)
    assert f.lagging(T, SEQ) == [SR1]


def test_records_ahead_of_the_wall_clock_within_the_tolerance_count() -> None:
    f = frontier()
    for p in ALL:
        read(f, p, *corroborated(WALL + DEFAULT_MAX_AHEAD_MS), wall_clock=WALL)
    assert f.may_decide(WALL + DEFAULT_MAX_AHEAD_MS - 1, SEQ)
    for p in ALL:
        read(f, p, *corroborated(WALL + DEFAULT_MAX_AHEAD_MS + 1), wall_clock=WALL)
    assert not f.may_decide(WALL + DEFAULT_MAX_AHEAD_MS, SEQ)


@pytest.mark.parametrize("max_ahead_ms", [DEFAULT_MAX_AHEAD_MS, 400 * 86_400_000])
@pytest.mark.parametrize("batched", [False, True])
def test_a_record_more_than_the_setting_ahead_moves_no_clock_and_one_within_it_does(
    max_ahead_ms: int, batched: bool
) -> None:
    """POA_MAX_CLOCK_AHEAD_SECONDS (contract 6), at its default and raised for a replay of future-dated data."""
    for ahead, moves in [(max_ahead_ms, True), (max_ahead_ms + 1, False)]:
        f = ReadFrontier(max_ahead_ms)
        f.track([SR0], {})
        times = corroborated(WALL + ahead)
        if batched:
            f.observe_times(SR0, len(times), times, WALL)
        else:
            read(f, SR0, *times, wall_clock=WALL)
        assert f.clock(SR0) == (WALL + ahead if moves else None)
        assert f.next_offsets() == {SR0: CORROBORATING_RECORDS}


def test_a_far_past_record_delays_but_does_not_stop_the_clock() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 10, T + 1, EARLIEST, T + 2, T + 3, T + 4)
    assert f.lagging(T, SEQ) == [SR1]
    read(f, SR1, T + 5)  # the far-past record has left the last CORROBORATING_RECORDS
    assert f.may_decide(T, SEQ)


def test_a_caught_up_partition_is_decided_at_once_whatever_its_outliers() -> None:
    f = frontier()
    read_past_t(f, SR0, OUT0)
    read(f, SR1, T - 10, YEAR_2999)
    f.set_end_offsets(f.next_offsets(), reads_before=AFTER_THE_ALERT)
    assert f.may_decide(T, SEQ)


# --- the guard as a property over random partitions with injected outliers ---------------------

BASE = T - 1_000 * 60_000
READ_AT = BASE + 2_000 * 60_000  # the wall clock: every in-order record was received before it


@dataclass(frozen=True)
class Rec:
    time: int | None  # None: dead-lettered
    in_order: bool  # written in received_at order with the partition's other in-order records


def counts_towards_a_run(rec: Rec, lowest_in_order: int, wall_clock: int | None) -> bool:
    """An outlier that may be ahead of in-order records and that the frontier does not skip."""
    if rec.in_order or rec.time is None or rec.time < lowest_in_order:
        return False
    return wall_clock is None or rec.time <= wall_clock + DEFAULT_MAX_AHEAD_MS


@st.composite
def partition_records(draw: st.DrawFn, wall_clock: int | None) -> list[Rec]:
    """In-order records (sorted times, ties common) with outliers injected anywhere: far past ones, any
    number; outliers anywhere in the valid range, at most CORROBORATING_RECORDS - 1 in a row counting only
    those the frontier reads; and dead letters."""
    grid = st.integers(0, 400).map(lambda i: BASE + i * 5 * 60_000 + (i % 3 - 1))
    in_order = sorted(draw(st.lists(grid, min_size=1, max_size=25)))
    lowest = in_order[0]
    outlier = st.one_of(
        st.integers(EARLIEST, lowest - 1).map(lambda time: Rec(time, False)),
        st.integers(lowest, YEAR_2999).map(lambda time: Rec(time, False)),
        st.sampled_from([YEAR_2999, READ_AT + DEFAULT_MAX_AHEAD_MS, READ_AT + DEFAULT_MAX_AHEAD_MS + 1]).map(
            lambda time: Rec(time, False)
        ),
        st.just(Rec(None, False)),
    )
    records = [Rec(time, True) for time in in_order]
    for position, rec in draw(st.lists(st.tuples(st.integers(0, len(records)), outlier), max_size=15)):
        records.insert(min(position, len(records)), rec)
    kept, run = [], 0
    for rec in records:
        if counts_towards_a_run(rec, lowest, wall_clock):
            if run == CORROBORATING_RECORDS - 1:
                continue
            run += 1
        elif rec.in_order or (rec.time is not None and rec.time < lowest):
            run = 0  # a record at or below every in-order one breaks a run: a window holding it is safe
        kept.append(rec)
    return kept


@settings(max_examples=300, deadline=None)
@given(data=st.data(), wall_clock=st.sampled_from([None, READ_AT]))
def test_never_may_decide_t_while_an_in_order_record_at_or_before_t_is_unread(
    data: st.DataObject, wall_clock: int | None
) -> None:
    partitions: list[Partition] = [("dsp.service-requests", p) for p in range(data.draw(st.integers(1, 3)))]
    records = {p: data.draw(partition_records(wall_clock), label=f"partition {p}") for p in partitions}
    f = ReadFrontier()
    f.track(partitions, {})
    read_to = dict.fromkeys(partitions, 0)
    order = data.draw(st.lists(st.sampled_from(partitions), max_size=150), label="read order")
    for p in order:
        if read_to[p] < len(records[p]):
            f.observe(p, read_to[p], records[p][read_to[p]].time, wall_clock)
            read_to[p] += 1
        unread = [r.time for q in partitions for r in records[q][read_to[q] :] if r.in_order and r.time is not None]
        if unread:  # a decision at t allows every later t too, so the earliest unread time is the one to check
            assert not f.may_decide(min(unread), SEQ), f"may decide {min(unread)} with a record at it unread"


# --- a batch taken in one pass is the same as its records one by one --------------------------

OUTLYING = [READ_AT + DEFAULT_MAX_AHEAD_MS + 1, YEAR_2999]


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.one_of(st.none(), st.integers(BASE, READ_AT), st.sampled_from(OUTLYING)), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=10),
    wall_clock=st.sampled_from([None, READ_AT]),
)
def test_observe_times_gives_the_clock_of_observing_each_record(
    times: list[int | None], cuts: list[int], wall_clock: int | None
) -> None:
    """Whatever the batches, after each the clock and position equal those of a frontier fed record by record."""
    one_by_one, batched = ReadFrontier(), ReadFrontier()
    bounds = sorted({0, len(times), *(c for c in cuts if c <= len(times))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        for offset in range(start, end):
            one_by_one.observe(SR0, offset, times[offset], wall_clock)
        batched.observe_times(SR0, end, times[start:end], wall_clock)
        assert batched.clock(SR0) == one_by_one.clock(SR0)
        assert batched.next_offsets() == one_by_one.next_offsets()
