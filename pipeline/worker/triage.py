"""Alert triage: each alert read is decided on the spot when it can be, or held until it can.

An alert with nothing held ahead of it in its partition is decided as it is read: forwarded as read if it
is not an AD1 (the fast reader does not even decode it), decided against the filter state if it is an
AD1 the read frontier allows (contract 5.7). The rest are held (`HeldAlerts`) and decided in offset order
once the frontier allows them, or forwarded once held `max_hold_s` of broker-up time.

Each AD1 is decided in the operator's mode in force at its own event time (contract 8): `filter` the
rules; `shadow` forwards it, and when the rules would suppress it writes the audit record, its reason
prefixed `shadow:`, to the shadow topic instead; `pass-through` forwards it. The mode schedule is read
like the reference topics, so the read frontier has it before an AD1 is decided.

An alert that cannot be decoded, or whose audit or dead-letter record cannot be encoded, because the
schema registry is unreachable waits for it (tried again every REGISTRY_RETRY_S), blocking its partition
like an AD1 waiting for inputs, and is forwarded as it came once held `max_hold_s` (contract 6, rule 8).
A bad alert whose dead letter cannot be encoded is not forwarded: it waits until it can be dead-lettered.

An AD1 that rule 5 suppresses is forwarded instead when there is evidence of a genuine outage (rule 9).
While evidence may still come, it leaves its partition for the held topic (`EvidenceWait`), so the alerts
behind it are not delayed; the held AD1s read back are decided here too (`drain_held`).

An alert whose outputs go to a topic the worker may not write now (`unwritable`: a Write ACL missing, contract
6) is not put in a transaction, which would fail and hold back every other decision: it waits in memory, as
one waiting for its inputs, at most its bound counted from its first read (kept across a failed transaction's
rewind), and is then forwarded as it came (rules 7 and 8). An AD1 in a window, with the held topic unwritable,
waits so for its evidence (A + grace + POA_MAX_HOLD_SECONDS); with the held topic writable, an AD1 whose audit
record cannot be written waits there instead, as for evidence, so that the alerts behind it are not held up.
"""

import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.alert_decisions import Decision, Forward, ForwardReason, Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.operating_mode import Mode, ModeSchedule
from pipeline.core.read_frontier import ReadFrontier
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.kafka.batches import coordinates
from pipeline.settings import Topics
from pipeline.wire.alert_bytes import RawAlertFields, alert_fields, read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Outgoing, audit_fields
from pipeline.wire.schema_registry import RegistryUnavailable
from pipeline.worker.dead_letters import dead_letter_record
from pipeline.worker.evidence_holds import FRESH_ENDS_WAIT_MS, EvidenceHolds, EvidenceWait, HeldAD1, held_record
from pipeline.worker.evidence_reader import written_ms
from pipeline.worker.hold_queues import HeldAlerts, ReadAlert, decode_again, read_alert
from pipeline.worker.metrics import (
    PASS_THROUGH_REASON,
    REGISTRY_UNAVAILABLE_REASON,
    SHADOW_REASON,
    code_label,
)

log = logging.getLogger(__name__)

SHADOW_PREFIX = "shadow: "  # the reason of a shadow record: this, then the reason the rules would suppress for
REGISTRY_RETRY_S = 1.0  # how often alerts that wait for the schema registry try it again


@dataclass(slots=True)
class Decided:
    """What was decided since the last transaction began: the records to write, the next offset of each
    alert partition and of each held partition (committed with them), the decided alerts by the time they
    were read (for the latency histogram; an AD1 written to the held topic is not decided yet, and counts in
    `evidence_latencies` when it is, by its first read), and the decisions by metric labels (counted once the
    transaction commits)."""

    records: list[Outgoing] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    latencies: Counter[float] = field(default_factory=Counter)
    evidence_latencies: Counter[float] = field(default_factory=Counter)
    tally: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    held_offsets: dict[int, tuple[int, str]] = field(default_factory=dict)  # held partition -> offset, metadata
    expired: Counter[str] = field(default_factory=Counter)  # hold_expired forwards, by what they waited for

    def __bool__(self) -> bool:
        return bool(self.records or self.next_offsets or self.held_offsets)


class AlertTriage:
    def __init__(
        self,
        topics: Topics,
        codec: AvroCodec,
        state: FilterState,
        frontier: ReadFrontier,
        holds: HeldAlerts,
        max_hold_s: float,
        schedule: Callable[[], ModeSchedule] = lambda: ModeSchedule(Mode.FILTER),
        on_registry_wait: Callable[[int], None] = lambda partitions: None,
        evidence: EvidenceWait | None = None,
        clock: Clock = SYSTEM_CLOCK,
        unwritable: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        """`schedule` gives the operator's mode schedule as last read; `on_registry_wait` hears how many alert
        partitions wait for the schema registry, whenever that changes. Without `evidence`, rule 9 is not
        applied (tests of the other rules alone). `clock` is the one the caller's `now` and `wall_ms` come
        from; `unwritable` gives the output topics the worker may not write now."""
        self._topics = topics
        self._clock = clock
        self._schedule = schedule
        self._on_registry_wait = on_registry_wait
        self._registry_retry_at = 0.0  # monotonic: alerts that wait for the registry are not tried before
        self._registry_waits = 0  # alert partitions blocked by an alert that waits for the registry
        self._codec = codec
        self._alert_header = codec.single_object_header("DeviceAlert")
        self._state = state
        self._frontier = frontier
        self.holds = holds
        self._max_hold_s = max_hold_s
        self._evidence = evidence
        self._unwritable = unwritable
        self._blocked = False  # the last decision's outputs go to an unwritable topic
        # (alert partition, offset) -> monotonic time first read, of alerts waiting for an unwritable output
        self._first_reads: dict[tuple[int, int], float] = {}
        self.decided = Decided()
        self.read_seq = 0  # numbers the batches read, for the read frontier
        self._decided_time: dict[int, int] = {}  # alert partition -> latest event time decided there
        self._newest_read: dict[int, int] = {}  # alert partition -> newest event time read there (lag gauge)

    def next_read(self) -> int:
        self.read_seq += 1
        return self.read_seq

    def take(self) -> Decided:
        """What was decided, for the transaction about to begin."""
        decided, self.decided = self.decided, Decided()
        return decided

    def forget_undecided(self) -> None:
        """Drop the held alerts and what was decided but not yet written: all are read again."""
        self.holds.clear()
        if self._evidence is not None:
            self._evidence.holds.clear()
        self.decided = Decided()

    def triage(self, records: list[Message], seq: int, now: float) -> None:
        """Triage alerts read as batch `seq` at monotonic time `now` (the hot path: one pass, no decoding
        for alerts in the usual shape)."""
        waiting_in, may_decide = self.holds.waiting, self._frontier.may_decide
        header, dno = self._alert_header, self._topics.dno_alerts
        decided = self.decided
        outputs, next_offsets, decided_time = decided.records, decided.next_offsets, self._decided_time
        forwarded_codes: list[str] = []
        newest_read = self._newest_read
        count = 0
        for msg in records:
            partition: int = msg.partition()  # type: ignore[assignment]  # always set on a consumed message
            waiting = waiting_in(partition)
            if waiting is None:  # revoked meanwhile: its new owner reads it again
                continue
            value = msg.value()
            raw = None if value is None else read_alert_fields(value, header)
            if raw is not None and raw[3] > newest_read.get(partition, 0):
                newest_read[partition] = raw[3]
            if value is None or raw is None or waiting:
                waiting.append(self._held(msg, raw, seq, now))
                continue
            if raw[1] != OUTAGE_ALERT_CODE:
                outputs.append((dno, msg.key(), value))
                forwarded_codes.append(raw[1])
                if raw[3] > decided_time.get(partition, 0):
                    decided_time[partition] = raw[3]
            else:
                alert = alert_fields(raw)
                if not may_decide(alert.received_at, seq):
                    waiting.append(ReadAlert(partition, msg.offset(), msg.key(), value, seq, now, alert=alert))  # type: ignore[arg-type]
                    continue
                try:
                    written = self._decide_alert(partition, msg.offset(), msg.key(), value, alert, None, seq, now)  # type: ignore[arg-type]
                    if written is None:  # its outputs cannot be written now: it waits, from its first read
                        first = self._first_reads.setdefault((partition, msg.offset()), now)  # type: ignore[arg-type]
                        waiting.append(ReadAlert(partition, msg.offset(), msg.key(), value, seq, first, alert=alert))  # type: ignore[arg-type]
                        continue
                    outputs.extend(written)
                    if self._to_held(written):  # decided, for the latency, when read back from the held topic
                        count -= 1
                except RegistryUnavailable as exc:  # its audit record cannot be encoded now: it waits
                    self._registry_failed(now)
                    waiting.append(ReadAlert(partition, msg.offset(), msg.key(), value, seq, now, alert=alert,  # type: ignore[arg-type]
                                             registry_error=str(exc)))  # fmt: skip
                    continue
            next_offsets[partition] = msg.offset() + 1  # type: ignore[operator]
            count += 1
        if count:
            decided.latencies[now] += count
        for code, n in Counter(forwarded_codes).items():
            decided.tally["forwarded", code_label(code), ForwardReason.NOT_AD1.value] += n

    def _held(self, msg: Message, raw: RawAlertFields | None, seq: int, now: float) -> ReadAlert:
        _, partition, offset = coordinates(msg)
        if raw is None:  # not the common shape: the generic reader gives the verdict and the error
            item = read_alert(
                self._codec, partition, offset, msg.key(), msg.value(), seq, now, timestamp=written_ms(msg)
            )
            if item.registry_error is not None:
                self._registry_failed(now)
            if item.alert is not None and item.alert.received_at > self._newest_read.get(partition, 0):
                self._newest_read[partition] = item.alert.received_at  # DUIS, Confluent framing: the lag gauge
            return item
        return ReadAlert(partition, offset, msg.key(), msg.value(), seq, now, alert=alert_fields(raw))

    def drain(self, now: float, hold_clock_stopped: bool) -> None:
        """Decide held alerts in offset order, each partition up to its first AD1 that must still wait. The
        hold bound counts broker-up time only: while no broker answers (`hold_clock_stopped`), AD1s wait."""
        decided = self.decided
        registry_waits = 0

        def held_over(item: ReadAlert) -> bool:
            return not hold_clock_stopped and now - item.read_at >= self._max_hold_s

        def decide(item: ReadAlert) -> bool:
            nonlocal registry_waits
            if item.registry_error is not None:
                if now < self._registry_retry_at:
                    if item.error is None and held_over(item):
                        return self._give_up_on_registry(item, now)
                    registry_waits += 1
                    return False
                if item.alert is None and item.error is None:
                    decode_again(self._codec, item)
            try:
                return decide_now(item)
            except RegistryUnavailable as exc:
                item.registry_error = str(exc)
            self._registry_failed(now)
            if item.error is None and held_over(item):
                return self._give_up_on_registry(item, now)
            registry_waits += 1
            return False

        def decide_now(item: ReadAlert) -> bool:
            if item.registry_error is not None and item.alert is None and item.error is None:
                raise RegistryUnavailable(item.registry_error)  # decoding it failed again
            item.registry_error = None
            records: list[Outgoing] | None
            if item.waits_for_inputs:
                assert item.alert is not None
                t = item.alert.received_at
                if not self._frontier.may_decide(t, item.read_seq):
                    if not held_over(item):
                        return False
                    records = [self._forward(item, ForwardReason.HOLD_EXPIRED)]
                    decided.expired["inputs"] += 1
                    log.warning(
                        "forwarding AD1 %s after holding it %.0fs: inputs not read past its time: %s",
                        item.alert.alert_id, now - item.read_at, self._frontier.lagging(t, item.read_seq),
                    )
                else:
                    records = self._route(item)
            else:
                records = self._route(item)
            if records is None:  # an output it needs cannot be written now (contract 6)
                first = self._first_reads.setdefault((item.partition, item.offset), item.read_at)
                bound_s = self._max_hold_s if self._evidence is None else self._evidence.max_wait_ms / 1000
                if hold_clock_stopped or now - first < bound_s:
                    return False
                records = [self._forward(item, ForwardReason.HOLD_EXPIRED)]
                decided.expired["output"] += 1
                log.warning("forwarding alert at %s[%d]@%d after holding it %.0fs: its output topic may not be "
                            "written", self._topics.alerts, item.partition, item.offset, now - first)  # fmt: skip
            self._first_reads.pop((item.partition, item.offset), None)
            decided.records.extend(records)
            if not self._to_held(records):  # else decided, for the latency, when read back from the held topic
                decided.latencies[item.read_at] += 1
            decided.next_offsets[item.partition] = item.offset + 1
            return True

        self.holds.release(decide)
        if registry_waits != self._registry_waits:
            self._registry_waits = registry_waits
            self._on_registry_wait(registry_waits)

    def _registry_failed(self, now: float) -> None:
        """The registry failed a call: alerts waiting for it are tried again in REGISTRY_RETRY_S."""
        self._registry_retry_at = now + REGISTRY_RETRY_S

    def _give_up_on_registry(self, item: ReadAlert, now: float) -> bool:
        """Forward an alert held `max_hold_s` for the schema registry as it came (contract 6, rule 8)."""
        self.decided.records.append(self._forward(item, REGISTRY_UNAVAILABLE_REASON))
        log.warning("forwarding alert at %s[%d]@%d after holding it %.0fs: %s", self._topics.alerts, item.partition,
                    item.offset, now - item.read_at, item.registry_error)  # fmt: skip
        self.decided.latencies[item.read_at] += 1
        self.decided.next_offsets[item.partition] = item.offset + 1
        return True

    def drain_held(self, wall_ms: int, hold_clock_stopped: bool = False, supply_from: Collection[str] = ()) -> bool:
        """Decide the AD1s held for evidence that can be, wherever they sit in their held partition (those of
        CH Functions that ESMEs `supply_from` just reported Supply Outage Restored for among them): each waits
        for the activation inputs (rule 7, as when read), then for evidence. An AD1 still undecided
        A + grace + POA_MAX_HOLD_SECONDS of wall-clock time (`wall_ms`) after it was first read is forwarded
        (`EvidenceWait`), but not while no broker answers (`hold_clock_stopped`). An AD1 forwarded when read
        (shadow mode) gets its shadow record at most. A pass looks at DECISIONS_PER_PASS of them at most; True
        when there were more to look at (the next pass goes on at once)."""
        if self._evidence is None:
            return False
        decided, max_wait_ms = self.decided, self._evidence.max_wait_ms
        completeness = self._evidence.completeness
        devices = {chf for esme in supply_from if (chf := self._state.chf_of(esme)) is not None}

        def past_bound(held: HeldAD1) -> bool:
            """Past its bound, on end offsets looked up after the bound (of the alert topic, for evidence, and
            of the inputs, for the batch they must be read after), or FRESH_ENDS_WAIT_MS after it was first
            seen past it without them."""
            if hold_clock_stopped or wall_ms - held.bound_from_ms <= max_wait_ms:
                return False
            bound = held.bound_from_ms + max_wait_ms
            if completeness.ends_looked_up_after(bound) and self._frontier.covers(held.inputs_seq):
                return True
            held.over_seen_ms = wall_ms if held.over_seen_ms is None else held.over_seen_ms
            return wall_ms - held.over_seen_ms > FRESH_ENDS_WAIT_MS

        def decide(held: HeldAD1) -> bool:
            item = held.alert
            waited_ms = wall_ms - held.bound_from_ms
            over = past_bound(held)
            if item.registry_error is not None and self._clock.monotonic() < self._registry_retry_at:
                return registry_wait(held, over, waited_ms)  # not tried again before REGISTRY_RETRY_S
            try:
                records = decide_now(held, over, waited_ms)
            except RegistryUnavailable as exc:  # an output cannot be encoded now: it waits, like a held alert
                item.registry_error = str(exc)
                self._registry_failed(self._clock.monotonic())
                return registry_wait(held, over, waited_ms)
            if records is None:
                return False
            if held.forwarded:  # at the DNO already (shadow mode): its shadow record at most
                records = [record for record in records if record[0] != self._topics.dno_alerts]
            decided.records.extend(records)
            settled(held)
            return True

        def settled(held: HeldAD1) -> None:
            """Decided (its held offset is committed with its outputs: `commit_points`): its latency runs from its
            first read."""
            decided.evidence_latencies[self._clock.monotonic() - max(wall_ms - held.first_read_ms, 0) / 1000] += 1

        def registry_wait(held: HeldAD1, over: bool, waited_ms: int) -> bool:
            """A held AD1 waits for the registry, at most its bound; then it is forwarded as it came (a bad
            alert whose dead letter cannot be encoded is never forwarded: it waits)."""
            item = held.alert
            if item.error is not None or not over:
                return False
            forward = self._forward(item, REGISTRY_UNAVAILABLE_REASON)
            if not held.forwarded:
                decided.records.append(forward)
            settled(held)
            log.warning("forwarding held AD1 at %s[%d]@%d after %.0fs: %s", self._topics.alerts, item.partition,
                        item.offset, waited_ms / 1000, item.registry_error)  # fmt: skip
            return True

        def decide_now(held: HeldAD1, over: bool, waited_ms: int) -> list[Outgoing] | None:
            item = held.alert
            if item.registry_error is not None and item.alert is None and item.error is None:
                decode_again(self._codec, item)
                if item.registry_error is not None:
                    raise RegistryUnavailable(item.registry_error)
            item.registry_error = None
            if item.alert is None or item.value is None:  # cannot be for records this filter wrote
                return self._route(item)
            records, self._blocked = None, False
            if self._frontier.may_decide(item.alert.received_at, item.read_seq):
                records = self._decision_records(item.key, item.value, item.alert, item.datum, item.read_seq, held)
            if records is None:
                if not (over and past_bound(held)):  # again: the rules may have moved what it waits for
                    return None
                why = "its output topic is unwritable" if self._blocked else "its inputs or evidence are not complete"
                log.warning("forwarding AD1 %s %.0fs after it was read: %s", item.alert.alert_id, waited_ms / 1000, why)
                records = [self._forward(item, ForwardReason.HOLD_EXPIRED)]
                decided.expired["output" if self._blocked else "evidence"] += 1
            return records

        def pending(held: HeldAD1) -> bool:
            """Its evidence is complete, but its storm evidence is not final until the activation inputs are read
            past the batch by which it was: that batch is stamped now, as `_with_evidence` would, for every AD1
            it is true of, so that one end-offset look-up (requested for the latest, `waited_seq`) covers them
            all. Looked at once final, or at once when supply evidence comes (`devices`) or past its bound."""
            alert = held.alert.alert
            if alert is None or held.alert.registry_error is not None or not completeness.complete(alert.received_at):
                return False
            held.storm_seq = self.read_seq if held.storm_seq is None else held.storm_seq
            if overdue(held):
                return False
            return not self._frontier.may_decide(completeness.policy.complete_after(alert.received_at),
                                                 held.inputs_seq)  # fmt: skip

        def overdue(held: HeldAD1) -> bool:
            return not hold_clock_stopped and wall_ms - held.bound_from_ms > max_wait_ms

        more = self._evidence.holds.release(decide, devices, overdue, pending=pending)
        decided.held_offsets.update(self._evidence.holds.commit_points())
        return more

    @property
    def evidence_holds(self) -> EvidenceHolds:
        assert self._evidence is not None, "rule 9 is applied"
        return self._evidence.holds

    def held_for_evidence(self) -> int:
        return 0 if self._evidence is None else self._evidence.holds.count()

    def waited_seq(self) -> int | None:
        """The latest batch number after which an AD1 looked at first waits for the activation inputs to be
        read, if any: an end-offset look-up is due while the inputs are not read to ends looked up after it
        (the earliest would be covered while a later one, a held AD1's storm batch say, still waits)."""
        first = self.holds.first_waiting_for_inputs()
        seqs = [first.read_seq] if first is not None else []
        held = None if self._evidence is None else self._evidence.holds.inputs_seq()
        return max([*seqs, held] if held is not None else seqs, default=None)

    def event_times(self, partition: int) -> tuple[int, int]:
        """The newest event time read on an alert partition and the latest decided there (ms): how far
        decisions trail the input, in event time (the lag gauge)."""
        decided = self._decided_time.get(partition, 0)
        return max(self._newest_read.get(partition, 0), decided), decided

    def _to_held(self, records: list[Outgoing]) -> bool:
        """Whether these are an AD1's record on the held topic: it waits for evidence, not decided yet."""
        return self._evidence is not None and records[0][0] == self._evidence.topic

    def _route(self, item: ReadAlert) -> list[Outgoing] | None:
        """The records an alert read by the generic path ends in (None while they cannot be written);
        RegistryUnavailable when one cannot be encoded now (nothing is counted then)."""
        if item.error is not None or item.alert is None:
            source = (self._topics.alerts, item.partition, item.offset)
            record = dead_letter_record(
                self._codec, self._topics.dead_letter, source, item.key, item.value, item.error or "undecodable"
            )
            self.decided.tally["dead_letter", "", "bad_input"] += 1
            return [record]
        assert item.value is not None
        return self._decide_alert(
            item.partition, item.offset, item.key, item.value, item.alert, item.datum, item.read_seq, item.read_at,
            timestamp=item.timestamp,
        )  # fmt: skip

    def _decide_alert(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        alert: AlertFacts,
        datum: dict[str, Any] | None,
        read_seq: int,
        read_at: float,
        timestamp: int | None = None,
    ) -> list[Outgoing] | None:
        """A valid alert's decision, as the records to write: its outputs, or, while evidence for it may still
        come, its record on the held topic; None while they cannot be written (an unwritable topic). `datum` is
        the decoded alert when the generic path read it, None when alert_wire did; `read_seq` the batch it was
        read in, `read_at` when (monotonic seconds),
        `timestamp` its Kafka record's (a DUIS alert's received_at, which the held record carries).
        RegistryUnavailable when its audit record cannot be encoded now (nothing is counted then)."""
        self._blocked = False
        records = self._decision_records(key, value, alert, datum, read_seq)
        if records is None and self._blocked and (self._evidence is None or self._evidence.topic in self._unwritable()):
            return None  # else it waits on the held topic, not holding up its partition
        if records is None:
            assert self._evidence is not None
            # Shadow mode changes nothing a DNO sees (contract 8): forwarded now, its shadow record written
            # once its evidence is complete (not at all while the held topic is unwritable).
            shadow = self._schedule().mode_at(alert.received_at) is Mode.SHADOW
            topic = self._evidence.topic
            forward = (self._topics.dno_alerts, key, value)
            if topic in self._unwritable():  # it waits in memory for its evidence; in shadow mode, not at all
                if not shadow:
                    return None
                self.decided.tally["forwarded", code_label(alert.alert_code), ForwardReason.HOLD_EXPIRED.value] += 1
                self.decided.expired["output"] += 1
                return [forward]
            clock = self._clock  # rule 7's bound runs from the read
            read_ms = clock.wall_ms() - int((clock.monotonic() - read_at) * 1000)
            held = held_record(topic, key, value, partition, offset, read_ms, timestamp, forwarded=shadow)
            records = [forward, held] if shadow else [held]
        if alert.received_at > self._decided_time.get(partition, 0):
            self._decided_time[partition] = alert.received_at
        return records

    def _decision_records(
        self,
        key: bytes | None,
        value: bytes,
        alert: AlertFacts,
        datum: dict[str, Any] | None,
        read_seq: int,
        held: HeldAD1 | None = None,
    ) -> list[Outgoing] | None:
        """The outputs of a valid alert's decision (rules 5 and 9) in the mode in force at its time, counted;
        None while evidence may still come. In pass-through mode nothing waits; in shadow mode an AD1 is
        recorded on the shadow topic only if rules 5 and 9 suppress it, once its evidence is complete (`held`
        forwarded when read is decided as in shadow mode, whatever was scheduled since: it reached the DNO); None
        also while an output cannot be written (`_blocked`).
        RegistryUnavailable when its audit record cannot be encoded now (nothing is counted then)."""
        mode = Mode.SHADOW if held is not None and held.forwarded else self._schedule().mode_at(alert.received_at)
        code = code_label(alert.alert_code)
        forward = (self._topics.dno_alerts, key, value)
        if mode is Mode.PASS_THROUGH and alert.alert_code == OUTAGE_ALERT_CODE:
            outputs, label = [forward], ("forwarded", code, PASS_THROUGH_REASON)
        else:
            decision = self._with_evidence(alert, self._state.decide(alert), read_seq, held)
            if decision is None:
                return None
            if not isinstance(decision, Suppress):
                outputs, label = [forward], ("forwarded", code, decision.reason.value)
            elif mode is Mode.SHADOW:
                shadow = self._topics.shadow, key, self._audit_value(value, datum, decision, self._topics.shadow)
                outputs, label = [forward, shadow], ("forwarded", code, SHADOW_REASON)
            else:
                audit = self._audit_value(value, datum, decision, self._topics.suppressed)
                outputs, label = [(self._topics.suppressed, key, audit)], ("suppressed", code, "activation_window")
        unwritable = self._unwritable()
        if unwritable and any(record[0] in unwritable for record in outputs):
            if outputs[0][0] in unwritable or outputs[0][0] != self._topics.dno_alerts:  # its audit record: it waits
                self._blocked = True
                return None
            outputs = outputs[:1]  # shadow mode: at the DNO now, without its shadow record (its topic refused)
        self.decided.tally[label] += 1
        return outputs

    def _with_evidence(
        self, alert: AlertFacts, decision: Decision, read_seq: int, held: HeldAD1 | None
    ) -> Decision | None:
        """Rule 9: a suppression stands once no evidence can come; evidence found releases the AD1 at once
        (evidence only accumulates, so that is final). None while evidence may still come.

        Storm evidence rests on rule 5 forwarding the sector's AD1s up to t + A, which is final only once the
        activation inputs are read past t + A (rule 7, as for any AD1) and cover every AD1 that can count: it
        is looked for once evidence is complete (every AD1 up to t + A read, by the batch numbered then, which
        `held` keeps) and the inputs are read past t + A or to end offsets looked up after that batch. The
        DSP writes an AD1's activation request before it; other workers read those AD1s, so nothing else
        orders the two reads."""
        if not isinstance(decision, Suppress) or self._evidence is None:
            return decision
        completeness = self._evidence.completeness
        policy = completeness.policy
        storm_seq = None
        if completeness.complete(alert.received_at):
            if held is None:
                storm_seq = self.read_seq
            else:
                held.storm_seq = self.read_seq if held.storm_seq is None else held.storm_seq
                storm_seq = held.storm_seq
        after = policy.complete_after(alert.received_at)
        final = storm_seq is not None and self._frontier.may_decide(after, max(read_seq, storm_seq))
        evidence = self._state.evidence_for(alert, policy, storm=final)
        if evidence is not None:
            log.info("forwarding AD1 %s from CH Function %s inside an activation window: %s",
                     alert.alert_id, alert.device_id, evidence.describe())  # fmt: skip
            return Forward(ForwardReason.OUTAGE_EVIDENCE)
        return decision if final else None

    def _audit_value(self, value: bytes, datum: dict[str, Any] | None, decision: Suppress, topic: str) -> bytes:
        """The SuppressedAlert for `topic`: the audit topic, or the shadow topic, where its reason says so."""
        audit = audit_fields(decision)
        if topic == self._topics.shadow:
            audit["reason"] = SHADOW_PREFIX + audit["reason"]
        if datum is not None:  # read by the generic path: encode the decoded alert again
            return self._codec.encode("SuppressedAlert", {"alert": datum, **audit}, topic)
        body = value[len(self._alert_header) :]  # read by alert_wire: single-object bytes of our DeviceAlert
        return suppressed_alert_bytes(self._codec.header("SuppressedAlert", topic), body, audit)

    def _forward(self, item: ReadAlert, reason: str) -> Outgoing:
        code = code_label(item.alert.alert_code) if item.alert is not None else ""
        self.decided.tally["forwarded", code, str(reason)] += 1
        assert item.value is not None
        return self._topics.dno_alerts, item.key, item.value
