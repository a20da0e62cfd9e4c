"""The poa-filter Grafana dashboard as code (grafana-foundation-sdk), written to poa-filter.json beside it.

    python deploy/grafana/generate_dashboard.py           # write poa-filter.json
    python deploy/grafana/generate_dashboard.py --check   # exit 1 if poa-filter.json is not what this builds

The JSON is checked in, so Grafana (file provisioning, provisioning/) needs no Python; a test holds the two
equal. Queries are plain PromQL, without Grafana template variables, so that Prometheus answers each exactly as
written (tests/integration/test_prometheus_scrape.py runs them all against a live worker); the one exception is
Grafana's built-in `$__range` (the dashboard's time range as a duration) in the instant queries of counts over
that range, which the tests replace with the dashboard's default range as Grafana does. Per-worker panels break
down by `instance`.
"""

import json
import sys
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from pipeline.core.alert_decisions import ForwardReason
from pipeline.settings import Settings

OUTPUT = Path(__file__).with_name("poa-filter.json")
UID = "poa-filter"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[5m]"
DASHBOARD_RANGE = "[$__range]"  # Grafana's: the dashboard's time range, in an instant query
AD1_DECIDED = 'alert_code="AD1", decision=~"forwarded|suppressed"'
FORWARDED_UNFILTERED = "shadow|pass_through|registry_unavailable"  # reasons beyond the rules' own
RELEASED_ON_EVIDENCE = f'alert_code="AD1", decision="forwarded", reason="{ForwardReason.OUTAGE_EVIDENCE.value}"'


def evidence_wait(defaults: Settings) -> str:
    """How long an AD1 in a window waits for rule 9's evidence when the worker is caught up (contract 5.7),
    and when it is forwarded at the latest, with the settings' defaults."""
    wait_s = defaults.evidence_after_minutes * 60 + defaults.evidence_grace_seconds
    return (
        f"A + grace: {wait_s / 60:g} minutes with the defaults (POA_EVIDENCE_AFTER_MINUTES "
        f"{defaults.evidence_after_minutes}, POA_EVIDENCE_GRACE_SECONDS {defaults.evidence_grace_seconds:g}), less "
        f"when evidence releases it sooner; after A + grace + POA_MAX_HOLD_SECONDS "
        f"({(wait_s + defaults.max_hold_seconds) / 60:g} minutes) it is forwarded as hold_expired "
        "(runbook: PoaEvidenceHoldsExpiring)"
    )


EVIDENCE_WAIT = evidence_wait(Settings())


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False  # one value at the end of the range (counts over DASHBOARD_RANGE), not a series


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 12


def q(expr: str, legend: str, instant: bool = False) -> Query:
    return Query(" ".join(expr.split()), legend, instant)


SUPPRESSED_SHARE = q(
    f'sum(rate(poa_alerts_total{{alert_code="AD1", decision="suppressed"}}{RATE}))'
    f" / sum(rate(poa_alerts_total{{{AD1_DECIDED}}}{RATE}))",
    "AD1s suppressed",
)

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Overview",
        (
            Panel("Workers ready", "Workers answering 200 on GET /ready, of those scraped.",
                  (q("sum(poa_ready)", "ready"), q("count(poa_ready)", "scraped")),
                  kind="stat", width=4),
            Panel("AD1s suppressed now", "AD1s suppressed of the AD1s decided (forwarded or suppressed).",
                  (SUPPRESSED_SHARE,), unit="percentunit", kind="stat", width=4),
            Panel("Released on outage evidence", "AD1s inside a firmware activation window forwarded over the "
                  "dashboard's time range because of evidence of a genuine outage (contract rule 9: an 8F35/8F36 "
                  "from an ESME on the same HAN, or a storm in the postcode sector), reason outage_evidence. Each "
                  "is logged at INFO with its evidence; poa-filter explain names it.",
                  (q(f"sum(increase(poa_alerts_total{{{RELEASED_ON_EVIDENCE}}}{DASHBOARD_RANGE}))",
                     "released", instant=True),), kind="stat", width=4),
            Panel("Held for inputs now", "Alerts held now for their activation inputs: trouble when it lasts "
                  "(runbook: PoaHeldAlertsExpiring).",
                  (q("sum(poa_held_alerts)", "for inputs"),), kind="stat", width=4),
            Panel("AD1s waiting for evidence", "AD1s in firmware activation windows waiting now for rule 9's "
                  f"evidence on the held topic: expected during campaigns. Each waits {EVIDENCE_WAIT}.",
                  (q('sum(poa_held_alerts_by_reason{reason="evidence"})', "for evidence"),), kind="stat", width=4),
            Panel("Mode in force", "1 for the mode the workers apply (filter, shadow, pass-through).",
                  (q("max by (mode) (poa_mode)", "{{mode}}"),), kind="stat", width=4),
        ),
    ),
    (
        "Alerts",
        (
            Panel("Alerts in and out", "Alerts read from the alert topic, and decisions committed, per second.",
                  (q(f"sum(rate(poa_input_records_total{RATE})"
                     f' * on (job, instance, topic) group_left () poa_topic_info{{role="alerts"}})', "in"),
                   q(f"sum(rate(poa_alerts_total{RATE}))", "out")), unit="ops"),
            Panel("Alerts out by decision and reason", "Decisions committed per second.",
                  (q(f"sum by (decision, reason) (rate(poa_alerts_total{RATE}))", "{{decision}} {{reason}}"),),
                  unit="ops"),
            Panel("Share of AD1s suppressed", "A jump or a fall: see the runbook, PoaSuppressedShareShift.",
                  (SUPPRESSED_SHARE,), unit="percentunit"),
            Panel("AD1s in windows: suppressed and released on evidence", "AD1s per second that a firmware "
                  "activation window covers: suppressed, and forwarded because of evidence of a genuine outage "
                  "(rule 9, outage_evidence). Released AD1s rising with no storm or outage known: check the "
                  "8F35/8F36 alerts and the postcodes in the inventory.",
                  (q(f'sum(rate(poa_alerts_total{{alert_code="AD1", decision="suppressed"}}{RATE}))', "suppressed"),
                   q(f"sum(rate(poa_alerts_total{{{RELEASED_ON_EVIDENCE}}}{RATE}))", "released on outage evidence")),
                  unit="ops"),
            Panel("Dead letters by input topic", "Input records dead-lettered per second.",
                  (q(f"sum by (topic) (rate(poa_dead_letters_total{RATE}))", "{{topic}}"),), unit="ops"),
            Panel("Held alerts", "Alerts held for their activation inputs (trouble when it lasts), AD1s held "
                  f"for outage evidence (expected during campaigns: each waits {EVIDENCE_WAIT}), and AD1s "
                  "forwarded per second at the end of their hold (hold_expired), by what they waited for "
                  "(runbook: PoaHeldAlertsExpiring for inputs, PoaEvidenceHoldsExpiring for evidence).",
                  (q("sum by (reason) (poa_held_alerts_by_reason)", "held for {{reason}}"),
                   q(f"sum by (held_for) (rate(poa_holds_expired_total{RATE}))", "expired for {{held_for}} /s"))),
            Panel("Decision latency", "From reading an alert to committing its decision: alerts decided as "
                  "read or after a wait for their activation inputs, and apart, AD1s in windows that waited on "
                  f"the held topic for outage evidence, from their first read (each waits {EVIDENCE_WAIT}).",
                  tuple(q(f"histogram_quantile({p}, sum by (le) (rate(poa_decision_latency_seconds_bucket"
                          f'{{waited_for_evidence="{waited}"}}{RATE})))', f"p{round(p * 100)}{legend}")
                        for waited, legend in (("false", ""), ("true", " waited for evidence"))
                        for p in (0.5, 0.99)), unit="s"),
        ),
    ),
    (
        "Lag",
        (
            Panel("Consumer lag (records)", "Records not yet read, by input topic.",
                  (q("sum by (topic) (poa_consumer_lag)", "{{topic}}"),)),
            Panel("Event-time lag (seconds)", "How far the decided event time trails the newest alert read, by "
                  "worker and alert partition. DNOs group outages in 3-minute windows.",
                  (q("max by (instance, partition) (poa_event_time_lag_seconds)",
                     "{{instance}} p{{partition}}"),), unit="s"),
            Panel("Evidence reader lag (records)", "Alert records each worker's evidence reader (rule 9: every "
                  "worker reads every alert partition) has not read yet, by alert partition. AD1s in windows "
                  "wait until every partition is read past t + A; a reader that stays behind makes them expire "
                  "(runbook: PoaEvidenceReaderBehind, PoaEvidenceHoldsExpiring).",
                  (q("max by (instance, partition) (poa_evidence_lag_records)", "{{instance}} p{{partition}}"),)),
            Panel("Evidence reader clock lag (seconds)", "How far each evidence reader's read clock (event time) "
                  "trails the wall clock, by alert partition. An idle partition trails too: it matters where "
                  "records are still unread (the panel beside).",
                  (q("max by (instance, partition) (poa_evidence_clock_lag_seconds)",
                     "{{instance}} p{{partition}}"),), unit="s"),
        ),
    ),
    (
        "State",
        (
            Panel("Activation windows", "Windows pending and active at the latest alert event time.",
                  (q("max by (state) (poa_activation_windows)", "{{state}}"),)),
            Panel("Tracked devices", "Devices on the tracked list, as each worker sees it.",
                  (q("max by (instance) (poa_tracked_devices)", "{{instance}}"),)),
            Panel("State size", "Local RocksDB state per worker.",
                  (q("max by (instance) (poa_state_bytes)", "{{instance}} bytes"),), unit="bytes"),
            Panel("State keys", "Keys in the local state store per worker (RocksDB estimate).",
                  (q("max by (instance) (poa_state_keys)", "{{instance}}"),)),
            Panel("Housekeeping", "Sweep passes and expired activation versions purged, per second.",
                  (q(f"sum by (instance) (rate(poa_sweeps_total{RATE}))", "{{instance}} sweeps"),
                   q(f"sum by (instance) (rate(poa_purged_versions_total{RATE}))", "{{instance}} purged")),
                  unit="ops"),
        ),
    ),
    (
        "Modes and dependencies",
        (
            Panel("Mode per worker", "The mode each worker applies to the newest alerts (contract 8): one line per "
                  "worker, named by its mode. Shadow or pass-through for long: see the runbook, Operator modes.",
                  (q("max by (instance, mode) (poa_mode) == 1", "{{instance}} {{mode}}"),)),
            Panel("Alerts forwarded by mode and dependency", "AD1s forwarded per second because of the mode "
                  "(shadow: the rules would have suppressed them; pass_through) or after waiting for the schema "
                  "registry (registry_unavailable).",
                  (q(f"sum by (reason) (rate(poa_alerts_total{{decision=\"forwarded\", "
                     f"reason=~\"{FORWARDED_UNFILTERED}\"}}{RATE}))", "{{reason}}"),), unit="ops"),
            Panel("Dependency waits", "Input partitions stopped at a record that waits for a dependency that is "
                  "down (schema registry), by input.",
                  (q("sum by (dependency, input) (poa_dependency_waits)", "{{dependency}} {{input}}"),)),
            Panel("Cluster findings", "Findings of each worker's last check of the Kafka topics' settings "
                  "(docs/cluster-requirements.md): problems to fix, and information.",
                  (q("max by (instance, severity) (poa_cluster_findings)", "{{instance}} {{severity}}"),)),
        ),
    ),
    (
        "Kafka and workers",
        (
            Panel("Transactions", "Kafka transactions per second, committed and aborted.",
                  (q(f"sum by (result) (rate(poa_transactions_total{RATE}))", "{{result}}"),), unit="ops"),
            Panel("Rebalances", "Alert partitions assigned, revoked and lost, per second.",
                  (q(f"sum by (event) (rate(poa_rebalances_total{RATE}))", "{{event}}"),), unit="ops"),
            Panel("Readiness per worker", "1 while GET /ready answers 200.",
                  (q("max by (instance) (poa_ready)", "{{instance}}"),)),
            Panel("Records read by input topic", "Input records read per second.",
                  (q(f"sum by (topic) (rate(poa_input_records_total{RATE}))", "{{topic}}"),), unit="ops"),
        ),
    ),
)


def _panel(panel: Panel, panel_id: int) -> stat.Panel | timeseries.Panel:
    builder: stat.Panel | timeseries.Panel
    if panel.kind == "stat":
        builder = stat.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
    else:
        builder = timeseries.Panel().legend(
            common.VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
        )
    builder.id(panel_id).title(panel.title).description(panel.description).datasource(DATASOURCE)
    builder.unit(panel.unit).span(panel.width).height(4 if panel.kind == "stat" else 8)
    builder.targets([
        _target(prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + n)), query)
        .datasource(DATASOURCE)
        for n, query in enumerate(panel.queries)
    ])
    return builder


def _target(target: prometheus.Dataquery, query: Query) -> prometheus.Dataquery:
    return target.instant() if query.instant else target.range()


def build() -> dict[str, Any]:
    """The dashboard as the JSON object Grafana loads."""
    ids = count(1)
    board = (
        dashboard.Dashboard("poa-filter")
        .uid(UID)
        .description("The power-outage-alert filter: decisions, lag, state and workers. Runbook: docs/runbook.md")
        .tags(["poa-filter"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for title, panels in ROWS:
        board.with_row(dashboard.Row(title).id(next(ids)))
        for panel in panels:
            board.with_panel(_panel(panel, next(ids)))
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return built


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT.name} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
