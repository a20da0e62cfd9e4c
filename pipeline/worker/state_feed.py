"""Applies the four state topics (service requests, outcomes, inventory, tracked list) to FilterState, and the
control topic's mode schedule (contract 8) to the worker's `schedule`.

Every worker reads every partition of these topics (like a Kafka Streams global table), so no
co-partitioning with the alerts is needed and each worker can decide any alert on its own. Records of the
compacted topics are applied under their key as written, in any letter case (contract 6); each record
goes with where and when it was written (`Written`), which housekeeping and the compacted topics' write
order go by.

The mode schedule is read like the reference topics, and kept in the local state (as its Avro datum in
JSON, readable without a schema registry) beside the control topic's read position, so a restarted worker
that resumes past the schedule's record still has it.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, TopicPartition

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.filter_state import FilterState
from pipeline.core.operating_mode import Mode, ModeSchedule
from pipeline.core.written import UNKNOWN, Written
from pipeline.settings import DEFAULT_COMMAND_VARIANTS, Topics
from pipeline.wire import input_records, validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.control_records import CONTROL_KEY, decode_schedule, schedule_datum, schedule_from_datum
from pipeline.wire.reference_bytes import read_inventory_record, read_tracked_device

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """What reading one record did: its event time for the read frontier, or the error for a dead letter."""

    event_time: int | None = None
    error: str | None = None


NO_CLOCK = Applied()  # a reference record: applied, no event time (shared: millions are read in a rebuild)
SCHEDULE = "mode/schedule"  # meta key: the latest good mode schedule read from the control topic, as JSON


def written(timestamp: tuple[int, int], partition: int, offset: int) -> Written:
    """A consumed record's `Written`, from its `Message.timestamp()` (type, ms), partition and offset."""
    kind, ms = timestamp
    return Written(None if kind == TIMESTAMP_NOT_AVAILABLE else ms, partition, offset)


class StateFeed:
    def __init__(
        self,
        topics: Topics,
        codec: AvroCodec,
        state: FilterState,
        initial_mode: Mode = Mode.FILTER,
        on_schedule: Callable[[ModeSchedule], None] = lambda schedule: None,
        on_registry_wait: Callable[[int], None] = lambda partitions: None,
        command_variants: frozenset[int] = DEFAULT_COMMAND_VARIANTS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`initial_mode` applies while the control topic holds no schedule; `on_schedule` hears of every
        schedule taken, the stored one included (once, here); `on_registry_wait` of how many partitions wait
        for the schema registry (`RegistryWaits`); `command_variants` are the DUIS requests' that count."""
        self.registry_waits = RegistryWaits(on_registry_wait, clock)
        self._state = state
        self._codec = codec
        self._command_variants = command_variants
        self._initial_mode = initial_mode
        self._on_schedule = on_schedule
        stored = state.get_meta(SCHEDULE)
        self.schedule = ModeSchedule(initial_mode) if stored is None else schedule_from_datum(
            json.loads(stored), initial_mode
        )  # fmt: skip
        on_schedule(self.schedule)
        # Reference records in the usual shape are read by reference_wire, the rest by the generic path.
        self._inventory_header = codec.single_object_header("InventoryRecord")
        self._tracked_header = codec.single_object_header("TrackedDevice")
        self._handlers = {
            topics.service_requests: self._service_request,
            topics.activation_outcomes: self._outcome,
            topics.inventory: self._inventory,
            topics.tracked_devices: self._tracked,
            topics.control: self._control,
        }

    def apply(self, topic: str, key: bytes | None, value: bytes | None, at: Written = UNKNOWN) -> Applied:
        """Apply one record read at `at` (see `written`); without it, the record is never purged and the
        compacted topics' values are ordered as read, which is write order within one partition only."""
        try:
            return self._handlers[topic](key, value, at)
        except BadInput as exc:
            return Applied(error=str(exc))

    def _service_request(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        request = input_records.service_request(self._codec, value, at.timestamp, self._command_variants)
        if request is None:  # a DUIS document the filter ignores: read at its time, like an ignored variant
            return Applied(event_time=at.timestamp)
        self._state.apply_service_request(request, at)
        return Applied(event_time=request.received_at)

    def _outcome(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        outcome = input_records.activation_outcome(self._codec, value, at.timestamp)
        if outcome is None:  # a DUIS response that reports no outcome: read at its time
            return Applied(event_time=at.timestamp)
        self._state.apply_outcome(outcome, at)
        return Applied(event_time=outcome.received_at)

    def _control(self, key: bytes | None, value: bytes | None, at: Written) -> Applied:
        """The operator's whole schedule, under key `mode` (other keys are not the filter's and are passed
        over, as `poa-filter mode` does); a value that is not a schedule leaves the last good one in force."""
        if key != CONTROL_KEY:
            return NO_CLOCK
        self.schedule = decode_schedule(self._codec, value, self._initial_mode)
        self._state.put_meta(SCHEDULE, json.dumps(schedule_datum(self.schedule)).encode())
        self._on_schedule(self.schedule)
        return NO_CLOCK

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
            self._state.put_esme_han(key.decode(), placed[1], at, placed[2], placed[3])
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


REGISTRY_RETRY_S = 1.0  # how often a state partition stopped for the schema registry tries its record again


class RegistryWaits:
    """State partitions stopped at a record that waits for the schema registry (contract 6: a state record
    the worker cannot judge because a dependency is down waits as long as it takes, is never lost and never
    dead-lettered for it).

    The partition is paused and its position set back to that record, which is tried again every
    REGISTRY_RETRY_S; nothing behind it is applied meanwhile, so the partition's state and read position
    stay in order, and the read frontier holds the AD1s that need it (rule 8 then forwards them).
    """

    def __init__(self, report: Callable[[int], None], clock: Clock = SYSTEM_CLOCK) -> None:
        """`report` hears how many partitions wait, whenever that changes."""
        self._report = report
        self._clock = clock
        self.stopped: dict[tuple[str, int], float | None] = {}  # -> monotonic retry time; None: retrying now

    def skips(self, topic: str | None, partition: int | None) -> bool:
        """Whether a record or event read from this partition is to be passed over: its partition is stopped
        (the rest of a batch fetched before the stop, its end of partition included, is read again after it)."""
        return topic is not None and partition is not None and self.stopped.get((topic, partition)) is not None

    def stop(self, consumer: Consumer, topic: str, partition: int, offset: int, reason: Exception) -> None:
        """The record at `offset` waits for the registry: pause its partition there until the next retry."""
        position = TopicPartition(topic, partition, offset)
        consumer.pause([position])
        consumer.seek(position)
        newly = (topic, partition) not in self.stopped
        self.stopped[(topic, partition)] = self._clock.monotonic() + REGISTRY_RETRY_S
        if newly:
            log.warning("%s[%d]@%d waits for the schema registry (retrying every %.0fs): %s",
                        topic, partition, offset, REGISTRY_RETRY_S, reason)  # fmt: skip
            self._report(len(self.stopped))

    def passed(self, topic: str, partition: int) -> None:
        """A record of this partition was applied: if it had stopped, it goes on."""
        if self.stopped.pop((topic, partition), 0) is None:
            log.info("%s[%d]: the schema registry answered; reading on", topic, partition)
            self._report(len(self.stopped))

    def resume_due(self, consumer: Consumer) -> None:
        """Resume the stopped partitions whose retry is due."""
        now = self._clock.monotonic()
        due = [p for p, retry_at in self.stopped.items() if retry_at is not None and retry_at <= now]
        if due:
            consumer.resume([TopicPartition(topic, partition) for topic, partition in due])
            for p in due:
                self.stopped[p] = None
