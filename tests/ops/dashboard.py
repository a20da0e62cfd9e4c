"""The checked-in Grafana dashboard and its generator (deploy/grafana/generate_dashboard.py, not a package)."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.ops.prometheus_tools import ROOT

GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "poa-filter.json"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_dashboard", GRAFANA_DIR / "generate_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checked_in(path: Path = DASHBOARD) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def query_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows only group)."""
    return [p for p in board["panels"] if p["type"] != "row"]


def default_range(board: dict[str, Any]) -> str:
    """The dashboard's default time range as a PromQL duration (`now-6h` to `now`: `6h`)."""
    start, end = board["time"]["from"], board["time"]["to"]
    assert end == "now" and start.startswith("now-"), board["time"]
    return str(start.removeprefix("now-"))


def as_grafana_sends(board: dict[str, Any], expr: str) -> str:
    """A target's expression as Grafana sends it to Prometheus: `$__range` is the dashboard's time range
    (its default one here). Any other variable is left alone, for the tests to reject."""
    return expr.replace("$__range", default_range(board))


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title and refId, PromQL expression as Grafana sends it) of every target."""
    return [(f"{p['title']} {t['refId']}", as_grafana_sends(board, t["expr"]))
            for p in query_panels(board) for t in p["targets"]]
