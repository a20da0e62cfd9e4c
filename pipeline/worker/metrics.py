"""Prometheus metrics and the readiness probe, served on one port (contract section 7).

Metric names carry the `poa_` prefix; labels are bounded (alert codes, decisions, reasons, topics).
"""

import re
import threading
from bisect import bisect_left
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily

_ALERT_CODE = re.compile(r"[0-9A-Za-z]{1,8}")


def code_label(alert_code: str) -> str:
    """Alert codes as a label, but a malformed code cannot create unbounded label values."""
    return alert_code if _ALERT_CODE.fullmatch(alert_code) else "other"


class BatchHistogram:
    """A Prometheus histogram fed with (value, count): the alerts of one read batch share their read
    time and their commit time, so one call records them all instead of one call per alert."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self._name, self._documentation = name, documentation
        self._bounds = sorted(buckets)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, value: float, count: int = 1) -> None:
        with self._lock:
            self._counts[bisect_left(self._bounds, value)] += count
            self._sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self._bounds), "+Inf"], counts, strict=True):
            running += count
            cumulative.append((bound, running))
        yield HistogramMetricFamily(self._name, self._documentation, buckets=cumulative, sum_value=total)


class WorkerMetrics:
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
        self.decision_latency = BatchHistogram(
            "poa_decision_latency_seconds",
            "From reading an alert to committing its output",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            r,
        )
        self.consumer_lag = Gauge(
            "poa_consumer_lag", "Records not yet read, by input topic and partition", ["topic", "partition"], registry=r
        )
        self.transactions = Counter(
            "poa_transactions", "Kafka transactions, by result (committed, aborted)", ["result"], registry=r
        )
        self.ready = Gauge("poa_ready", "1 when the worker is ready to decide alerts (GET /ready)", registry=r)


class Readiness:
    """Set by the worker loop, read by the HTTP thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason = "starting"

    def set(self, reason: str | None) -> None:
        """None means ready; otherwise a short reason why not."""
        with self._lock:
            self._reason = reason or ""

    def status(self) -> tuple[bool, str]:
        with self._lock:
            return (self._reason == "", self._reason or "ready")


def serve_metrics(
    port: int, metrics: WorkerMetrics, readiness: Readiness, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread; returns it (its `server_port` is the bound port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/ready":
                ready, reason = readiness.status()
                self._send(200 if ready else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"see /metrics and /ready\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence access logs
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
