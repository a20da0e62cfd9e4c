"""The evidence reader under errors that name no partition: a refused group is reported, never fatal."""

import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, KafkaError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.bad_input import BadInput
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import StagedStore
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.read_frontier import ReadFrontier
from pipeline.kafka.batches import coordinates
from pipeline.settings import Settings
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents
from pipeline.worker.evidence_reader import EvidenceReader
from pipeline.worker.metrics import Readiness, WorkerMetrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.rocks_store import RocksBackend


class GroupRefused:
    """A consumer whose group the broker refuses: librdkafka reports it as an error without a topic."""

    def incremental_assign(self, partitions: Any) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return [Message(error=KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))]


def test_a_refused_evidence_group_is_named_on_ready_and_the_reader_goes_on(tmp_path: Path) -> None:
    state = FilterState(StagedStore(RocksBackend(tmp_path / "state")), WindowPolicy())
    readiness = Readiness(WorkerMetrics().ready)
    permissions = PermissionWatch(readiness, Settings(), None, "tx")  # type: ignore[arg-type]  # no admin needed
    reader = EvidenceReader(
        "dsp.alerts", GroupRefused, None, state, AvroCodec(), EvidencePolicy(), 30_000, permissions  # type: ignore[arg-type]
    )
    reader.start(2)
    assert reader.read(100) == 1
    assert reader.read(100) == 1  # still reading, nothing moved
    assert "evidence-reader" in readiness.status()[1]
    assert not reader.complete(0), "nothing read: evidence is not complete"


T = 1_790_000_000_000
ESME = "00-1B-C5-0C-00-00-00-02"


class OneBatch:
    """A consumer that hands out one batch of alert records on partition 0, then nothing."""

    def __init__(self, values: list[bytes]) -> None:
        self.batches = [[Message(topic="dsp.alerts", partition=0, offset=i, value=v) for i, v in enumerate(values)]]

    def incremental_assign(self, partitions: Any) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop() if self.batches else []


def alert(codec: AvroCodec, n: int, code: str, device: str, at: int) -> bytes:
    datum = {"alert_id": f"a{n}", "alert_code": code, "device_id": device, "mpxn": None, "raised_at": None,
             "received_at": at, "payload": None}  # fmt: skip
    return codec.encode("DeviceAlert", datum)


def reader_of(tmp_path: Path, values: list[bytes]) -> tuple[EvidenceReader, FilterState]:
    state = FilterState(StagedStore(RocksBackend(tmp_path / "state")), WindowPolicy())
    permissions = PermissionWatch(Readiness(WorkerMetrics().ready), Settings(), None, "tx")  # type: ignore[arg-type]
    reader = EvidenceReader(
        "dsp.alerts", lambda: OneBatch(values), None, state, AvroCodec(), EvidencePolicy(), 0, permissions  # type: ignore[arg-type,return-value]
    )
    reader.start(1)
    return reader, state


def test_evidence_in_the_middle_of_a_batch_is_kept_and_every_record_moves_the_clock(tmp_path: Path) -> None:
    codec = AvroCodec()
    other = "00-1B-C5-0C-00-00-00-09"
    values = [alert(codec, n, "8F01", other, T + 100) for n in range(6)]
    values += [alert(codec, n, "8F01", other, T + n) for n in range(6, 10)]
    values[2] = alert(codec, 2, "8F35", ESME, T + 100)
    reader, state = reader_of(tmp_path, values)
    assert reader.read(100) == 10
    assert [a.alert_id for a in state.supply_alerts(ESME, T, T + 200)] == ["a2"]
    assert reader.frontier.next_offsets() == {("dsp.alerts", 0): 10}
    assert reader.frontier.clock(("dsp.alerts", 0)) == T + 100, "four consecutive records at T + 100 were read"


def test_duis_alerts_are_evidence_with_their_kafka_timestamp_wherever_they_are_in_a_batch(tmp_path: Path) -> None:
    """The code of a DUIS alert cannot be peeked at: it goes to the generic reader (contract 9), which takes
    DUIS 8F35/8F36 and AD1s as evidence at their Kafka timestamp; one without a timestamp is bad input, none."""
    user, chf = "90-B3-D5-1F-30-01-00-00", "00-1B-C5-0C-00-00-00-01"

    def restored(n: int) -> bytes:
        return documents.device_alert(f"{ESME}:{user}:{n}", alert_code="8F36", alert_ms=T, responded_ms=T,
                                      outage_start_ms=T - 60_000, outage_end_ms=T)  # fmt: skip

    ad1 = documents.power_outage_alert(f"{documents.DCC_EUI}:{user}:1", chf_id=chf, started_ms=T, mpxn="1",
                                       responded_ms=T)  # fmt: skip
    records = [(restored(1), T + 7), (restored(2), None), (ad1, T + 8)] + [(restored(n), T + n) for n in range(3, 10)]

    class Stamped(OneBatch):
        def __init__(self) -> None:
            stamps = [(TIMESTAMP_NOT_AVAILABLE, 0) if at is None else (TIMESTAMP_CREATE_TIME, at) for _, at in records]
            self.batches = [[Message(topic="dsp.alerts", partition=0, offset=i, value=v, timestamp=stamp)
                             for i, ((v, _), stamp) in enumerate(zip(records, stamps, strict=True))]]  # fmt: skip

    state = FilterState(StagedStore(RocksBackend(tmp_path / "state")), WindowPolicy())
    permissions = PermissionWatch(Readiness(WorkerMetrics().ready), Settings(), None, "tx")  # type: ignore[arg-type]
    reader = EvidenceReader(
        "dsp.alerts", Stamped, None, state, AvroCodec(), EvidencePolicy(), 0, permissions  # type: ignore[arg-type]
    )
    reader.start(1)
    assert reader.read(100) == 10
    supply = sorted((a.alert_id, a.received_at) for a in state.supply_alerts(ESME, T, T + 200))
    assert supply == sorted([(f"{ESME}:{user}:1", T + 7)] + [(f"{ESME}:{user}:{n}", T + n) for n in range(3, 10)])
    assert [(a.alert_id, a.received_at) for a in state.ad1s(chf, T, T + 200)] == [(f"{documents.DCC_EUI}:{user}:1",
                                                                                   T + 8)]  # fmt: skip
    assert reader.read_ad1s


def test_scattered_outliers_do_not_move_the_evidence_clock(tmp_path: Path) -> None:
    """Issue 18.1: an AD1 stamped 50 minutes ahead, 20 records at t, three more 50 minutes ahead, one at t. No four
    consecutive records are ahead, so a frontier that reads every record stays at t; evidence for an AD1 at t is
    not complete, since the records between are read, but not past t + A."""
    codec = AvroCodec()
    t = int(time.time() * 1000) - 5 * 60_000
    ahead = t + 50 * 60_000  # within the hour the wall clock allows
    other = "00-1B-C5-0C-00-00-00-09"
    values = [alert(codec, 0, "AD1", other, ahead)]
    values += [alert(codec, n, "8F01", other, t) for n in range(1, 21)]
    values += [alert(codec, n, "8F01", other, ahead) for n in range(21, 24)] + [alert(codec, 24, "8F01", other, t)]
    reader, _state = reader_of(tmp_path, values)
    assert reader.read(100) == 25
    assert reader.frontier.clock(("dsp.alerts", 0)) == t
    assert not reader.complete(t + 60_000)


class Interleaved:
    """A consumer handing out the records of several partitions in batches: `order` names the partition of each
    next record (in offset order within it), `sizes` the batch sizes."""

    def __init__(self, values: dict[int, list[bytes | None]], order: list[int], sizes: list[int]) -> None:
        at = dict.fromkeys(values, 0)
        messages = []
        for p in order:
            if at[p] < len(values[p]):
                messages.append(Message(topic="dsp.alerts", partition=p, offset=at[p], value=values[p][at[p]]))
                at[p] += 1
        self.batches: list[list[Message]] = []
        for size in sizes:
            self.batches.append(messages[:size])
            messages = messages[size:]
        self.batches.append(messages)

    def incremental_assign(self, partitions: Any) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop(0) if self.batches else []


def generic_time(codec: AvroCodec, value: bytes | None) -> int | None:
    """What a frontier that decodes every record observes: the time of a valid alert, none for bad input."""
    try:
        return validation.device_alert(codec.decode("DeviceAlert", value)).received_at
    except BadInput:
        return None


@st.composite
def alert_partition(draw: st.DrawFn, codec: AvroCodec, now: int) -> list[bytes | None]:
    """In-order alerts (sorted times, ties common) with scattered outliers: ahead of the wall clock within its
    tolerance and beyond it, far in the past, and bad input (a bad device ID, bytes that are no record, no value)."""
    base = now - 60 * 60_000
    in_order = sorted(draw(st.lists(st.integers(0, 50).map(lambda i: base + i * 60_000), min_size=1, max_size=30)))
    code = st.sampled_from(["AD1", "8F35", "8F01", "8F3E"])
    device = "00-1B-C5-0C-00-00-00-09"
    values: list[bytes | None] = [alert(codec, n, draw(code), device, at) for n, at in enumerate(in_order)]
    outlier = st.one_of(
        st.sampled_from([now + 50 * 60_000, now + 3 * 60 * 60_000, base - 86_400_000]).map(
            lambda at: alert(codec, 99, draw(code), device, at)
        ),
        st.just(alert(codec, 98, "8F01", "not a device", base)),
        st.just(b"junk"),
        st.none(),
    )
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(values)), outlier), max_size=12)):
        values.insert(position, value)
    return values


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_evidence_clock_is_that_of_a_frontier_reading_every_record(data: st.DataObject) -> None:
    """Issue 18.1 as a property: whatever the outliers and the batches, after every batch each partition's
    clock equals that of a frontier fed each record's time (the generic reader's verdict) in offset order."""
    codec, now = AvroCodec(), int(time.time() * 1000)
    partitions = range(data.draw(st.integers(1, 3)))
    values = {p: data.draw(alert_partition(codec, now), label=f"partition {p}") for p in partitions}
    order = data.draw(st.lists(st.sampled_from(list(partitions)), max_size=120), label="read order")
    sizes = data.draw(st.lists(st.integers(1, 40), max_size=10), label="batch sizes")
    with tempfile.TemporaryDirectory() as folder:
        state = FilterState(StagedStore(RocksBackend(Path(folder) / "state")), WindowPolicy())
        permissions = PermissionWatch(Readiness(WorkerMetrics().ready), Settings(), None, "tx")  # type: ignore[arg-type]
        consumer = Interleaved(values, order, sizes)
        reader = EvidenceReader(
            "dsp.alerts", lambda: consumer, None, state, codec, EvidencePolicy(), 0, permissions  # type: ignore[arg-type,return-value]
        )
        reader.start(len(partitions))
        full = ReadFrontier()
        full.track([("dsp.alerts", p) for p in partitions], {})
        while batch := list(consumer.batches[0]) if consumer.batches else []:
            reader.read(1000)
            for msg in batch:
                _topic, partition, offset = coordinates(msg)
                full.observe(("dsp.alerts", partition), offset, generic_time(codec, msg.value()), now)
            for p in partitions:
                assert reader.frontier.clock(("dsp.alerts", p)) == full.clock(("dsp.alerts", p))
            assert reader.frontier.next_offsets() == full.next_offsets()
