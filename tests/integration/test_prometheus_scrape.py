"""A real Prometheus (deploy/prometheus/fetch.sh) scrapes a real `poa-filter worker` every second while it
decides a campaign scenario, plus a bad alert and alerts with many distinct codes. Then every query of the
Grafana dashboard and every signal of the alert rules (each alert clause without its threshold, and each
recording rule) must return data through Prometheus's HTTP API: no panel or alert can silently watch nothing.

NOT_YET_WIRED names the metrics that pipeline/worker/metrics.py defines but the worker does not set yet.
The checks that depend on them are expected to fail (strict xfail: once a metric is wired, its checks pass,
pytest reports XPASS as a failure, and the name must be removed from the list). Empty it, don't extend it.
"""

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.settings import Settings, Topics
from pipeline.worker.metrics import KNOWN_ALERT_CODES, OTHER_CODE, WorkerMetrics
from tests.conftest import create_topics
from tests.integration.scenario import Scenario, campaign
from tests.integration.scenario_play import ready_worker, write_live
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess, free_port, wait_until
from tests.ops.dashboard import checked_in, panel_queries
from tests.ops.prometheus_tools import RULES, bin_dir, rule_groups, signals

pytestmark = pytest.mark.broker

NOT_YET_WIRED: frozenset[str] = frozenset()
DISTINCT_CODES = 2000  # valid alerts, each with its own code: none may become a label value of its own


def expressions() -> list[tuple[str, str]]:
    """(name, PromQL) of every dashboard query, recording rule and alert signal."""
    named = [(f"panel {name}", expr) for name, expr in panel_queries(checked_in())]
    for group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                named.append((f"record {rule['record']}", rule["expr"]))
            else:
                named += [(f"alert {rule['alert']} {n}", s) for n, s in enumerate(signals(rule["expr"]), 1)]
    return named


def exported_before_set() -> set[str]:
    """Sample names a worker exports before setting anything: these answer queries (with zeros) unwired."""
    return {sample.name for family in WorkerMetrics().registry.collect() for sample in family.samples}


def until_wired(name: str, expr: str, unless_exported: bool = False) -> Any:
    """A test parameter, expected to fail while `expr` needs a metric in NOT_YET_WIRED (with `unless_exported`:
    one that has no series at all until the worker sets it)."""
    unwired = NOT_YET_WIRED - exported_before_set() if unless_exported else NOT_YET_WIRED
    pending = [metric for metric in sorted(unwired) if re.search(rf"\b{metric}\b", expr)]
    marks = [pytest.mark.xfail(strict=True, reason=f"not wired yet: {', '.join(pending)}")] if pending else []
    return pytest.param(expr, id=name, marks=marks)


class PrometheusServer:
    """`prometheus` from the fetched package on a free loopback port, scraping one worker every second."""

    def __init__(self, folder: Path, worker_port: int) -> None:
        self.port = free_port()
        config = folder / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "poa-filter", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}
            ],
        }))
        self.log_path = folder / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(bin_dir() / "prometheus"), f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, 60, "Prometheus ready")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited:\n{self.log_path.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query now: the result vector (or scalar as one sample); fails on an error."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return result if body["data"]["resultType"] == "vector" else [{"value": result}]

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fresh_settings(broker: str, state_dir: Path) -> Settings:
    """Topics and app ID of this module's own, as the `settings` fixture makes them for one test."""
    tag = uuid.uuid4().hex[:10]
    topics = Topics(**{name: f"t{tag}.{default}" for name, default in vars(Topics()).items()})
    compacted = {"cleanup.policy": "compact"}
    create_topics(broker, {topics.service_requests: 3, topics.activation_outcomes: 2, topics.alerts: 3,
                           topics.inventory: 3, topics.tracked_devices: 2},
                  {topics.inventory: compacted, topics.tracked_devices: compacted})
    return replace(Settings(), bootstrap_servers=broker, app_id=f"poa-filter-test-{tag}", data_dir=str(state_dir),
                   metrics_port=0, topics=topics)


@pytest.fixture(scope="module")
def scraped(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, WorkerProcess]]:
    folder = tmp_path_factory.mktemp("prometheus-scrape")
    settings = fresh_settings(broker, folder / "state")
    sc = campaign(homes=30)
    with ready_worker(settings, folder, sc) as (dsp, worker, reader):
        prometheus = PrometheusServer(folder, worker.port)
        try:
            decide_and_scrape(settings, sc, dsp, worker, reader, prometheus)
            yield prometheus, worker
        finally:
            prometheus.stop()


def decide_and_scrape(
    settings: Settings, sc: Scenario, dsp: DspProducer, worker: WorkerProcess, reader: OutputReader,
    prometheus: PrometheusServer,
) -> None:
    """The scenario and DISTINCT_CODES alerts with codes of their own decided, and Prometheus scraping them."""
    write_live(dsp, sc)
    last = sc.alerts[-1]
    for n in range(DISTINCT_CODES):
        datum = {**last, "alert_id": f"coded-{n}", "alert_code": f"Z{n:04X}", "mpxn": f"{2000000000000 + n}"}
        dsp.send(settings.topics.alerts, f"{n:016X}", CODEC.encode("DeviceAlert", datum))
    dsp.send(settings.topics.alerts, "bad", b"not an Avro alert")
    dsp.flush()
    decided = len(sc.alerts) + DISTINCT_CODES
    reader.wait_for(lambda o: o.alert_outputs >= decided and len(o.dead_letters) >= 1, 180,
                    "every alert decided and the bad one dead-lettered", worker)  # fmt: skip
    wait_until(lambda: prometheus.value("sum(poa_alerts_total)") >= decided + 1, 60, "Prometheus scraping decisions")
    time.sleep(3)  # a few more scrapes and rule evaluations, so every rate has samples to work on


@pytest.mark.parametrize("expr", [until_wired(name, expr, unless_exported=True) for name, expr in expressions()])
def test_every_panel_query_and_rule_signal_returns_data(
    scraped: tuple[PrometheusServer, WorkerProcess], expr: str
) -> None:
    prometheus, _ = scraped
    assert prometheus.query(expr), f"no data for {expr}"


# Values a worker that has decided the scenario must have moved (a metric created at zero answers queries
# with data even if nothing sets it: these catch that).
MOVED: dict[str, Callable[[float], bool]] = {
    "poa_state_keys": lambda v: v > 0,
    "poa_state_bytes": lambda v: v > 0,
    "poa_sweeps_total": lambda v: v >= 1,
    'poa_rebalances_total{event="assigned"}': lambda v: v >= 1,
    "poa_mode": lambda v: v == 1,
    'poa_topic_info{role="alerts"}': lambda v: v == 1,
    'poa_alerts_total{alert_code="AD1", decision="suppressed"}': lambda v: v > 0,
    "poa_tracked_devices": lambda v: v > 0,
    "poa_ready": lambda v: v == 1,
    # The shared test broker is a single broker: its replication settings are reported as information.
    'poa_cluster_findings{severity="info"}': lambda v: v > 0,
}


@pytest.mark.parametrize("selector", [until_wired(s, s) for s in MOVED])
def test_metrics_the_scenario_moves_have_moved(scraped: tuple[PrometheusServer, WorkerProcess], selector: str) -> None:
    prometheus, _ = scraped
    value = prometheus.value(f"sum({selector})")
    assert MOVED[selector](value), f"{selector} = {value}"


def test_alert_codes_from_input_do_not_become_label_values(scraped: tuple[PrometheusServer, WorkerProcess]) -> None:
    """Issue 9.6: each distinct code used to add a series (50,000 codes gave a 9 MB /metrics)."""
    prometheus, worker = scraped
    label_sets = {tuple(sorted(sample.labels.items()))
                  for family in text_string_to_metric_families(worker.metrics())
                  for sample in family.samples if sample.name == "poa_alerts_total"}
    codes = {dict(labels)["alert_code"] for labels in label_sets}
    assert codes <= {*KNOWN_ALERT_CODES, OTHER_CODE, ""}, sorted(codes - {*KNOWN_ALERT_CODES, OTHER_CODE, ""})[:10]
    assert len(label_sets) <= 20, "decision x code x reason: a few fixed combinations"
    assert prometheus.value('sum(poa_alerts_total{alert_code="other"})') >= DISTINCT_CODES
    assert prometheus.value("count(count by (alert_code) (poa_alerts_total))") <= len(KNOWN_ALERT_CODES) + 2
