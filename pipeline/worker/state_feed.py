"""Applies the four state topics (service requests, outcomes, inventory, tracked list) to FilterState.

Every worker reads every partition of these topics (like a Kafka Streams global table), so no
co-partitioning with the alerts is needed and each worker can decide any alert on its own. Records of the
compacted topics are applied under their key as written, in any letter case (contract 6); each record
goes with where and when it was written (`Written`), which housekeeping and the compacted topics' write
order go by.
"""

from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.filter_state import FilterState
from pipeline.core.written import UNKNOWN, Written
from pipeline.settings import Topics
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.reference_bytes import read_inventory_record, read_tracked_device


@dataclass(frozen=True, slots=True)
class Applied:
    """What reading one record did: its event time for the read frontier, or the error for a dead letter."""

    event_time: int | None = None
    error: str | None = None


NO_CLOCK = Applied()  # a reference record: applied, no event time (shared: millions are read in a rebuild)


def written(timestamp: tuple[int, int], partition: int, offset: int) -> Written:
    """A consumed record's `Written`, from its `Message.timestamp()` (type, ms), partition and offset."""
    kind, ms = timestamp
    return Written(None if kind == TIMESTAMP_NOT_AVAILABLE else ms, partition, offset)


class StateFeed:
    def __init__(self, topics: Topics, codec: AvroCodec, state: FilterState) -> None:
        self._state = state
        self._codec = codec
        # Reference records in the usual shape are read by reference_wire, the rest by the generic path.
        self._inventory_header = codec.single_object_header("InventoryRecord")
        self._tracked_header = codec.single_object_header("TrackedDevice")
        self._handlers = {
            topics.service_requests: self._service_request,
            topics.activation_outcomes: self._outcome,
            topics.inventory: self._inventory,
            topics.tracked_devices: self._tracked,
        }

    def apply(self, topic: str, key: bytes | None, value: bytes | None, at: Written = UNKNOWN) -> Applied:
        """Apply one record read at `at` (see `written`); without it, the record is never purged and the
        compacted topics' values are ordered as read, which is write order within one partition only."""
        try:
            return self._handlers[topic](key, value, at)
        except BadInput as exc:
            return Applied(error=str(exc))

    def _service_request(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        request = validation.service_request(self._codec.decode("ServiceRequest", value))
        self._state.apply_service_request(request, at)
        return Applied(event_time=request.received_at)

    def _outcome(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        outcome = validation.activation_outcome(self._codec.decode("ActivationOutcome", value))
        self._state.apply_outcome(outcome, at)
        return Applied(event_time=outcome.received_at)

    def _reference_key(self, key: bytes | None, role: str) -> str:
        """The key as written (a valid device ID in any case): the record's identity on a compacted topic."""
        if key is None:
            raise BadInput(f"missing key: the {role} topic is compacted and keyed by device ID")
        try:
            text = key.decode()
        except UnicodeDecodeError:
            raise BadInput(f"key {key!r} is not UTF-8") from None
        canonical_device_id(text, "key")
        return text

    def _inventory(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        placed = None if value is None else read_inventory_record(value, self._inventory_header)
        if placed is not None and key is not None and _keyed_by(key, placed[0]):
            self._state.put_esme_han(key.decode(), placed[1], at, placed[2])
            return NO_CLOCK
        raw_key = self._reference_key(key, "inventory")  # the generic path, and its errors
        record = None
        if value is not None:
            record = validation.inventory_record(self._codec.decode("InventoryRecord", value))
            _same_device(raw_key, record.device_id)
        self._state.put_inventory(raw_key, record, at)
        return NO_CLOCK

    def _tracked(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        listed = None if value is None else read_tracked_device(value, self._tracked_header)
        if listed is not None and key is not None and _keyed_by(key, listed):
            self._state.put_tracked(key.decode(), listed=True)
            return NO_CLOCK
        raw_key = self._reference_key(key, "tracked-devices")  # the generic path, and its errors
        if value is not None:
            tracked = validation.tracked_device(self._codec.decode("TrackedDevice", value))
            _same_device(raw_key, tracked.device_id)
        self._state.put_tracked(raw_key, listed=value is not None)
        return NO_CLOCK


def _keyed_by(key: bytes, device_id: str) -> bool:
    """The key names this (valid, canonical) device ID in any letter case: a valid key, and the same device."""
    return key.upper() == device_id.encode()


def _same_device(key: str, record_id: str) -> None:
    """On a compacted topic the key is the identity (tombstones have only the key), so they must name the
    same device (in any letter case)."""
    if key.upper() != record_id:
        raise BadInput(f"key {key} does not match the record's device_id {record_id}")
