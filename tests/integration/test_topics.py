"""The shared topic helpers on the real broker: create, wait for, read to the end."""

import uuid

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from pipeline.kafka import clients
from pipeline.kafka.topics import TopicsMissing, create_topics, read_to_end, wait_for_topics
from pipeline.settings import Settings

pytestmark = pytest.mark.broker


def _name(settings: Settings, what: str) -> str:
    return f"{settings.app_id}.{what}-{uuid.uuid4().hex[:6]}"


def _produce(settings: Settings, topic: str, values: list[bytes], transactional_id: str | None = None,
             commit: bool = True) -> None:
    extra = {"transactional.id": transactional_id} if transactional_id else {}
    producer = clients.producer(settings, {"enable.idempotence": True, "acks": "all"}, **extra)
    if transactional_id:
        producer.init_transactions(30)
        producer.begin_transaction()
    for i, value in enumerate(values):
        producer.produce(topic, value, b"k%d" % i)
    if transactional_id and commit:
        producer.commit_transaction(30)
    elif transactional_id:
        producer.abort_transaction(30)
    assert producer.flush(30) == 0


def test_create_topics_creates_the_missing_ones_with_their_partitions_and_config(settings: Settings) -> None:
    admin = clients.admin_client(settings)
    plain, compacted = _name(settings, "plain"), _name(settings, "compacted")

    created = create_topics(admin, {plain: 2, compacted: 3}, {compacted: {"cleanup.policy": "compact"}})

    assert sorted(created) == sorted([plain, compacted])
    assert wait_for_topics(admin, [plain, compacted], timeout_s=10) == {plain: 2, compacted: 3}
    resource = ConfigResource(ResourceType.TOPIC, compacted)
    described = admin.describe_configs([resource])[resource].result(30)
    assert described["cleanup.policy"].value == "compact"
    # Asking again leaves the existing topics as they are, whatever the request says.
    assert create_topics(admin, {plain: 5, compacted: 1}) == []
    assert wait_for_topics(admin, [plain, compacted], timeout_s=10) == {plain: 2, compacted: 3}


def test_wait_for_topics_reports_what_is_missing_and_gives_up_after_its_timeout(settings: Settings) -> None:
    admin = clients.admin_client(settings)
    absent = _name(settings, "absent")
    heard: list[list[str]] = []

    with pytest.raises(TopicsMissing, match=absent) as raised:
        wait_for_topics(admin, [settings.topics.alerts, absent], timeout_s=1.0,
                        on_wait=lambda waiting: heard.append(waiting.missing), poll_s=0.2)

    assert raised.value.missing == [absent]
    assert raised.value.unreachable is None
    assert heard and all(missing == [absent] for missing in heard)


def test_wait_for_topics_returns_once_a_topic_appears(settings: Settings) -> None:
    admin = clients.admin_client(settings)
    late = _name(settings, "late")

    def create_on_first_wait(waiting: TopicsMissing) -> None:
        assert waiting.missing == [late]
        create_topics(admin, {late: 4})

    counts = wait_for_topics(admin, [settings.topics.alerts, late], timeout_s=30, on_wait=create_on_first_wait)

    assert counts == {settings.topics.alerts: 3, late: 4}


def test_on_wait_can_stop_the_wait(settings: Settings) -> None:
    def stop(_waiting: TopicsMissing) -> None:
        raise InterruptedError("stopped")

    with pytest.raises(InterruptedError):
        wait_for_topics(clients.admin_client(settings), [_name(settings, "never")], on_wait=stop)


def test_read_to_end_reads_every_partition_of_every_topic_to_the_end_it_found(settings: Settings) -> None:
    alerts, requests = settings.topics.alerts, settings.topics.service_requests  # 3 partitions each
    _produce(settings, alerts, [b"a%d" % i for i in range(40)])
    _produce(settings, requests, [b"r%d" % i for i in range(7)])

    reading = read_to_end(settings, [alerts, requests], timeout_s=60)
    first = next(reading)  # the end offsets are taken as the read starts
    _produce(settings, alerts, [b"late"])
    values = [first.value() or b"", *(m.value() or b"" for m in reading)]

    assert sorted(values) == sorted([b"a%d" % i for i in range(40)] + [b"r%d" % i for i in range(7)])


def test_read_to_end_skips_aborted_records_and_still_ends(settings: Settings) -> None:
    topic = settings.topics.alerts
    _produce(settings, topic, [b"kept-%d" % i for i in range(5)], transactional_id=f"{settings.app_id}-tx")
    _produce(settings, topic, [b"aborted-%d" % i for i in range(5)], transactional_id=f"{settings.app_id}-tx",
             commit=False)

    values = sorted(m.value() or b"" for m in read_to_end(settings, topic, timeout_s=60))

    assert values == sorted(b"kept-%d" % i for i in range(5))


def test_read_to_end_of_an_empty_topic_yields_nothing(settings: Settings) -> None:
    assert list(read_to_end(settings, settings.topics.activation_outcomes, timeout_s=30)) == []


def test_read_to_end_of_a_missing_topic_says_which(settings: Settings) -> None:
    absent = _name(settings, "absent")
    with pytest.raises(TopicsMissing, match=absent):
        list(read_to_end(settings, [settings.topics.alerts, absent]))
