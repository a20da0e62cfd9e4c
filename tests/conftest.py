"""Shared fixtures: a real local Kafka broker (started by `make test`) and fresh topic names per test."""

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pipeline.settings import Settings, Topics

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


@pytest.fixture(scope="session")
def broker() -> str:
    """The bootstrap address of the running broker; fails loudly when there is none."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    try:
        admin.list_topics(timeout=10)
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
        pytest.fail(f"no Kafka broker at {BOOTSTRAP} ({exc}); start one with `make kafka-up`")
    return BOOTSTRAP


def create_topics(bootstrap: str, names: dict[str, int], config: dict[str, dict[str, str]] | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(name, num_partitions=parts, replication_factor=1, config=(config or {}).get(name, {}))
        for name, parts in names.items()
    ]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result(timeout=30)


@pytest.fixture
def settings(broker: str, tmp_path) -> Iterator[Settings]:
    """Settings with topic names and app id unique to this test, input topics created (3 partitions)."""
    tag = uuid.uuid4().hex[:10]
    topics = Topics(**{name: f"t{tag}.{default}" for name, default in vars(Topics()).items()})
    compacted = {"cleanup.policy": "compact"}
    create_topics(
        broker,
        {
            topics.service_requests: 3,
            topics.activation_outcomes: 2,
            topics.alerts: 3,
            topics.inventory: 3,
            topics.tracked_devices: 2,
        },
        {topics.inventory: compacted, topics.tracked_devices: compacted},
    )
    yield replace(
        Settings(),
        bootstrap_servers=broker,
        app_id=f"poa-filter-test-{tag}",
        data_dir=str(tmp_path / "state"),
        metrics_port=0,
        topics=topics,
    )
