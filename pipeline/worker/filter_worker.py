"""`poa-filter worker`: the Kafka transport around the decision core, assembled from parts with one concern each.

- `StateReader`: every partition of the four state topics into FilterState (a global table), positions
  stored beside the state, and the bad records it met; `DeadLetterOwnership`: which worker dead-letters
  them (once, whatever the number of workers).
- `AlertReader`: the alert consumer in its group; `AlertTriage`: decides alerts as read, or holds them
  (`HeldAlerts`) until the read frontier allows; `EndOffsetWatch`: the end offsets the frontier needs.
- `TransactionalOutput`: outputs, dead letters and alert offsets in one transaction (exactly once).
- `EvidenceReader`: every partition of the alert topic, for rule 9's evidence (a global table of the alerts
  that may be evidence); AD1s waiting for evidence leave their partition for the held topic
  (`EvidenceHolds`), read in the alert consumer's group and decided by `AlertTriage.drain_held`.
- `Housekeeping`: sweeps of expired activation windows, gauges. `BrokerWatch`: what the clients report.

The loop (`step`) runs on one thread, plus a helper thread that waits for each transaction's commit:
1. read a batch of alerts and triage it, with end offsets looked up after it was read; this overlaps the
   previous transaction's commit;
2. once that commit is settled, commit the state read before it began, then read the state topics;
3. decide held alerts in offset order; an AD1 waits until the ReadFrontier says the activation and
   reference inputs are read past its event time (contract 5.7), at most `max_hold_seconds`; an AD1 in a
   window waits on the held topic until its evidence is complete (rules 7 and 9);
4. begin the transaction that writes the outputs, the owned state partitions' dead letters and the offsets
   (alert and held partitions).
Decisions never read the wall clock; it only bounds the hold and stamps audit records.
"""

import logging
import signal
from http.server import ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.explanation import iso_utc
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import StagedStore
from pipeline.core.operating_mode import Mode, ModeSchedule
from pipeline.core.read_frontier import Partition, ReadFrontier
from pipeline.kafka import clients
from pipeline.kafka.admin import EndOffsetLookup, topic_partitions
from pipeline.kafka.cluster_checks import ClusterWatch, Finding, counts_by_severity, summary
from pipeline.kafka.topics import create_topics
from pipeline.log_format import identify_instance
from pipeline.settings import Settings
from pipeline.wire.avro_codec import codec_for_registry
from pipeline.worker.alert_reader import AlertReader
from pipeline.worker.broker_watch import BrokerWatch
from pipeline.worker.dead_letter_ownership import DeadLetterOwnership
from pipeline.worker.end_offsets import EndOffsetWatch
from pipeline.worker.evidence_holds import EvidenceHolds, EvidenceWait
from pipeline.worker.evidence_reader import EvidenceReader
from pipeline.worker.explain_requests import ExplainRequests, InputsSeen
from pipeline.worker.hold_queues import AlertQueues
from pipeline.worker.housekeeping import HeldBacklog, Housekeeping
from pipeline.worker.http_access import HttpAccess
from pipeline.worker.local_state import open_local_state
from pipeline.worker.metrics import DependencyWaits, Readiness, WorkerMetrics, serve_local_explain, serve_metrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.startup import StartupSteps
from pipeline.worker.state_feed import StateFeed
from pipeline.worker.state_reader import StateReader
from pipeline.worker.transactional_output import TransactionalOutput
from pipeline.worker.transactions import TXN_TIMEOUT_S
from pipeline.worker.triage import AlertTriage

log = logging.getLogger(__name__)

READ_BATCH = 5000
# The longest a schema-registry call holds the decision loop (about a batch's time); one not answered by then
# goes on in the background, and what waits for it is tried again (issue 18: a hanging registry stalled it 10 s).
REGISTRY_WAIT_S = 0.2
ALERT_WAIT_S = 0.005  # with nothing queued, wait at most this long for the next alert
MAX_STAGED_CHANGES = 50_000  # bound on uncommitted state changes (memory during a state rebuild)
# AD1s held for evidence wait minutes; looking at them again (a storm look-up reads a sector) this often is
# soon enough, and keeps them from costing every pass of the loop. They are looked at at once when some were
# just read back, or the alert topic's end offsets were just looked up.
HELD_FOR_EVIDENCE_INTERVAL_S = 0.1


class KafkaClients(Protocol):
    """Where the worker gets its clients: `pipeline.kafka.clients`, or stand-ins in a broker-free test."""

    def admin_client(self, settings: Settings, **extra: Any) -> AdminClient: ...
    def consumer(self, settings: Settings, group_id: str, tuning: dict[str, Any], **extra: Any) -> Consumer: ...
    def producer(self, settings: Settings, tuning: dict[str, Any], **extra: Any) -> Producer: ...


class FilterWorker:
    def __init__(self, settings: Settings, kafka: KafkaClients = clients, clock: Clock = SYSTEM_CLOCK) -> None:
        """Open the local state and assemble the parts; clients that join the cluster's protocols (the
        transactional producer, the consumers) are made by `connect`. Every part that reads time reads `clock`."""
        self.clock = clock
        s, t = self.settings, self.topics = settings, settings.topics
        self.metrics = WorkerMetrics()
        self.readiness = Readiness(self.metrics.ready)
        self.metrics.describe_topics(t)
        self.watch = BrokerWatch(self.readiness, clock)
        self._stopping = False
        self._bootstrapped = False
        self._rebalancing = True
        self._rewind_pending = False  # a transaction failed: seek back to the committed offsets
        self._all_paused = False  # every alert and held partition paused: nothing can be forwarded
        self._bootstrap_ends: dict[Partition, int] = {}
        self._last_partition_check = clock.monotonic()
        self._last_held_drain = 0.0
        self._held_read = False  # AD1s were read back from the held topic since the last look, or left to look at
        self._schedule = ModeSchedule(Mode(s.initial_mode))  # as last read, shown on /ready and in poa_mode
        self._next_mode_change: int | None = None  # when the mode shown changes next (wall-clock ms)
        self._http: ThreadingHTTPServer | None = None
        self._local_http: ThreadingHTTPServer | None = None  # tokenless /explain on 127.0.0.1 (http_access)
        self.explanations = ExplainRequests()
        self.http_access = HttpAccess.from_settings(s)  # the token and TLS files, read once at start
        local = open_local_state(s.data_dir, s.app_id)
        identify_instance(local.instance_id)
        log.info("local state in %s (instance %s)", local.path, local.instance_id)
        policy = WindowPolicy(s.window_ms, s.lead_in_ms, s.max_future_ms)
        self.state = FilterState(StagedStore(local.backend), policy)
        if not self.state.format_version_ok():
            log.warning("local state in %s is in an older format: discarding it, rebuilding it from the topics",
                        local.path)  # fmt: skip
            local = local.discarded()
            self.state = FilterState(StagedStore(local.backend), policy)
        self.state.mark_format()
        self.state.commit()
        self.backend = local.backend
        codec = codec_for_registry(s.schema_registry_url, s.schema_registry_auth_file, REGISTRY_WAIT_S)
        self.frontier = ReadFrontier(s.max_clock_ahead_ms)
        on_error = self.watch.on_client_error
        self.admin = kafka.admin_client(s)
        transactional_id = f"{local.instance_id}-tx"
        self.permissions = PermissionWatch(self.readiness, s, self.admin, transactional_id, clock)
        self.output = TransactionalOutput(
            lambda: kafka.producer(s, clients.TRANSACTIONAL_PRODUCER_TUNING, **{"transactional.id": transactional_id}),
            self.metrics, t.alerts, self._is_stopping, self.permissions, clock,
        )  # fmt: skip
        self.registry_waits = DependencyWaits(self.metrics, self.readiness, "schema_registry",
                                              "schema registry unreachable")  # fmt: skip
        self.state_feed = feed = StateFeed(
            t, codec, self.state, Mode(s.initial_mode), self._mode_changed,
            lambda partitions: self.registry_waits.waiting("state_partitions", partitions), s.command_variants, clock,
        )  # fmt: skip
        self.state_reader = StateReader(
            lambda: kafka.consumer(s, f"{s.app_id}.state-reader", clients.STATE_READER_TUNING, error_cb=on_error),
            feed, self.state, self.frontier, self.metrics, self._broker_back,
            self.permissions, clock,
        )  # fmt: skip
        # Partitions added to the alert topic are noticed (and handed out by the group) this often.
        refresh_ms = int(s.partition_check_seconds * 1000) or 1000
        self.alerts = AlertReader(
            t.alerts,
            lambda: kafka.consumer(s, s.app_id, {**clients.ALERT_CONSUMER_TUNING, **clients.ALERT_GROUP_MEMBERSHIP},
                                   **{"topic.metadata.refresh.interval.ms": refresh_ms}, error_cb=on_error),
            self.watch, self.metrics, self._is_stopping, self.permissions, clock,
        )  # fmt: skip
        self.held_topic = s.held_topic
        grace_ms = int(s.evidence_grace_seconds * 1000)
        self.evidence = EvidenceReader(
            t.alerts,
            lambda: kafka.consumer(s, f"{s.app_id}.evidence-reader", clients.STATE_READER_TUNING, error_cb=on_error),
            EndOffsetLookup(lambda: kafka.admin_client(s), clock), self.state, codec, s.evidence_policy, grace_ms,
            self.permissions, lambda partitions: self.registry_waits.waiting("evidence_partitions", partitions),
            clock,
            max_clock_ahead_ms=s.max_clock_ahead_ms,
        )  # fmt: skip
        max_wait_ms = s.evidence_policy.after_ms + grace_ms + int(s.max_hold_seconds * 1000)
        self.triage = AlertTriage(
            t, codec, self.state, self.frontier, AlertQueues(), s.max_hold_seconds, lambda: feed.schedule,
            lambda partitions: self.registry_waits.waiting("alert_partitions", partitions),
            EvidenceWait(self.evidence, EvidenceHolds(codec), self.held_topic, max_wait_ms), clock,
            lambda: self.permissions.unwritable,
        )  # fmt: skip
        # An explanation takes storm evidence as final when the triage would (explain_requests)
        self.explain_inputs = InputsSeen(
            lambda: self.triage.read_seq, lambda seq: self.ends.request_if_held(seq, self.triage.read_seq),
            self.frontier.covers, self.frontier.may_decide,
        )  # fmt: skip
        self.dead_letter_owner = DeadLetterOwnership(
            self.state, codec, t.dead_letter, self.metrics,
            lambda partitions, timeout: self.alerts.consumer.committed(partitions, timeout=timeout), clock,
        )  # fmt: skip
        # The control topic to its high watermark: a mode change is never missed for an AD1 read after its
        # command returned (contract 8), though its transaction's markers may still be on their way.
        lookup = EndOffsetLookup(lambda: kafka.admin_client(s), clock, high_watermark_topics=[t.control])
        self.ends = EndOffsetWatch(lookup, self.frontier, self._broker_back, clock)
        self.housekeeping = Housekeeping(
            self.state, self.metrics, local.backend.size, self.evidence,
            HeldBacklog(self.held_topic, EndOffsetLookup(lambda: kafka.admin_client(s), clock)), clock,
        )  # fmt: skip
        self.cluster_watch = ClusterWatch(s, self._cluster_checked, new_admin=lambda: kafka.admin_client(s))

    # --- lifecycle ------------------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self._http = serve_metrics(self.settings.metrics_port, self.metrics, self.readiness,
                                   explain=self.explanations, access=self.http_access)  # fmt: skip
        log.info("metrics, readiness and explanations on port %d (/metrics, /ready, /explain)", self._http.server_port)
        self._local_http = serve_local_explain(self.settings.local_explain_port, self.metrics, self.readiness,
                                               self.explanations, self.http_access)  # fmt: skip
        try:
            self.connect()
            while not self._stopping:
                self.step()
                # questions from the HTTP thread, answered on this one
                self.explanations.serve(self.state, self.state_feed.schedule, self.evidence, self.explain_inputs)
        except InterruptedError:
            pass
        finally:
            self.close()

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        if not self._stopping:
            log.info("stopping after the current batch")
        self._stopping = True

    def _is_stopping(self) -> bool:
        return self._stopping

    def connect(self) -> None:
        """Wait for the input topics, read the state topics from the stored positions, and look up where the
        reference topics end: they are read that far before the worker joins the group."""
        t = self.topics
        state_topics = [*t.activation_inputs, *t.reference_inputs]
        steps = StartupSteps(self.admin, self.readiness, self.permissions, self._is_stopping)
        counts = steps.input_topics([*state_topics, t.alerts])
        # The held-AD1 topic is the worker's own, like the outputs: created with the alert topic's partitions,
        # as durable as it (contract 6).
        steps.output_topics([*t.outputs, t.shadow, self.held_topic], counts[t.alerts], [t.alerts])
        counts[t.control] = self._control_topic(steps)
        state_topics.append(t.control)  # the mode schedule is read like the reference topics (contract 8)
        self.cluster_watch.start()
        self.evidence.start(counts[t.alerts])
        self.state_reader.start({topic: counts[topic] for topic in state_topics})
        reference = [(r, p) for r in (*t.reference_inputs, t.control) for p in range(counts[r])]
        self._bootstrap_ends = steps.end_offsets(self.ends.lookup, reference)
        self.readiness.set("reading the reference topics (inventory, tracked list, mode) to their end")
        log.info("reading inventory, tracked list and mode schedule to their end offsets before deciding alerts")
        self.output.open()
        self.alerts.open()

    def close(self) -> None:
        self.readiness.set("stopping")
        self.cluster_watch.stop()
        if self.output.opened:
            self._settle()  # the last transaction, before the group is left
        self.alerts.close()
        self.evidence.close()
        self.state_reader.close()
        self.state_reader.commit()
        self.backend.close()
        for server in (self._http, self._local_http):
            if server is not None:
                server.shutdown()
        log.info("stopped")

    # --- the loop -------------------------------------------------------------------------------

    def step(self) -> None:
        """One pass of the loop. While the previous step's transaction commits (on a helper thread), this
        step reads and triages the next alerts; state is read and decisions that need it are taken only
        once that transaction is settled."""
        if not self._bootstrapped:
            self._bootstrap_step()
            return
        in_flight = self.output.in_flight
        read_alerts = self._read_alerts(wait_s=0 if in_flight else ALERT_WAIT_S)
        if in_flight:
            self._settle()
            if read_alerts < READ_BATCH:  # what arrived while the commit was under way joins the next one
                read_alerts += self._read_alerts(wait_s=0)
        if self._rewind_pending:  # a transaction failed: every alert not committed is read again
            self._rewind()
            return
        if self.permissions.probe():
            # librdkafka keeps a topic refused until its metadata is refreshed (minutes): a new producer
            self._settle()
            self.output.renew()
        if self._nothing_can_go_out():
            return
        if self.watch.fatal_error:
            self._replace_alert_consumer()
            return
        read_state = self._read_state() + self._read_evidence()
        self.ends.poll()
        self.triage.drain(self.clock.monotonic(), hold_clock_stopped=self.watch.down_since is not None)
        self._drain_held_for_evidence()
        self.ends.request_if_held(self.triage.waited_seq(), self.triage.read_seq)
        decided = self.triage.take()
        dead_letters, dead_lettered = self.dead_letter_owner.due(self.frontier.next_offsets(), bool(decided))
        if decided or dead_letters:
            held = [TopicPartition(self.held_topic, p, o, metadata=m) for p, (o, m) in decided.held_offsets.items()]
            offsets, group_metadata = self.alerts.offsets_to_commit(decided.next_offsets, [*dead_lettered, *held])
            self.output.start(decided, dead_letters, offsets, group_metadata)
        elif self.state_reader.commit_due():
            self.state_reader.commit()
        self.dead_letter_owner.prune_if_due(self.frontier.next_offsets())
        self._housekeeping()
        if not (read_state or read_alerts or decided.latencies or in_flight):
            self.clock.sleep(0.001)

    def _nothing_can_go_out(self) -> bool:
        """With the DNO topic unwritable no alert can be forwarded, not even at the end of its hold: every
        alert waits on the broker, unread (its partitions paused), until a probe finds the topic writable
        again; then they are read again from the committed offsets (contract 6 and 7)."""
        unwritable = self.topics.dno_alerts in self.permissions.unwritable
        if unwritable != self._all_paused:
            self._all_paused = unwritable
            if unwritable:
                log.error("no alert can be forwarded to %s: every alert waits on the broker until it can",
                          self.topics.dno_alerts)  # fmt: skip
                self.alerts.pause_all()
            else:
                log.info("%s may be written again: reading the alerts that waited", self.topics.dno_alerts)
                self.alerts.resume_all()
                self._rewind()
        if unwritable:
            self.clock.sleep(0.01)
        return unwritable

    def _bootstrap_step(self) -> None:
        """Before joining the group: read the state topics until the reference topics are read to the end
        offsets looked up at start, so the first alerts are decided against a complete tracked list."""
        read_state = self._read_state()
        if self.state_reader.read_to(self._bootstrap_ends):
            self._bootstrapped = True
            self.state_reader.commit()
            log.info("reference topics read (%d tracked devices); joining group %s", self.state.tracked_count(),
                     self.settings.app_id)  # fmt: skip
            self.readiness.set("waiting for alert partitions")
            self.alerts.also_subscribe(self.held_topic, self._held_assigned, self._held_revoked)
            self.alerts.subscribe(self._assigned, self._revoked)
        if not read_state:
            self.clock.sleep(0.01)

    def _read_alerts(self, wait_s: float) -> int:
        """Read a batch of alerts and triage it, with end offsets looked up after it was read if they come
        within a few milliseconds; returns how many alerts were read."""
        records = self.alerts.read(READ_BATCH, wait_s)
        if not records:
            return 0
        seq, now = self.triage.next_read(), self.clock.monotonic()
        self.ends.poll()
        self.ends.await_covering(seq)
        alerts = [msg for msg in records if msg.topic() != self.held_topic]
        if len(alerts) < len(records):  # AD1s read back from the held topic
            self._held_read = True
            holds = self.triage.evidence_holds
            for msg in records:
                if msg.topic() == self.held_topic:
                    holds.add(msg, seq, now)
        self.triage.triage(alerts, seq, now)
        return len(records)

    def _drain_held_for_evidence(self) -> None:
        """Decide the AD1s held for evidence that can be, at most every HELD_FOR_EVIDENCE_INTERVAL_S."""
        new_ends = self.evidence.refresh_end_offsets(needed=self.triage.held_for_evidence() > 0)
        if new_ends:  # a broker answered: with nothing else read, this is how the held AD1s' bounds restart
            self._broker_back()
        now = self.clock.monotonic()
        supply = self.evidence.take_supply_from()  # AD1s it may release are looked at now, wherever they sit
        if self._held_read or new_ends or supply or now - self._last_held_drain >= HELD_FOR_EVIDENCE_INTERVAL_S:
            self._last_held_drain = now
            # a pass that ran out of budget goes on in the next step
            self._held_read = self.triage.drain_held(self.clock.wall_ms(), self.watch.down_since is not None, supply)

    def _read_evidence(self) -> int:
        """Keep the evidence among the alerts read on every partition; its positions commit with the state."""
        read = self.evidence.read(READ_BATCH)
        if read:
            self.state_reader.dirty = True
        if self.evidence.read_ad1s:  # a new batch number: end offsets looked up before it cover none of them
            self.triage.next_read()
        return read

    def _read_state(self) -> int:
        read = self.state_reader.read(READ_BATCH)
        if self.state.pending_changes >= MAX_STAGED_CHANGES:
            self.state_reader.commit()
        return read

    def _housekeeping(self) -> None:
        if self._next_mode_change is not None and self.clock.wall_ms() >= self._next_mode_change:
            self._show_mode()  # a scheduled change takes over
        self.alerts.pause_or_resume(self.triage.holds.sizes())
        self.alerts.pause_or_resume(self.triage.evidence_holds.sizes(), self.held_topic)
        now = self.clock.monotonic()
        if now - self._last_partition_check >= self.settings.partition_check_seconds:
            self._last_partition_check = now
            self._read_added_partitions()
        if self.housekeeping.tick(self.triage, [self.state_reader.consumer, self.alerts.consumer]):
            self.state_reader.dirty = True

    # --- transactions and state commits ---------------------------------------------------------

    def _settle(self) -> bool:
        """Wait for the transaction in flight, if any. Committed: commit the state read before it began.
        Failed: every alert not committed (held, or read since) is to be read again."""
        committed = self.output.settle()
        self.dead_letter_owner.settled(committed)
        if committed is False:
            self._rewind_pending = True  # the seek itself waits for the loop: this may run in a rebalance callback
            self.triage.forget_undecided()
            return False
        if committed:
            self.state_reader.commit()
        return True

    def _rewind(self) -> None:
        """Seek every assigned alert partition back to its committed offset; held partitions learn again what
        was decided beyond theirs."""
        self._rewind_pending = False
        self.triage.forget_undecided()
        committed = self.alerts.rewind()
        self.triage.evidence_holds.restore(tp for tp in committed if tp.topic == self.held_topic)

    # --- the cluster: group membership, outages, added partitions --------------------------------

    def _assigned(self, partitions: list[int]) -> None:
        self.triage.holds.assigned(partitions)
        self.dead_letter_owner.assigned(partitions)
        log.info("assigned alert partitions %s", sorted(partitions))
        self._rebalancing = False
        self.readiness.set(None)
        self.metrics.rebalanced("assigned")

    def _held_assigned(self, partitions: list[int]) -> None:
        """Their AD1s are decided once their committed offsets, and what was decided beyond them, are known."""
        holds = self.triage.evidence_holds
        holds.assigned(partitions)
        log.info("assigned held-AD1 partitions %s", sorted(partitions))
        try:
            holds.restore(self.alerts.consumer.committed([TopicPartition(self.held_topic, p) for p in partitions],
                                                         timeout=TXN_TIMEOUT_S))  # fmt: skip
        except KafkaException as exc:
            log.warning("reading the committed offsets of held-AD1 partitions: %s; reading them again", exc)
            self._rewind_pending = True

    def _held_revoked(self, partitions: list[int]) -> None:
        # As for alert partitions: the transaction in flight is settled before they move; the new owner
        # reads their undecided AD1s again from the committed offset.
        self._settle()
        self.triage.evidence_holds.revoked(partitions)
        log.info("revoked held-AD1 partitions %s", sorted(partitions))

    def _revoked(self, partitions: list[int]) -> None:
        self._rebalancing = True
        self.readiness.set("rebalancing")
        self.metrics.rebalanced("revoked")
        self.metrics.forget_alert_partitions(self.topics.alerts, partitions)
        # The transaction in flight carries offsets of these partitions: it is settled before they move.
        # Undecided alerts are dropped and will be read again, from the committed offset, by the new owner.
        self._settle()
        self.triage.holds.revoked(partitions)
        self.dead_letter_owner.revoked(partitions)
        log.info("revoked alert partitions %s", sorted(partitions))

    def _replace_alert_consumer(self) -> None:
        """A fatal consumer error ends that consumer for good (none is expected without static membership,
        but a worker must not sit on a dead consumer); a new one rejoins the group. Undecided alerts are
        dropped and read again from the committed offsets."""
        log.error("the alert consumer failed fatally; replacing it and rejoining group %s", self.settings.app_id)
        self.watch.fatal_error = False
        self._rebalancing = True
        self.readiness.set("rejoining the consumer group")
        self.triage.forget_undecided()
        self.triage.holds.revoked(list(self.triage.holds.sizes()))  # the new member is assigned afresh
        self.dead_letter_owner.revoked_all()
        self.triage.evidence_holds.clear()
        self.alerts.replace()

    def _control_topic(self, steps: StartupSteps) -> int:
        """The control topic's partition count, created compacted with one partition when missing (like the
        outputs: the worker's own topic; `poa-filter mode` creates it the same way)."""
        topic = self.topics.control
        try:
            create_topics(self.admin, {topic: 1}, {topic: {"cleanup.policy": "compact"}})
        except KafkaException as exc:
            log.warning("creating the control topic %s: %s; waiting for it", topic, exc)
        return steps.input_topics([topic])[topic]

    def _mode_changed(self, schedule: ModeSchedule) -> None:
        self._schedule = schedule
        self._show_mode()

    def _show_mode(self) -> None:
        """The mode in force now (wall clock), on /ready and in `poa_mode`, and the changes scheduled for later
        listed apart (contract 8); shown again when the next one's time comes (`_housekeeping`)."""
        schedule, now = self._schedule, self.clock.wall_ms()
        current, upcoming = schedule.in_force(now), schedule.upcoming(now)
        mode = schedule.initial if current is None else current.mode
        self.metrics.set_mode(mode.value)
        since = "" if current is None else f" since {iso_utc(current.effective_from)} (set by {current.changed_by})"
        lines = [f"mode: {mode.value}{since}"] + [
            f"upcoming mode change: {c.mode.value} from {iso_utc(c.effective_from)} (set by {c.changed_by})"
            for c in upcoming
        ]
        self.readiness.note("mode", "\n".join(lines))
        self._next_mode_change = upcoming[0].effective_from if upcoming else None
        self.metrics.set_next_mode_change(upcoming[0].mode.value if upcoming else None, self._next_mode_change)

    def _cluster_checked(self, findings: list[Finding]) -> None:
        """On the cluster-check thread (the gauge and Readiness are thread-safe)."""
        self.metrics.set_cluster_findings(counts_by_severity(findings))
        self.readiness.note("cluster", summary(findings))

    def _broker_back(self) -> None:
        """Forwarding during an outage gets no alert out sooner and would make decisions depend on its
        length, so held alerts get a fresh hold once the broker answers again.

        The transactional producer is replaced too: after a broker restart its metadata can stay stale
        and `send_offsets_to_transaction` then blocked far past its timeout (seen with librdkafka 2.16,
        cf. confluentinc/librdkafka#5456). A new producer with the same transactional ID fences the old
        one and aborts whatever it left open; nothing is mid-transaction here.
        """
        if self.watch.down_since is None:
            return
        self._settle()  # never replace a producer under a transaction in flight
        now = self.clock.monotonic()
        log.info("broker reachable again after %.1fs; renewing the transactional producer", self.watch.answered(now))
        self.output.renew()
        if self._bootstrapped and not self._rebalancing:
            self.readiness.set(None)
        self.triage.holds.restart_holds(now)
        self.triage.evidence_holds.restart_bounds(self.clock.wall_ms())

    def _read_added_partitions(self) -> None:
        """Partitions the DSP added to an input topic while the worker runs: a new state partition is read
        from its start, a new alert partition by the evidence reader too (the group hands out new alert
        partitions by itself)."""
        try:
            counts = topic_partitions(self.admin, [*self.state_reader.topics, self.topics.alerts], timeout=5)
        except KafkaException as exc:
            log.warning("looking for added partitions: %s", exc)
            return
        self.state_reader.read_added_partitions(counts)
        self.evidence.read_added_partitions(counts.get(self.topics.alerts, 0))


def run_worker(settings: Settings) -> None:
    """The CLI has configured logging (pipeline.log_format) before this runs."""
    FilterWorker(settings).run()
