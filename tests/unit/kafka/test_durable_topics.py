"""The configuration the filter creates its own topics with: as durable as the alert topic (and the released
topic as the audit topic too), contract 6."""

from pipeline.core.event_time import DAY_MS
from pipeline.kafka.admin import ModelTopic, durable_topic

ALERTS = ModelTopic("dsp.alerts", 3, {"retention.ms": str(7 * DAY_MS), "min.insync.replicas": "2"})


def test_a_topic_made_like_the_alert_topic_has_its_replicas_its_retention_and_is_not_compacted() -> None:
    factor, config = durable_topic([ALERTS], None)
    assert factor == 3
    assert config == {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * DAY_MS),
        "retention.bytes": "-1",
        "min.insync.replicas": "2",
    }


def test_the_clusters_default_replication_factor_wins_when_higher_never_when_lower() -> None:
    assert durable_topic([ALERTS], 4)[0] == 4
    assert durable_topic([ALERTS], 1)[0] == 3


def test_the_released_topic_keeps_its_records_as_long_as_the_longest_kept_model() -> None:
    audit = ModelTopic("dsp.alerts.suppressed", 3, {"retention.ms": str(400 * DAY_MS)})
    assert durable_topic([ALERTS, audit], None)[1]["retention.ms"] == str(400 * DAY_MS)
    forever = ModelTopic("dsp.alerts.suppressed", 3, {"retention.ms": "-1"})
    assert durable_topic([ALERTS, forever], None)[1]["retention.ms"] == "-1"


def test_a_retention_that_could_not_be_read_keeps_the_records_for_ever() -> None:
    unread = ModelTopic("dsp.alerts", 3, {})
    factor, config = durable_topic([unread], None)
    assert (factor, config["retention.ms"]) == (3, "-1")
    assert "min.insync.replicas" not in config  # left to the broker


def test_min_insync_replicas_never_above_the_replication_factor() -> None:
    squeezed = ModelTopic("dsp.alerts", 1, {"retention.ms": "1000", "min.insync.replicas": "2"})
    assert durable_topic([squeezed], None)[1]["min.insync.replicas"] == "1"


def test_without_a_model_the_broker_default_replication_and_no_deletion_by_age() -> None:
    factor, config = durable_topic([], None)
    assert (factor, config["retention.ms"], config["cleanup.policy"]) == (-1, "-1", "delete")
