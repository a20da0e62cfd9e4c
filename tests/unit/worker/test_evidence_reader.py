"""The evidence reader under errors that name no partition: a refused group is reported, never fatal."""

from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import StagedStore
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.settings import Settings
from pipeline.wire.avro_codec import AvroCodec
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
