"""Does the cluster keep what the filter relies on? Retention, compaction and replication of its topics.

A worker that lost its local state rebuilds it from the service-request and outcome topics, so they must keep a
request for as long as its activation can still be in force (31 days by default); the inventory, tracked list
and control topic are tables keyed by device, which only compaction keeps whole; and exactly once holds only
if an acknowledged write survives a broker's loss (replication factor 3, `min.insync.replicas` 2, no unclean
leader election). None of this is visible from the records, so the worker asks the cluster and names what is
wrong: findings are configuration warnings, never a reason to stop or to be unready.

`assess` is the rules, over plain described configurations; `check_cluster` gathers those from the cluster
(never raising for a broker's error: a check that could not run is itself a finding); `ClusterWatch` runs the
checks on a thread of their own, at start and then periodically, and logs each problem once.
"""

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import Enum, StrEnum

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, ConfigResource, ResourceType

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.event_time import DAY_MS
from pipeline.kafka import clients
from pipeline.settings import Settings, SettingsError

log = logging.getLogger(__name__)

REQUIRED_REPLICATION_FACTOR = 3
REQUIRED_MIN_INSYNC_REPLICAS = 2
UNLIMITED = -1  # retention.ms and retention.bytes: keep for ever
# Kafka's own topics the filter's exactly once rests on: its transactions, and the alert offsets they commit.
INTERNAL_TOPICS = ("__transaction_state", "__consumer_offsets")
CHECK_INTERVAL_S = 600.0  # topic configurations change by hand, rarely: every ten minutes is soon enough
TIMEOUT_S = 10.0


class Severity(StrEnum):
    PROBLEM = "problem"  # the filter's guarantees or a rebuild are at risk
    INFO = "info"  # worth knowing, fine where it is (a single-broker development cluster)


class Role(Enum):
    """What a topic is to the filter, which decides the rules it is held to."""

    REBUILD_INPUT = "event stream a rebuild reads"  # service requests, activation outcomes
    TABLE = "table keyed by device"  # inventory, tracked list, control
    STREAM = "event stream"  # the alert topic
    OWN = "the filter's own event stream"  # outputs, shadow, held AD1s, releases: as durable as the alerts
    INTERNAL = "Kafka internal topic"  # transaction log, consumer offsets: replication only


@dataclass(frozen=True)
class DescribedTopic:
    """A topic as the cluster described it: effective configuration values and each partition's replica count."""

    name: str
    role: Role
    configs: Mapping[str, str | None]
    replicas: Sequence[int]


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about the cluster; `line` is the sentence a person acts on."""

    severity: Severity
    topic: str  # "" for the cluster as a whole
    config: str  # the configuration (or permission, or request) concerned
    found: str
    required: str
    why: str
    line: str


def _finding(severity: Severity, topic: str, config: str, found: str, required: str, why: str, fix: str) -> Finding:
    """A configuration that is not what the filter needs, said as `topic: config=found, needs ...: why; fix`."""
    line = f"{topic}: {config}={found}, needs {required}: {why}; {fix}"
    return Finding(severity, topic, config, found, required, why, line)


def _unchecked(severity: Severity, topic: str, what: str, error: str, remedy: str, why: str) -> Finding:
    """A check that could not run, said as `cannot read WHAT: ERROR (REMEDY)`."""
    return Finding(severity, topic, what, error, remedy, why, f"cannot read {what}: {error} ({remedy})")


# --- the rules --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DurableAs:
    """A topic of the filter's own and the topics it must be as durable as (contract 6), with why."""

    models: tuple[str, ...]
    why: str


def assess(
    topics: Iterable[DescribedTopic],
    broker_count: int,
    rebuild_retention_ms: int,
    rules: Mapping[str, DurableAs] | None = None,
) -> list[Finding]:
    """Every finding about these topics on a cluster of `broker_count` brokers, where a rebuild needs the
    service-request and outcome topics to keep `rebuild_retention_ms`, and each topic named in `rules` must
    be as durable as its models (those among `topics`: `durable_as`)."""
    described = list(topics)
    by_name = {topic.name: topic for topic in described}
    findings: list[Finding] = []
    for topic in described:
        if topic.role is Role.REBUILD_INPUT:
            findings += _rebuild_retention(topic, rebuild_retention_ms)
        if topic.role in (Role.REBUILD_INPUT, Role.STREAM, Role.OWN):
            findings += _not_compacted(topic)
        if topic.role in (Role.REBUILD_INPUT, Role.STREAM):
            findings += _create_time(topic)
        if topic.role is Role.TABLE:
            findings += _compacted(topic)
        general = _durability(topic, broker_count)
        rule = (rules or {}).get(topic.name)
        if rule is not None:
            own = _as_durable_as(topic, [by_name[name] for name in rule.models if name in by_name], rule.why)
            findings += own  # said once, as the more specific rule, where both find the replication short
            general = [f for f in general if f.config not in {o.config for o in own}]
        findings += general
    return findings


def _as_durable_as(topic: DescribedTopic, models: Sequence[DescribedTopic], why: str) -> list[Finding]:
    """Replication factor and retention at least those of every model, on any cluster (contract 6)."""
    found = []
    factor = min(topic.replicas) if topic.replicas else None
    model_factors = [(min(m.replicas), m.name) for m in models if m.replicas]
    if factor is not None and model_factors and factor < max(model_factors)[0]:
        needed, model = max(model_factors)
        found.append(
            _finding(
                Severity.PROBLEM, topic.name, "replication.factor", str(factor), f">= {needed} (as {model})", why,
                f"reassign its partitions to {needed} brokers (kafka-reassign-partitions)",
            )
        )  # fmt: skip
    shown: tuple[tuple[str, Callable[[int], str]], ...] = (
        ("retention.ms", lambda ms: f"{ms} ({_duration(ms)})"),
        ("retention.bytes", str),
    )
    for name, show in shown:
        value = _number(topic, name)
        if value is None or value == UNLIMITED:
            continue
        kept = [(_number(m, name), m.name) for m in models]
        longer = [(v, n) for v, n in kept if v is not None and (v == UNLIMITED or v > value)]
        if not longer:
            continue
        needed, model = max(longer, key=lambda vn: float("inf") if vn[0] == UNLIMITED else vn[0])
        required = "-1" if needed == UNLIMITED else f">= {show(needed)}"
        found.append(
            _finding(
                Severity.PROBLEM, topic.name, name, show(value), f"{required} (as {model})", why,
                f"set {name}={needed}",
            )
        )  # fmt: skip
    return found


def _rebuild_retention(topic: DescribedTopic, required_ms: int) -> list[Finding]:
    days = required_ms // DAY_MS
    why = (
        f"a worker that lost its local state rebuilds the activations from this topic, and one can be in force "
        f"up to {days} days after its request"
    )
    found = []
    retention_ms = _number(topic, "retention.ms")
    if retention_ms is not None and retention_ms != UNLIMITED and retention_ms < required_ms:
        found.append(
            _finding(
                Severity.PROBLEM, topic.name, "retention.ms", f"{retention_ms} ({_duration(retention_ms)})",
                f">= {required_ms} ({days} days) or -1", why, f"set retention.ms={required_ms} (or -1)",
            )
        )  # fmt: skip
    retention_bytes = _number(topic, "retention.bytes")
    if retention_bytes is not None and retention_bytes != UNLIMITED:
        found.append(
            _finding(
                Severity.PROBLEM, topic.name, "retention.bytes", str(retention_bytes), "-1 (no size limit)",
                f"{why}, but a partition past {retention_bytes} bytes deletes its oldest records however young",
                f"set retention.bytes=-1 (or make sure {retention_bytes} bytes a partition always hold {days} days)",
            )
        )  # fmt: skip
    return found


def _not_compacted(topic: DescribedTopic) -> list[Finding]:
    policy = _policy(topic)
    if "compact" not in policy:
        return []
    return [
        _finding(
            Severity.PROBLEM, topic.name, "cleanup.policy", ",".join(policy), "delete",
            "it is an event stream: compaction keeps only the last record of each device key and drops the "
            "earlier ones (requests, cancellations, outcomes, alerts)",
            "set cleanup.policy=delete",
        )
    ]  # fmt: skip


def _create_time(topic: DescribedTopic) -> list[Finding]:
    """An event topic keeps the producer's timestamps: a DUIS record's received_at is its Kafka timestamp."""
    kind = topic.configs.get("message.timestamp.type")
    if kind is None or kind == "CreateTime":
        return []  # not described, or as needed
    return [
        _finding(
            Severity.PROBLEM, topic.name, "message.timestamp.type", kind, "CreateTime",
            "the received_at of a DUIS record is its Kafka timestamp (contract 9): with LogAppendTime it is when "
            "the broker appended the record, not when the DSP received the message",
            "set message.timestamp.type=CreateTime",
        )
    ]  # fmt: skip


def _compacted(topic: DescribedTopic) -> list[Finding]:
    policy = _policy(topic)
    if not policy:
        return []  # not described
    if "compact" not in policy:
        return [
            _finding(
                Severity.PROBLEM, topic.name, "cleanup.policy", ",".join(policy), "compact",
                "it is a table keyed by device: deleted by age, the record of a device unchanged for longer than "
                "retention.ms is lost, and a worker rebuilding its state no longer knows the device",
                "set cleanup.policy=compact",
            )
        ]  # fmt: skip
    limits = {name: _number(topic, name) for name in ("retention.ms", "retention.bytes")}
    finite = {name: value for name, value in limits.items() if value is not None and value != UNLIMITED}
    if "delete" not in policy or not finite:
        return []
    shown = ", ".join(f"{name}={value}" for name, value in finite.items())
    return [
        _finding(
            Severity.PROBLEM, topic.name, "cleanup.policy", f"{','.join(policy)} with {shown}",
            "compact (or compact,delete with retention.ms=-1 and retention.bytes=-1)",
            "with delete as well, records past that retention are deleted, among them the only record of a "
            "device unchanged for that long, and a worker rebuilding its state no longer knows the device",
            "set cleanup.policy=compact",
        )
    ]  # fmt: skip


def _durability(topic: DescribedTopic, broker_count: int) -> list[Finding]:
    """Replication factor and min.insync.replicas as the documentation asks (on a single-broker cluster, where
    neither can be met, as information only), and no unclean leader election."""
    below = Severity.PROBLEM if broker_count > 1 else Severity.INFO
    single = " (a single-broker cluster: fine for development only)" if broker_count <= 1 else ""
    found = []
    factor = min(topic.replicas) if topic.replicas else None
    if factor is not None and factor < REQUIRED_REPLICATION_FACTOR:
        found.append(
            _finding(
                below, topic.name, "replication.factor", str(factor), f">= {REQUIRED_REPLICATION_FACTOR}",
                f"with fewer copies the loss of one broker can stop the filter or lose what it wrote{single}",
                f"reassign its partitions to {REQUIRED_REPLICATION_FACTOR} brokers (kafka-reassign-partitions)",
            )
        )  # fmt: skip
    min_insync = _number(topic, "min.insync.replicas")
    if min_insync is not None and min_insync < REQUIRED_MIN_INSYNC_REPLICAS:
        found.append(
            _finding(
                below, topic.name, "min.insync.replicas", str(min_insync), f">= {REQUIRED_MIN_INSYNC_REPLICAS}",
                "writes are acknowledged (acks=all) once on this many brokers: with 1, an acknowledged output or "
                f"offset commit can be lost with one broker{single}",
                f"set min.insync.replicas={REQUIRED_MIN_INSYNC_REPLICAS}",
            )
        )  # fmt: skip
    if min_insync is not None and factor is not None and min_insync > factor:
        found.append(
            _finding(
                Severity.PROBLEM, topic.name, "min.insync.replicas", str(min_insync),
                f"<= the replication factor ({factor})",
                "a write with acks=all is refused (NOT_ENOUGH_REPLICAS) while fewer replicas are in sync",
                f"set min.insync.replicas={min(factor, REQUIRED_MIN_INSYNC_REPLICAS)} or add replicas",
            )
        )  # fmt: skip
    if (topic.configs.get("unclean.leader.election.enable") or "").strip().lower() == "true":
        found.append(
            _finding(
                Severity.PROBLEM, topic.name, "unclean.leader.election.enable", "true", "false",
                "an out-of-sync replica made leader loses acknowledged records, and with them exactly once",
                "set unclean.leader.election.enable=false",
            )
        )  # fmt: skip
    return found


def _number(topic: DescribedTopic, name: str) -> int | None:
    """A numeric configuration value; None when it was not described or is not a number."""
    try:
        return int((topic.configs.get(name) or "").strip())
    except ValueError:
        return None


def _policy(topic: DescribedTopic) -> list[str]:
    """cleanup.policy as its parts, in the order written ("compact,delete"); empty when not described."""
    return [part.strip() for part in (topic.configs.get("cleanup.policy") or "").split(",") if part.strip()]


def _duration(ms: int) -> str:
    """Whole days, and what is left as h:mm:ss.mmm, never rounded: 31 days less 1 ms is not "31 days"."""
    days, rest = divmod(ms, DAY_MS)
    whole = f"{days} day{'' if days == 1 else 's'}"
    if not rest:
        return whole
    seconds, millis = divmod(rest, 1000)
    return f"{whole} {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{millis:03d}"


# --- gathering the inputs from the cluster ------------------------------------------------------------------


def topic_roles(settings: Settings) -> dict[str, Role]:
    """The filter's topics by role, and Kafka's internal topics it relies on."""
    t = settings.topics
    roles = {name: Role.INTERNAL for name in INTERNAL_TOPICS}
    roles |= {t.alerts: Role.STREAM}
    roles |= {name: Role.OWN for name in durable_as(settings)}
    roles |= {name: Role.TABLE for name in (*t.reference_inputs, t.control)}
    roles |= {name: Role.REBUILD_INPUT for name in t.activation_inputs}
    return roles


def durable_as(settings: Settings) -> dict[str, DurableAs]:
    """The topics the filter writes (the compacted control topic aside), each as durable as the alert topic,
    the released topic also as the audit topic (contract 6): what the worker creates them with."""
    t = settings.topics
    output = DurableAs(
        (t.alerts,), f"the filter's own topic must keep what it wrote as safely and as long as {t.alerts} keeps "
        "what it read"
    )  # fmt: skip
    return {
        **{name: output for name in (*t.outputs, t.shadow)},
        settings.held_topic: DurableAs(
            (t.alerts,),
            "it holds the only copy of each AD1 waiting for outage evidence (rule 7): lost there, "
            "a genuine outage never reaches the DNO",
        ),
        t.released: DurableAs(
            (t.alerts, t.suppressed),
            f"it is what makes a release happen at most once: an alert still on "
            f"{t.suppressed} whose release record is gone is released to the DNO again",
        ),
    }


def rebuild_retention_ms(settings: Settings) -> int:
    """How long the service-request and outcome topics must keep a record for a rebuild (31 days by default)."""
    return WindowPolicy(settings.window_ms, settings.lead_in_ms, settings.max_future_ms).input_retention_ms


def check_cluster(
    settings: Settings, new_admin: Callable[[], AdminClient] | None = None, timeout_s: float = TIMEOUT_S
) -> list[Finding]:
    """The findings about the filter's topics as the cluster describes them now, through an admin client made
    by `new_admin` (by default as every client of the project is made, from `settings`).

    Never raises for the broker: what could not be read becomes a finding. Topics that do not exist are
    skipped (the worker waits for its inputs and creates its outputs), and so are Kafka's internal topics
    when this client may not see or describe them.
    """
    roles = topic_roles(settings)
    try:
        admin = new_admin() if new_admin else clients.admin_client(settings)
        metadata = admin.list_topics(timeout=timeout_s)
    except (KafkaException, SettingsError, OSError) as exc:  # no broker answers, or no client could be made
        return [_not_read("", "the cluster metadata", exc, "none of the cluster checks ran")]
    replicas = {
        name: [len(p.replicas) for p in topic.partitions.values()]
        for name, topic in metadata.topics.items()
        if name in roles and topic.error is None
    }
    configs, findings = _describe_configs(admin, [name for name in roles if name in replicas], timeout_s)
    described = [DescribedTopic(name, roles[name], configs[name], replicas[name]) for name in configs]
    rules = durable_as(settings)
    return findings + assess(described, broker_count(metadata), rebuild_retention_ms(settings), rules)


def broker_count(metadata: ClusterMetadata) -> int:
    """The brokers the metadata names, as live brokers or as replicas: a broker that is down is missing from
    the first but still holds replicas, and a three-broker cluster with two down is not a single-broker one."""
    brokers = set(metadata.brokers)
    for topic in metadata.topics.values():
        for partition in topic.partitions.values():
            brokers.update(partition.replicas)
    return len(brokers)


def _describe_configs(
    admin: AdminClient, names: list[str], timeout_s: float
) -> tuple[dict[str, dict[str, str | None]], list[Finding]]:
    """Each topic's effective configuration, and a finding for each the cluster would not describe (none for
    Kafka's internal topics: a worker is not expected to be granted anything on them)."""
    configs: dict[str, dict[str, str | None]] = {}
    findings: list[Finding] = []
    if not names:
        return configs, findings
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    try:
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
        results = {resource.name: future for resource, future in futures.items()}
    except KafkaException as exc:  # the request was not even sent
        results = {}
        findings = [_not_read("", "topic configurations", exc, "none of the topic configurations were checked")]
    why = "its retention, compaction and replication are not checked"
    for name, future in results.items():
        try:
            entries = future.result(timeout=timeout_s + 5)
        except (KafkaException, FutureTimeout) as exc:
            if name not in INTERNAL_TOPICS:
                findings.append(_not_read(name, f"the configuration of topic {name}", exc, why))
            continue
        configs[name] = {key: entry.value for key, entry in entries.items()}
    return configs, findings


def _not_read(topic: str, what: str, exc: Exception, why: str) -> Finding:
    """A missing permission is a problem, named with the ACL to grant; anything else (a broker down, a timeout)
    passes, as the next pass will tell."""
    error = _error_name(exc)
    if error in ("TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"):
        grant = "grant DescribeConfigs" if topic else "grant Describe"
        return _unchecked(Severity.PROBLEM, topic, what, error, grant, why)
    return _unchecked(Severity.INFO, topic, what, error, "checked again later", why)


def _error_name(exc: Exception) -> str:
    """KafkaError's name (TOPIC_AUTHORIZATION_FAILED, _TIMED_OUT, ...), else the exception's text."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(error, KafkaError):
        return error.name()
    return str(exc) or type(exc).__name__


# --- at start and every few minutes ------------------------------------------------------------------------


def summary(findings: Sequence[Finding]) -> str:
    """For the /ready body: each problem's line under a count; nothing when there is no problem, so that a
    cluster as documented leaves the body as it was (information is left to the log and the gauge)."""
    problems = [f for f in findings if f.severity is Severity.PROBLEM]
    if not problems:
        return ""
    head = f"cluster check: {len(problems)} problem(s), {len(findings) - len(problems)} info (see the log)"
    return "\n".join([head, *(f"problem: {f.line}" for f in problems)])


def counts_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings by severity, every severity present (for a gauge)."""
    counts = {severity.value: 0 for severity in Severity}
    for f in findings:
        counts[f.severity.value] += 1
    return counts


class ClusterWatch:
    """Runs `check_cluster` on a daemon thread, at once and then every `interval_s`, so the decision loop never
    waits on a slow broker. Each problem is logged at WARNING the first time it is found (information at
    DEBUG: a development broker's replication notes are no news), and every pass's findings go to `report`
    (the worker's gauge and /ready text)."""

    def __init__(
        self,
        settings: Settings,
        report: Callable[[list[Finding]], None],
        new_admin: Callable[[], AdminClient] | None = None,  # made afresh each pass
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._report = report
        self._new_admin = new_admin
        self._interval_s = interval_s
        self._logged: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-checks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No more passes. A pass under way is not waited for long: it only reads, on a daemon thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    def check_once(self) -> list[Finding]:
        """One pass: check, log what is new, report. Nothing here raises for the cluster."""
        findings = check_cluster(self._settings, self._new_admin)
        for f in findings:
            if f.line not in self._logged:
                self._logged.add(f.line)
                log.log(logging.WARNING if f.severity is Severity.PROBLEM else logging.DEBUG, "cluster: %s", f.line)
        self._report(findings)
        return findings

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self._interval_s)
