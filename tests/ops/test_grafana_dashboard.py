"""The Grafana dashboard: the checked-in JSON is what the generator builds, and is a well-formed dashboard
whose every panel queries the Prometheus data source. (Its queries are run against a real Prometheus
scraping a real worker in tests/integration/test_prometheus_scrape.py.)"""

import re
from typing import Any

import yaml

from pipeline.worker.metrics import PASS_THROUGH_REASON, REGISTRY_UNAVAILABLE_REASON, SHADOW_REASON
from tests.ops.dashboard import DASHBOARD, GRAFANA_DIR, checked_in, generator, panel_queries, query_panels
from tests.ops.prometheus_tools import RUNBOOK


def test_checked_in_json_is_the_generators_output() -> None:
    assert DASHBOARD.read_text() == generator().render(), "run python deploy/grafana/generate_dashboard.py"


def test_panels_have_a_datasource_queries_unique_ids_and_places_on_the_grid() -> None:
    board = checked_in()
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"} and pos["w"] > 0 and pos["h"] > 0, panel["title"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]
    for panel in query_panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        targets: list[dict[str, Any]] = panel["targets"]
        assert targets, f"{panel['title']} has no query"
        for target in targets:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"], panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert panel["description"], panel["title"]


def test_every_query_is_plain_promql_that_prometheus_answers_as_written() -> None:
    for name, expr in panel_queries(checked_in()):
        assert "$" not in expr, f"{name}: a Grafana variable in {expr}"


def test_the_asked_for_views_are_there() -> None:
    exprs = " ".join(expr for _, expr in panel_queries(checked_in()))
    for metric in ("poa_alerts_total", "poa_dead_letters_total", "poa_held_alerts", "poa_held_alerts_by_reason",
                   "poa_decision_latency_seconds_bucket", "poa_consumer_lag", "poa_event_time_lag_seconds",
                   "poa_activation_windows", "poa_tracked_devices", "poa_transactions_total",
                   "poa_rebalances_total", "poa_state_bytes", "poa_ready", "poa_sweeps_total", "poa_mode",
                   "poa_dependency_waits", "poa_cluster_findings"):
        assert metric in exprs, metric
    for reason in (SHADOW_REASON, PASS_THROUGH_REASON, REGISTRY_UNAVAILABLE_REASON):
        assert reason in exprs, f"alerts forwarded with reason {reason}"


def test_provisioning_files_point_at_prometheus_and_the_dashboard_folder() -> None:
    sources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/poa-prometheus.yml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/poa-filter.yml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]


def test_panels_the_runbook_names_exist() -> None:
    titles = {p["title"] for p in checked_in()["panels"]}
    named = set(re.findall(r'"([A-Z][^"]*)"', RUNBOOK.read_text()))
    assert named and named <= titles, sorted(named - titles)
