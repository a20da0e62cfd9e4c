"""Storm evidence (rule 9.b) in the worker's loop: another HAN's AD1 counts only if rule 5 alone forwards it,
so the activation requests the DSP wrote before it must have been read first, even when another worker
decides that AD1 and only this worker's evidence reader reads it."""

from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from tests.unit.worker.fake_clock import FakeClock
from tests.unit.worker.kafka_stand_ins import Cluster
from tests.unit.worker.test_evidence_loop import NOW, alert
from tests.unit.worker.test_worker_loop import CODEC, MIN, Driver, T

CHF_Y, ESME_Y = "00-1B-C5-0C-00-00-00-01", "00-1B-C5-0C-00-00-00-02"
CHF_X, ESME_X = "00-1B-C5-0C-00-00-00-11", "00-1B-C5-0C-00-00-00-12"


def request(esme: str, received_at: int) -> bytes:
    return CODEC.encode("ServiceRequest", {
        "request_id": f"o:{esme}:1", "service_reference_variant": "11.3", "target_device_id": esme,
        "execution_datetime": None, "firmware_hash": "ab" * 32, "received_at": received_at,
    })  # fmt: skip


def two_homes_of_one_sector() -> Cluster:
    """Y and X, both tracked, in sector ST1 1; Y's ESME activated five minutes ago."""
    cluster = Cluster()
    for topic, n in ((T.service_requests, 2), (T.activation_outcomes, 1), (T.alerts, 2), (T.inventory, 1),
                     (T.tracked_devices, 1)):  # fmt: skip
        cluster.create(topic, n)
    for chf, esme in ((CHF_Y, ESME_Y), (CHF_X, ESME_X)):
        for device, kind, on in ((chf, "CHF", None), (esme, "ESME", chf)):
            record: dict[str, Any] = {"device_id": device, "device_type": kind, "chf_id": on, "mpxn": None,
                                      "updated_at": NOW - 60 * MIN, "postcode": "ST1 1AA"}  # fmt: skip
            cluster.append(T.inventory, 0, device.encode(), CODEC.encode("InventoryRecord", record))
        tracked = {"device_id": esme, "manufacturer": None, "model": None, "firmware_version": None,
                   "list_version": None, "added_at": NOW - 60 * MIN}  # fmt: skip
        cluster.append(T.tracked_devices, 0, esme.encode(), CODEC.encode("TrackedDevice", tracked))
    cluster.append(T.service_requests, 0, ESME_Y.encode(), request(ESME_Y, NOW - 5 * MIN))
    return cluster


def test_an_ad1_whose_activation_request_is_not_read_yet_is_no_storm_evidence(tmp_path: Path) -> None:
    """K = 1. X's activation request (received at t + 10 s) sits on a state partition whose fetch has not come
    back; X's AD1 (t + 20 s) is read by the evidence reader. X's AD1 is in a window: no storm evidence, Y's
    AD1 stays suppressed, whichever of the two reads comes first."""
    driver = Driver(two_homes_of_one_sector(), tmp_path, FakeClock(NOW), storm_min_hans=1)
    cluster = driver.cluster
    try:
        t = NOW - MIN
        cluster.append(T.alerts, 0, CHF_Y.encode(), alert("ad1-y", "AD1", CHF_Y, t))
        driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "Y's AD1 held for evidence")
        driver.worker.alerts.consumer.pause([TopicPartition(T.alerts, 1)])  # another worker decides partition 1
        cluster.slow.add((T.service_requests, 1))
        cluster.append(T.service_requests, 1, ESME_X.encode(), request(ESME_X, t + 10_000))
        cluster.append(T.alerts, 1, CHF_X.encode(), alert("ad1-x", "AD1", CHF_X, t + 20_000))
        driver.clock.advance(10 * MIN / 1000)  # evidence complete by the clock
        for _ in range(30):
            driver.worker.step()
            driver.clock.advance(0.1)  # each step looks at the held AD1 on fresh end offsets
        assert "ad1-y" not in driver.forwarded(), "released on an AD1 whose window was not read yet"
        cluster.slow.discard((T.service_requests, 1))
        driver.until(lambda: driver.suppressed() == ["ad1-y"], "Y's AD1 suppressed once X's request is read",
                     max_steps=2000)  # fmt: skip
        assert driver.forwarded() == []
    finally:
        driver.worker.close()
