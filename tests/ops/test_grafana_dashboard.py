"""The Grafana dashboard: the checked-in JSON is what the generator builds, and is a well-formed dashboard
whose every panel queries the Prometheus data source with PromQL that promtool parses. (Its queries are run
against a real Prometheus scraping a real worker in tests/integration/test_prometheus_scrape.py.)"""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.core.alert_decisions import ForwardReason
from pipeline.settings import Settings
from pipeline.worker.metrics import PASS_THROUGH_REASON, REGISTRY_UNAVAILABLE_REASON, SHADOW_REASON
from tests.ops.dashboard import DASHBOARD, GRAFANA_DIR, checked_in, generator, panel_queries, query_panels
from tests.ops.prometheus_tools import RUNBOOK, promtool


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


def test_the_dashboard_range_is_only_used_by_instant_queries() -> None:
    """`$__range` gives one count over the dashboard's range: in a range query each point would count over
    the whole range again."""
    for panel in query_panels(checked_in()):
        for target in panel["targets"]:
            if "$__range" in target["expr"]:
                assert target.get("instant") and not target.get("range"), f"{panel['title']} {target['refId']}"


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """Each query as Grafana sends it, as a recording rule for `promtool check rules` (which parses it)."""
    queries = panel_queries(checked_in())
    rules = [{"record": f"panel:query{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_a_query_promql_cannot_parse_is_caught(tmp_path: Path) -> None:
    broken = {"groups": [{"name": "panels", "rules": [{"record": "panel:query0", "expr": "sum(rate(x[5m])"}]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(broken))
    assert promtool("check", "rules", "panels.yml", cwd=tmp_path).returncode != 0


def overview() -> dict[str, dict[str, Any]]:
    """The panels of the first row, where operators look first, by title."""
    panels: list[dict[str, Any]] = checked_in()["panels"]
    assert panels[0]["type"] == "row"
    end = next(n for n, p in enumerate(panels[1:], 1) if p["type"] == "row")
    return {p["title"]: p for p in panels[1:end]}


def test_alerts_released_on_outage_evidence_are_counted_over_the_range_in_the_top_row() -> None:
    panel = overview()["Released on outage evidence"]
    (target,) = panel["targets"]
    assert f'reason="{ForwardReason.OUTAGE_EVIDENCE.value}"' in target["expr"]
    assert 'decision="forwarded"' in target["expr"] and target["expr"].startswith("sum(increase(")
    assert target["expr"].endswith("[$__range]))") and target["instant"]


@pytest.mark.parametrize("default", ["after", "grace", "max_hold"])
def test_the_wait_for_evidence_stated_follows_the_settings_defaults(default: str) -> None:
    """A + grace and the bound, in minutes, from the settings; a changed default changes the text."""
    module = generator()
    stated = module.evidence_wait(Settings())
    assert "3.5 minutes" in stated and "(4 minutes)" in stated
    changed = {"after": Settings(evidence_after_minutes=5), "grace": Settings(evidence_grace_seconds=90),
               "max_hold": Settings(max_hold_seconds=90)}[default]
    assert module.evidence_wait(changed) != stated
    waiting = overview()["AD1s waiting for evidence"]
    assert stated in waiting["description"]
    assert [t["expr"] for t in waiting["targets"]] == ['sum(poa_held_alerts_by_reason{reason="evidence"})']


def test_suppressed_and_released_on_evidence_are_drawn_side_by_side() -> None:
    (panel,) = [p for p in query_panels(checked_in()) if p["title"].startswith("AD1s in windows")]
    exprs = [t["expr"] for t in panel["targets"]]
    assert panel["type"] == "timeseries" and len(exprs) == 2
    assert 'decision="suppressed"' in exprs[0] and f'reason="{ForwardReason.OUTAGE_EVIDENCE.value}"' in exprs[1]


def test_the_asked_for_views_are_there() -> None:
    exprs = " ".join(expr for _, expr in panel_queries(checked_in()))
    for metric in ("poa_alerts_total", "poa_dead_letters_total", "poa_held_alerts", "poa_held_alerts_by_reason",
                   "poa_decision_latency_seconds_bucket", "poa_consumer_lag", "poa_event_time_lag_seconds",
                   "poa_activation_windows", "poa_tracked_devices", "poa_transactions_total",
                   "poa_rebalances_total", "poa_state_bytes", "poa_ready", "poa_sweeps_total", "poa_mode",
                   "poa_dependency_waits", "poa_cluster_findings", "poa_holds_expired_total"):
        assert metric in exprs, metric
    for reason in (SHADOW_REASON, PASS_THROUGH_REASON, REGISTRY_UNAVAILABLE_REASON, ForwardReason.OUTAGE_EVIDENCE):
        assert reason in exprs, f"alerts forwarded with reason {reason}"


def test_held_alerts_and_their_expiries_are_split_by_what_they_wait_for() -> None:
    """Expiries of holds for inputs (trouble) and for evidence have alerts of their own: the panel tells them
    apart as the alerts do, by the exact counter rather than by poa_alerts_total's hold_expired."""
    (panel,) = [p for p in query_panels(checked_in()) if p["title"] == "Held alerts"]
    assert [t["expr"] for t in panel["targets"]] == [
        "sum by (reason) (poa_held_alerts_by_reason)", "sum by (held_for) (rate(poa_holds_expired_total[5m]))"
    ]
    assert "{{held_for}}" in panel["targets"][1]["legendFormat"]
    assert "PoaHeldAlertsExpiring" in panel["description"] and "PoaEvidenceHoldsExpiring" in panel["description"]


def test_provisioning_files_point_at_prometheus_and_the_dashboard_folder() -> None:
    sources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/poa-prometheus.yml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/poa-filter.yml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]


def test_panels_the_runbook_names_exist() -> None:
    titles = {p["title"] for p in checked_in()["panels"]}
    named = {" ".join(name.split()) for name in re.findall(r'"([A-Z][^"]*)"', RUNBOOK.read_text())}  # wrapped
    assert named and named <= titles, sorted(named - titles)
