"""The cluster checks on the real broker: topics created with bad configurations are named, topic and
configuration, as the cluster describes them; a single broker makes replication information only. On the
project's secured broker (its own, `secured` group), a missing DescribeConfigs is named topic by topic."""

import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from pipeline.core.event_time import DAY_MS
from pipeline.kafka import clients
from pipeline.kafka.admin import ensure_output_topics
from pipeline.kafka.cluster_checks import INTERNAL_TOPICS, ClusterWatch, Finding, Severity, check_cluster
from pipeline.kafka.topics import create_topics, wait_for_topics
from pipeline.settings import Settings, Topics
from tests.integration.secured.secure_broker import (
    SecureBroker,
    fresh_topics,
    secure_kafka_fixture,  # noqa: F401 - a fixture
)
from tests.integration.secured.secure_broker import create_topics as create_as_admin
from tests.integration.worker_harness import WorkerProcess, wait_until


def problems(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    return {(f.topic, f.config): f for f in findings if f.severity is Severity.PROBLEM}


def badly_configured(settings: Settings) -> Settings:
    """Settings naming fresh topics, each created with one configuration the filter cannot live with."""
    tag = uuid.uuid4().hex[:10]
    t = Topics(**{name: f"c{tag}.{default}" for name, default in vars(Topics()).items()})
    configs = {
        t.service_requests: {"retention.ms": str(31 * DAY_MS - 1)},
        t.activation_outcomes: {"retention.ms": "-1", "retention.bytes": "1073741824", "cleanup.policy": "compact"},
        t.alerts: {"unclean.leader.election.enable": "true"},
        t.inventory: {"cleanup.policy": "delete"},
        t.tracked_devices: {"cleanup.policy": "compact,delete", "retention.ms": str(31 * DAY_MS)},
        t.dno_alerts: {"min.insync.replicas": "2"},  # above the single broker's replication factor of 1
        t.suppressed: {"retention.ms": str(DAY_MS)},  # the audit, kept a day where the alerts are kept for ever
        t.dead_letter: {},
        t.control: {"cleanup.policy": "compact"},
        t.shadow: {},
        t.released: {"retention.ms": str(DAY_MS)},
        f"c{tag}.held-ad1s": {"cleanup.policy": "compact", "retention.ms": "60000"},  # the only copy of held AD1s
    }
    admin = clients.admin_client(settings)
    create_topics(admin, {name: 2 for name in configs}, configs)
    wait_for_topics(admin, configs, timeout_s=30)  # in the metadata of the broker asked, not just created
    return replace(settings, topics=t, app_id=f"c{tag}")


@pytest.mark.broker
def test_bad_configurations_are_named_by_topic_and_configuration(settings: Settings) -> None:
    bad = badly_configured(settings)
    t = bad.topics

    findings = check_cluster(bad)

    found = problems(findings)
    assert set(found) == {
        (t.service_requests, "retention.ms"),
        (t.activation_outcomes, "retention.bytes"),
        (t.activation_outcomes, "cleanup.policy"),
        (t.alerts, "unclean.leader.election.enable"),
        (t.inventory, "cleanup.policy"),
        (t.tracked_devices, "cleanup.policy"),
        (t.dno_alerts, "min.insync.replicas"),
        (t.suppressed, "retention.ms"),
        (t.released, "retention.ms"),
        (bad.held_topic, "cleanup.policy"),
        (bad.held_topic, "retention.ms"),
    }
    assert found[(t.suppressed, "retention.ms")].required == f"-1 (as {t.alerts})"
    assert found[(bad.held_topic, "retention.ms")].line.startswith(
        f"{bad.held_topic}: retention.ms=60000 (0 days 0:01:00.000), needs -1 (as {t.alerts}): it holds the only copy"
    )
    assert found[(bad.held_topic, "cleanup.policy")].required == "delete"
    assert found[(t.service_requests, "retention.ms")].found == "2678399999 (30 days 23:59:59.999)"
    assert found[(t.activation_outcomes, "retention.bytes")].found == "1073741824"
    assert found[(t.activation_outcomes, "cleanup.policy")].found == "compact"
    assert found[(t.inventory, "cleanup.policy")].found == "delete"
    assert found[(t.tracked_devices, "cleanup.policy")].found == "compact,delete with retention.ms=2678400000"
    assert found[(t.dno_alerts, "min.insync.replicas")].required == "<= the replication factor (1)"
    assert found[(t.alerts, "unclean.leader.election.enable")].line.startswith(
        f"{t.alerts}: unclean.leader.election.enable=true, needs false: "
    )


@pytest.mark.broker
def test_on_a_single_broker_replication_is_information_for_every_topic_the_filter_relies_on(
    settings: Settings,
) -> None:
    bad = badly_configured(settings)

    findings = check_cluster(bad)

    info = {(f.topic, f.config) for f in findings if f.severity is Severity.INFO}
    relied_on = [*vars(bad.topics).values(), bad.held_topic, "__consumer_offsets"]
    assert {(name, "replication.factor") for name in relied_on} <= info
    assert {topic for topic, config in info if config == "min.insync.replicas"} >= {
        bad.topics.service_requests, bad.topics.inventory, "__consumer_offsets"
    }


@pytest.mark.broker
def test_the_input_topics_as_the_fixture_creates_them_have_no_problem(settings: Settings) -> None:
    """The reference topics compacted, the others with the project broker's defaults (kept for ever); the
    outputs and the control topic do not exist yet and are skipped."""
    t = settings.topics
    wait_for_topics(clients.admin_client(settings), [*t.activation_inputs, *t.reference_inputs, t.alerts], 30)

    findings = check_cluster(settings)

    assert problems(findings) == {}
    assert {(f.topic, f.config) for f in findings if f.topic not in INTERNAL_TOPICS} == {
        (name, config)
        for name in (*t.activation_inputs, *t.reference_inputs, t.alerts)
        for config in ("replication.factor", "min.insync.replicas")
    }


@pytest.mark.broker
def test_the_watch_logs_each_problem_once_and_reports_every_pass(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    bad = badly_configured(settings)
    reports: list[list[Finding]] = []
    watch = ClusterWatch(bad, reports.append)

    with caplog.at_level(logging.DEBUG, logger="pipeline.kafka.cluster_checks"):
        watch.check_once()
        watch.check_once()

    assert len(reports) == 2 and reports[0] == reports[1]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(warned) == sorted(f"cluster: {f.line}" for f in reports[0] if f.severity is Severity.PROBLEM)
    assert len(warned) == 11  # the eleven problems, once each
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "replication.factor" in r.getMessage())


@pytest.mark.broker
def test_the_watch_runs_on_its_own_thread_until_stopped(settings: Settings) -> None:
    reported = threading.Event()
    watch = ClusterWatch(settings, lambda findings: reported.set(), interval_s=3600)

    watch.start()
    try:
        assert reported.wait(30), "the first pass runs at start"
    finally:
        watch.stop()


@pytest.mark.secured
def test_without_describe_configs_each_topic_is_named_with_the_permission_to_grant(
    secure_kafka: SecureBroker,
) -> None:
    """With only a worker's Read/Write and Describe ACLs; Kafka's internal topics, which the worker may not
    see, are skipped quietly. Once DescribeConfigs is granted, the configurations are checked."""
    admin = replace(secure_kafka.settings("admin"), topics=fresh_topics(uuid.uuid4().hex[:10]))
    t = admin.topics
    inputs = [*t.activation_inputs, t.alerts, *t.reference_inputs]
    create_as_admin(admin, {name: 1 for name in [*inputs, *t.outputs]}, compacted=t.reference_inputs)
    wait_for_topics(clients.admin_client(admin), [*inputs, *t.outputs], timeout_s=30)
    for operation, names in (("Read", inputs), ("Write", t.outputs)):
        secure_kafka.acls("--add", "--allow-principal", "User:worker", "--operation", operation,
                          "--operation", "Describe", *[a for n in names for a in ("--topic", n)])
    worker = replace(secure_kafka.settings("worker"), topics=t)
    everything = {*inputs, *t.outputs}

    def checked_once_acls_apply(expected: Callable[[list[Finding]], bool]) -> list[Finding]:
        """The findings once they show the ACLs just changed (the broker applies them a moment later)."""
        last: list[list[Finding]] = [[]]

        def applied() -> bool:
            last[0] = check_cluster(worker)
            return expected(last[0])

        wait_until(applied, 30, "the ACLs applied")
        return last[0]

    findings = checked_once_acls_apply(lambda found: {f.topic for f in found} == everything)

    assert sorted(f.line for f in findings) == sorted(
        f"cannot read the configuration of topic {name}: TOPIC_AUTHORIZATION_FAILED (grant DescribeConfigs)"
        for name in everything
    )
    assert {(f.severity, f.found) for f in findings} == {(Severity.PROBLEM, "TOPIC_AUTHORIZATION_FAILED")}

    secure_kafka.acls("--add", "--allow-principal", "User:worker", "--operation", "DescribeConfigs",
                      *[a for n in everything for a in ("--topic", n)])
    findings = checked_once_acls_apply(lambda found: not any(f.found.endswith("AUTHORIZATION_FAILED") for f in found))
    assert problems(findings) == {}
    assert {f.topic for f in findings} == everything  # replication, as information on one broker


@pytest.mark.broker
def test_the_topics_the_filter_creates_are_as_durable_as_the_alert_topic_and_pass_the_checks(
    settings: Settings,
) -> None:
    """With an alert topic kept 5 days and an audit topic the DSP created to keep 90: the worker's own topics
    are made with delete and 5 days, the released topic with 90, and the checks find no problem in them."""
    tag = uuid.uuid4().hex[:10]
    t = Topics(**{name: f"d{tag}.{default}" for name, default in vars(Topics()).items()})
    made = replace(settings, topics=t, app_id=f"d{tag}")
    admin = clients.admin_client(made)
    kept = {t.alerts: 5 * DAY_MS, t.suppressed: 90 * DAY_MS}
    create_topics(admin, {name: 2 for name in kept}, {name: {"retention.ms": str(ms)} for name, ms in kept.items()})
    wait_for_topics(admin, kept, timeout_s=30)
    own = [t.dno_alerts, t.dead_letter, t.shadow, made.held_topic]

    assert sorted(ensure_output_topics(admin, [*own, t.suppressed], 2, [t.alerts])) == sorted(own)
    assert ensure_output_topics(admin, [t.released], 2, [t.alerts, t.suppressed]) == [t.released]

    wait_for_topics(admin, [*own, t.released], timeout_s=30)
    configs = {name: described(admin, name) for name in [*own, t.released, t.suppressed]}
    assert {name: configs[name]["cleanup.policy"] for name in configs} == dict.fromkeys(configs, "delete")
    assert {name: configs[name]["retention.ms"] for name in own} == dict.fromkeys(own, str(5 * DAY_MS))
    assert configs[t.released]["retention.ms"] == str(90 * DAY_MS)
    assert configs[t.suppressed]["retention.ms"] == str(90 * DAY_MS)  # the DSP's, left as it was
    assert problems(check_cluster(made)) == {}


def described(admin: AdminClient, name: str) -> dict[str, str | None]:
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {key: entry.value for key, entry in entries.items()}


@pytest.mark.broker
def test_a_worker_makes_its_topics_like_the_alert_topic_and_names_an_audit_topic_made_badly(
    settings: Settings, tmp_path: Path
) -> None:
    """The DSP pre-created the audit topic compacted and kept a minute; the worker creates the others (the held
    topic among them) as its alert topic, kept 5 days, and says on /ready and in its metrics what is wrong."""
    t = settings.topics
    admin = clients.admin_client(settings)
    week = ConfigResource(ResourceType.TOPIC, t.alerts, incremental_configs=[
        ConfigEntry("retention.ms", str(5 * DAY_MS), incremental_operation=AlterConfigOpType.SET)])  # fmt: skip
    admin.incremental_alter_configs([week])[week].result(timeout=30)
    create_topics(admin, {t.suppressed: 3}, {t.suppressed: {"cleanup.policy": "compact", "retention.ms": "60000"}})
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        worker.wait_ready()
        configs = {name: described(admin, name) for name in (settings.held_topic, t.dno_alerts, t.shadow)}
        ready = ready_text(worker)
        findings = worker.metrics()
    finally:
        worker.stop()

    assert {(c["cleanup.policy"], c["retention.ms"]) for c in configs.values()} == {("delete", str(5 * DAY_MS))}
    assert f"problem: {t.suppressed}: cleanup.policy=compact, needs delete: " in ready
    assert f"problem: {t.suppressed}: retention.ms=60000 (0 days 0:01:00.000), needs >= {5 * DAY_MS}" in ready
    assert settings.held_topic not in ready  # made as it should be
    assert 'poa_cluster_findings{severity="problem"} 2.0' in findings


def ready_text(worker: WorkerProcess) -> str:
    """The /ready body, whether the status is 200 or 503."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())
