"""`poa-filter worker`: the Kafka transport around the decision core.

One loop, one thread (plus a helper thread that waits for each transaction's commit):
1. read a batch of alerts (the consumer group spreads alert partitions over workers), look up the
   state topics' end offsets, and triage the batch: an alert with nothing held ahead of it in its
   partition is decided at once, the rest join per-partition queues; this overlaps the previous
   transaction's commit;
2. once that commit is settled, commit the staged state, then read the state topics (service requests,
   outcomes, inventory, tracked list: every partition, like a Kafka Streams global table) into
   FilterState, staged in RocksDB with their read positions;
3. decide queue heads in offset order; an AD1 waits until the ReadFrontier says the activation and
   reference inputs are read past its event time (contract 5.7), at most `max_hold_seconds`;
4. begin the transaction that writes the outputs and the alert offsets (exactly once).
Decisions never read the wall clock; it only bounds the hold and stamps audit records.
"""

import hashlib
import logging
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import ForwardReason, Suppress
from pipeline.core.filter_state import FilterState, SweepPass
from pipeline.core.key_value import StagedStore
from pipeline.core.read_frontier import Partition, ReadFrontier
from pipeline.core.records import OUTAGE_ALERT_CODE, AlertFacts
from pipeline.kafka import clients
from pipeline.kafka.admin import (
    EndOffsetLookup,
    ensure_output_topics,
    topic_partitions,
    wait_for_topics,
)
from pipeline.kafka.batches import next_batch, produce_when_room
from pipeline.settings import Settings
from pipeline.wire.alert_bytes import RawAlertFields, alert_fields, read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Outgoing, Output, audit_fields, dead_letter, suppressed_alert
from pipeline.wire.schema_registry import SchemaRegistryClient
from pipeline.worker.hold_queues import AlertQueues, ReadAlert, read_alert
from pipeline.worker.metrics import Readiness, WorkerMetrics, code_label, serve_metrics
from pipeline.worker.rocks_store import RocksBackend
from pipeline.worker.state_feed import StateFeed
from pipeline.worker.transactions import TXN_TIMEOUT_S, PendingCommit, TransactionStuck

log = logging.getLogger("poa_filter.worker")

READ_BATCH = 5000
MAX_QUEUED_PER_PARTITION = 20_000  # pause a partition's fetching beyond this many undecided alerts
END_OFFSET_INTERVAL_S = 0.005  # at most this often, look up end offsets again for held AD1s
END_OFFSET_WAIT_S = 0.02  # after reading a batch, wait at most this long for its end-offset look-up
ALERT_WAIT_S = 0.005  # with nothing queued, wait at most this long for the next alert
STATE_COMMIT_INTERVAL_S = 0.2
SWEEP_INTERVAL_S = 60.0
SWEEP_SLICE = 200  # keys per loop iteration, so housekeeping never stalls decisions
MAX_STAGED_CHANGES = 50_000  # bound on uncommitted state changes (memory during a state rebuild)
SWEEP_RETENTION_MS = 2 * 86_400_000  # keep expired windows two days past their end, for late alerts
GAUGE_INTERVAL_S = 2.0


class FilterWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.metrics = WorkerMetrics()
        self.readiness = Readiness()
        registry = SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
        self.codec = AvroCodec(registry=registry)
        self._alert_header = self.codec.single_object_header("DeviceAlert")
        self.policy = WindowPolicy(settings.window_ms, settings.lead_in_ms, settings.max_future_ms)
        self.frontier = ReadFrontier()
        self.queues = AlertQueues()
        self._stopping = False
        self._read_seq = 0
        self._rebalancing = True
        self._bootstrapped = False
        self._pending_dead_letters: list[Output] = []
        self._consumer_failed = False
        self._broker_down_since: float | None = None  # the hold clock stops while no broker answers
        self._decided_time: dict[int, int] = {}  # alert partition -> latest event time decided there
        self._alert_partitions = 0
        self._sweep: SweepPass | None = None
        self._tally: Counter[tuple[str, str, str]] = Counter()  # decisions of the open transaction
        # What one loop step decided: records to write, next offset per alert partition, and how many
        # alerts were decided by the time they were read (for the latency histogram).
        self._outputs: list[Outgoing] = []
        self._next_offsets: dict[int, int] = {}
        self._latencies: Counter[float] = Counter()
        self._commit_in_flight: PendingCommit | None = None
        self._rewind_pending = False  # a transaction failed: seek back to the committed offsets
        self._state_dirty = False
        self._last_state_commit = self._last_sweep = self._last_gauges = self._last_end_lookup = 0.0
        self._last_partition_check = time.monotonic()
        self._state_partition_counts: dict[str, int] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        if not self._stopping:
            log.info("stopping after the current batch")
        self._stopping = True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.http = serve_metrics(self.settings.metrics_port, self.metrics, self.readiness)
        log.info("metrics and readiness on port %d (/metrics, /ready)", self.http.server_port)
        self._open_state()
        try:
            self._connect()
            while not self._stopping:
                self._step()
        except InterruptedError:
            pass
        finally:
            self._close()

    def _open_state(self) -> None:
        root = Path(self.settings.data_dir).resolve()
        for slot in range(64):
            path = root / f"{self.settings.app_id}-{slot}"
            try:
                self.backend = RocksBackend(path)
            except Exception as exc:  # noqa: BLE001 - rocksdict raises a bare Exception when locked
                if "lock" in str(exc).lower():
                    continue
                raise SystemExit(f"cannot open local state at {path}: {exc}") from exc
            self.state_path = path
            break
        else:
            raise SystemExit(f"no free state slot under {root}: 64 workers already use it")
        self.state = FilterState(StagedStore(self.backend), self.policy)
        self.feed = StateFeed(self.topics, self.codec, self.state)
        # Stable per state folder and host, so a restarted worker's transactional ID fences its predecessor.
        digest = hashlib.sha1(f"{socket.gethostname()}:{path}".encode()).hexdigest()[:12]
        self.instance_id = f"{self.settings.app_id}-{digest}"
        log.info("local state in %s (instance %s)", path, self.instance_id)

    def _connect(self) -> None:
        s = self.settings
        self.admin = clients.admin_client(s)
        self.end_lookup = EndOffsetLookup(lambda: clients.admin_client(s))
        state_topics = [*self.topics.activation_inputs, *self.topics.reference_inputs]
        counts = wait_for_topics(
            self.admin, [*state_topics, self.topics.alerts], lambda: self._stopping, self.readiness.set
        )
        ensure_output_topics(self.admin, self.topics.outputs, counts[self.topics.alerts])
        self._alert_partitions = counts[self.topics.alerts]

        self._state_partition_counts = {t: counts[t] for t in state_topics}
        state_partitions = [(t, p) for t in state_topics for p in range(counts[t])]
        stored = self._stored_positions()
        self.frontier.track(state_partitions, stored)
        self.state_consumer = clients.consumer(
            s, f"{s.app_id}.state-reader", clients.STATE_READER_TUNING, error_cb=self._on_client_error
        )
        self.state_consumer.assign(
            [TopicPartition(t, p, stored.get((t, p), OFFSET_BEGINNING)) for t, p in state_partitions]
        )
        reference = [(t, p) for t, p in state_partitions if t in self.topics.reference_inputs]
        self._bootstrap_ends = self.end_lookup.wait(reference)
        self.readiness.set("reading the reference topics (inventory, tracked list) to their end")
        log.info("reading inventory and tracked list to their end offsets before deciding alerts")

        self.producer = self._new_producer()
        self.alert_consumer = self._new_alert_consumer()

    def _new_alert_consumer(self) -> Consumer:
        s = self.settings
        # Partitions added to the alert topic are noticed (and handed out by the group) this often.
        refresh_ms = int(s.partition_check_seconds * 1000) or 1000
        return clients.consumer(
            s,
            s.app_id,
            {**clients.ALERT_CONSUMER_TUNING, **clients.ALERT_GROUP_MEMBERSHIP},
            **{"topic.metadata.refresh.interval.ms": refresh_ms},
            error_cb=self._on_client_error,
        )

    def _subscribe(self) -> None:
        self.alert_consumer.subscribe(
            [self.topics.alerts], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _replace_alert_consumer(self) -> None:
        """A fatal consumer error ends that consumer for good (none is expected without static membership,
        but a worker must not sit on a dead consumer); a new one rejoins the group. Undecided alerts are
        dropped and read again from the committed offsets."""
        log.error("the alert consumer failed fatally; replacing it and rejoining group %s", self.settings.app_id)
        self._consumer_failed = False
        self._rebalancing = True
        self.readiness.set("rejoining the consumer group")
        self.queues = AlertQueues()
        try:
            self.alert_consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the failed consumer: %s", exc)
        self.alert_consumer = self._new_alert_consumer()
        self._subscribe()

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal Kafka client error: %s", err)
            self._consumer_failed = True
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._broker_down_since is None:
                log.warning("no broker reachable; holding alerts until it is back: %s", err)
                self._broker_down_since = time.monotonic()
                self.readiness.set("no Kafka broker reachable")
        elif err.code() != KafkaError._TRANSPORT:  # librdkafka logs each refused connection itself
            log.warning("Kafka client: %s", err)

    def _broker_back(self) -> None:
        """Forwarding during an outage gets no alert out sooner and would make decisions depend on its
        length, so held alerts get a fresh hold once the broker answers again.

        The transactional producer is replaced too: after a broker restart its metadata can stay stale
        and `send_offsets_to_transaction` then blocked far past its timeout (seen with librdkafka 2.16,
        cf. confluentinc/librdkafka#5456). A new producer with the same transactional ID fences the old
        one and aborts whatever it left open; nothing is mid-transaction here.
        """
        if self._broker_down_since is None:
            return
        self._settle()  # never replace a producer under a transaction in flight
        now = time.monotonic()
        log.info("broker reachable again after %.1fs; renewing the transactional producer",
                 now - self._broker_down_since)
        self._broker_down_since = None
        self.producer = self._new_producer()
        if self._bootstrapped and not self._rebalancing:
            self.readiness.set(None)
        for queue in self.queues.queues().values():
            for item in queue.items:
                item.read_at = max(item.read_at, now)

    def _new_producer(self) -> Producer:
        producer = clients.producer(
            self.settings, clients.TRANSACTIONAL_PRODUCER_TUNING, **{"transactional.id": f"{self.instance_id}-tx"}
        )
        while True:
            try:
                producer.init_transactions(TXN_TIMEOUT_S)
                return producer
            except KafkaException as exc:
                if self._stopping:
                    raise InterruptedError from exc
                log.warning("could not initialise transactions, retrying: %s", exc)
                time.sleep(1)

    def _close(self) -> None:
        self.readiness.set("stopping")
        if hasattr(self, "producer"):
            self._settle()  # the last transaction, before the group is left
        for name in ("alert_consumer", "state_consumer"):
            consumer = getattr(self, name, None)
            if consumer is not None:
                try:
                    consumer.close()
                except (KafkaException, RuntimeError) as exc:
                    log.warning("closing %s: %s", name, exc)
        if hasattr(self, "state"):
            # State and positions are committed only if the dead letters they imply were written;
            # otherwise the records are simply read again at the next start.
            if not self._pending_dead_letters or (hasattr(self, "producer") and self._transact([], [])):
                self._commit_state()
            self.backend.close()
        if hasattr(self, "http"):
            self.http.shutdown()
        log.info("stopped")

    # --- the loop -------------------------------------------------------------------------------

    def _step(self) -> None:
        """One pass of the loop. While the previous step's transaction commits (on a helper thread), this
        step reads and triages the next alerts; state is read and decisions that need it are taken only
        once that transaction is settled, so committed state never runs ahead of its dead letters."""
        if not self._bootstrapped:
            read_state = self._read_state_topics()
            if self.state.pending_changes >= MAX_STAGED_CHANGES:
                self._flush_state()
            self._check_bootstrap()
            if not read_state:
                time.sleep(0.01)
            return
        self._outputs, self._next_offsets, self._latencies = [], {}, Counter()
        in_flight = self._commit_in_flight is not None
        read_alerts = self._read_alerts(wait_s=0 if in_flight else ALERT_WAIT_S)
        if in_flight:
            self._settle()
            if read_alerts < READ_BATCH:  # what arrived while the commit was under way joins the next one
                read_alerts += self._read_alerts(wait_s=0)
        if self._rewind_pending:  # a transaction failed: every alert not committed is read again
            self._rewind_alerts()
            return
        if self._consumer_failed:
            self._replace_alert_consumer()
            return
        read_state = self._read_state_topics()
        if self.state.pending_changes >= MAX_STAGED_CHANGES:
            self._flush_state()
        self._poll_end_offsets()
        self._drain_queues()
        self._request_end_offsets_if_held()
        if self._outputs or self._next_offsets or self._pending_dead_letters:
            offsets = [TopicPartition(self.topics.alerts, p, o) for p, o in self._next_offsets.items()]
            self._start_transaction(self._outputs, offsets)
        elif self._state_dirty and time.monotonic() - self._last_state_commit > STATE_COMMIT_INTERVAL_S:
            self._commit_state()
        self._housekeeping()
        if not (read_state or read_alerts or self._latencies or in_flight):
            time.sleep(0.001)

    def _read_state_topics(self) -> int:
        try:
            messages = self.state_consumer.consume(READ_BATCH, 0)
        except KafkaException as exc:
            log.warning("reading state topics: %s", exc)
            return 0
        if not messages:
            return 0
        self._broker_back()
        apply, observe = self.feed.apply, self.frontier.observe
        records: Counter[str] = Counter()
        for msg in messages:
            err = msg.error()
            topic, partition, offset = _coordinates(msg)
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.frontier.observe_position((topic, partition), offset)
                else:
                    log.warning("state topic read error: %s", err)
                continue
            records[topic] += 1
            applied = apply(topic, msg.key(), msg.value())
            if applied.error is not None:
                self._dead_letter(topic, partition, offset, msg.key(), msg.value(), applied.error)
                self.metrics.dead_letters.labels(topic).inc()
            observe((topic, partition), offset, applied.event_time)
        for topic, count in records.items():
            self.metrics.input_records.labels(topic).inc(count)
        self._state_dirty = True
        return len(messages)

    def _dead_letter(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, error: str
    ) -> Output:
        log.info("dead letter %s[%d]@%d: %s", topic, partition, offset, error)
        record = dead_letter(topic, partition, offset, key, value, error)
        out = Output(self.topics.dead_letter, key, self.codec.encode("DeadLetter", record, self.topics.dead_letter))
        if topic != self.topics.alerts:
            self._pending_dead_letters.append(out)
        return out

    def _check_bootstrap(self) -> None:
        positions = self.frontier.next_offsets()
        if all(positions.get(p, 0) >= end for p, end in self._bootstrap_ends.items()):
            self._bootstrapped = True
            self._flush_state()
            log.info("reference topics read (%d tracked devices); joining group %s", self.state.tracked_count(),
                     self.settings.app_id)
            self.readiness.set("waiting for alert partitions")
            self._subscribe()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.queues.add_partitions([tp.partition for tp in partitions])
        log.info("assigned alert partitions %s", sorted(tp.partition for tp in partitions))
        self._rebalancing = False
        self.readiness.set(None)
        self.metrics.ready.set(1)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalancing = True
        self.readiness.set("rebalancing")
        self.metrics.ready.set(0)
        # The transaction in flight carries offsets of these partitions: it is settled before they move.
        # Undecided alerts are dropped and will be read again, from the committed offset, by the new owner.
        self._settle()
        self.queues.drop_partitions([tp.partition for tp in partitions])
        log.info("revoked alert partitions %s", sorted(tp.partition for tp in partitions))

    def _read_alerts(self, wait_s: float) -> int:
        """Read a batch of alerts and triage it. An alert with nothing held ahead of it in its partition is
        decided on the spot: forwarded as read if it is not an AD1, decided against the state if it is an
        AD1 the read frontier allows. The rest join their partition's queue."""
        try:
            messages = next_batch(self.alert_consumer, READ_BATCH, wait_s)
        except KafkaException as exc:
            log.warning("reading alerts: %s", exc)
            return 0
        if not messages:
            return 0
        self._read_seq += 1
        seq, now = self._read_seq, time.monotonic()
        self._poll_end_offsets()
        self._await_end_offsets()
        queues, may_decide = self.queues.queues(), self.frontier.may_decide
        header, dno = self._alert_header, self.topics.dno_alerts
        outputs, next_offsets, decided_time = self._outputs, self._next_offsets, self._decided_time
        forwarded_codes: list[str] = []
        count = decided = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    self._consumer_failed = True
                elif err.code() != KafkaError._PARTITION_EOF:
                    log.warning("alert read error: %s", err)
                continue
            count += 1
            partition: int = msg.partition()  # type: ignore[assignment]  # always set on a consumed message
            queue = queues.get(partition)
            if queue is None:  # revoked meanwhile: its new owner reads it again
                continue
            value = msg.value()
            raw = None if value is None else read_alert_fields(value, header)
            if value is None or raw is None or queue.items:
                queue.items.append(self._queue_item(msg, raw, seq, now))
                continue
            if raw[1] != OUTAGE_ALERT_CODE:
                outputs.append((dno, msg.key(), value))
                forwarded_codes.append(raw[1])
                if raw[3] > decided_time.get(partition, 0):
                    decided_time[partition] = raw[3]
            else:
                alert = alert_fields(raw)
                if not may_decide(alert.received_at, seq):
                    queue.items.append(ReadAlert(partition, msg.offset(), msg.key(), value, seq, now, alert=alert))  # type: ignore[arg-type]
                    continue
                outputs.append(self._decide_alert(partition, msg.key(), value, alert, None))
            next_offsets[partition] = msg.offset() + 1  # type: ignore[operator]
            decided += 1
        if decided:
            self._latencies[now] += decided
        for code, n in Counter(forwarded_codes).items():
            self._tally["forwarded", code_label(code), ForwardReason.NOT_AD1.value] += n
        self.metrics.input_records.labels(self.topics.alerts).inc(count)
        return count

    def _queue_item(self, msg: Message, raw: RawAlertFields | None, seq: int, now: float) -> ReadAlert:
        _, partition, offset = _coordinates(msg)
        if raw is None:  # not the common shape: the generic reader gives the verdict and the error
            return read_alert(self.codec, partition, offset, msg.key(), msg.value(), seq, now)
        return ReadAlert(partition, offset, msg.key(), msg.value(), seq, now, alert=alert_fields(raw))

    def _drain_queues(self) -> None:
        """Decide queued alerts in offset order, each partition up to its first AD1 that must still wait."""
        hold_s = self.settings.max_hold_seconds
        now = time.monotonic()
        for partition, queue in self.queues.queues().items():
            items = queue.items
            last = None
            while items:
                item = items[0]
                if item.waits_for_inputs:
                    assert item.alert is not None
                    t = item.alert.received_at
                    if not self.frontier.may_decide(t, item.read_seq):
                        if self._broker_down_since is not None or now - item.read_at < hold_s:
                            break
                        self._outputs.append(self._forward(item, ForwardReason.HOLD_EXPIRED))
                        log.warning(
                            "forwarding AD1 %s after holding it %.0fs: inputs not read past its time: %s",
                            item.alert.alert_id, now - item.read_at, self.frontier.lagging(t, item.read_seq),
                        )
                    else:
                        self._outputs.append(self._route(item))
                else:
                    self._outputs.append(self._route(item))
                items.popleft()
                self._latencies[item.read_at] += 1
                last = item
            if last is not None:
                self._next_offsets[partition] = last.offset + 1

    def _route(self, item: ReadAlert) -> Outgoing:
        if item.error is not None or item.alert is None:
            self._tally["dead_letter", "", "bad_input"] += 1
            return self._dead_letter(self.topics.alerts, item.partition, item.offset, item.key, item.value,
                                     item.error or "undecodable")
        assert item.value is not None
        return self._decide_alert(item.partition, item.key, item.value, item.alert, item.datum)

    def _decide_alert(
        self, partition: int, key: bytes | None, value: bytes, alert: AlertFacts, datum: dict[str, Any] | None
    ) -> Outgoing:
        """A valid alert's decision, as the record to write. `datum` is the decoded alert when the generic
        path read it, None when alert_wire did."""
        if alert.received_at > self._decided_time.get(partition, 0):
            self._decided_time[partition] = alert.received_at
        decision = self.state.decide(alert)
        code = code_label(alert.alert_code)
        if isinstance(decision, Suppress):
            self._tally["suppressed", code, "activation_window"] += 1
            return self.topics.suppressed, key, self._suppressed_value(value, datum, decision)
        self._tally["forwarded", code, decision.reason.value] += 1
        return self.topics.dno_alerts, key, value

    def _suppressed_value(self, value: bytes, datum: dict[str, Any] | None, decision: Suppress) -> bytes:
        topic = self.topics.suppressed
        if datum is not None:  # read by the generic path: encode the decoded alert again
            return self.codec.encode("SuppressedAlert", suppressed_alert(datum, decision), topic)
        body = value[len(self._alert_header) :]  # read by alert_wire: single-object bytes of our DeviceAlert
        return suppressed_alert_bytes(self.codec.header("SuppressedAlert", topic), body, audit_fields(decision))

    def _forward(self, item: ReadAlert, reason: ForwardReason) -> Outgoing:
        code = code_label(item.alert.alert_code) if item.alert is not None else ""
        self._tally["forwarded", code, reason.value] += 1
        assert item.value is not None
        return self.topics.dno_alerts, item.key, item.value

    # --- the read frontier ----------------------------------------------------------------------

    def _first_held(self) -> ReadAlert | None:
        held = [q.items[0] for q in self.queues.queues().values() if q.items and q.items[0].waits_for_inputs]
        return min(held, key=lambda i: i.read_seq, default=None)

    def _request_end_offsets_if_held(self) -> None:
        """Start a look-up for the alerts read so far if one is held waiting for it."""
        first = self._first_held()
        if first is None or self.frontier.covers(first.read_seq) or not self.end_lookup.can_start():
            return
        now = time.monotonic()
        if now - self._last_end_lookup >= END_OFFSET_INTERVAL_S:
            self._last_end_lookup = now
            self.end_lookup.start(self.frontier.partitions, tag=self._read_seq + 1)

    def _await_end_offsets(self) -> None:
        """End offsets looked up after everything read so far, waited for at most END_OFFSET_WAIT_S (about a
        millisecond on a healthy broker): with them, the AD1s of the batch just read are decided as they
        are triaged, instead of one transaction later, live and in a backlog alike."""
        deadline = time.monotonic() + END_OFFSET_WAIT_S
        while not self.frontier.covers(self._read_seq):
            if self.end_lookup.can_start():
                self._last_end_lookup = time.monotonic()
                self.end_lookup.start(self.frontier.partitions, tag=self._read_seq + 1)
            elif not self.end_lookup.in_flight:
                return  # backing off after a failed look-up; `_request_end_offsets_if_held` retries
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.end_lookup.settle(remaining)
            self._poll_end_offsets()

    def _poll_end_offsets(self) -> None:
        result = self.end_lookup.poll()
        if result is not None:
            self._broker_back()
            ends, tag = result
            self.frontier.set_end_offsets(ends, reads_before=tag)

    # --- exactly-once output ----------------------------------------------------------------------

    def _transact(self, outputs: list[Outgoing], offsets: list[TopicPartition]) -> bool:
        """One transaction, waited for; False if it was aborted."""
        self._start_transaction(outputs, offsets)
        return self._settle()

    def _start_transaction(self, outputs: list[Outgoing], offsets: list[TopicPartition]) -> None:
        """Outputs, state-topic dead letters and alert offsets in one transaction, committed on a helper
        thread; `_settle` waits for it. Nothing else touches the producer meanwhile."""
        assert self._commit_in_flight is None
        dead_letters, self._pending_dead_letters = self._pending_dead_letters, []
        tally, self._tally = self._tally, Counter()
        commit = PendingCommit(dead_letters, tally, self._latencies)
        self._commit_in_flight = commit
        try:
            self.producer.begin_transaction()
            produce = self.producer.produce
            for records in (dead_letters, outputs):
                for topic, key, value in records:
                    try:
                        produce(topic, value, key)
                    except BufferError:
                        produce_when_room(self.producer, topic, value, key, poll_s=0.01)
        except KafkaException as exc:
            commit.failed(exc)
            return
        metadata = self.alert_consumer.consumer_group_metadata() if offsets else None
        commit.start(self.producer, offsets, metadata, lambda: self._stopping)

    def _settle(self) -> bool:
        """Wait for the transaction in flight, if any. Committed: count its decisions and commit the state
        read before it began. Failed: abort it; every alert not committed (queued, or read since) is to be
        read again (`_rewind_pending`), and its state-topic dead letters go in the next transaction."""
        commit, self._commit_in_flight = self._commit_in_flight, None
        if commit is None:
            return True
        try:
            commit.wait()
        except (KafkaException, TransactionStuck) as exc:
            self._pending_dead_letters[:0] = commit.dead_letters
            self._abandon_transaction(exc)
            return False
        self.metrics.transactions.labels("committed").inc()
        self._observe_committed(commit.latencies, commit.tally)
        self._commit_state()
        return True

    def _abandon_transaction(self, exc: KafkaException | TransactionStuck) -> None:
        """Abort (or fence, with a new producer) a failed transaction; its alerts are to be read again."""
        self.metrics.transactions.labels("aborted").inc()
        if isinstance(exc, TransactionStuck):
            log.error("%s; fencing this producer with a new one and re-reading uncommitted alerts", exc)
            self.producer = self._new_producer()
        elif exc.args[0].fatal():
            log.warning("transaction failed, re-reading uncommitted alerts with a new producer: %s", exc)
            self.producer = self._new_producer()
        else:
            log.warning("transaction failed, aborting and re-reading uncommitted alerts: %s", exc)
            try:
                self.producer.abort_transaction(TXN_TIMEOUT_S)
            except KafkaException as abort_exc:
                log.warning("abort failed, recreating the producer: %s", abort_exc)
                self.producer = self._new_producer()
        # The seek itself waits for the loop: this may run inside a rebalance callback.
        self._rewind_pending = True
        self.queues.clear()
        self._tally.clear()
        self._outputs, self._next_offsets, self._latencies = [], {}, Counter()

    def _rewind_alerts(self) -> None:
        """Seek every assigned alert partition back to its committed offset."""
        self._rewind_pending = False
        self.queues.clear()
        self._tally.clear()
        self._outputs, self._next_offsets, self._latencies = [], {}, Counter()
        assignment = self.alert_consumer.assignment()
        if not assignment:
            return
        while True:
            try:
                committed = self.alert_consumer.committed(assignment, timeout=TXN_TIMEOUT_S)
                break
            except KafkaException as exc:
                if self._stopping:
                    return
                log.warning("reading committed offsets: %s", exc)
                time.sleep(0.5)
        for tp in committed:
            tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.alert_consumer.seek(tp)

    def _observe_committed(self, latencies: Counter[float], tally: Counter[tuple[str, str, str]]) -> None:
        """Metrics count committed decisions only, so an aborted and re-read batch is counted once.
        `latencies` counts the decided alerts by the time they were read."""
        now = time.monotonic()
        for read_at, count in latencies.items():
            self.metrics.decision_latency.observe_many(now - read_at, count)
        for (decision, code, reason), count in tally.items():
            self.metrics.alerts.labels(decision, code, reason).inc(count)
            if decision == "dead_letter":
                self.metrics.dead_letters.labels(self.topics.alerts).inc(count)

    # --- state persistence --------------------------------------------------------------------------

    def _stored_positions(self) -> dict[Partition, int]:
        positions = {}
        for name, value in self.state.meta_items("pos/"):
            _, topic, partition = name.rsplit("/", 2)
            positions[(topic, int(partition))] = int(value)
        return positions

    def _record_positions(self) -> None:
        for (topic, partition), offset in self.frontier.next_offsets().items():
            self.state.put_meta(f"pos/{topic}/{partition}", str(offset).encode())

    def _flush_state(self) -> None:
        """Commit staged state between transactions; pending dead letters go out first, so a crash
        cannot leave state committed past a record whose dead letter was never written."""
        if self._pending_dead_letters and not self._transact([], []):
            return
        self._commit_state()

    def _commit_state(self) -> None:
        """Staged state and the positions it was read up to become durable together."""
        self._record_positions()
        self.state.commit()
        self._state_dirty = False
        self._last_state_commit = time.monotonic()

    # --- housekeeping -------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self._pause_or_resume()
        if now - self._last_partition_check >= self.settings.partition_check_seconds:
            self._last_partition_check = now
            self._read_added_partitions()
        if now - self._last_gauges >= GAUGE_INTERVAL_S:
            self._last_gauges = now
            self._update_gauges()
        if self._sweep is None:
            slowest = self._slowest_partition_time()
            if now - self._last_sweep >= SWEEP_INTERVAL_S and slowest is not None:
                self._last_sweep = now
                self._sweep = SweepPass(slowest, SWEEP_RETENTION_MS)
        elif self.state.sweep_some(self._sweep, SWEEP_SLICE):
            counts, self._sweep = self._sweep.counts, None
            self._state_dirty = True
            self.metrics.activation_windows.labels("pending").set(counts.pending)
            self.metrics.activation_windows.labels("active").set(counts.active)
            if counts.purged:
                log.info("purged %d expired activation versions", counts.purged)

    def _read_added_partitions(self) -> None:
        """Partitions the DSP added to an input topic while the worker runs. A new state partition is
        read from its start and joins the read frontier, so AD1s wait for it like any other; the
        consumer group hands out new alert partitions by itself, and they join the sweep's horizon."""
        try:
            counts = topic_partitions(self.admin, [*self._state_partition_counts, self.topics.alerts], timeout=5)
        except KafkaException as exc:
            log.warning("looking for added partitions: %s", exc)
            return
        added: list[TopicPartition] = []
        for topic, known in self._state_partition_counts.items():
            now_count = counts.get(topic, known)
            if now_count > known:
                added += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(known, now_count)]
                self._state_partition_counts[topic] = now_count
        if added:
            log.info("reading partitions added to the state topics: %s",
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in added))
            self.frontier.track([(tp.topic, tp.partition) for tp in added], {})
            self.state_consumer.incremental_assign(added)
        alert_count = counts.get(self.topics.alerts, self._alert_partitions)
        if alert_count > self._alert_partitions:
            log.info("the alert topic grew from %d to %d partitions", self._alert_partitions, alert_count)
            self._alert_partitions = alert_count

    def _slowest_partition_time(self) -> int | None:
        """An event time that every partition of the alert topic is known to have been decided up to,
        so that only windows that ended well before it are purged. Every partition counts, not only
        those assigned now: a partition assigned later may lag far behind (a backlog, a dead worker's
        share). A partition's time is kept after it is revoked; it can only have moved on since. No
        sweep until this worker has decided something on every partition."""
        times = [self._decided_time.get(p) for p in range(self._alert_partitions)]
        return None if not times or None in times else min(t for t in times if t is not None)

    def _pause_or_resume(self) -> None:
        for partition, queue in self.queues.queues().items():
            size = len(queue.items)
            tp = [TopicPartition(self.topics.alerts, partition)]
            if not queue.paused and size >= MAX_QUEUED_PER_PARTITION:
                self.alert_consumer.pause(tp)
                queue.paused = True
            elif queue.paused and size < MAX_QUEUED_PER_PARTITION // 2:
                self.alert_consumer.resume(tp)
                queue.paused = False

    def _update_gauges(self) -> None:
        self.metrics.held_alerts.set(self.queues.held())
        self.metrics.tracked_devices.set(self.state.tracked_count())
        for consumer, parts in (
            (self.state_consumer, self.state_consumer.assignment()),
            (self.alert_consumer, self.alert_consumer.assignment() if self._bootstrapped else []),
        ):
            try:
                positions = consumer.position(parts)
            except KafkaException:
                continue
            for tp in positions:
                _low, high = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                if high >= 0 and tp.offset >= 0:
                    self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))


def _coordinates(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed message (always set on those, whatever the stubs say)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def run_worker(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    FilterWorker(settings).run()
