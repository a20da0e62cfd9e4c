"""GET /ready: 503 with a reason until the worker can decide alerts, then 200; /metrics names the gauges."""

import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.conftest import create_topics
from tests.integration.worker_harness import WorkerProcess, wait_until

pytestmark = pytest.mark.broker


def ready_status(worker: WorkerProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def test_not_ready_while_an_input_topic_is_missing_then_ready(settings: Settings, tmp_path: Path) -> None:
    missing_alerts = settings.topics.alerts + ".later"
    settings = replace(settings, topics=replace(settings.topics, alerts=missing_alerts))
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        wait_until(lambda: missing_alerts in ready_status(worker)[1], 30, "/ready naming the missing topic",
                   alive=worker)
        status, reason = ready_status(worker)
        assert status == 503 and reason.startswith("waiting for input topics")
        create_topics(settings.bootstrap_servers, {missing_alerts: 2})
        worker.wait_ready()
        metrics = worker.metrics()
        for name in ("poa_ready 1.0", "poa_held_alerts", "poa_tracked_devices", "poa_activation_windows",
                     "poa_decision_latency_seconds", "poa_consumer_lag"):
            assert name in metrics, name
    finally:
        assert worker.stop() == 0, "a SIGTERM stop exits cleanly"
