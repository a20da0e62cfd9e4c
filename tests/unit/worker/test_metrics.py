"""The metrics endpoint and readiness probe, over real HTTP on a free port."""

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.settings import Topics
from pipeline.worker.metrics import Readiness, WorkerMetrics, code_label, serve_metrics


@pytest.mark.parametrize(("code", "label"), [("AD1", "AD1"), ("8F36", "8F36"), ("8F35", "8F35"), ("8F66", "8F66"),
                                             ("8F67", "8F67"), ("ad1", "other"), ("8F99", "other"), ("", "other"),
                                             ("AD 1", "other"), ("X" * 9, "other")])
def test_alert_code_labels_are_a_fixed_set(code: str, label: str) -> None:
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


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def scrape(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    server = serve_metrics(0, metrics, Readiness(), host="127.0.0.1")
    try:
        status, body = get(server.server_port, "/metrics")
        assert status == 200
        return samples(body)
    finally:
        server.shutdown()


def test_series_the_rules_query_exist_at_zero_before_any_event() -> None:
    metrics = WorkerMetrics()
    metrics.describe_topics(Topics(alerts="a.alerts"))
    got = scrape(metrics)
    for name, labels in [
        ("poa_transactions_total", (("result", "aborted"),)),
        ("poa_rebalances_total", (("event", "lost"),)),
        ("poa_held_alerts_by_reason", (("reason", "evidence"),)),
        ("poa_holds_expired_total", (("held_for", "evidence"),)),
        ("poa_holds_expired_total", (("held_for", "inputs"),)),
        ("poa_alerts_total", (("alert_code", "AD1"), ("decision", "forwarded"), ("reason", "hold_expired"))),
        ("poa_alerts_total", (("alert_code", "AD1"), ("decision", "suppressed"), ("reason", "activation_window"))),
        ("poa_dead_letters_total", (("topic", "a.alerts"),)),
        ("poa_input_records_total", (("topic", "a.alerts"),)),
        ("poa_sweeps_total", ()),
        ("poa_purged_versions_total", ()),
    ]:
        assert got[name, labels] == 0, (name, labels)
    assert got["poa_topic_info", (("role", "alerts"), ("topic", "a.alerts"))] == 1


def test_new_metrics_report_what_their_methods_are_given() -> None:
    metrics = WorkerMetrics()
    metrics.set_held(inputs=3, evidence=7)
    metrics.set_event_time_lag(2, newest_read_ms=190_000, decided_ms=10_000)
    metrics.set_event_time_lag(1, newest_read_ms=5_000, decided_ms=9_000)  # decided past the newest read: no lag
    metrics.consumer_lag.labels("a.alerts", "2").set(4)
    metrics.rebalanced("assigned")
    metrics.rebalanced("revoked")
    metrics.rebalanced("assigned")
    metrics.set_state_size(keys=120, size_bytes=4096)
    metrics.swept(purged=5)
    metrics.swept(purged=0)
    metrics.set_mode("shadow")
    got = scrape(metrics)
    assert got["poa_held_alerts", ()] == 3
    assert got["poa_held_alerts_by_reason", (("reason", "inputs"),)] == 3
    assert got["poa_held_alerts_by_reason", (("reason", "evidence"),)] == 7
    assert got["poa_event_time_lag_seconds", (("partition", "2"),)] == 180
    assert got["poa_event_time_lag_seconds", (("partition", "1"),)] == 0
    assert got["poa_rebalances_total", (("event", "assigned"),)] == 2
    assert got["poa_rebalances_total", (("event", "revoked"),)] == 1
    assert (got["poa_state_keys", ()], got["poa_state_bytes", ()]) == (120, 4096)
    assert (got["poa_sweeps_total", ()], got["poa_purged_versions_total", ()]) == (2, 5)
    assert [labels for (name, labels), v in got.items() if name == "poa_mode" and v == 1] == [(("mode", "shadow"),)]

    metrics.forget_alert_partitions("a.alerts", [2, 5])
    got = scrape(metrics)
    assert ("poa_event_time_lag_seconds", (("partition", "2"),)) not in got
    assert ("poa_consumer_lag", (("partition", "2"), ("topic", "a.alerts"))) not in got
    assert ("poa_event_time_lag_seconds", (("partition", "1"),)) in got


def test_labels_outside_their_fixed_sets_are_refused_with_the_allowed_values() -> None:
    metrics = WorkerMetrics()
    with pytest.raises(ValueError, match="unknown mode 'fast'; expected one of filter, shadow, pass-through"):
        metrics.set_mode("fast")
    with pytest.raises(ValueError, match="unknown rebalance event 'moved'"):
        metrics.rebalanced("moved")


def test_readiness_given_the_gauge_keeps_poa_ready_equal_to_the_probe() -> None:
    metrics = WorkerMetrics()
    readiness = Readiness(metrics.ready)
    server = serve_metrics(0, metrics, readiness, host="127.0.0.1")
    try:
        for reason, status, ready in [(None, 200, 1), ("rebalancing", 503, 0), (None, 200, 1)]:
            readiness.set(reason)
            assert get(server.server_port, "/ready")[0] == status
            assert samples(get(server.server_port, "/metrics")[1])["poa_ready", ()] == ready
    finally:
        server.shutdown()
