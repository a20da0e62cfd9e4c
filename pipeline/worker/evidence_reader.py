"""The evidence reader: every partition of the alert topic, read by every worker for rule 9's evidence.

The consumer group splits the alert topic between workers, but the evidence for an AD1 (a Supply Outage
Restored alert from an ESME on its HAN) may be on any partition, read by any worker. So, like the state
reader, each worker also reads every alert partition with an assigned consumer of its own (no group
commits), and keeps in its local state only the alerts that may be evidence (`FilterState.put_evidence_alert`: Supply
Outage Restored alerts by ESME, AD1s by CH Function);
the read positions are staged beside them, so they become durable together. A separate read frontier over
the alert partitions says when every partition has been read past an event time: an AD1's evidence is
complete once every partition is read past t + A, or, caught up, once the wall clock is past t + A + grace.

An alert the generic reader cannot decode because the schema registry is unreachable may be evidence: its
partition stops at it as a state partition would (`RegistryWaits`), so the frontier does not pass it.
A refused permission (Read on the alert topic, Describe on this reader's group) is named by the
PermissionWatch, as for the state reader.
"""

import logging
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.bad_input import BadInput
from pipeline.core.filter_state import FilterState
from pipeline.core.outage_evidence import SUPPLY_RESTORED_CODES, EvidencePolicy
from pipeline.core.read_frontier import DEFAULT_MAX_AHEAD_MS, ReadFrontier
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.kafka.admin import EndOffsetLookup
from pipeline.kafka.batches import coordinates
from pipeline.wire import input_records
from pipeline.wire.alert_bytes import alert_fields, read_alert_fields
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import RegistryUnavailable
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.state_feed import RegistryWaits

log = logging.getLogger(__name__)

POSITION = "evpos/"  # meta key prefix: evpos/<partition> -> next offset of the alert topic to read
EVIDENCE_CODES = SUPPLY_RESTORED_CODES | {OUTAGE_ALERT_CODE}  # supply evidence (9.a), AD1s for storms (9.b)
END_OFFSET_INTERVAL_S = 0.5  # while AD1s wait for evidence, look up the alert topic's end offsets this often


def written_ms(msg: Message) -> int | None:
    """When the record was written to Kafka: housekeeping purges only what the topic no longer holds."""
    kind, ms = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE else ms


class EvidenceReader:
    def __init__(
        self,
        topic: str,
        new_consumer: Callable[[], Consumer],
        lookup: EndOffsetLookup,
        state: FilterState,
        codec: AvroCodec,
        policy: EvidencePolicy,
        grace_ms: int,
        permissions: PermissionWatch,
        on_registry_wait: Callable[[int], None] = lambda partitions: None,
        clock: Clock = SYSTEM_CLOCK,
        max_clock_ahead_ms: int = DEFAULT_MAX_AHEAD_MS,
    ) -> None:
        """`on_registry_wait` hears how many alert partitions wait for the schema registry, whenever that changes;
        `clock` ends waits only (rule 7: the wall clock never makes a decision); `max_clock_ahead_ms` is the read
        frontier's (POA_MAX_CLOCK_AHEAD_SECONDS)."""
        self._clock = clock
        self._topic = topic
        self._permissions = permissions
        self._new_consumer = new_consumer
        self._lookup = lookup
        self._state = state
        self._codec = codec
        self._header = codec.single_object_header("DeviceAlert")
        self.policy = policy
        self._grace_ms = grace_ms
        # Per alert partition: read past which event time. Its end-offset snapshot is tagged with the wall
        # clock (ms) when the look-up started, so `covers(x)` means "looked up after wall-clock time x".
        self.frontier = ReadFrontier(max_clock_ahead_ms)
        self._consumer: Consumer | None = None
        self._partitions = 0
        self._last_lookup = 0.0
        self._ends_started_ms = 0  # wall clock when the look-up of the newest end offsets known started
        self.read_ad1s = False  # whether the last `read` kept AD1s: storm evidence the activation inputs must cover
        self.supply_from: set[str] = set()  # ESMEs whose Supply Outage Restored was kept since `take_supply_from`
        self._registry_waits = RegistryWaits(on_registry_wait, clock)

    def start(self, partitions: int) -> None:
        """Read every partition of the alert topic from the stored positions (the start, the first time)."""
        stored = {}
        for name, value in self._state.meta_items(POSITION):
            stored[(self._topic, int(name[len(POSITION) :]))] = int(value)
        self._consumer = self._new_consumer()
        self._track(range(partitions), stored)

    def _track(self, partitions: range, stored: dict[tuple[str, int], int]) -> None:
        self._partitions = max(self._partitions, partitions.stop)
        tps = [(self._topic, p) for p in partitions]
        self.frontier.track(tps, stored)
        assert self._consumer is not None
        self._consumer.incremental_assign([TopicPartition(t, p, stored.get((t, p), OFFSET_BEGINNING)) for t, p in tps])

    def read_added_partitions(self, count: int) -> None:
        if count > self._partitions:
            log.info("reading partitions %d..%d added to %s for evidence", self._partitions, count - 1, self._topic)
            self._track(range(self._partitions, count), {})

    def read(self, max_records: int) -> int:
        """Keep the evidence among what is already fetched, at most `max_records`; stages the positions."""
        assert self._consumer is not None
        waits = self._registry_waits
        waits.resume_due(self._consumer)
        try:
            messages = self._consumer.consume(max_records, 0)
        except KafkaException as exc:
            if not self._permissions.evidence_read_error(exc.args[0], None):
                log.warning("reading alerts for evidence: %s", exc)
            return 0
        if not messages:
            return 0
        header, now = self._header, self._clock.wall_ms()
        self.read_ad1s = False
        # Every record's event time counts, in offset order (None: bad input, no evidence and no clock), so the
        # frontier's clock is exactly that of one that observes each record; it takes each partition's in one pass.
        times: dict[int, list[int | None]] = {}
        ends: dict[int, int] = {}  # partition -> the offset after its last record or end read in this batch
        read_any = False
        for msg in messages:
            if waits.stopped and waits.skips(msg.topic(), msg.partition()):
                continue  # stopped for the schema registry: read again from the alert it failed
            err = msg.error()
            if err is not None:  # checked before the coordinates: a consumer-level error (the group) has none
                if err.code() == KafkaError._PARTITION_EOF:
                    _topic, partition, offset = coordinates(msg)
                    ends[partition] = offset
                elif not self._permissions.evidence_read_error(err, msg.topic()):
                    log.warning("alert read error (evidence): %s", err)
                continue
            topic, partition, offset = coordinates(msg)
            read_any = True
            value = msg.value()
            raw = None if value is None else read_alert_fields(value, header)
            if raw is not None:
                event_time: int | None = raw[3]
                if raw[1] in EVIDENCE_CODES:  # the cheap check: most alerts are no evidence
                    self._keep(alert_fields(raw), written_ms(msg))
            else:  # not the common shape: the generic reader's verdict; bad input is no evidence, moves no clock
                try:
                    event_time = self._generic(value, written_ms(msg))
                except RegistryUnavailable as exc:
                    waits.stop(self._consumer, topic, partition, offset, exc)
                    continue
            if waits.stopped:
                waits.passed(topic, partition)
            times.setdefault(partition, []).append(event_time)
            ends[partition] = offset + 1
        for partition, end in ends.items():
            self.frontier.observe_times((self._topic, partition), end, times.get(partition, ()), now)
        if read_any and self._permissions.denied:
            self._permissions.evidence_read()
        positions = self.frontier.next_offsets()
        for partition in ends:
            self._state.put_meta(f"{POSITION}{partition}", str(positions[(self._topic, partition)]).encode())
        return len(messages)

    def _generic(self, value: bytes | None, written: int | None) -> int | None:
        """An alert not in the common shape (a DUIS one among them) read by the generic reader: it may be
        evidence; bad input is no evidence and moves no clock."""
        try:
            _, alert = input_records.device_alert(self._codec, value, written)
        except BadInput:
            return None
        self._keep(alert, written)
        return alert.received_at

    def _keep(self, alert: AlertFacts, written: int | None) -> None:
        if self._state.put_evidence_alert(alert, written):
            if alert.alert_code == OUTAGE_ALERT_CODE:
                self.read_ad1s = True
            else:  # supply evidence: the AD1s held for it are looked at again at once
                self.supply_from.add(alert.device_id)

    def take_supply_from(self) -> set[str]:
        """The ESMEs whose Supply Outage Restored alerts were read since the last call."""
        taken, self.supply_from = self.supply_from, set()
        return taken

    def complete(self, t: int) -> bool:
        """Whether no more evidence for an AD1 at t can appear (rule 7): every alert partition read past
        t + A, or read to end offsets looked up once the wall clock was past t + A + grace."""
        after = self.policy.complete_after(t)
        return self.frontier.may_decide(after, after + self._grace_ms)

    def lagging(self, t: int) -> list[int]:
        """The alert partitions not yet read past t + A (nor to end offsets looked up after t + A + grace)."""
        after = self.policy.complete_after(t)
        return [p for _, p in self.frontier.lagging(after, after + self._grace_ms)]

    def lag(self) -> list[tuple[int, int | None, float | None]]:
        """By alert partition: the records not read yet (by the high watermark last fetched; None: unknown) and
        the seconds its read clock trails the wall clock (None: no time yet): what AD1s in windows wait on."""
        if self._consumer is None:
            return []
        now, lags = self._clock.wall_ms(), []
        for (topic, partition), position in self.frontier.next_offsets().items():
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True) or (0, -1)
            clock = self.frontier.clock((topic, partition))
            behind = max(high - position, 0) if high >= 0 else None
            lags.append((partition, behind, None if clock is None else max(now - clock, 0) / 1000))
        return lags

    def ends_looked_up_after(self, wall_ms: int) -> bool:
        return self._ends_started_ms > wall_ms

    def refresh_end_offsets(self, needed: bool) -> bool:
        """Take a finished end-offset look-up; start another if AD1s wait for evidence (`needed`). True when
        a look-up finished."""
        result = self._lookup.poll()
        if result is not None:
            ends, started_ms = result
            self.frontier.set_end_offsets(ends, reads_before=started_ms)
            self._ends_started_ms = max(self._ends_started_ms, started_ms)
        now = self._clock.monotonic()
        if needed and self._lookup.can_start() and now - self._last_lookup >= END_OFFSET_INTERVAL_S:
            self._last_lookup = now
            self._lookup.start(self.frontier.partitions, tag=self._clock.wall_ms())
        return result is not None

    def close(self) -> None:
        if self._consumer is None:
            return
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the evidence consumer: %s", exc)
