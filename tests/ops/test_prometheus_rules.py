"""The alert rules through the real promtool (Debian's package, fetched by deploy/prometheus/fetch.sh):
they load, their unit tests pass, and those tests would catch a rule that never fires or ignores its
threshold. Every alert has a runbook section."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.worker.metrics import HOLD_REASONS
from tests.ops.prometheus_tools import (
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alert_rules,
    promtool,
    rule_groups,
    runbook_anchors,
    signals,
)


def test_rules_pass_promtool_check() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule_groups())} rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", *(tests.name for tests in RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_alert_is_tested_both_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = {}
    for test in (t for tests in RULE_TESTS for t in yaml.safe_load(tests.read_text())["tests"]):
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert {rule["alert"]: {False, True} for rule in alert_rules()} == cases


def with_alert_expr(folder: Path, alert: str, expr: str) -> tuple[Path, list[str]]:
    """In a new folder: the rules with one alert's expression replaced, and the unit test files of that
    alert with its tests only; the folder and those files' names."""
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    folder.mkdir()
    (folder / RULES.name).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    names = []
    for path in RULE_TESTS:
        tests = yaml.safe_load(path.read_text())
        tests["tests"] = [
            t for t in tests["tests"] if any(c["alertname"] == alert for c in t.get("alert_rule_test", []))
        ]
        if tests["tests"]:
            (folder / path.name).write_text(yaml.safe_dump(tests, sort_keys=False))
            names.append(path.name)
    return folder, names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_the_unit_tests_fail_for_a_rule_that_never_fires_or_ignores_its_thresholds(
    rule: dict[str, Any], tmp_path: Path
) -> None:
    as_written, tests = with_alert_expr(tmp_path / "as-written", rule["alert"], rule["expr"])
    assert promtool("test", "rules", *tests, cwd=as_written).returncode == 0
    never, tests = with_alert_expr(tmp_path / "never", rule["alert"], "vector(1) == 0")
    assert promtool("test", "rules", *tests, cwd=never).returncode != 0
    without_thresholds = " and ".join(f"({signal})" for signal in signals(rule["expr"]))
    always, tests = with_alert_expr(tmp_path / "always", rule["alert"], without_thresholds)
    assert promtool("check", "rules", RULES.name, cwd=always).returncode == 0
    assert promtool("test", "rules", *tests, cwd=always).returncode != 0


def test_each_kind_of_hold_expiry_the_worker_counts_has_one_alert_of_its_own() -> None:
    """A `held_for` value renamed in the worker, or added, would leave its expiries unalerted."""
    watched: dict[str, list[str]] = {}
    for rule in alert_rules():
        for held_for in re.findall(r'poa_holds_expired_total\{held_for="([^"]*)"\}', rule["expr"]):
            watched.setdefault(held_for, []).append(rule["alert"])
    assert watched == {"inputs": ["PoaHeldAlertsExpiring"], "evidence": ["PoaEvidenceHoldsExpiring"]}
    assert set(watched) == set(HOLD_REASONS)


def test_every_alert_links_to_its_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/runbook.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"no '## {rule['alert']}' section in docs/runbook.md"


def test_the_runbooks_links_to_its_own_sections_resolve() -> None:
    links = set(re.findall(r"\]\(#([^)]+)\)", RUNBOOK.read_text()))
    assert links and links <= runbook_anchors(), sorted(links - runbook_anchors())


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("poa_ready == 0", ["poa_ready"]),
        ('sum(rate(x{a=~"b|c", d!="1"}[5m])) > 0.3', ['sum(rate(x{a=~"b|c", d!="1"}[5m]))']),
        ("a > 1 and on (job) b == 0 unless c", ["a", "b", "c"]),
        ("max(a > 1) * 2", ["max(a > 1) * 2"]),
    ],
)
def test_signals_are_the_clauses_without_their_comparisons(expr: str, expected: list[str]) -> None:
    assert signals(expr) == expected


def test_example_configuration_passes_promtool_check() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
