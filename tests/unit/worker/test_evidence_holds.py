"""The held partitions' bookkeeping (issue 18, item 4): held AD1s decided out of order, the held offset
committed up to the first undecided one with the runs decided beyond it as its metadata, bounded, and a
partition read again deciding none of those twice."""

from collections.abc import Callable

import pytest
from confluent_kafka import Message, TopicPartition

from pipeline.wire.avro_codec import AvroCodec
from pipeline.worker import evidence_holds
from pipeline.worker.evidence_holds import EvidenceHolds, HeldAD1, decided_runs_of, held_record
from tests.unit.worker.kafka_stand_ins import NO_OFFSET

CODEC = AvroCodec()
HELD = "poa-filter.held-ad1s"
T = 1_772_323_200_000


def held_message(offset: int) -> Message:
    value = CODEC.encode("DeviceAlert", {
        "alert_id": f"a{offset}", "alert_code": "AD1", "device_id": "00-1B-C5-0C-00-00-00-01", "mpxn": None,
        "raised_at": None, "received_at": T + offset, "payload": None,
    })  # fmt: skip
    topic, key, record = held_record(HELD, b"k", value, 0, offset, T)
    return Message(topic=topic, partition=0, offset=offset, key=key, value=record)


def holds_reading(offsets: list[int], committed: TopicPartition | None = None) -> EvidenceHolds:
    holds = EvidenceHolds(CODEC)
    holds.assigned([0])
    holds.restore([committed or TopicPartition(HELD, 0, NO_OFFSET)])
    for offset in offsets:
        holds.add(held_message(offset), 1, 0.0)
    return holds


def decide_only(offsets: set[int], seen: list[int] | None = None) -> Callable[[HeldAD1], bool]:
    def decide(held: HeldAD1) -> bool:
        if seen is not None:
            seen.append(held.held_offset)
        return held.held_offset in offsets

    return decide


def test_the_offset_commits_up_to_the_first_undecided_with_the_runs_decided_beyond_it() -> None:
    """Offsets 1, 3, 5... are transaction markers: a run spans records read in a row, not adjacent offsets."""
    holds = holds_reading([0, 2, 4, 6, 8])
    holds.release(decide_only({2, 4, 8}))
    point, metadata = holds.commit_points()[0]
    assert point == 0 and decided_runs_of(point, metadata) == [(2, 4), (8, 8)]
    assert holds.count() == 2
    holds.release(decide_only({0}))
    point, metadata = holds.commit_points()[0]
    assert point == 6 and decided_runs_of(point, metadata) == [(8, 8)]
    assert holds.commit_points() == {}, "nothing decided since"


def test_a_partition_read_again_from_its_committed_offset_decides_only_the_others() -> None:
    first = holds_reading([0, 2, 4, 6])
    first.release(decide_only({2, 6}))
    point, metadata = first.commit_points()[0]

    seen: list[int] = []
    again = holds_reading([0, 2, 4, 6], TopicPartition(HELD, 0, point, metadata=metadata))
    again.release(decide_only({0, 2, 4, 6}, seen))
    assert sorted(set(seen)) == [0, 4], "the AD1s decided before are not offered again"
    assert again.commit_points() == {0: (7, "")}


def test_a_run_decided_before_and_read_in_part_is_committed_from_where_the_read_stopped() -> None:
    holds = holds_reading([0, 2], TopicPartition(HELD, 0, 0, metadata="poa-decided:2-6"))
    holds.release(decide_only({0}))
    assert holds.commit_points() == {0: (3, "poa-decided:0-3")}, "3 to 6 were decided before, not read yet"
    holds.add(held_message(4), 1, 0.0)
    holds.add(held_message(6), 1, 0.0)
    holds.add(held_message(8), 1, 0.0)
    seen: list[int] = []
    holds.release(decide_only({8}, seen))
    assert seen == [8] and holds.commit_points() == {0: (9, "")}


def test_the_metadata_is_bounded_an_ad1_beyond_it_waits_for_those_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence_holds, "DECIDED_RUNS_MAX", 2)
    holds = holds_reading([0, 1, 2, 3, 4, 5, 6])
    holds.release(decide_only({2, 4, 6}))
    point, metadata = holds.commit_points()[0]
    assert (point, decided_runs_of(point, metadata)) == (0, [(2, 2), (4, 4)]), "a third run would pass the bound"
    holds.release(decide_only({0, 1, 6}))
    point, metadata = holds.commit_points()[0]
    assert (point, decided_runs_of(point, metadata)) == (3, [(4, 4), (6, 6)])


def test_metadata_of_an_older_version_or_of_no_decision_names_nothing() -> None:
    assert decided_runs_of(5, "") == [] and decided_runs_of(5, None) == [] and decided_runs_of(NO_OFFSET, "x") == []
    assert decided_runs_of(5, "other tool's note") == []
    assert decided_runs_of(5, "poa-decided:1-x") == [], "unreadable: decided again rather than the worker stopped"
