"""A schema registry that goes away (contract 6, issue 9 item 5), with the fake registry on a real local HTTP
server: the worker's parts neither crash nor dead-letter for it. A state record waits as long as it takes
(its partition paused at it, tried again); an alert waits at most the hold and is then forwarded as it
came; an audit or dead-letter record that cannot be encoded waits for the registry."""

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition

from pipeline.core.operating_mode import Mode, ModeSchedule
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.read_frontier import ReadFrontier
from pipeline.settings import Settings
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import RegistryUnavailable, SchemaRegistryClient
from pipeline.worker import state_feed
from pipeline.worker import triage as triage_module
from pipeline.worker.evidence_holds import EvidenceHolds, EvidenceWait, held_record
from pipeline.worker.evidence_reader import EvidenceReader
from pipeline.worker.hold_queues import AlertQueues
from pipeline.worker.metrics import Readiness, WorkerMetrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.state_feed import RegistryWaits, StateFeed
from pipeline.worker.state_reader import StateReader
from pipeline.worker.triage import AlertTriage
from tests.unit.wire.fake_registry import FakeRegistry, Serving
from tests.unit.worker.kafka_stand_ins import Cluster, StandInConsumer
from tests.unit.worker.test_triage_modes import CODEC, ESME, MIN, TOPICS, T, alert_datum, filter_state

HOLD_S = 30.0


@pytest.fixture
def serving() -> Iterator[Serving]:
    running = Serving(FakeRegistry())
    yield running
    if running.server is not None:
        running.stop()


def codec_of(serving: Serving) -> AvroCodec:
    """A codec with a registry client of its own: nothing cached (a worker that just started)."""
    return AvroCodec(registry=SchemaRegistryClient(f"http://127.0.0.1:{serving.port}", timeout=2))


class Worker:
    """The triage as the worker assembles it, with what it reports about the registry."""

    def __init__(self, codec: AvroCodec) -> None:
        self.reports: list[int] = []
        self.triage = AlertTriage(TOPICS, codec, filter_state(), ReadFrontier(), AlertQueues(), HOLD_S,
                                  lambda: ModeSchedule(Mode.FILTER), self.reports.append)  # fmt: skip
        self.triage.holds.assigned([0])
        self.offset = 0

    def read(self, *values: bytes, now: float = 0.0) -> None:
        messages = []
        for value in values:
            messages.append(Message(topic=TOPICS.alerts, partition=0, offset=self.offset, key=b"k", value=value))
            self.offset += 1
        self.triage.triage(messages, self.triage.next_read(), now)

    def decide(self, now: float) -> list[tuple[str, bytes | None, bytes]]:
        self.triage.drain(now, hold_clock_stopped=False)
        return self.triage.take().records


def in_window(alert_id: str) -> dict[str, Any]:
    return alert_datum(alert_id, T + MIN)


def test_an_alert_that_cannot_be_decoded_waits_at_most_the_hold_then_is_forwarded_as_it_came(
    serving: Serving,
) -> None:
    dsp = codec_of(serving)
    value = dsp.encode("DeviceAlert", in_window("a"), TOPICS.alerts)
    serving.stop()
    worker = Worker(codec_of(serving))
    worker.read(value)
    assert worker.decide(now=HOLD_S - 1) == [], "it waits, and is not dead-lettered"
    assert worker.reports == [1]
    decided = worker.triage.decided
    assert worker.decide(now=HOLD_S) == [(TOPICS.dno_alerts, b"k", value)]
    assert worker.reports == [1, 0]
    assert decided.tally == {("forwarded", "", "registry_unavailable"): 1}
    assert decided.next_offsets == {0: 1}


def test_an_alert_waiting_for_the_registry_is_decided_by_the_rules_once_it_answers(serving: Serving) -> None:
    dsp = codec_of(serving)
    value = dsp.encode("DeviceAlert", in_window("a"), TOPICS.alerts)
    behind = dsp.encode("DeviceAlert", alert_datum("b", T + 2 * MIN, "8F36"), TOPICS.alerts)
    serving.stop()
    worker = Worker(codec_of(serving))
    worker.read(value, behind)
    assert worker.decide(now=0.5) == []
    serving.start()
    records = worker.decide(now=2.0)  # the retry is due (REGISTRY_RETRY_S)
    assert [topic for topic, _, _ in records] == [TOPICS.suppressed, TOPICS.dno_alerts]
    assert dsp.decode("SuppressedAlert", records[0][2])["esme_id"] == ESME
    assert records[1][2] == behind
    assert worker.reports == [1, 0]


def test_an_audit_record_that_cannot_be_encoded_holds_the_alert_until_the_registry_answers(
    serving: Serving,
) -> None:
    """Single-object bytes take the fast path (nothing to decode); the SuppressedAlert needs the registry."""
    value = AvroCodec().encode("DeviceAlert", in_window("a"))
    serving.stop()
    worker = Worker(codec_of(serving))
    worker.read(value)
    assert worker.triage.take().records == []
    assert worker.decide(now=0.5) == []
    serving.start()
    records = worker.decide(now=2.0)
    assert [topic for topic, _, _ in records] == [TOPICS.suppressed]


def test_a_bad_alert_whose_dead_letter_cannot_be_encoded_waits_and_is_never_forwarded(serving: Serving) -> None:
    dsp = codec_of(serving)
    worker_codec = codec_of(serving)
    good = dsp.encode("DeviceAlert", alert_datum("ok", T + MIN, "8F36"), TOPICS.alerts)
    bad = dsp.encode("DeviceAlert", dict(in_window("bad"), device_id="not-a-device"), TOPICS.alerts)
    worker = Worker(worker_codec)
    worker.read(good)  # the DeviceAlert schema is now known to the worker
    assert [t for t, _, _ in worker.decide(now=0.0)] == [TOPICS.dno_alerts]
    serving.stop()
    worker.read(bad, now=1.0)
    assert worker.decide(now=1.0 + 10 * HOLD_S) == []
    assert worker.reports == [1]
    serving.start()
    records = worker.decide(now=2.0 + 10 * HOLD_S)
    assert [topic for topic, _, _ in records] == [TOPICS.dead_letter]
    assert dsp.decode("DeadLetter", records[0][2])["value"] == bad


class RecordingConsumer:
    """What the registry wait does to the state consumer."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int, int]]]] = []

    def _note(self, call: str, partitions: list[TopicPartition]) -> None:
        self.calls.append((call, [(tp.topic, tp.partition, tp.offset) for tp in partitions]))

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._note("pause", partitions)

    def seek(self, partition: TopicPartition) -> None:
        self._note("seek", [partition])

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._note("resume", partitions)


def test_a_state_record_waits_for_the_registry_at_its_offset_and_is_applied_once_it_answers(
    serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_feed, "REGISTRY_RETRY_S", 0.0)
    dsp = codec_of(serving)
    request = {"request_id": f"Y:{ESME}:2", "service_reference_variant": "11.3", "target_device_id": ESME,
               "execution_datetime": T + 3 * 60 * MIN, "firmware_hash": None, "received_at": T}  # fmt: skip
    value = dsp.encode("ServiceRequest", request, TOPICS.service_requests)
    serving.stop()
    reports: list[int] = []
    state = filter_state()
    feed = StateFeed(TOPICS, codec_of(serving), state, on_registry_wait=reports.append)
    consumer = RecordingConsumer()
    waits: RegistryWaits = feed.registry_waits
    with pytest.raises(RegistryUnavailable):  # not BadInput: not an error for a dead letter
        feed.apply(TOPICS.service_requests, ESME.encode(), value)
    assert state.activity_of(ESME).requests[0].request_id == f"X:{ESME}:1", "nothing applied"
    waits.stop(consumer, TOPICS.service_requests, 2, 40, RegistryUnavailable("down"))  # type: ignore[arg-type]
    assert consumer.calls == [
        ("pause", [(TOPICS.service_requests, 2, 40)]),
        ("seek", [(TOPICS.service_requests, 2, 40)]),
    ]
    assert waits.skips(TOPICS.service_requests, 2) and not waits.skips(TOPICS.service_requests, 1)
    assert reports == [1]

    serving.start()
    waits.resume_due(consumer)  # type: ignore[arg-type]
    assert consumer.calls[-1][0] == "resume"
    assert not waits.skips(TOPICS.service_requests, 2), "read again from the record it stopped at"
    applied = feed.apply(TOPICS.service_requests, ESME.encode(), value)
    assert applied.error is None and applied.event_time == T
    waits.passed(TOPICS.service_requests, 2)
    assert reports == [1, 0] and waits.stopped == {}
    assert {r.request_id for r in state.activity_of(ESME).requests} == {f"X:{ESME}:1", f"Y:{ESME}:2"}


def test_the_state_reader_stops_a_partition_at_the_record_and_counts_nothing_of_it_until_the_registry_answers(
    serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real StateReader over stand-in clients: neither the records behind the stopped one nor the
    end of its partition move the read frontier (or the position committed with the state)."""
    monkeypatch.setattr(state_feed, "REGISTRY_RETRY_S", 0.0)
    dsp = codec_of(serving)
    topic = TOPICS.service_requests
    cluster = Cluster()
    cluster.create(topic, 1)
    for n in (2, 3):
        request = {"request_id": f"Y:{ESME}:{n}", "service_reference_variant": "11.3", "target_device_id": ESME,
                   "execution_datetime": T + n * 60 * MIN, "firmware_hash": None, "received_at": T + n}  # fmt: skip
        cluster.append(topic, 0, ESME.encode(), dsp.encode("ServiceRequest", request, "dsp.v2"))
    serving.stop()
    state, frontier, reports = filter_state(), ReadFrontier(), list[int]()
    feed = StateFeed(TOPICS, codec_of(serving), state, on_registry_wait=reports.append)
    permissions = PermissionWatch(Readiness(), Settings(), None, "tx")  # type: ignore[arg-type]  # never asked
    reader = StateReader(lambda: StandInConsumer(cluster, "state", {"enable.partition.eof": True}),  # type: ignore[arg-type,return-value]
                         feed, state, frontier, WorkerMetrics(), lambda: None, permissions)  # fmt: skip
    reader.start({topic: 1})
    for _ in range(3):
        reader.read(100)
    assert frontier.next_offsets() == {(topic, 0): 0}
    assert reports == [1] and len(state.activity_of(ESME).requests) == 1
    assert list(state.meta_items("")) == [], "nothing recorded for a dead letter"

    serving.start()
    reader.read(100)
    reader.read(100)
    assert frontier.next_offsets() == {(topic, 0): 2}
    assert reports == [1, 0]
    assert len(state.activity_of(ESME).requests) == 3


def test_the_evidence_reader_stops_an_alert_partition_at_an_alert_the_registry_fails_and_loses_no_evidence(
    serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 9 over a registry outage: a Supply Outage Restored alert in Confluent framing that cannot be decoded
    is not passed over (it may be the evidence an AD1 waits for); nor is the alert behind it or the end of
    the partition counted by the evidence frontier until the registry answers."""
    monkeypatch.setattr(state_feed, "REGISTRY_RETRY_S", 0.0)
    dsp = codec_of(serving)
    cluster = Cluster()
    cluster.create(TOPICS.alerts, 1)
    restored = {**alert_datum("restored", T + MIN, "8F35"), "device_id": ESME}
    cluster.append(TOPICS.alerts, 0, ESME.encode(), dsp.encode("DeviceAlert", restored, TOPICS.alerts))
    behind = CODEC.encode("DeviceAlert", alert_datum("b", T + 2 * MIN, "8F01"))  # single-object: no registry needed
    cluster.append(TOPICS.alerts, 0, ESME.encode(), behind)
    serving.stop()
    state, reports = filter_state(), list[int]()
    permissions = PermissionWatch(Readiness(), Settings(), None, "tx")  # type: ignore[arg-type]  # never asked
    reader = EvidenceReader(
        TOPICS.alerts, lambda: StandInConsumer(cluster, "evidence", {"enable.partition.eof": True}),  # type: ignore[arg-type,return-value]
        None, state, codec_of(serving), EvidencePolicy(), 0, permissions, reports.append,  # type: ignore[arg-type]
    )  # fmt: skip
    reader.start(1)
    for _ in range(3):
        reader.read(100)
    assert reader.frontier.next_offsets() == {(TOPICS.alerts, 0): 0}
    assert reports == [1] and list(state.supply_alerts(ESME, T, T + 10 * MIN)) == []

    serving.start()
    reader.read(100)
    reader.read(100)
    assert reader.frontier.next_offsets() == {(TOPICS.alerts, 0): 2}
    assert reports == [1, 0]
    assert [a.alert_id for a in state.supply_alerts(ESME, T, T + 10 * MIN)] == ["restored"]


class EvidenceComplete:
    """The evidence reader once every alert partition is read past t + A: no evidence can come."""

    policy = EvidencePolicy()

    def complete(self, t: int) -> bool:
        return True

    def ends_looked_up_after(self, wall_ms: int) -> bool:
        return True


def held_triage(codec: AvroCodec, monkeypatch: pytest.MonkeyPatch) -> tuple[AlertTriage, int]:
    """A triage with an AD1 in a window read back from the held topic (first read at `wall`): its wall time."""
    monkeypatch.setattr(triage_module, "REGISTRY_RETRY_S", 0.0)
    holds = EvidenceHolds(codec)
    holds.assigned([0])
    holds.restore([TopicPartition("poa-filter.held-ad1s", 0, 3)])
    wait = EvidenceWait(EvidenceComplete(), holds, "poa-filter.held-ad1s", max_wait_ms=60_000)
    inputs = ReadFrontier()
    inputs.set_end_offsets({}, reads_before=2**62)  # no inputs to wait for, end offsets looked up after every read
    triage = AlertTriage(TOPICS, codec, filter_state(), inputs, AlertQueues(), HOLD_S,
                         lambda: ModeSchedule(Mode.FILTER), evidence=wait)  # fmt: skip
    wall = 1_800_000_000_000
    topic, key, value = held_record(wait.topic, b"k", AvroCodec().encode("DeviceAlert", in_window("a")), 0, 7, wall)
    holds.add(Message(topic=topic, partition=0, offset=3, key=key, value=value), triage.next_read(), 0.0)
    return triage, wall


def test_a_held_ad1_whose_audit_record_cannot_be_encoded_waits_for_the_registry(
    serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving.stop()
    triage, wall = held_triage(codec_of(serving), monkeypatch)
    triage.drain_held(wall + 1000)
    assert not triage.take(), "it waits: nothing written, its held offset not committed"
    assert triage.held_for_evidence() == 1
    serving.start()
    triage.drain_held(wall + 2000)
    decided = triage.take()
    assert [topic for topic, _, _ in decided.records] == [TOPICS.suppressed]
    assert decided.held_offsets == {0: (4, "")} and triage.held_for_evidence() == 0


def test_a_held_ad1_is_forwarded_as_it_came_when_the_registry_is_down_past_its_bound(
    serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving.stop()
    triage, wall = held_triage(codec_of(serving), monkeypatch)
    triage.drain_held(wall + 60_001)
    decided = triage.take()
    assert [topic for topic, _, _ in decided.records] == [TOPICS.dno_alerts]
    assert decided.tally == {("forwarded", "AD1", "registry_unavailable"): 1}
    assert decided.held_offsets == {0: (4, "")}


def test_the_bound_of_a_held_ad1_does_not_run_while_no_broker_answers(
    serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forwarding at the end of an outage would make decisions depend on its length: the bound stops while no
    broker answers and counts again from when one does."""
    serving.stop()
    triage, wall = held_triage(codec_of(serving), monkeypatch)
    triage.drain_held(wall + 60_001, hold_clock_stopped=True)
    assert not triage.take()
    triage.evidence_holds.restart_bounds(wall + 100_000)  # the broker answers again
    triage.drain_held(wall + 120_000)
    assert not triage.take(), "20 s since the broker came back: within the bound"
    triage.drain_held(wall + 160_001)
    assert triage.take().tally == {("forwarded", "AD1", "registry_unavailable"): 1}
