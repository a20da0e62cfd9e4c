"""The cluster checks' rules (pure): retention a rebuild needs, compaction of the tables, replication and
min.insync.replicas as documented (information only on a single broker), no unclean leader election."""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata

from pipeline.core.event_time import DAY_MS
from pipeline.kafka.cluster_checks import (
    DescribedTopic,
    DurableAs,
    Finding,
    Role,
    Severity,
    broker_count,
    check_cluster,
    counts_by_severity,
    durable_as,
    rebuild_retention_ms,
    summary,
    topic_roles,
)
from pipeline.kafka.cluster_checks import assess as assess_topics
from pipeline.settings import Settings

RETENTION = 31 * DAY_MS
# What the documentation asks, so that each test changes one thing only.
SOUND = {
    "retention.ms": str(RETENTION),
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
}
SOUND_TABLE = {**SOUND, "cleanup.policy": "compact", "retention.ms": str(7 * DAY_MS)}


def topic(role: Role, name: str = "t", replicas: Sequence[int] = (3, 3, 3), **configs: str) -> DescribedTopic:
    base = SOUND_TABLE if role is Role.TABLE else SOUND
    return DescribedTopic(name, role, {**base, **{k.replace("_", "."): v for k, v in configs.items()}}, replicas)


def assess(t: DescribedTopic, brokers: int = 3) -> list[Finding]:
    return assess_topics([t], brokers, RETENTION)


def about(findings: list[Finding], config: str) -> list[Finding]:
    return [f for f in findings if f.config == config]


@pytest.mark.parametrize("role", list(Role))
def test_a_topic_as_documented_has_no_finding(role: Role) -> None:
    assert assess(topic(role)) == []


# --- retention of the service-request and outcome topics ----------------------------------------------------


def test_rebuild_retention_is_the_horizon_plus_the_window_in_whole_days() -> None:
    assert rebuild_retention_ms(Settings()) == 31 * DAY_MS == 2_678_400_000
    assert rebuild_retention_ms(replace(Settings(), max_future_days=7, window_minutes=60)) == 8 * DAY_MS
    assert rebuild_retention_ms(replace(Settings(), window_minutes=1440)) == 31 * DAY_MS


@pytest.mark.parametrize("retention_ms", [RETENTION, RETENTION + 1, 365 * DAY_MS, -1])
def test_retention_of_31_days_or_more_or_unlimited_is_enough(retention_ms: int) -> None:
    assert assess(topic(Role.REBUILD_INPUT, retention_ms=str(retention_ms))) == []


def test_retention_one_millisecond_short_of_31_days_is_a_problem_that_says_what_to_set() -> None:
    [f] = assess(topic(Role.REBUILD_INPUT, "dsp.service-requests", retention_ms=str(RETENTION - 1)))
    assert (f.severity, f.topic, f.config, f.found) == (
        Severity.PROBLEM, "dsp.service-requests", "retention.ms", "2678399999 (30 days 23:59:59.999)"
    )  # fmt: skip
    assert f.required == ">= 2678400000 (31 days) or -1"
    assert f.line.startswith("dsp.service-requests: retention.ms=2678399999 (30 days 23:59:59.999), needs >= ")
    assert "rebuilds the activations" in f.why
    assert f.line.endswith("set retention.ms=2678400000 (or -1)")


def test_the_broker_default_of_seven_days_is_a_problem() -> None:
    [f] = assess(topic(Role.REBUILD_INPUT, retention_ms=str(7 * DAY_MS)))
    assert f.found == "604800000 (7 days)"


@pytest.mark.parametrize(
    ("retention_ms", "shown"),
    [(DAY_MS, "86400000 (1 day)"), (DAY_MS + 3_723_004, "90123004 (1 day 1:02:03.004)"), (0, "0 (0 days)")],
)
def test_a_short_retention_is_shown_in_days_and_time_never_rounded(retention_ms: int, shown: str) -> None:
    [f] = assess(topic(Role.REBUILD_INPUT, retention_ms=str(retention_ms)))
    assert f.found == shown


def test_a_size_limit_is_a_problem_whatever_the_time_retention() -> None:
    [f] = assess(topic(Role.REBUILD_INPUT, retention_ms="-1", retention_bytes="1073741824"))
    assert (f.severity, f.config, f.found, f.required) == (
        Severity.PROBLEM, "retention.bytes", "1073741824", "-1 (no size limit)"
    )  # fmt: skip
    assert "set retention.bytes=-1" in f.line


def test_time_and_size_limits_are_two_findings() -> None:
    findings = assess(topic(Role.REBUILD_INPUT, retention_ms=str(DAY_MS), retention_bytes="1000"))
    assert [f.config for f in findings] == ["retention.ms", "retention.bytes"]


def test_the_outcome_topic_is_held_to_the_same_retention() -> None:
    settings = Settings()
    roles = topic_roles(settings)
    assert roles[settings.topics.activation_outcomes] is roles[settings.topics.service_requests] is Role.REBUILD_INPUT


@pytest.mark.parametrize("role", [Role.TABLE, Role.STREAM, Role.OWN, Role.INTERNAL])
def test_retention_is_only_asked_of_the_rebuild_inputs(role: Role) -> None:
    assert about(assess(topic(role, retention_ms=str(DAY_MS), retention_bytes="1000")), "retention.ms") == []
    assert about(assess(topic(role, retention_ms=str(DAY_MS), retention_bytes="1000")), "retention.bytes") == []


def test_a_value_not_described_or_not_a_number_is_not_judged() -> None:
    described = DescribedTopic("t", Role.REBUILD_INPUT, {"retention.ms": None, "retention.bytes": "lots"}, [3])
    assert assess(described) == []


# --- cleanup.policy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["compact", "compact,delete", "delete,compact", "delete, compact"])
@pytest.mark.parametrize("role", [Role.REBUILD_INPUT, Role.STREAM, Role.OWN])
def test_an_event_stream_compacted_is_a_problem(role: Role, policy: str) -> None:
    [f] = about(assess(topic(role, "dsp.activation-outcomes", cleanup_policy=policy)), "cleanup.policy")
    assert (f.severity, f.topic, f.required) == (Severity.PROBLEM, "dsp.activation-outcomes", "delete")
    assert f.found == ",".join(p.strip() for p in policy.split(","))
    assert "event stream" in f.why and f.line.endswith("set cleanup.policy=delete")


def test_a_table_deleted_by_age_is_a_problem() -> None:
    [f] = assess(topic(Role.TABLE, "dsp.inventory", cleanup_policy="delete"))
    assert (f.severity, f.topic, f.config, f.found, f.required) == (
        Severity.PROBLEM, "dsp.inventory", "cleanup.policy", "delete", "compact"
    )  # fmt: skip
    assert "unchanged for longer than retention.ms" in f.why
    assert f.line == f"dsp.inventory: cleanup.policy=delete, needs compact: {f.why}; set cleanup.policy=compact"


def test_a_table_deleted_by_age_is_a_problem_even_with_unlimited_retention() -> None:
    assert about(assess(topic(Role.TABLE, cleanup_policy="delete", retention_ms="-1")), "cleanup.policy")


@pytest.mark.parametrize("policy", ["compact,delete", "delete,compact"])
def test_a_table_compacted_and_deleted_with_a_finite_retention_is_a_problem(policy: str) -> None:
    [f] = assess(topic(Role.TABLE, "dsp.tracked-devices", cleanup_policy=policy, retention_ms=str(RETENTION)))
    assert (f.severity, f.config) == (Severity.PROBLEM, "cleanup.policy")
    assert f.found == f"{policy} with retention.ms=2678400000"
    assert "only record of a device unchanged for that long" in f.why


def test_a_table_compacted_and_deleted_by_size_is_a_problem() -> None:
    [f] = assess(topic(Role.TABLE, cleanup_policy="compact,delete", retention_ms="-1", retention_bytes="10"))
    assert f.found == "compact,delete with retention.bytes=10"


def test_a_table_compacted_and_deleted_without_any_limit_is_fine() -> None:
    assert assess(topic(Role.TABLE, cleanup_policy="compact,delete", retention_ms="-1", retention_bytes="-1")) == []


def test_a_compacted_table_with_a_finite_retention_is_fine_as_compaction_ignores_it() -> None:
    assert assess(topic(Role.TABLE, cleanup_policy="compact", retention_ms="1000", retention_bytes="10")) == []


def test_the_control_topic_and_both_reference_topics_are_tables() -> None:
    settings = Settings()
    t, roles = settings.topics, topic_roles(settings)
    assert {roles[t.inventory], roles[t.tracked_devices], roles[t.control]} == {Role.TABLE}
    assert roles[t.alerts] is Role.STREAM
    assert {roles[name] for name in (*t.outputs, t.shadow, settings.held_topic, t.released)} == {Role.OWN}
    assert {roles["__transaction_state"], roles["__consumer_offsets"]} == {Role.INTERNAL}


def test_internal_topics_are_not_held_to_a_cleanup_policy() -> None:
    assert assess(topic(Role.INTERNAL, cleanup_policy="compact")) == []


# --- the filter's own topics: as durable as the alert topic (contract 6) --------------------------------------

HELD, ALERTS, AUDIT, RELEASED = "poa-filter.held-ad1s", "dsp.alerts", "dsp.alerts.suppressed", "dsp.alerts.released"
RULES = {
    HELD: DurableAs((ALERTS,), "it holds the only copy"),
    AUDIT: DurableAs((ALERTS,), "the audit"),
    RELEASED: DurableAs((ALERTS, AUDIT), "at most once"),
}


def assess_own(*topics: DescribedTopic, brokers: int = 3) -> list[Finding]:
    return assess_topics(topics, brokers, RETENTION, RULES)


def test_every_topic_the_filter_writes_is_held_to_the_alert_topic_and_the_released_one_to_the_audit_too() -> None:
    settings = Settings()
    t = settings.topics
    rules = durable_as(settings)
    assert set(rules) == {*t.outputs, t.shadow, settings.held_topic, t.released}
    assert {rules[name].models for name in rules if name != t.released} == {(t.alerts,)}
    assert rules[t.released].models == (t.alerts, t.suppressed)
    assert t.control not in rules


def test_own_topics_as_durable_as_the_alert_topic_have_no_finding() -> None:
    alerts = topic(Role.STREAM, ALERTS, retention_ms=str(7 * DAY_MS))
    held = topic(Role.OWN, HELD, retention_ms=str(7 * DAY_MS))
    forever = topic(Role.OWN, RELEASED, retention_ms="-1")
    assert assess_own(alerts, held, forever) == []


def test_a_held_topic_compacted_with_a_short_retention_and_fewer_replicas_is_named_with_what_to_set() -> None:
    alerts = topic(Role.STREAM, ALERTS, retention_ms=str(7 * DAY_MS))
    held = topic(Role.OWN, HELD, replicas=[2, 2], retention_ms=str(DAY_MS), cleanup_policy="compact")

    found = {(f.topic, f.config): f for f in assess_own(alerts, held)}

    assert set(found) == {(HELD, "cleanup.policy"), (HELD, "retention.ms"), (HELD, "replication.factor")}
    assert all(f.severity is Severity.PROBLEM for f in found.values())
    retention = found[HELD, "retention.ms"]
    assert (retention.found, retention.required) == ("86400000 (1 day)", f">= {7 * DAY_MS} (7 days) (as {ALERTS})")
    assert retention.line.endswith(f"it holds the only copy; set retention.ms={7 * DAY_MS}")
    replication = [f.required for f in assess_own(alerts, held) if f.config == "replication.factor"]
    assert replication == [f">= 3 (as {ALERTS})"]  # once, though the documented 3 is short as well


def test_fewer_replicas_than_the_alert_topic_is_a_problem_where_the_documented_three_is_information() -> None:
    """Below the documented 3 is only information where the brokers seem too few, but never fewer copies than
    the alerts have."""
    alerts = topic(Role.STREAM, ALERTS, replicas=[2, 2], min_insync_replicas="1")
    held = topic(Role.OWN, HELD, replicas=[1, 1], min_insync_replicas="1")
    [f] = [f for f in assess_own(alerts, held, brokers=1) if f.severity is Severity.PROBLEM]
    assert (f.topic, f.config, f.found, f.required) == (HELD, "replication.factor", "1", f">= 2 (as {ALERTS})")


def test_an_alert_topic_kept_for_ever_asks_the_same_of_the_own_topics() -> None:
    alerts = topic(Role.STREAM, ALERTS, retention_ms="-1")
    [f] = assess_own(alerts, topic(Role.OWN, AUDIT, retention_ms=str(365 * DAY_MS)))
    assert (f.topic, f.config, f.required) == (AUDIT, "retention.ms", f"-1 (as {ALERTS})")
    assert f.line.endswith("set retention.ms=-1")


def test_the_released_topic_keeps_its_records_at_least_as_long_as_the_audit() -> None:
    alerts = topic(Role.STREAM, ALERTS, retention_ms=str(7 * DAY_MS))
    audit = topic(Role.OWN, AUDIT, retention_ms=str(90 * DAY_MS))
    released = topic(Role.OWN, RELEASED, retention_ms=str(7 * DAY_MS))  # the broker's default: too short

    [f] = assess_own(alerts, audit, released)

    assert (f.topic, f.config, f.required) == (RELEASED, "retention.ms", f">= {90 * DAY_MS} (90 days) (as {AUDIT})")


def test_a_size_limit_below_the_alert_topics_is_a_problem() -> None:
    alerts = topic(Role.STREAM, ALERTS, retention_bytes="-1")
    [f] = assess_own(alerts, topic(Role.OWN, HELD, retention_bytes="1048576"))
    assert (f.config, f.found, f.required) == ("retention.bytes", "1048576", f"-1 (as {ALERTS})")
    limited = topic(Role.STREAM, ALERTS, retention_bytes="10")
    assert assess_own(limited, topic(Role.OWN, HELD, retention_bytes="10")) == []


def test_a_model_not_described_asks_nothing_of_the_own_topic() -> None:
    assert assess_own(topic(Role.OWN, HELD, retention_ms="1", replicas=[3])) == []


# --- replication -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_replication_factor_2_on_three_brokers_is_a_problem(role: Role) -> None:
    [f] = assess(topic(role, "dno.alerts", replicas=[2, 2, 2]), brokers=3)
    assert (f.severity, f.topic, f.config, f.found, f.required) == (
        Severity.PROBLEM, "dno.alerts", "replication.factor", "2", ">= 3"
    )  # fmt: skip
    assert "reassign" in f.line


def test_the_weakest_partition_gives_the_replication_factor() -> None:
    [f] = about(assess(topic(Role.STREAM, replicas=[3, 1, 3])), "replication.factor")
    assert f.found == "1"


def test_min_insync_replicas_1_on_three_brokers_is_a_problem() -> None:
    [f] = assess(topic(Role.INTERNAL, "__transaction_state", min_insync_replicas="1"), brokers=3)
    assert (f.severity, f.topic, f.config, f.found, f.required) == (
        Severity.PROBLEM, "__transaction_state", "min.insync.replicas", "1", ">= 2"
    )  # fmt: skip
    assert f.line.endswith("set min.insync.replicas=2")


def test_two_brokers_are_a_multi_broker_cluster() -> None:
    assert {f.severity for f in assess(topic(Role.STREAM, replicas=[2]), brokers=2)} == {Severity.PROBLEM}


def test_on_a_single_broker_replication_and_min_insync_are_information_only() -> None:
    findings = assess(topic(Role.REBUILD_INPUT, replicas=[1, 1], min_insync_replicas="1"), brokers=1)
    assert [(f.severity, f.config, f.found) for f in findings] == [
        (Severity.INFO, "replication.factor", "1"),
        (Severity.INFO, "min.insync.replicas", "1"),
    ]
    assert all("single-broker" in f.why for f in findings)


def test_on_three_brokers_the_same_topic_has_two_problems() -> None:
    findings = assess(topic(Role.REBUILD_INPUT, replicas=[1, 1], min_insync_replicas="1"), brokers=3)
    assert {(f.severity, f.config) for f in findings} == {
        (Severity.PROBLEM, "replication.factor"),
        (Severity.PROBLEM, "min.insync.replicas"),
    }
    assert not any("single-broker" in f.why for f in findings)


def metadata(live: list[int], replicas: list[list[int]]) -> ClusterMetadata:
    """Cluster metadata as librdkafka hands it over: live brokers, and one topic with these partitions."""
    m, t = ClusterMetadata(), TopicMetadata()
    for broker_id in live:
        m.brokers[broker_id] = BrokerMetadata()
    for i, ids in enumerate(replicas):
        t.partitions[i] = PartitionMetadata()
        t.partitions[i].replicas = ids
    m.topics["t"] = t
    return m


def test_a_single_broker_is_one_broker() -> None:
    assert broker_count(metadata([1], [[1], [1]])) == 1


def test_brokers_down_still_count_by_the_replicas_they_hold() -> None:
    assert broker_count(metadata([1, 2, 3], [[1, 2, 3]])) == 3
    assert broker_count(metadata([2], [[1, 2, 3], [2, 3, 1]])) == 3
    assert broker_count(metadata([1, 2, 3], [[1]])) == 3


@pytest.mark.parametrize("brokers", [1, 3])
def test_min_insync_above_the_replication_factor_refuses_writes_on_any_cluster(brokers: int) -> None:
    found = about(assess(topic(Role.STREAM, replicas=[1], min_insync_replicas="2"), brokers), "min.insync.replicas")
    [f] = found
    assert (f.severity, f.found, f.required) == (Severity.PROBLEM, "2", "<= the replication factor (1)")
    assert "NOT_ENOUGH_REPLICAS" in f.why and f.line.endswith("set min.insync.replicas=1 or add replicas")


def test_replicas_unknown_checks_min_insync_only() -> None:
    findings = assess(topic(Role.STREAM, replicas=[], min_insync_replicas="1"), brokers=3)
    assert [f.config for f in findings] == ["min.insync.replicas"]


@pytest.mark.parametrize("brokers", [1, 3])
@pytest.mark.parametrize("value", ["true", "TRUE", " true"])
def test_unclean_leader_election_is_a_problem_on_any_cluster(brokers: int, value: str) -> None:
    [f] = assess(topic(Role.STREAM, "dsp.alerts", unclean_leader_election_enable=value), brokers)
    assert (f.severity, f.topic, f.config, f.found, f.required) == (
        Severity.PROBLEM, "dsp.alerts", "unclean.leader.election.enable", "true", "false"
    )  # fmt: skip
    assert f.line.endswith("set unclean.leader.election.enable=false")


def test_findings_name_their_topic_among_several() -> None:
    findings = assess_topics(
        [
            topic(Role.REBUILD_INPUT, "requests", retention_ms=str(DAY_MS)),
            topic(Role.TABLE, "inventory", cleanup_policy="delete"),
            topic(Role.STREAM, "alerts"),
        ],
        3,
        RETENTION,
    )
    assert [(f.topic, f.config) for f in findings] == [("requests", "retention.ms"), ("inventory", "cleanup.policy")]


# --- reporting ------------------------------------------------------------------------------------------------


def _findings(**by_topic: Mapping[str, str]) -> list[Finding]:
    single = [topic(Role.REBUILD_INPUT, name, [1], min_insync_replicas="1", **c) for name, c in by_topic.items()]
    return assess_topics(single, 1, RETENTION)


def test_summary_counts_and_lists_the_problems_only() -> None:
    findings = _findings(a={"retention_ms": str(DAY_MS)}, b={})
    text = summary(findings)
    problem = next(f for f in findings if f.severity is Severity.PROBLEM)
    assert text.splitlines() == ["cluster check: 1 problem(s), 4 info (see the log)", f"problem: {problem.line}"]
    assert counts_by_severity(findings) == {"problem": 1, "info": 4}


def test_without_a_problem_the_summary_is_empty_whatever_the_information() -> None:
    findings = _findings(a={})
    assert counts_by_severity(findings) == {"problem": 0, "info": 2}
    assert summary(findings) == summary([]) == ""
    assert counts_by_severity([]) == {"problem": 0, "info": 0}


def test_a_broker_that_does_not_answer_is_a_finding_not_an_exception() -> None:
    settings = replace(Settings(), bootstrap_servers="127.0.0.1:1")
    [f] = check_cluster(settings, timeout_s=1)
    assert f.severity is Severity.INFO
    assert f.line.startswith("cannot read the cluster metadata: ") and f.line.endswith("(checked again later)")
    assert f.found in ("_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN")



def test_a_client_configuration_that_cannot_be_read_is_a_finding_not_an_exception(tmp_path: Path) -> None:
    settings = replace(Settings(), client_config_file=str(tmp_path / "missing.properties"))
    [f] = check_cluster(settings)
    assert f.line.startswith("cannot read the cluster metadata: ") and "missing.properties" in f.line


# --- timestamps of the event topics (contract 9: a DUIS record's received_at is its Kafka timestamp) ---------


@pytest.mark.parametrize("role", [Role.REBUILD_INPUT, Role.STREAM])
def test_an_event_topic_that_stamps_append_times_is_a_problem(role: Role) -> None:
    (finding,) = about(assess(topic(role, message_timestamp_type="LogAppendTime")), "message.timestamp.type")
    assert finding.severity is Severity.PROBLEM and finding.required == "CreateTime"
    assert "received_at of a DUIS record" in finding.line and "set message.timestamp.type=CreateTime" in finding.line
    assert about(assess(topic(role, message_timestamp_type="CreateTime")), "message.timestamp.type") == []


@pytest.mark.parametrize("role", [Role.TABLE, Role.OWN])
def test_append_times_do_not_matter_on_tables_and_the_filters_own_topics(role: Role) -> None:
    assert about(assess(topic(role, message_timestamp_type="LogAppendTime")), "message.timestamp.type") == []
