"""Alert triage: each alert read is decided on the spot when it can be, or held until it can.

An alert with nothing held ahead of it in its partition is decided as it is read: forwarded as read if it
is not an AD1 (the fast reader does not even decode it), decided against the filter state if it is an
AD1 the read frontier allows (contract 5.7). The rest are held (`HeldAlerts`) and decided in offset order
once the frontier allows them, or forwarded once held `max_hold_s` of broker-up time.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from pipeline.core.alert_decisions import ForwardReason, Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.read_frontier import ReadFrontier
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.kafka.batches import coordinates
from pipeline.settings import Topics
from pipeline.wire.alert_bytes import RawAlertFields, alert_fields, read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Outgoing, audit_fields, suppressed_alert
from pipeline.worker.dead_letters import dead_letter_record
from pipeline.worker.hold_queues import HeldAlerts, ReadAlert, read_alert
from pipeline.worker.metrics import code_label

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Decided:
    """What was decided since the last transaction began: the records to write, the next offset of each
    alert partition (committed with them), the decided alerts by the time they were read (for the latency
    histogram), and the decisions by metric labels (counted once the transaction commits)."""

    records: list[Outgoing] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    latencies: Counter[float] = field(default_factory=Counter)
    tally: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.records or self.next_offsets)


class AlertTriage:
    def __init__(
        self,
        topics: Topics,
        codec: AvroCodec,
        state: FilterState,
        frontier: ReadFrontier,
        holds: HeldAlerts,
        max_hold_s: float,
    ) -> None:
        self._topics = topics
        self._codec = codec
        self._alert_header = codec.single_object_header("DeviceAlert")
        self._state = state
        self._frontier = frontier
        self.holds = holds
        self._max_hold_s = max_hold_s
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
                outputs.append(self._decide_alert(partition, msg.key(), value, alert, None))
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

    def first_waiting_seq(self) -> int | None:
        """The batch number of the earliest-read AD1 that blocks its partition, if any."""
        first = self.holds.first_waiting_for_inputs()
        return None if first is None else first.read_seq

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
        return self._decide_alert(item.partition, item.key, item.value, item.alert, item.datum)

    def _decide_alert(
        self, partition: int, key: bytes | None, value: bytes, alert: AlertFacts, datum: dict[str, Any] | None
    ) -> Outgoing:
        """A valid alert's decision, as the record to write. `datum` is the decoded alert when the generic
        path read it, None when alert_wire did."""
        if alert.received_at > self._decided_time.get(partition, 0):
            self._decided_time[partition] = alert.received_at
        decision = self._state.decide(alert)
        code = code_label(alert.alert_code)
        if isinstance(decision, Suppress):
            self.decided.tally["suppressed", code, "activation_window"] += 1
            return self._topics.suppressed, key, self._suppressed_value(value, datum, decision)
        self.decided.tally["forwarded", code, decision.reason.value] += 1
        return self._topics.dno_alerts, key, value

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
