"""The evidence reader under errors that name no partition: a refused group is reported, never fatal."""

from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, KafkaError, Message

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import StagedStore
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.settings import Settings
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


def test_evidence_in_the_middle_of_a_batch_is_kept_and_only_the_batch_end_moves_the_clock(tmp_path: Path) -> None:
    """Most alerts' code is only peeked at: evidence anywhere in a batch is kept, every offset is passed, and the
    read clock comes from the last records of the batch (here the middle ones are later: they do not count,
    so the clock is lower, a longer wait, never an earlier decision)."""
    codec = AvroCodec()

    def alert(n: int, code: str, device: str, at: int) -> bytes:
        datum = {"alert_id": f"a{n}", "alert_code": code, "device_id": device, "mpxn": None, "raised_at": None,
                 "received_at": at, "payload": None}  # fmt: skip
        return codec.encode("DeviceAlert", datum)

    other = "00-1B-C5-0C-00-00-00-09"
    values = [alert(n, "8F01", other, T + 100) for n in range(6)]
    values += [alert(n, "8F01", other, T + n) for n in range(6, 10)]
    values[2] = alert(2, "8F35", ESME, T + 100)
    state = FilterState(StagedStore(RocksBackend(tmp_path / "state")), WindowPolicy())
    permissions = PermissionWatch(Readiness(WorkerMetrics().ready), Settings(), None, "tx")  # type: ignore[arg-type]
    reader = EvidenceReader(
        "dsp.alerts", lambda: OneBatch(values), None, state, AvroCodec(), EvidencePolicy(), 0, permissions  # type: ignore[arg-type,return-value]
    )
    reader.start(1)
    assert reader.read(100) == 10
    assert [a.alert_id for a in state.supply_alerts(ESME, T, T + 200)] == ["a2"]
    assert reader.frontier.next_offsets() == {("dsp.alerts", 0): 10}
    assert reader.frontier.may_decide(T + 5, 0) and not reader.frontier.may_decide(T + 6, 0)


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
