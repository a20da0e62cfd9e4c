"""Shared fixtures: a real local Kafka broker (started by `make test`) and fresh topic names per test."""

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from hypothesis import settings as hypothesis_settings

from pipeline.kafka import clients, topics
from pipeline.settings import Settings, Topics

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

# No property test has a time limit per example: on a loaded 2-core machine Hypothesis's default of 200 ms failed
# one (test_dead_letter_ownership) where nothing was wrong. Tests never depend on wall-clock pacing.
hypothesis_settings.register_profile("poa-filter", deadline=None)
hypothesis_settings.load_profile("poa-filter")


def broker_settings(bootstrap: str = BOOTSTRAP) -> Settings:
    """Settings whose clients reach the test broker, connected as the project's clients are."""
    return replace(Settings.from_env(), bootstrap_servers=bootstrap)


@pytest.fixture(scope="session")
def broker() -> str:
    """The bootstrap address of the running broker; fails loudly when there is none."""
    try:
        clients.admin_client(broker_settings()).list_topics(timeout=10)
    except KafkaException as exc:
        pytest.fail(f"no Kafka broker at {BOOTSTRAP} ({exc}); start one with `make kafka-up`")
    return BOOTSTRAP


def create_topics(bootstrap: str, names: dict[str, int], config: dict[str, dict[str, str]] | None = None) -> None:
    topics.create_topics(clients.admin_client(broker_settings(bootstrap)), names, config)


@pytest.fixture
def settings(broker: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings with topic names and app id unique to this test, input topics created (3 partitions)."""
    tag = uuid.uuid4().hex[:10]
    names = Topics(**{name: f"t{tag}.{default}" for name, default in vars(Topics()).items()})
    compacted = {"cleanup.policy": "compact"}
    create_topics(
        broker,
        {
            names.service_requests: 3,
            names.activation_outcomes: 2,
            names.alerts: 3,
            names.inventory: 3,
            names.tracked_devices: 2,
        },
        {names.inventory: compacted, names.tracked_devices: compacted},
    )
    yield replace(
        broker_settings(broker),
        app_id=f"poa-filter-test-{tag}",
        data_dir=str(tmp_path / "state"),
        metrics_port=0,
        topics=names,
    )
