"""The metrics endpoint and readiness probe, over real HTTP on a free port."""

import urllib.error
import urllib.request

import pytest

from pipeline.worker.metrics import Readiness, WorkerMetrics, code_label, serve_metrics


@pytest.mark.parametrize(("code", "label"), [("AD1", "AD1"), ("8F36", "8F36"), ("ad1", "ad1"),
                                             ("", "other"), ("AD 1", "other"), ("X" * 9, "other")])
def test_alert_code_labels_are_bounded(code: str, label: str) -> None:
    assert code_label(code) == label


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_ready_is_503_with_reason_until_set_ready_and_metrics_are_served() -> None:
    metrics, readiness = WorkerMetrics(), Readiness()
    server = serve_metrics(0, metrics, readiness, host="127.0.0.1")
    try:
        port = server.server_port
        readiness.set("reading the reference topics")
        assert get(port, "/ready") == (503, "reading the reference topics\n")
        readiness.set(None)
        assert get(port, "/ready") == (200, "ready\n")
        metrics.alerts.labels("suppressed", "AD1", "activation_window").inc(3)
        status, body = get(port, "/metrics")
        assert status == 200
        assert 'poa_alerts_total{alert_code="AD1",decision="suppressed",reason="activation_window"} 3.0' in body
        assert get(port, "/nothing-here")[0] == 404
    finally:
        server.shutdown()
