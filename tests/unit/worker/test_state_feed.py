"""StateFeed on Avro bytes as the DSP writes them: compacted-topic records under their key as written
(contract 6, mixed-case keys), live and after a compaction rebuild; where and when each record was written."""

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.records import DeviceAlert
from pipeline.core.written import Written
from pipeline.settings import Topics
from pipeline.wire.avro_codec import AvroCodec
from pipeline.worker.state_feed import StateFeed, written

TOPICS = Topics()
CODEC = AvroCodec()
T = 1_717_200_000_000
ESME = "00-DB-12-34-56-78-90-A0"
CHF = "00-DB-12-34-56-78-90-C0"
LOWER, UPPER = ESME.lower().encode(), ESME.encode()

Record = tuple[str, bytes, bytes | None, Written]  # topic, key, value, where written


def inventory(key: bytes, at: Written) -> Record:
    datum = {"device_id": key.decode(), "device_type": "ESME", "chf_id": CHF, "mpxn": None, "updated_at": T}
    return TOPICS.inventory, key, CODEC.encode("InventoryRecord", datum), at


def tracked(key: bytes, at: Written) -> Record:
    datum = {"device_id": key.decode(), "manufacturer": None, "model": None, "firmware_version": None,
             "list_version": None, "added_at": T}  # fmt: skip
    return TOPICS.tracked_devices, key, CODEC.encode("TrackedDevice", datum), at


def tombstone(topic: str, key: bytes, at: Written) -> Record:
    return topic, key, None, at


def activation() -> Record:
    datum = {"request_id": f"X:{ESME}:1", "service_reference_variant": "11.3", "target_device_id": ESME,
             "execution_datetime": None, "firmware_hash": None, "received_at": T}  # fmt: skip
    return TOPICS.service_requests, ESME.encode(), CODEC.encode("ServiceRequest", datum), Written(T, 0, 0)


def suppresses(records: list[Record]) -> bool:
    """Feed the records, then decide an AD1 on the ESME's HAN inside its activation window."""
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    feed = StateFeed(TOPICS, CODEC, state)
    for topic, key, value, at in [*records, activation()]:
        assert feed.apply(topic, key, value, at).error is None
    return isinstance(state.decide(DeviceAlert("a", "AD1", CHF, None, None, T + 60_000, None)), Suppress)


def compacted(records: list[Record]) -> list[Record]:
    """The last record per topic and key, byte for byte, with tombstones already removed."""
    last = {(topic, key): (topic, key, value, at) for topic, key, value, at in records}
    return [r for r in records if last[(r[0], r[1])] == r and r[2] is not None]


def test_a_tombstone_under_another_case_leaves_the_device_standing_live_and_after_compaction() -> None:
    records = [
        inventory(LOWER, Written(T, 0, 0)),
        tracked(LOWER, Written(T, 0, 0)),
        tombstone(TOPICS.inventory, UPPER, Written(T + 1, 1, 0)),
        tombstone(TOPICS.tracked_devices, UPPER, Written(T + 1, 1, 0)),
    ]
    assert suppresses(records)
    assert suppresses(compacted(records))


def test_a_tombstone_under_the_same_key_removes_the_device_live_and_after_compaction() -> None:
    records = [
        inventory(LOWER, Written(T, 0, 0)),
        tracked(UPPER, Written(T, 1, 0)),
        tombstone(TOPICS.inventory, LOWER, Written(T + 1, 0, 1)),
    ]
    assert not suppresses(records)
    assert not suppresses(compacted(records))


def test_a_key_naming_another_device_is_bad_input() -> None:
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    _, _, value, at = inventory(UPPER, Written(T, 0, 0))
    applied = StateFeed(TOPICS, CODEC, state).apply(TOPICS.inventory, b"00-db-12-34-56-78-90-a1", value, at)
    assert applied.error is not None and "does not match" in applied.error


def test_written_takes_the_kafka_timestamp_when_there_is_one() -> None:
    assert written((TIMESTAMP_CREATE_TIME, T), 2, 7) == Written(T, 2, 7)
    assert written((TIMESTAMP_NOT_AVAILABLE, -1), 2, 7) == Written(None, 2, 7)
