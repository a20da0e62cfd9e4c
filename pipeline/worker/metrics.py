"""Prometheus metrics, the readiness probe and explanations, served on one port (contract section 7).

Metric names carry the `poa_` prefix. Every label value comes from a fixed set or from configuration and
assignment (topics, partitions), never from input data, so the number of series stays bounded however
varied the input: an alert code outside `KNOWN_ALERT_CODES` is counted as `other`. Series the dashboard and
the alert rules query are created at zero, so a panel shows 0 rather than nothing before the first event.
`/metrics` and `/ready` are open and carry no device IDs; `/explain` is guarded by `http_access`.
"""

import json
import logging
import ssl
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily

from pipeline.core.alert_decisions import ForwardReason
from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.explanation import parse_time
from pipeline.core.records import OUTAGE_ALERT_CODE
from pipeline.settings import Topics
from pipeline.worker.explain_requests import ExplainFailed, ExplainRequests, WorkerBusy
from pipeline.worker.http_access import HttpAccess

# The alert codes the product knows (contract 3, 5): the CH outage alert, the ESME's supply-restored alerts
# (evidence for rule 9) and the future-dated activation outcomes. Compared exactly, like the decision rules.
KNOWN_ALERT_CODES = (OUTAGE_ALERT_CODE, "8F35", "8F36", "8F66", "8F67")
OTHER_CODE = "other"
REBALANCE_EVENTS = ("assigned", "revoked", "lost")
HOLD_REASONS = ("inputs", "evidence")
MODES = ("filter", "shadow", "pass-through")
# Reasons of forwarded AD1s beyond the rules' own (ForwardReason): forwarded in shadow mode though the rules
# would suppress them, forwarded in pass-through mode (contract 8), forwarded after waiting max-hold for the
# schema registry (contract 6).
SHADOW_REASON = "shadow"
PASS_THROUGH_REASON = "pass_through"
REGISTRY_UNAVAILABLE_REASON = "registry_unavailable"
DEPENDENCIES = ("schema_registry",)
# What waits for a dependency: state partitions, alert partitions, alert partitions read for evidence (rule 9).
WAITING_INPUTS = ("state_partitions", "alert_partitions", "evidence_partitions")
_KNOWN_CODES = frozenset(KNOWN_ALERT_CODES)
CLIENT_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


def code_label(alert_code: str) -> str:
    """Alert codes as a label: a known code as itself, any other as `other`, so input cannot add series."""
    return alert_code if alert_code in _KNOWN_CODES else OTHER_CODE


class BatchHistogram:
    """A Prometheus histogram fed with (value, count): the alerts of one read batch share their read
    time and their commit time, so one call records them all instead of one call per alert. One label, its
    values fixed (each series exists from the start)."""

    def __init__(
        self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry,
        label: str, values: tuple[str, ...],
    ) -> None:  # fmt: skip
        self._name, self._documentation = name, documentation
        self._bounds = sorted(buckets)
        self._label = label
        self._counts = {value: [0] * (len(self._bounds) + 1) for value in values}
        self._sums = dict.fromkeys(values, 0.0)
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, value: float, count: int, label_value: str) -> None:
        with self._lock:
            self._counts[label_value][bisect_left(self._bounds, value)] += count
            self._sums[label_value] += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=[self._label])
        with self._lock:
            counted = [(value, list(counts), self._sums[value]) for value, counts in self._counts.items()]
        for value, counts, total in counted:
            cumulative, running = [], 0
            for bound, count in zip([*map(str, self._bounds), "+Inf"], counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric([value], cumulative, total)
        yield family


class WorkerMetrics:
    """The worker's metrics. Counters and gauges the worker feeds directly are attributes; the newer ones
    have a method each that keeps their labels within the fixed sets above."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alerts = Counter(
            "poa_alerts",
            "Alerts decided, by decision (forwarded, suppressed, dead_letter), alert code and reason",
            ["decision", "alert_code", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "poa_dead_letters", "Input records sent to the dead-letter topic, by input topic", ["topic"], registry=r
        )
        self.input_records = Counter("poa_input_records", "Records read, by input topic", ["topic"], registry=r)
        self.activation_windows = Gauge(
            "poa_activation_windows",
            "Firmware activation windows at the latest alert event time, by state (pending, active)",
            ["state"],
            registry=r,
        )
        self.tracked_devices = Gauge("poa_tracked_devices", "Devices on the tracked list", registry=r)
        self.held_alerts = Gauge(
            "poa_held_alerts", "Alerts read but waiting for activation inputs to catch up (contract 5.7)", registry=r
        )
        self.held_alerts_by_reason = Gauge(
            "poa_held_alerts_by_reason",
            "Alerts held, by reason: inputs (activation inputs not read far enough: trouble) or evidence "
            "(AD1s waiting for outage evidence, rule 9: expected during campaigns)",
            ["reason"],
            registry=r,
        )
        self.holds_expired = Counter(
            "poa_holds_expired",
            "AD1s forwarded at the end of their hold (reason hold_expired), by what they waited for: inputs "
            "(activation inputs not read past their time), evidence (rule 9's evidence not complete) or output "
            "(an output topic the worker may not write)",
            ["held_for"],
            registry=r,
        )
        self.decision_latency = BatchHistogram(
            "poa_decision_latency_seconds",
            "From reading an alert to committing its output, by whether it waited on the held topic for rule 9's "
            "evidence (AD1s in windows: about A + grace live, from their first read to their decision's output)",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            r,
            "waited_for_evidence",
            ("false", "true"),
        )
        self.consumer_lag = Gauge(
            "poa_consumer_lag", "Records not yet read, by input topic and partition", ["topic", "partition"], registry=r
        )
        self.event_time_lag = Gauge(
            "poa_event_time_lag_seconds",
            "By alert partition: how far the latest event time decided trails the newest alert event time read",
            ["partition"],
            registry=r,
        )
        self.evidence_lag = Gauge(
            "poa_evidence_lag_records",
            "By alert partition: records the evidence reader (rule 9, every worker, every partition) has not read "
            "yet. AD1s in windows wait until every partition is read past t + A, then expire (hold_expired)",
            ["partition"],
            registry=r,
        )
        self.evidence_clock_lag = Gauge(
            "poa_evidence_clock_lag_seconds",
            "By alert partition: how far the evidence reader's read clock (event time) trails the wall clock; "
            "an idle partition trails too, and is caught up when its records lag is 0",
            ["partition"],
            registry=r,
        )
        self.transactions = Counter(
            "poa_transactions", "Kafka transactions, by result (committed, aborted)", ["result"], registry=r
        )
        self.ready = Gauge("poa_ready", "1 when the worker is ready to decide alerts (GET /ready)", registry=r)
        self.rebalances = Counter(
            "poa_rebalances", "Alert partition changes, by event (assigned, revoked, lost)", ["event"], registry=r
        )
        self.state_keys = Gauge("poa_state_keys", "Keys in the local state store (RocksDB estimate)", registry=r)
        self.state_bytes = Gauge(
            "poa_state_bytes", "Size of the local state store (RocksDB SST files and memtables)", registry=r
        )
        self.sweeps = Counter("poa_sweeps", "Housekeeping passes completed over the activation state", registry=r)
        self.purged_versions = Counter(
            "poa_purged_versions", "Expired activation versions purged by housekeeping", registry=r
        )
        self.topic_info = Gauge(
            "poa_topic_info", "1 per configured topic, by role (alerts, service_requests, ...)", ["role", "topic"],
            registry=r,
        )
        self.mode = Gauge("poa_mode", "1 for the mode in force (filter, shadow, pass-through)", ["mode"], registry=r)
        self.next_mode_change = Gauge(
            "poa_mode_next_change_timestamp_seconds",
            "When the next scheduled mode change takes over (epoch seconds), by the mode it sets; none: no series",
            ["mode"], registry=r,
        )  # fmt: skip
        self.dependency_waits = Gauge(
            "poa_dependency_waits",
            "Input partitions stopped at a record that waits for a dependency that is down (schema_registry), "
            "by dependency and input (state_partitions, alert_partitions)",
            ["dependency", "input"],
            registry=r,
        )
        self.cluster_findings = Gauge(
            "poa_cluster_findings",
            "Findings of the last cluster check (retention, compaction, replication the filter relies on), "
            "by severity (problem, info)",
            ["severity"],
            registry=r,
        )
        self._create_known_series()

    def _create_known_series(self) -> None:
        """The series of fixed labels that the rules and the dashboard query, at zero until counted."""
        for result in ("committed", "aborted"):
            self.transactions.labels(result)
        for event in REBALANCE_EVENTS:
            self.rebalances.labels(event)
        for reason in HOLD_REASONS:
            self.held_alerts_by_reason.labels(reason)
            self.holds_expired.labels(reason)
        for severity in ("problem", "info"):
            self.cluster_findings.labels(severity)
        for reason in ForwardReason:
            if reason is not ForwardReason.NOT_AD1:
                self.alerts.labels("forwarded", OUTAGE_ALERT_CODE, reason.value)
        for code in [*KNOWN_ALERT_CODES[1:], OTHER_CODE]:
            self.alerts.labels("forwarded", code, ForwardReason.NOT_AD1.value)
        self.alerts.labels("suppressed", OUTAGE_ALERT_CODE, "activation_window")
        self.alerts.labels("dead_letter", "", "bad_input")
        for reason in (SHADOW_REASON, PASS_THROUGH_REASON, REGISTRY_UNAVAILABLE_REASON):
            self.alerts.labels("forwarded", OUTAGE_ALERT_CODE, reason)
        for dependency in DEPENDENCIES:
            for waiting in WAITING_INPUTS:
                self.dependency_waits.labels(dependency, waiting)

    def describe_topics(self, topics: Topics) -> None:
        """At start: name each configured topic by its role, and create the per-topic input series at zero."""
        for f in fields(topics):
            self.topic_info.labels(f.name, getattr(topics, f.name)).set(1)
        for topic in (*topics.activation_inputs, *topics.reference_inputs, topics.alerts):
            self.dead_letters.labels(topic)
            self.input_records.labels(topic)

    def set_mode(self, mode: str) -> None:
        """The mode in force (contract 8): 1 for it, 0 for the others."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        for name in MODES:
            self.mode.labels(name).set(1 if name == mode else 0)

    def set_next_mode_change(self, mode: str | None, at_ms: int | None) -> None:
        """The next scheduled change (contract 8: listed apart from the mode in force); None: none scheduled."""
        self.next_mode_change.clear()
        if mode is not None and at_ms is not None:
            self.next_mode_change.labels(mode).set(at_ms / 1000)

    def set_held(self, inputs: int, evidence: int = 0) -> None:
        """Alerts held for their inputs (`poa_held_alerts` too, as before) and AD1s held for evidence."""
        self.held_alerts.set(inputs)
        self.held_alerts_by_reason.labels("inputs").set(inputs)
        self.held_alerts_by_reason.labels("evidence").set(evidence)

    def set_event_time_lag(self, partition: int, newest_read_ms: int, decided_ms: int) -> None:
        """Event time (ms) of the newest alert read on an alert partition and of the latest decided there."""
        self.event_time_lag.labels(str(partition)).set(max(newest_read_ms - decided_ms, 0) / 1000)

    def set_evidence_lag(self, partition: int, records: int | None, clock_lag_s: float | None) -> None:
        """The evidence reader's records behind on an alert partition, and its clock's lag (None: not known yet)."""
        if records is not None:
            self.evidence_lag.labels(str(partition)).set(records)
        if clock_lag_s is not None:
            self.evidence_clock_lag.labels(str(partition)).set(clock_lag_s)

    def forget_alert_partitions(self, alerts_topic: str, partitions: Iterable[int]) -> None:
        """Partitions revoked from this worker: their lag is now another worker's to report."""
        for partition in map(str, partitions):
            for gauge, labels in ((self.event_time_lag, (partition,)), (self.consumer_lag, (alerts_topic, partition))):
                with suppress(KeyError):  # never set here
                    gauge.remove(*labels)

    def rebalanced(self, event: str) -> None:
        if event not in REBALANCE_EVENTS:
            raise ValueError(f"unknown rebalance event {event!r}; expected one of {', '.join(REBALANCE_EVENTS)}")
        self.rebalances.labels(event).inc()

    def set_cluster_findings(self, counts: Mapping[str, int]) -> None:
        """The last cluster check's findings by severity (pipeline/kafka/cluster_checks.py)."""
        for severity, count in counts.items():
            self.cluster_findings.labels(severity).set(count)

    def set_state_size(self, keys: int, size_bytes: int) -> None:
        self.state_keys.set(keys)
        self.state_bytes.set(size_bytes)

    def swept(self, purged: int) -> None:
        """A housekeeping pass completed, having purged this many expired activation versions."""
        self.sweeps.inc()
        self.purged_versions.inc(purged)


class Readiness:
    """Set by the worker loop, read by the HTTP thread. Given the `poa_ready` gauge, keeps it equal to what
    GET /ready answers (1 for 200, 0 for 503)."""

    def __init__(self, gauge: Gauge | None = None) -> None:
        self._lock = threading.Lock()
        self._reason = "starting"
        self._notes: dict[str, str] = {}  # lines under the status, by what sets them (cluster check, mode)
        self._holds: dict[str, str] = {}  # reasons that keep the worker unready whatever the loop says
        self._gauge = gauge
        if gauge is not None:
            gauge.set(0)

    def set(self, reason: str | None) -> None:
        """None means ready; otherwise a short reason why not."""
        with self._lock:
            self._reason = reason or ""
            self._update_gauge()

    def hold(self, topic: str, reason: str) -> None:
        """A reason to be unready that stands until lifted (a missing permission), whatever `set` says
        meanwhile; an empty reason lifts the topic's hold."""
        with self._lock:
            if reason:
                self._holds[topic] = reason
            else:
                self._holds.pop(topic, None)
            self._update_gauge()

    def _update_gauge(self) -> None:
        if self._gauge is not None:
            self._gauge.set(0 if self._reason or self._holds else 1)

    def note(self, topic: str, text: str) -> None:
        """Lines shown under the status on /ready (the cluster check's problems, the mode in force); they
        never make the worker unready. An empty text removes the topic's lines."""
        with self._lock:
            if text:
                self._notes[topic] = text
            else:
                self._notes.pop(topic, None)

    def status(self) -> tuple[bool, str]:
        with self._lock:
            reasons = [*self._holds.values(), *([self._reason] if self._reason else [])]
            lines = ["; ".join(reasons) or "ready", *self._notes.values()]
            return (not reasons, "\n".join(lines))


class DependencyWaits:
    """Says on /ready (a note: the worker goes on deciding what it can) and in `poa_dependency_waits` how
    many input partitions wait for a dependency that is down (contract 6)."""

    def __init__(self, metrics: WorkerMetrics, readiness: Readiness, dependency: str, unreachable: str) -> None:
        """`unreachable` says what is wrong, for /ready: "schema registry unreachable"."""
        self._metrics, self._readiness = metrics, readiness
        self._dependency, self._unreachable = dependency, unreachable
        self._counts = dict.fromkeys(WAITING_INPUTS, 0)

    def waiting(self, waiting_input: str, partitions: int) -> None:
        """`partitions` of `waiting_input` (one of WAITING_INPUTS) wait for the dependency now."""
        self._counts[waiting_input] = partitions
        self._metrics.dependency_waits.labels(self._dependency, waiting_input).set(partitions)
        waits = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in self._counts.items() if n)
        self._readiness.note(self._dependency, f"{self._unreachable}: waiting with {waits}" if waits else "")


def serve_metrics(
    port: int,
    metrics: WorkerMetrics,
    readiness: Readiness,
    host: str = "0.0.0.0",
    explain: ExplainRequests | None = None,
    access: HttpAccess | None = None,
) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread; returns it (its `server_port` is the bound port).

    `/explain` is answered through `explain` (the worker loop's bridge) to the clients `access` lets in
    (default: those with the token, and so no one without one); with `access.tls` the whole port speaks TLS."""
    guard = access or HttpAccess()

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_S  # a client that connects and says nothing does not hold a thread forever

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            if url.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif url.path == "/ready":
                ready, reason = readiness.status()
                self._send(200 if ready else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
            elif url.path == "/explain":
                self._explain(url.query)
            else:
                self._send(404, b"see /metrics, /ready and /explain?device=ID&at=TIME\n", "text/plain; charset=utf-8")

        def _explain(self, query: str) -> None:
            over_tls = isinstance(self.connection, ssl.SSLSocket)
            refusal = guard.refusal(self.client_address[0], self.headers.get("Authorization"), over_tls)
            if refusal is not None:
                self._send_json(refusal.status, {"error": refusal.message})
                return
            try:
                device_id, at_ms = _explain_question(query)
            except BadInput as exc:
                self._send_json(400, {"error": str(exc)})
                return
            if explain is None:
                self._send_json(503, {"error": "explanations are not served by this process"})
                return
            try:
                answer = explain.ask(device_id, at_ms)
                ready, status = readiness.status()  # not ready: the state the answer comes from may be incomplete
                self._send_json(200, {**answer, "worker": {"ready": ready, "status": status}})
            except WorkerBusy as exc:
                self._send_json(503, {"error": f"worker busy: {exc}"})
            except ExplainFailed as exc:
                self._send_json(500, {"error": str(exc)})

        def _send_json(self, code: int, body: dict[str, object]) -> None:
            self._send(code, json.dumps(body, indent=1).encode() + b"\n", "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="poa-filter"')
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence access logs
            return

    server = _QuietServer((host, port), Handler)
    server.daemon_threads = True
    if guard.tls is not None:
        # The handshake happens on the handler's thread at its first read, not in accept(), so a client that
        # never completes one cannot hold up the port.
        server.socket = guard.tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def serve_local_explain(
    port: int | None, metrics: WorkerMetrics, readiness: Readiness, explain: ExplainRequests | None, access: HttpAccess
) -> ThreadingHTTPServer | None:
    """The same paths on 127.0.0.1 alone, where `/explain` answers loopback without a token (unless one is
    configured): `http_access`. None when turned off (`port` None), or, logged, when the port cannot be had:
    the filter runs on without it."""
    if port is None:
        return None
    try:
        server = serve_metrics(port, metrics, readiness, host="127.0.0.1", explain=explain, access=access.local())
    except OSError as exc:
        log.warning("cannot listen on 127.0.0.1:%d for local /explain (%s): explanations only with the token on "
                    "the metrics port", port, exc.strerror or exc)  # fmt: skip
        return None
    log.info("explanations for this machine on 127.0.0.1:%d (/explain)", server.server_port)
    return server


class _QuietServer(ThreadingHTTPServer):
    """A client that drops its connection, or speaks plain HTTP to the TLS port, is its own problem: no
    traceback on stderr, one debug line."""

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("HTTP client %s: %s", client_address, sys.exc_info()[1])


def _explain_question(query: str) -> tuple[str, int]:
    """The device (canonical) and event time (epoch ms; default now) of `/explain?device=ID&at=TIME`."""
    params = parse_qs(query, keep_blank_values=True)
    devices, times = params.get("device", []), params.get("at", [])
    if len(devices) != 1 or len(times) > 1:
        raise BadInput("ask /explain?device=ID&at=TIME with one device ID and at most one time (default now)")
    device_id = canonical_device_id(devices[0], "device")
    at_ms = parse_time(times[0]) if times else int(time.time() * 1000)
    return device_id, at_ms
