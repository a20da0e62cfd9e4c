"""Alert triage: each alert read is decided on the spot when it can be, or held until it can.

An alert with nothing held ahead of it in its partition is decided as it is read: forwarded as read if it
is not an AD1 (the fast reader does not even decode it), decided against the filter state if it is an
AD1 the read frontier allows (contract 5.7). The rest are held (`HeldAlerts`) and decided in offset order
once the frontier allows them, or forwarded once held `max_hold_s` of broker-up time.

An AD1 that rule 5 suppresses is forwarded instead when there is evidence of a genuine outage (rule 9).
While evidence may still come, it leaves its partition for the held topic (`EvidenceWait`), so the alerts
behind it are not delayed; the held AD1s read back are decided here too (`drain_held`).
"""

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from pipeline.core.alert_decisions import Decision, Forward, ForwardReason, Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.read_frontier import ReadFrontier
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.kafka.batches import coordinates
from pipeline.settings import Topics
from pipeline.wire.alert_bytes import RawAlertFields, alert_fields, read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Outgoing, audit_fields, now_ms, suppressed_alert
from pipeline.worker.dead_letters import dead_letter_record
from pipeline.worker.evidence_holds import EvidenceHolds, EvidenceWait, HeldAD1, held_record
from pipeline.worker.hold_queues import HeldAlerts, ReadAlert, read_alert
from pipeline.worker.metrics import code_label

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Decided:
    """What was decided since the last transaction began: the records to write, the next offset of each
    alert partition and of each held partition (committed with them), the decided alerts by the time they
    were read (for the latency histogram), and the decisions by metric labels (counted once the
    transaction commits)."""

    records: list[Outgoing] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    latencies: Counter[float] = field(default_factory=Counter)
    tally: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    held_offsets: dict[int, int] = field(default_factory=dict)

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
        evidence: EvidenceWait | None = None,
    ) -> None:
        """Without `evidence`, rule 9 is not applied (tests of the other rules alone)."""
        self._topics = topics
        self._codec = codec
        self._alert_header = codec.single_object_header("DeviceAlert")
        self._state = state
        self._frontier = frontier
        self.holds = holds
        self._max_hold_s = max_hold_s
        self._evidence = evidence
        self.decided = Decided()
        self.read_seq = 0  # numbers the batches read, for the read frontier
        self._decided_time: dict[int, int] = {}  # alert partition -> latest event time decided there
        self._newest_read: dict[int, int] = {}  # alert partition -> newest event time read there

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
        newest_read = self._newest_read
        forwarded_codes: list[str] = []
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
                outputs.append(self._decide_alert(partition, msg.offset(), msg.key(), value, alert, None, seq, now))  # type: ignore[arg-type]
            next_offsets[partition] = msg.offset() + 1  # type: ignore[operator]
            count += 1
        if count:
            decided.latencies[now] += count
        for code, n in Counter(forwarded_codes).items():
            decided.tally["forwarded", code_label(code), ForwardReason.NOT_AD1.value] += n

    def _held(self, msg: Message, raw: RawAlertFields | None, seq: int, now: float) -> ReadAlert:
        _, partition, offset = coordinates(msg)
        if raw is None:  # not the common shape: the generic reader gives the verdict and the error
            return read_alert(self._codec, partition, offset, msg.key(), msg.value(), seq, now)
        return ReadAlert(partition, offset, msg.key(), msg.value(), seq, now, alert=alert_fields(raw))

    def drain(self, now: float, hold_clock_stopped: bool) -> None:
        """Decide held alerts in offset order, each partition up to its first AD1 that must still wait. The
        hold bound counts broker-up time only: while no broker answers (`hold_clock_stopped`), AD1s wait."""
        decided = self.decided

        def decide(item: ReadAlert) -> bool:
            if item.waits_for_inputs:
                assert item.alert is not None
                t = item.alert.received_at
                if not self._frontier.may_decide(t, item.read_seq):
                    if hold_clock_stopped or now - item.read_at < self._max_hold_s:
                        return False
                    decided.records.append(self._forward(item, ForwardReason.HOLD_EXPIRED))
                    log.warning(
                        "forwarding AD1 %s after holding it %.0fs: inputs not read past its time: %s",
                        item.alert.alert_id, now - item.read_at, self._frontier.lagging(t, item.read_seq),
                    )
                else:
                    decided.records.append(self._route(item))
            else:
                decided.records.append(self._route(item))
            decided.latencies[item.read_at] += 1
            decided.next_offsets[item.partition] = item.offset + 1
            return True

        self.holds.release(decide)

    def drain_held(self, wall_ms: int) -> None:
        """Decide the AD1s held for evidence, each held partition in order up to the first that must still
        wait: for the activation inputs (rule 7, as when read), then for evidence. An AD1 still undecided
        A + grace + POA_MAX_HOLD_SECONDS of wall-clock time (`wall_ms`) after it was first read is forwarded."""
        if self._evidence is None:
            return
        decided, max_wait_ms = self.decided, self._evidence.max_wait_ms

        def decide(held: HeldAD1) -> bool:
            item = held.alert
            record: Outgoing | None
            if item.alert is None or item.value is None:  # cannot be for records this filter wrote
                record = self._route(item)
            else:
                record = None
                if self._frontier.may_decide(item.alert.received_at, item.read_seq):
                    record = self._decision_record(item.key, item.value, item.alert, item.datum, item.read_seq)
                if record is None:
                    if wall_ms - held.first_read_ms <= max_wait_ms:
                        return False
                    record = self._forward(item, ForwardReason.HOLD_EXPIRED)
                    log.warning(
                        "forwarding AD1 %s %.0fs after it was read: its inputs or evidence are not complete",
                        item.alert.alert_id, (wall_ms - held.first_read_ms) / 1000,
                    )  # fmt: skip
            decided.records.append(record)
            decided.held_offsets[held.held_partition] = held.held_offset + 1
            return True

        self._evidence.holds.release(decide)

    @property
    def evidence_holds(self) -> EvidenceHolds:
        assert self._evidence is not None, "rule 9 is applied"
        return self._evidence.holds

    def held_for_evidence(self) -> int:
        return 0 if self._evidence is None else self._evidence.holds.count()

    def first_waiting_seq(self) -> int | None:
        """The batch number of the earliest-read AD1 that waits for the activation inputs, if any."""
        first = self.holds.first_waiting_for_inputs()
        seqs = [first.read_seq] if first is not None else []
        held = None if self._evidence is None else self._evidence.holds.first_read_seq()
        return min([*seqs, held] if held is not None else seqs, default=None)

    def event_times(self, partition: int) -> tuple[int, int]:
        """The newest event time read on an alert partition and the latest decided there (ms): how far
        decisions trail the input, in event time (the lag gauge)."""
        decided = self._decided_time.get(partition, 0)
        return max(self._newest_read.get(partition, 0), decided), decided

    def decided_up_to(self, partitions: int) -> int | None:
        """An event time that every partition of the alert topic (`partitions` of them) is known to have
        been decided up to, so that only windows that ended well before it are purged. Every partition
        counts, not only those assigned now: a partition assigned later may lag far behind (a backlog, a
        dead worker's share). A partition's time is kept after it is revoked; it can only have moved on
        since. None until this worker has decided something on every partition."""
        times = [self._decided_time.get(p) for p in range(partitions)]
        return None if not times or None in times else min(t for t in times if t is not None)

    def _route(self, item: ReadAlert) -> Outgoing:
        if item.error is not None or item.alert is None:
            self.decided.tally["dead_letter", "", "bad_input"] += 1
            source = (self._topics.alerts, item.partition, item.offset)
            return dead_letter_record(
                self._codec, self._topics.dead_letter, source, item.key, item.value, item.error or "undecodable"
            )
        assert item.value is not None
        return self._decide_alert(
            item.partition, item.offset, item.key, item.value, item.alert, item.datum, item.read_seq, item.read_at
        )

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
    ) -> Outgoing:
        """A valid alert's decision, as the record to write: its output, or, while evidence for it may still
        come, its record on the held topic. `datum` is the decoded alert when the generic path read it,
        None when alert_wire did; `read_seq` the batch it was read in, `read_at` when (monotonic seconds)."""
        if alert.received_at > self._decided_time.get(partition, 0):
            self._decided_time[partition] = alert.received_at
        record = self._decision_record(key, value, alert, datum, read_seq)
        if record is None:
            assert self._evidence is not None
            read_ms = now_ms() - int((time.monotonic() - read_at) * 1000)  # rule 7's bound runs from the read
            return held_record(self._evidence.topic, key, value, partition, offset, read_ms)
        return record

    def _decision_record(
        self, key: bytes | None, value: bytes, alert: AlertFacts, datum: dict[str, Any] | None, read_seq: int
    ) -> Outgoing | None:
        """The output of a valid alert's decision (rules 5 and 9), counted; None while evidence may come."""
        decision = self._with_evidence(alert, self._state.decide(alert), read_seq)
        if decision is None:
            return None
        code = code_label(alert.alert_code)
        if isinstance(decision, Suppress):
            self.decided.tally["suppressed", code, "activation_window"] += 1
            return self._topics.suppressed, key, self._suppressed_value(value, datum, decision)
        self.decided.tally["forwarded", code, decision.reason.value] += 1
        return self._topics.dno_alerts, key, value

    def _with_evidence(self, alert: AlertFacts, decision: Decision, read_seq: int) -> Decision | None:
        """Rule 9: a suppression stands once no evidence can come; evidence found releases the AD1 at once
        (evidence only accumulates, so that is final). None while evidence may still come.

        Storm evidence rests on rule 5 forwarding the sector's AD1s up to t + A, which is final only once
        the activation inputs are read past t + A (rule 7, as for any AD1): until then it is not looked for."""
        if not isinstance(decision, Suppress) or self._evidence is None:
            return decision
        completeness = self._evidence.completeness
        policy = completeness.policy
        inputs_past = self._frontier.may_decide(policy.complete_after(alert.received_at), read_seq)
        evidence = self._state.evidence_for(alert, policy, storm=inputs_past)
        if evidence is not None:
            log.info("forwarding AD1 %s from CH Function %s inside an activation window: %s",
                     alert.alert_id, alert.device_id, evidence.describe())  # fmt: skip
            return Forward(ForwardReason.OUTAGE_EVIDENCE)
        return decision if inputs_past and completeness.complete(alert.received_at) else None

    def _suppressed_value(self, value: bytes, datum: dict[str, Any] | None, decision: Suppress) -> bytes:
        topic = self._topics.suppressed
        if datum is not None:  # read by the generic path: encode the decoded alert again
            return self._codec.encode("SuppressedAlert", suppressed_alert(datum, decision), topic)
        body = value[len(self._alert_header) :]  # read by alert_wire: single-object bytes of our DeviceAlert
        return suppressed_alert_bytes(self._codec.header("SuppressedAlert", topic), body, audit_fields(decision))

    def _forward(self, item: ReadAlert, reason: ForwardReason) -> Outgoing:
        code = code_label(item.alert.alert_code) if item.alert is not None else ""
        self.decided.tally["forwarded", code, reason.value] += 1
        assert item.value is not None
        return self._topics.dno_alerts, item.key, item.value
