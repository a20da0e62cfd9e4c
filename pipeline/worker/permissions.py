"""Missing permissions, reported by name (contract 7, secured clusters).

Every Kafka client of the worker hands its authorization failures here, with the resource it was using.
Each becomes an ERROR log line (once, then once a minute while it lasts) and holds `/ready` at 503 with a
reason such as "missing permission: TOPIC_AUTHORIZATION_FAILED on topic dno.alerts (grant Write)". The
worker keeps running: the client's error path retries (with back-off), the alerts it cannot judge stay
uncommitted on the alert topic or held by the triage (rules 7 and 8), and once the path that was refused
works again (`permitted`) the hold on `/ready` is lifted by itself.

A Write refused on one of the filter's own output topics (contract 6) is kept apart, by topic (`unwritable`):
the triage then puts nothing for that topic in its transactions, and holds the alerts whose outputs go there
(rules 7 and 8), so that the others go out. Every PROBE_INTERVAL_S the topics' authorized operations are
looked up again (`probe`): a topic that may be written again is used again.
"""

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.settings import Settings
from pipeline.worker.metrics import Readiness

log = logging.getLogger(__name__)

REPEAT_LOG_S = 60.0  # a standing denial is logged again this often
DESCRIBE_TIMEOUT_S = 5.0
GROUP_QUIET_S = 30.0
PROBE_INTERVAL_S = 10.0  # how often topics found unwritable are looked at again

AUTHORIZATION_FAILURES = frozenset({
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
})  # fmt: skip


def is_denied(err: KafkaError) -> bool:
    return err.code() in AUTHORIZATION_FAILURES


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError a KafkaException carries, if any."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error if isinstance(error, KafkaError) else None


class PermissionWatch:
    def __init__(
        self, readiness: Readiness, settings: Settings, admin: AdminClient, transactional_id: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:  # fmt: skip
        self._readiness = readiness
        self._clock = clock
        self._settings = settings
        self._admin = admin
        self._transactional_id = transactional_id
        self._denied: dict[str, str] = {}  # scope (the path that was refused) -> reason shown on /ready
        self._logged_at: dict[str, float] = {}
        self._reported_at: dict[str, float] = {}
        self._unwritable: frozenset[str] = frozenset()  # output topics refused Write, until a probe finds it back
        self._probed_at = 0.0

    @property
    def denied(self) -> bool:
        return bool(self._denied)

    @property
    def unwritable(self) -> frozenset[str]:
        """The filter's own output topics it may not write now."""
        return self._unwritable

    def probe(self) -> bool:
        """Every PROBE_INTERVAL_S while some output topic is unwritable: those that may be written again are.
        Returns whether some are."""
        now = self._clock.monotonic()
        if not self._unwritable or now - self._probed_at < PROBE_INTERVAL_S:
            return False
        self._probed_at = now
        lacking = self._lacking(self._unwritable, AclOperation.WRITE)
        granted = self._unwritable - set(self._unwritable if lacking is None else lacking)
        for topic in granted:
            self._unwritable -= {topic}
            self.permitted(f"output {topic}")
        return bool(granted)

    def report(self, err: KafkaError | None, resource: str, scope: str) -> bool:
        """If `err` is an authorization failure on `resource` ("topic dsp.alerts (grant Read)"), met on the
        path `scope`: say so on /ready and in the log. Returns whether it was one."""
        if err is None or not is_denied(err):
            return False
        reason = f"missing permission: {err.name()} on {resource}"
        now = self._clock.monotonic()
        if self._denied.get(scope) != reason or now - self._logged_at.get(scope, 0.0) >= REPEAT_LOG_S:
            log.error("%s; the worker keeps running and retries until it is granted (%s)", reason, err.str())
            self._logged_at[scope] = now
        self._denied[scope] = reason
        self._reported_at[scope] = now
        self._readiness.hold(f"permission {scope}", reason)
        return True

    def permitted(self, scope: str, quiet_s: float = 0.0) -> None:
        """The path `scope` worked: a permission it was refused has been granted back (if it has not been
        reported for `quiet_s` seconds: for a refusal that work on the path does not go through)."""
        if self._denied and scope in self._denied and self._clock.monotonic() - self._reported_at[scope] >= quiet_s:
            log.info("permission granted again: %s", self._denied.pop(scope).removeprefix("missing permission: "))
            self._logged_at.pop(scope, None)
            self._readiness.hold(f"permission {scope}", "")

    # --- the worker's resources, by client ------------------------------------------------------

    def state_read_error(self, err: KafkaError, topic: str | None) -> bool:
        """The state reader's error: on a partition of `topic` (Read), or on its group (no topic)."""
        if topic:
            return self.report(err, f"topic {topic} (grant Read)", f"state {topic}")
        return self.report(err, f"group {self._settings.app_id}.state-reader (grant Describe)", "state group")

    def state_read(self, topics: Iterable[str]) -> None:
        """The state reader read from `topics`."""
        for topic in topics:
            self.permitted(f"state {topic}")

    def state_group_quiet(self) -> None:
        """The state reader reads without its group: it only looks up the group's coordinator, again and again
        while refused, so the refusal is over once it has not been seen for a while."""
        self.permitted("state group", quiet_s=GROUP_QUIET_S)

    def evidence_read_error(self, err: KafkaError, topic: str | None) -> bool:
        """The evidence reader's error: on a partition of the alert topic (Read), or on its group (no topic)."""
        if topic:
            return self.report(err, f"topic {topic} (grant Read)", "evidence")
        return self.report(err, f"group {self._settings.app_id}.evidence-reader (grant Describe)", "evidence group")

    def evidence_read(self) -> None:
        """The evidence reader read alerts: its group is only looked up, so its refusal is over once quiet."""
        self.permitted("evidence")
        self.permitted("evidence group", quiet_s=GROUP_QUIET_S)

    def alert_read_error(self, err: KafkaError, topic: str | None) -> bool:
        """The alert consumer's error: on a partition of the alert topic (Read), or on its group (no topic)."""
        if topic:
            return self.report(err, f"topic {topic} (grant Read)", "alerts")
        return self.report(err, f"group {self._settings.app_id} (grant Read)", "alert group")

    def alerts_read(self) -> None:
        """The alert consumer read alerts, or was assigned partitions."""
        self.permitted("alerts")
        self.permitted("alert group")

    def producer_error(self, err: KafkaError | None, scope: str) -> bool:
        """The transactional producer's error: which of its resources was refused."""
        if err is None or not is_denied(err):
            return False
        s = self._settings
        if err.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            resource = f"transactional ID {self._transactional_id} (grant Write)"
        elif err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            resource = f"group {s.app_id} (grant Read)"
        elif err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            written = (*s.topics.outputs, s.topics.shadow, s.held_topic)
            lacking = self._lacking(written, AclOperation.WRITE)
            # Each output topic named apart, until a probe finds it writable; the dead-letter topic aside (a bad
            # alert is never forwarded): its transactions are retried as any refused one.
            kept = sorted(set(lacking or ()) - {s.topics.dead_letter})
            for topic in kept:
                self._unwritable |= {topic}
                self._probed_at = self._clock.monotonic()
                self.report(err, f"topic {topic} (grant Write)", f"output {topic}")
            if lacking and len(kept) == len(lacking):
                return True
            resource = "topic " + ", ".join(lacking or written) + " (grant Write)"
        else:
            resource = "the cluster (grant Write on the output topics; IdempotentWrite on brokers before 3.0)"
        return self.report(err, resource, scope)

    def _lacking(self, topics: Iterable[str], operation: AclOperation) -> list[str] | None:
        """Which of `topics` this principal may not use for `operation` (None if that cannot be told): a
        producer's error does not name the topic."""
        wanted = list(topics)
        futures = self._admin.describe_topics(
            TopicCollection(wanted), include_authorized_operations=True, request_timeout=DESCRIBE_TIMEOUT_S
        )
        lacking = []
        for name, future in futures.items():
            try:
                allowed = future.result().authorized_operations or []
            except KafkaException:
                return None
            if operation not in allowed and AclOperation.ALL not in allowed:
                lacking.append(name)
        return lacking
