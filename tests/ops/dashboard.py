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


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title and refId, PromQL expression) of every target."""
    return [(f"{p['title']} {t['refId']}", t["expr"]) for p in query_panels(board) for t in p["targets"]]
