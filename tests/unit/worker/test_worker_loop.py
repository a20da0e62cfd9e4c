"""The worker's loop without a broker: the real FilterWorker and its parts, driven step by step over
stand-in clients (kafka_stand_ins), in the spirit of Kafka Streams' TopologyTestDriver. The real-broker
behaviour is held by tests/integration; here each mechanism of the loop is pinned down on its own:
triage, the read frontier, state-topic dead letters written once, and the rewind after a failed
transaction."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.settings import Settings, Topics
from pipeline.wire.avro_codec import AvroCodec
from pipeline.worker.dead_letter_ownership import BAD_RECORD
from pipeline.worker.filter_worker import FilterWorker
from tests.unit.worker.fake_clock import FakeClock
from tests.unit.worker.kafka_stand_ins import NO_OFFSET, Cluster, StandInClients

CODEC = AvroCodec()
T = Topics()
R = 1_772_323_200_000  # when the service request is received: an immediate activation, window [R, R+30 min]
MIN = 60_000
CHF, ESME = "00-1B-C5-0C-00-00-00-01", "00-1B-C5-0C-00-00-00-02"
REQUEST_ID = f"90-B3-D5-1F-30-01-00-00:{ESME}:1"


def service_request(esme: str, received_at: int) -> bytes:
    return CODEC.encode("ServiceRequest", {
        "request_id": REQUEST_ID, "service_reference_variant": "11.3", "target_device_id": esme,
        "execution_datetime": None, "firmware_hash": "ab" * 32, "received_at": received_at,
    })  # fmt: skip


def alert(alert_id: str, code: str, received_at: int) -> bytes:
    return CODEC.encode("DeviceAlert", {
        "alert_id": alert_id, "alert_code": code, "device_id": CHF, "mpxn": "1000000000001",
        "raised_at": received_at - 1000, "received_at": received_at, "payload": b"\x01",
    })  # fmt: skip


@pytest.fixture
def cluster() -> Cluster:
    return one_home()


def one_home() -> Cluster:
    """The input topics, with one home on the reference topics: a tracked ESME on a CHF's HAN."""
    cluster = Cluster()
    for topic, partitions in ((T.service_requests, 2), (T.activation_outcomes, 1), (T.alerts, 2), (T.inventory, 1),
                              (T.tracked_devices, 1)):  # fmt: skip
        cluster.create(topic, partitions)
    for device, kind, chf in ((CHF, "CHF", None), (ESME, "ESME", CHF)):
        record = {"device_id": device, "device_type": kind, "chf_id": chf, "mpxn": None, "updated_at": R - MIN}
        cluster.append(T.inventory, 0, device.encode(), CODEC.encode("InventoryRecord", record))
    tracked = {"device_id": ESME, "manufacturer": "L+G", "model": "E470", "firmware_version": "1.0",
               "list_version": "2026-02", "added_at": R - MIN}  # fmt: skip
    cluster.append(T.tracked_devices, 0, ESME.encode(), CODEC.encode("TrackedDevice", tracked))
    return cluster


class Driver:
    """A FilterWorker over the stand-in cluster, stepped by the test, on a clock the test moves."""

    def __init__(self, cluster: Cluster, data_dir: Path, clock: FakeClock | None = None, **settings: Any) -> None:
        self.cluster = cluster
        self.clock = clock or FakeClock()
        chosen = replace(Settings(), app_id="loop-test", data_dir=str(data_dir), metrics_port=0,
                         **{"max_hold_seconds": 3600.0, **settings})  # fmt: skip
        self.worker = FilterWorker(chosen, kafka=StandInClients(cluster), clock=self.clock)  # type: ignore[arg-type]
        self.worker.connect()
        self.until(lambda: self.worker.readiness.status()[0], "the worker ready, alert partitions assigned")

    def until(self, condition: Callable[[], bool], what: str, max_steps: int = 200) -> None:
        for _ in range(max_steps):
            if condition():
                return
            self.worker.step()
        raise AssertionError(f"not reached in {max_steps} steps: {what}")

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.worker.step()

    def forwarded(self) -> list[str]:
        return [CODEC.decode("DeviceAlert", value)["alert_id"] for _, value in self.cluster.records(T.dno_alerts)]

    def suppressed(self) -> list[str]:
        return [CODEC.decode("SuppressedAlert", v)["alert"]["alert_id"] for _, v in self.cluster.records(T.suppressed)]

    def dead_letters(self) -> list[tuple[str, int, int]]:
        records = [CODEC.decode("DeadLetter", value) for _, value in self.cluster.records(T.dead_letter)]
        return [(d["source_topic"], d["partition"], d["offset"]) for d in records]

    def alert_offset(self, partition: int) -> int:
        return self.cluster.committed_offset("loop-test", (T.alerts, partition))

    def dead_lettered(self, topic: str, partition: int) -> int:
        """How far the alert group has dead-lettered a state partition."""
        return self.cluster.committed_offset("loop-test", (topic, partition))

    def metric(self, name: str, **labels: str) -> float:
        return self.worker.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def driver(cluster: Cluster, tmp_path: Path) -> Iterator[Driver]:
    cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, R))
    driver = Driver(cluster, tmp_path)
    yield driver
    driver.worker.close()


def test_a_non_ad1_is_forwarded_at_once_and_an_ad1_held_with_what_follows_it_until_the_frontier_allows(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, R))
    cluster.slow.add((T.service_requests, 0))  # the activation is not read yet
    driver = Driver(cluster, tmp_path)
    try:
        cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", R + 5 * MIN))
        cluster.append(T.alerts, 0, CHF.encode(), alert("behind", "8F36", R + 6 * MIN))
        cluster.append(T.alerts, 1, CHF.encode(), alert("other", "8F36", R + 6 * MIN))

        driver.until(lambda: driver.forwarded() == ["other"], "the other partition's alert forwarded")
        driver.steps(20)
        assert driver.forwarded() == ["other"] and driver.suppressed() == []
        assert driver.worker.triage.holds.sizes()[0] == 2
        assert (driver.alert_offset(0), driver.alert_offset(1)) == (NO_OFFSET, 1)

        cluster.slow.clear()
        driver.until(lambda: driver.suppressed() == ["ad1"], "the AD1 decided")
        driver.steps(5)
        assert driver.forwarded() == ["other", "behind"] and driver.suppressed() == ["ad1"]
        assert (driver.alert_offset(0), driver.alert_offset(1)) == (2, 1)
    finally:
        driver.worker.close()


def test_an_ad1_waits_for_end_offsets_looked_up_after_it_was_read(driver: Driver) -> None:
    """Every state partition is read to the end offsets looked up before the alert came: not enough, a
    request the DSP wrote just before the alert may be beyond them."""
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("before", "8F36", R + MIN))
    driver.until(lambda: driver.forwarded() == ["before"], "an alert read with end offsets looked up after it")
    driver.cluster.lookups_answer = False
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", R + 5 * MIN))
    driver.steps(20)
    assert driver.suppressed() == [] and driver.worker.triage.holds.sizes()[0] == 1

    driver.cluster.answer_lookups()
    driver.until(lambda: driver.suppressed() == ["ad1"], "the AD1 decided")


def test_a_bad_state_record_is_dead_lettered_once_across_a_failed_transaction_and_a_lost_state_folder(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The dead letter and its partition's offset in the alert group go in one transaction; a worker that
    rebuilds its state from the topics meets the bad record again and writes only what the group has not."""
    bad = cluster.append(T.service_requests, 1, None, b"not a service request")
    cluster.commit_failures.append(KafkaException(KafkaError(KafkaError._FAIL, "injected failure")))
    driver = Driver(cluster, tmp_path / "first")
    try:
        driver.until(lambda: driver.metric("poa_transactions_total", result="aborted") == 1, "the failed transaction")
        assert driver.dead_letters() == [] and driver.dead_lettered(T.service_requests, 1) == NO_OFFSET
        driver.until(lambda: driver.dead_letters() != [], "the dead letter written again")
        driver.steps(5)
        assert driver.dead_letters() == [(T.service_requests, 1, bad)]
        assert driver.dead_lettered(T.service_requests, 1) == bad + 1
        assert driver.metric("poa_dead_letters_total", topic=T.service_requests) == 1
        assert list(driver.worker.state.meta_items(BAD_RECORD)) == []  # pruned once written
    finally:
        driver.worker.close()

    rebuilt = Driver(cluster, tmp_path / "lost")  # a new state folder: every state partition read from 0
    try:
        again = cluster.append(T.service_requests, 1, b"k", b"\x00 still not a service request")
        rebuilt.until(lambda: len(rebuilt.dead_letters()) == 2, "the new bad record dead-lettered")
        rebuilt.steps(5)
        assert rebuilt.dead_letters() == [(T.service_requests, 1, bad), (T.service_requests, 1, again)]
        assert rebuilt.dead_lettered(T.service_requests, 1) == again + 1
    finally:
        rebuilt.worker.close()


def test_after_a_failed_commit_alerts_are_read_again_from_the_committed_offset_and_decided_once(
    driver: Driver,
) -> None:
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", R + 5 * MIN))
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("x1", "8F36", R + 6 * MIN))
    driver.cluster.commit_failures.append(KafkaException(KafkaError(KafkaError._FAIL, "injected failure")))
    driver.until(lambda: driver.worker.output.in_flight, "the transaction that will fail")
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("x2", "8F36", R + 7 * MIN))  # read while it commits

    driver.until(lambda: driver.alert_offset(0) == 3, "the alerts committed")
    driver.steps(5)
    assert driver.forwarded() == ["x1", "x2"] and driver.suppressed() == ["ad1"]
    assert driver.metric("poa_transactions_total", result="aborted") == 1
    assert driver.metric("poa_alerts_total", decision="forwarded", alert_code="8F36", reason="not_ad1") == 2
    assert driver.metric("poa_alerts_total", decision="suppressed", alert_code="AD1", reason="activation_window") == 1
