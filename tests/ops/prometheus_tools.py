"""Prometheus tooling for the ops tests: the binaries fetched by deploy/prometheus/fetch.sh, the rule file,
and each alert's signals (its expression without thresholds)."""

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "poa-filter-rules.yml"
# The rules' unit tests; those over a week of samples apart, evaluated every 5 minutes (promtool evaluates
# every rule at each step of a file's evaluation_interval).
RULE_TESTS = (PROMETHEUS_DIR / "poa-filter-rules.test.yml", PROMETHEUS_DIR / "poa-filter-rules.week.test.yml")
RUNBOOK = ROOT / "docs" / "runbook.md"

_SET_OPERATOR = re.compile(r"\s+(?:and|or|unless)(?:\s+(?:on|ignoring)\s*\([^)]*\))?\s+")
_THRESHOLD = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?[0-9][0-9.eE+-]*\s*$")


@cache
def bin_dir() -> Path:
    """The folder holding `prometheus` and `promtool`, fetched on first use (idempotent)."""
    done = subprocess.run(["bash", str(PROMETHEUS_DIR / "fetch.sh")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"deploy/prometheus/fetch.sh failed:\n{done.stderr}"
    return Path(done.stdout.strip())


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir() / "promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rule_groups(path: Path = RULES) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def runbook_anchors() -> set[str]:
    """The anchors of docs/runbook.md's sections, as GitHub makes them from the `## ` headings."""
    return {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
            for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}


def _depths(expr: str) -> list[int]:
    """Bracket depth at each character, quoted strings counted as nested."""
    depths, depth, quote = [], 0, ""
    for char in expr:
        if quote:
            depths.append(depth + 1)
            quote = "" if char == quote else quote
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char in "\"'`":
            quote = char
        depths.append(depth + (1 if quote else 0))
    return depths


def signals(expr: str) -> list[str]:
    """The clauses of an alert expression joined by `and`/`or`/`unless`, each without its trailing comparison
    to a number: what the alert watches, which must have data whenever the worker is scraped."""
    expr = " ".join(expr.split())
    depths = _depths(expr)
    cuts = [m for m in _SET_OPERATOR.finditer(expr) if depths[m.start()] == 0]
    bounds = [0, *[i for m in cuts for i in (m.start(), m.end())], len(expr)]
    clauses = [expr[start:end] for start, end in zip(bounds[::2], bounds[1::2], strict=True)]
    result = []
    for clause in clauses:
        threshold = _THRESHOLD.search(clause)
        if threshold is not None and _depths(clause)[threshold.start()] == 0:
            clause = clause[: threshold.start()]
        result.append(clause.strip())
    return result
