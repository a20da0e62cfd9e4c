"""AlertTriage in each operator mode (contract 8), on alert bytes as the DSP writes them: the fast path
(single-object encoding) and the generic path (Confluent framing, with the fake registry)."""

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.read_frontier import ReadFrontier
from pipeline.core.records import DeviceAlert
from pipeline.settings import Topics
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.control_records import CONTROL_KEY, encode_schedule
from pipeline.wire.schema_registry import SchemaRegistryClient
from pipeline.worker.evidence_holds import EvidenceHolds, EvidenceWait
from pipeline.worker.hold_queues import AlertQueues
from pipeline.worker.state_feed import StateFeed
from pipeline.worker.triage import AlertTriage, Decided
from tests.unit.wire.fake_registry import FakeRegistry, Serving
from tests.unit.worker.kafka_stand_ins import NO_OFFSET

TOPICS = Topics()
CODEC = AvroCodec()
T = 1_717_200_000_000
MIN = 60_000
ESME = "00-DB-12-34-56-78-90-A0"
CHF = "00-DB-12-34-56-78-90-C0"


def filter_state() -> FilterState:
    """A tracked ESME on CHF's HAN with an immediate activation at T: its window is [T, T + 30 min]."""
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    state.put_inventory(ESME, validation.inventory_record(
        {"device_id": ESME, "device_type": "ESME", "chf_id": CHF, "mpxn": None, "updated_at": T}
    ))  # fmt: skip
    state.put_tracked(ESME, listed=True)
    state.apply_service_request(validation.service_request(
        {"request_id": f"X:{ESME}:1", "service_reference_variant": "11.3", "target_device_id": ESME,
         "execution_datetime": None, "firmware_hash": None, "received_at": T}
    ))  # fmt: skip
    return state


def alert_datum(alert_id: str, received_at: int, code: str = "AD1") -> dict[str, Any]:
    return {"alert_id": alert_id, "alert_code": code, "device_id": CHF, "mpxn": None, "raised_at": None,
            "received_at": received_at, "payload": b"\x01\x02"}  # fmt: skip


def message(offset: int, value: bytes, key: bytes = CHF.encode()) -> Message:
    return Message(topic=TOPICS.alerts, partition=0, offset=offset, key=key, value=value)


def triage_with(schedule: ModeSchedule, codec: AvroCodec = CODEC) -> AlertTriage:
    triage = AlertTriage(TOPICS, codec, filter_state(), ReadFrontier(), AlertQueues(), 30.0, lambda: schedule)
    triage.holds.assigned([0])
    return triage


def decide(triage: AlertTriage, values: list[bytes]) -> list[tuple[str, bytes | None, bytes]]:
    triage.triage([message(i, v) for i, v in enumerate(values)], triage.next_read(), 0.0)
    triage.drain(0.0, hold_clock_stopped=False)
    return triage.take().records


def schedule(*changes: tuple[Mode, int]) -> ModeSchedule:
    return ModeSchedule.of(Mode.FILTER, [ModeChange(m, at, "test", "tester", i) for i, (m, at) in enumerate(changes)])


@pytest.fixture
def registry_codec() -> Iterator[AvroCodec]:
    serving = Serving(FakeRegistry())
    yield AvroCodec(registry=SchemaRegistryClient(f"http://127.0.0.1:{serving.port}"))
    serving.stop()


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
def test_each_ad1_is_decided_in_the_mode_in_force_at_its_own_time(framing: str, registry_codec: AvroCodec) -> None:
    """Filter until T+5, shadow from T+5, pass-through from T+10, filter again from T+15 (minutes): four AD1s
    inside the activation window, one at each change's own millisecond, and a non-AD1 in shadow mode."""
    codec = CODEC if framing == "single-object" else registry_codec
    times = [T + MIN, T + 5 * MIN, T + 10 * MIN, T + 15 * MIN]
    values = [codec.encode("DeviceAlert", alert_datum(f"a{i}", t), TOPICS.alerts) for i, t in enumerate(times)]
    values.append(codec.encode("DeviceAlert", alert_datum("other", T + 6 * MIN, "8F36"), TOPICS.alerts))
    triage = triage_with(
        schedule((Mode.SHADOW, T + 5 * MIN), (Mode.PASS_THROUGH, T + 10 * MIN), (Mode.FILTER, T + 15 * MIN)), codec
    )
    records = decide(triage, values)

    by_topic = [(topic, value) for topic, _, value in records]
    suppressed = [codec.decode("SuppressedAlert", v) for t, v in by_topic if t == TOPICS.suppressed]
    shadow = [codec.decode("SuppressedAlert", v) for t, v in by_topic if t == TOPICS.shadow]
    forwarded = [v for t, v in by_topic if t == TOPICS.dno_alerts]
    assert [s["alert"]["alert_id"] for s in suppressed] == ["a0", "a3"]
    assert [s["alert"]["alert_id"] for s in shadow] == ["a1"]
    assert shadow[0]["reason"] == "shadow: " + suppressed[0]["reason"]
    assert shadow[0]["esme_id"] == ESME and shadow[0]["activation_request_id"] == f"X:{ESME}:1"
    assert forwarded == [values[1], values[2], values[4]], "forwarded byte for byte, in offset order"
    assert all(key == CHF.encode() for _, key, _ in records)


def test_shadow_and_pass_through_are_counted_under_their_own_reasons() -> None:
    triage = triage_with(schedule((Mode.SHADOW, T), (Mode.PASS_THROUGH, T + 10 * MIN)))
    values = [CODEC.encode("DeviceAlert", alert_datum(f"a{i}", T + (1 + 10 * i) * MIN)) for i in range(2)]
    triage.triage([message(i, v) for i, v in enumerate(values)], triage.next_read(), 0.0)
    tally = triage.take().tally
    assert tally == {("forwarded", "AD1", "shadow"): 1, ("forwarded", "AD1", "pass_through"): 1}


def test_pass_through_forwards_decodable_alerts_and_dead_letters_bad_ones() -> None:
    triage = triage_with(ModeSchedule(Mode.PASS_THROUGH))
    good = CODEC.encode("DeviceAlert", alert_datum("a", T + MIN))
    bad = CODEC.encode("DeviceAlert", dict(alert_datum("b", T + MIN), device_id="not-a-device"))
    records = decide(triage, [good, bad])
    assert [(topic, value) for topic, _, value in records][0] == (TOPICS.dno_alerts, good)
    assert records[1][0] == TOPICS.dead_letter
    assert CODEC.decode("DeadLetter", records[1][2])["value"] == bad


def test_the_feed_keeps_the_last_good_schedule_and_a_restarted_worker_finds_it_in_its_state() -> None:
    state = filter_state()
    heard: list[ModeSchedule] = []
    feed = StateFeed(TOPICS, CODEC, state, Mode.SHADOW, heard.append)
    assert feed.schedule == ModeSchedule(Mode.SHADOW) and heard == [feed.schedule], "POA_INITIAL_MODE, said"
    good = schedule((Mode.PASS_THROUGH, T))
    value = encode_schedule(CODEC, good, TOPICS.control)
    assert feed.apply(TOPICS.control, CONTROL_KEY, value).error is None
    assert feed.apply(TOPICS.control, b"other", b"not the filter's").error is None, "other keys are passed over"
    bad = feed.apply(TOPICS.control, CONTROL_KEY, b"not a schedule")
    assert bad.error is not None, "a dead letter"
    assert feed.schedule.changes == good.changes and feed.schedule.mode_at(T) is Mode.PASS_THROUGH
    assert len(heard) == 2
    state.commit()

    restarted = StateFeed(TOPICS, CODEC, state, Mode.FILTER)
    assert restarted.schedule == ModeSchedule(Mode.FILTER, good.changes), "its own initial mode, the same changes"



HELD = "poa-filter.held-ad1s"


class Completeness:
    """Stands in for the evidence reader: whether every alert partition is read past t + A."""

    def __init__(self, complete: bool) -> None:
        self.policy = EvidencePolicy()
        self.is_complete = complete

    def complete(self, t: int) -> bool:
        return self.is_complete

    def ends_looked_up_after(self, wall_ms: int) -> bool:
        return True


def triage_with_evidence(schedule: ModeSchedule, complete: bool, state: FilterState | None = None) -> AlertTriage:
    evidence = EvidenceWait(Completeness(complete), EvidenceHolds(CODEC), HELD, max_wait_ms=3_600_000)
    triage = AlertTriage(TOPICS, CODEC, state or filter_state(), ReadFrontier(), AlertQueues(), 30.0,
                         lambda: schedule, evidence=evidence)  # fmt: skip
    triage.holds.assigned([0])
    return triage


def decided_ad1(triage: AlertTriage) -> tuple[bytes, Decided]:
    """An AD1 at T + 1 min, inside the activation window, triaged: its bytes, and what was decided."""
    value = CODEC.encode("DeviceAlert", alert_datum("a", T + MIN))
    triage.triage([message(0, value)], triage.next_read(), 0.0)
    triage.drain(0.0, hold_clock_stopped=False)
    return value, triage.take()


def test_in_filter_mode_an_ad1_in_a_window_waits_for_evidence() -> None:
    _, decided = decided_ad1(triage_with_evidence(schedule((Mode.FILTER, T)), complete=False))
    assert [topic for topic, _, _ in decided.records] == [HELD]
    assert decided.tally == {}


def test_in_shadow_mode_an_ad1_in_a_window_is_forwarded_at_once_and_waits_for_evidence_on_the_held_topic() -> None:
    """Shadow mode changes nothing a DNO sees (contract 8): the AD1 is not delayed by the wait for evidence;
    only its shadow record waits. It is counted once, when that is decided."""
    value, decided = decided_ad1(triage_with_evidence(schedule((Mode.SHADOW, T)), complete=False))
    assert [(topic, v) for topic, _, v in decided.records][0] == (TOPICS.dno_alerts, value)
    assert [topic for topic, _, _ in decided.records] == [TOPICS.dno_alerts, HELD]
    assert decided.tally == {}


def read_back(triage: AlertTriage, held: tuple[str, bytes | None, bytes], at_wall_ms: int) -> Decided:
    """The held record read back from held partition 0 (offset 0) and the held AD1s looked at."""
    holds = triage.evidence_holds
    holds.assigned([0])
    holds.restore([TopicPartition(HELD, 0, NO_OFFSET)])
    holds.add(Message(topic=HELD, partition=0, offset=0, key=held[1], value=held[2]), triage.next_read(), 0.0)
    triage.drain_held(at_wall_ms)
    return triage.take()


@pytest.mark.parametrize("evidence", [False, True], ids=["suppressed-by-the-rules", "released-by-evidence"])
def test_in_shadow_mode_a_held_ad1_forwarded_when_read_gets_its_shadow_record_at_most(evidence: bool) -> None:
    """Once its evidence is complete: the shadow record if rules 5 and 9 still suppress it, nothing if evidence
    releases it; never a second forward."""
    state = filter_state()
    triage = triage_with_evidence(schedule((Mode.SHADOW, T)), complete=False, state=state)
    _, decided = decided_ad1(triage)
    held = decided.records[1]
    triage._evidence.completeness.is_complete = True  # type: ignore[union-attr]  # the stand-in's
    if evidence:
        state.put_evidence_alert(DeviceAlert("restored", "8F35", ESME, None, None, T + 2 * MIN, None))
    later = read_back(triage, held, T)
    assert [topic for topic, _, _ in later.records] == ([] if evidence else [TOPICS.shadow])
    assert later.tally == {("forwarded", "AD1", "outage_evidence" if evidence else "shadow"): 1}
    assert later.held_offsets == {0: (1, "")}


def test_in_pass_through_mode_nothing_waits_for_evidence() -> None:
    value, decided = decided_ad1(triage_with_evidence(schedule((Mode.PASS_THROUGH, T)), complete=False))
    assert decided.records == [(TOPICS.dno_alerts, CHF.encode(), value)]
    assert decided.tally == {("forwarded", "AD1", "pass_through"): 1}


def test_in_shadow_mode_evidence_forwards_the_ad1_without_a_shadow_record() -> None:
    state = filter_state()
    state.put_evidence_alert(DeviceAlert("restored", "8F35", ESME, None, None, T + 2 * MIN, None))
    value, decided = decided_ad1(triage_with_evidence(schedule((Mode.SHADOW, T)), complete=False, state=state))
    assert decided.records == [(TOPICS.dno_alerts, CHF.encode(), value)]
    assert decided.tally == {("forwarded", "AD1", "outage_evidence"): 1}


def test_in_shadow_mode_an_ad1_without_evidence_is_recorded_once_its_evidence_is_complete() -> None:
    value, decided = decided_ad1(triage_with_evidence(schedule((Mode.SHADOW, T)), complete=True))
    assert [topic for topic, _, _ in decided.records] == [TOPICS.dno_alerts, TOPICS.shadow]
    assert decided.tally == {("forwarded", "AD1", "shadow"): 1}
