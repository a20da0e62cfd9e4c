"""DUIS documents through the worker's loop over stand-in clients (contract 9): requests, outcomes and alerts
in DUIS beside Avro ones, received_at from the Kafka timestamp, each alert in exactly one output, forwarded
DUIS byte for byte, audited with the document as payload, dead-lettered with the element path; an AD1 held
for evidence keeps its timestamp on the held topic and is released by a DUIS 8F36."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from pipeline.core.read_frontier import ReadFrontier
from pipeline.wire.duis import documents
from pipeline.worker.evidence_holds import held_topic
from pipeline.worker.hold_queues import AlertQueues
from pipeline.worker.triage import AlertTriage
from tests.unit.worker.fake_clock import FakeClock
from tests.unit.worker.kafka_stand_ins import Cluster
from tests.unit.worker.test_evidence_loop import EvidenceDriver, alert
from tests.unit.worker.test_triage_modes import filter_state
from tests.unit.worker.test_worker_loop import CHF, CODEC, ESME, MIN, T, cluster

__all__ = ["cluster"]  # the fixture of the loop's tests: a tracked ESME on CHF's HAN

USER = "90-B3-D5-1F-30-01-00-00"
REQUEST_ID = f"{USER}:{ESME}:1660751141087"
# The fake clock's start, near the real time (housekeeping reads it), in whole seconds as GBCS times are.
NOW = int(time.time()) * 1000
# An hour ago: evidence up to t + A is complete once the worker is caught up; the Kafka timestamps of the state
# records are within the topics' retention (housekeeping purges what was written before it).
R = NOW - 60 * MIN


def duis_request(variant: int, request_id: str = REQUEST_ID) -> bytes:
    return documents.activate_firmware_request(
        request_id, command_variant=variant, execution_ms=None, firmware_hash=bytes(range(32))
    )


def duis_ad1(n: int, started_ms: int) -> bytes:
    return documents.power_outage_alert(
        f"{documents.DCC_EUI}:{USER}:{n}", chf_id=CHF, started_ms=started_ms, mpxn="1000000000001",
        responded_ms=started_ms + 1_000,
    )  # fmt: skip


def duis_device_alert(device: str, n: int, code: str, at: int) -> bytes:
    return documents.device_alert(
        f"{device}:{USER}:{n}", alert_code=code, alert_ms=at, responded_ms=at, outage_start_ms=at - 10 * MIN,
        outage_end_ms=at,
    )  # fmt: skip


class Outputs:
    """The worker's outputs, each alert named by the bytes it was sent as."""

    def __init__(self, cluster: Cluster, sent: dict[bytes, str]) -> None:
        # A KeyError: an output that is not an input alert as sent, byte for byte.
        self.forwarded = [(key, sent[value or b""]) for key, value in cluster.records(T.dno_alerts)]
        self.suppressed = [CODEC.decode("SuppressedAlert", v) for _, v in cluster.records(T.suppressed)]
        self.dead_letters = [CODEC.decode("DeadLetter", v) for _, v in cluster.records(T.dead_letter)]
        # A DUIS alert's audit holds the document as payload; an Avro one's alert is the record as received.
        self.suppressed_names = [sent.get(s["alert"]["payload"] or b"") or sent[CODEC.encode("DeviceAlert", s["alert"])]
                                 for s in self.suppressed]  # fmt: skip
        self.dead_names = [sent[d["value"]] for d in self.dead_letters if d["source_topic"] == T.alerts]

    def names(self) -> list[str]:
        return sorted([name for _, name in self.forwarded] + self.suppressed_names + self.dead_names)


class DuisDriver(EvidenceDriver):
    def __init__(self, cluster: Cluster, data_dir: Path, **settings: Any) -> None:
        super().__init__(cluster, data_dir, FakeClock(NOW), max_hold_seconds=3600.0, **settings)
        self.sent: dict[bytes, str] = {}

    def alert(self, name: str, value: bytes, timestamp: int | None, partition: int = 0, key: bytes = CHF.encode()
              ) -> None:  # fmt: skip
        """Write alert `name` as the DSP would, with its Kafka `timestamp` (None: the record has none)."""
        self.sent[value] = name
        self.cluster.append(T.alerts, partition, key, value, timestamp)

    def outputs(self) -> Outputs:
        return Outputs(self.cluster, self.sent)

    def until(self, condition: Callable[[], bool], what: str, max_steps: int = 200) -> None:
        """As the loop's driver, with a tenth of a second passing on the fake clock each step: the look-ups that
        say evidence is complete are paced on it."""
        for _ in range(max_steps):
            if condition():
                return
            self.clock.advance(0.1)
            self.worker.step()
        raise AssertionError(f"not reached in {max_steps} steps: {what}")


@pytest.fixture
def make_driver(cluster: Cluster, tmp_path: Path) -> Iterator[Any]:
    drivers: list[DuisDriver] = []

    def make(**settings: Any) -> DuisDriver:
        drivers.append(DuisDriver(cluster, tmp_path / str(len(drivers)), **settings))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.worker.close()


def test_duis_and_avro_alerts_each_end_in_one_output_as_the_rules_say(cluster: Cluster, make_driver: Any) -> None:
    cluster.append(T.service_requests, 0, ESME.encode(), duis_request(5), R)
    driver = make_driver()
    ad1 = duis_ad1(1, R + 4 * MIN)
    driver.alert("duis-ad1", ad1, R + 5 * MIN)
    driver.alert("duis-8f3e", duis_device_alert(CHF, 2, "8F3E", R + 5 * MIN), R + 5 * MIN)
    driver.alert("avro-8f01", alert("avro-8f01", "8F01", ESME, R + 6 * MIN), None, partition=1)
    driver.alert("avro-ad1", alert("avro-ad1", "AD1", CHF, R + 6 * MIN), None, partition=1)
    driver.alert("no-timestamp", duis_ad1(3, R + 6 * MIN), None)
    driver.alert("bad-chf", duis_ad1(4, R + 6 * MIN).replace(CHF.encode(), CHF[:-3].encode()), R + 6 * MIN)
    driver.alert("truncated", ad1[:-40], R + 6 * MIN, partition=1)
    everything = sorted(driver.sent.values())
    driver.until(lambda: driver.outputs().names() == everything, "every alert in an output")
    driver.steps(5)
    out = driver.outputs()
    assert out.names() == everything, "each alert exactly once"
    assert sorted(out.suppressed_names) == ["avro-ad1", "duis-ad1"]
    assert sorted(name for _, name in out.forwarded) == ["avro-8f01", "duis-8f3e"]  # byte for byte (Outputs)
    assert {key for key, _ in out.forwarded} == {CHF.encode()}

    audit = next(s for s in out.suppressed if s["alert"]["payload"] == ad1)
    assert audit["alert"] == {"alert_id": f"{documents.DCC_EUI}:{USER}:1", "alert_code": "AD1", "device_id": CHF,
                              "mpxn": "1000000000001", "raised_at": R + 4 * MIN, "received_at": R + 5 * MIN,
                              "payload": ad1}  # fmt: skip
    assert (audit["esme_id"], audit["activation_request_id"], audit["window_start"]) == (ESME, REQUEST_ID, R)

    errors = {driver.sent[d["value"]]: d["error"] for d in out.dead_letters}
    assert errors["no-timestamp"] == (
        "received_at (the Kafka record timestamp of a DUIS record) is missing: the record has no timestamp"
    )
    assert errors["bad-chf"].startswith("/Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent/CommsHubDeviceID")
    assert errors["truncated"]
    assert driver.metric("poa_alerts_total", decision="suppressed", alert_code="AD1", reason="activation_window") == 2


@pytest.mark.parametrize(("variants", "suppressed"), [(None, False), ("4,5,7", True)])
def test_a_variant_4_request_counts_only_when_listed(
    cluster: Cluster, make_driver: Any, variants: str | None, suppressed: bool
) -> None:
    """By default a variant 4 (never signed, perhaps) opens no window: fail open."""
    cluster.append(T.service_requests, 0, ESME.encode(), duis_request(4), R)
    driver = make_driver(**({} if variants is None else {"duis_command_variants": variants}))
    driver.alert("ad1", duis_ad1(1, R + 4 * MIN), R + 5 * MIN)
    driver.until(lambda: driver.outputs().names() == ["ad1"], "the AD1 decided")
    assert (driver.outputs().suppressed_names == ["ad1"]) is suppressed


def outcome_response(code: int | None) -> bytes:
    return documents.activation_outcome_response(REQUEST_ID, f"{ESME}:{USER}:7", response_code=code, responded_ms=R)


def future_dated(alert_code: int, response_code: int) -> bytes:
    return documents.future_dated_activation_alert(
        REQUEST_ID, f"{ESME}:{USER}:8", alert_code=alert_code, execution_ms=R, counter=1660751141087,
        response_code=response_code, responded_ms=R + MIN,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "suppressed"),
    [(outcome_response(None), True), (outcome_response(0), True), (outcome_response(2), False),
     (future_dated(0x8F66, 0), True), (future_dated(0x8F67, 1), False), (future_dated(0x8F67, 3), True)],
    ids=["command-accepted", "success", "hash-mismatch", "8F66", "8F67-no-image", "8F67-activation-failure"],
)  # fmt: skip
def test_duis_outcomes_withdraw_as_their_avro_twins_do(
    cluster: Cluster, make_driver: Any, outcome: bytes, suppressed: bool
) -> None:
    cluster.append(T.service_requests, 0, ESME.encode(), duis_request(7), R)
    cluster.append(T.activation_outcomes, 0, ESME.encode(), outcome, R + MIN)
    driver = make_driver()
    driver.alert("ad1", duis_ad1(1, R + 4 * MIN), R + 5 * MIN)
    driver.until(lambda: driver.outputs().names() == ["ad1"], "the AD1 decided")
    assert (driver.outputs().suppressed_names == ["ad1"]) is suppressed


def test_a_duis_cancellation_ends_a_future_activation(cluster: Cluster, make_driver: Any) -> None:
    later = f"{USER}:{ESME}:20"
    future = documents.activate_firmware_request(later, command_variant=5, execution_ms=R + 10 * MIN,
                                                 firmware_hash=bytes(32))  # fmt: skip
    cancel = documents.activate_firmware_request(f"{USER}:{ESME}:21", command_variant=5,
                                                 execution_ms=documents.gbcs.CANCELLATION_TIME_MS,
                                                 firmware_hash=bytes(32))  # fmt: skip
    cluster.append(T.service_requests, 0, ESME.encode(), future, R)
    cluster.append(T.service_requests, 0, ESME.encode(), cancel, R + MIN)
    driver = make_driver()
    driver.alert("ad1", duis_ad1(1, R + 14 * MIN), R + 15 * MIN)
    driver.until(lambda: driver.outputs().names() == ["ad1"], "the AD1 decided")
    assert driver.outputs().suppressed_names == []


def test_bad_duis_requests_are_dead_lettered_with_the_element_path(cluster: Cluster, make_driver: Any) -> None:
    short = duis_request(4).replace(bytes(range(32)).hex().upper().encode(), bytes(range(31)).hex().upper().encode())
    bad = cluster.append(T.service_requests, 1, ESME.encode(), short, R)
    stamp = cluster.append(T.service_requests, 1, ESME.encode(), duis_request(5), None)
    driver = make_driver()
    driver.until(lambda: len(driver.outputs().dead_letters) == 2, "both dead-lettered")
    letters = {d["offset"]: d for d in driver.outputs().dead_letters}
    assert letters[bad]["error"] == "/Request/Body/ActivateFirmware/FirmwareHash: 31 bytes, expected 32"
    assert letters[bad]["value"] == short and letters[bad]["source_topic"] == T.service_requests
    assert "is missing: the record has no timestamp" in letters[stamp]["error"]


def test_a_duis_ad1_held_for_evidence_keeps_its_time_and_a_duis_8f36_releases_it(
    cluster: Cluster, make_driver: Any
) -> None:
    """The held topic's record carries the AD1's Kafka timestamp (the stand-in keeps none for the worker's own
    writes, as a held record's own timestamp is not the alert's)."""
    cluster.append(T.service_requests, 0, ESME.encode(), duis_request(5), NOW - 5 * MIN)
    driver = make_driver()
    ad1 = duis_ad1(1, NOW - 2 * MIN)
    driver.alert("ad1", ad1, NOW - MIN)
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 read back from the held topic")
    assert [(value or b"")[-len(ad1) :] for _, value in cluster.records(held_topic("loop-test"))] == [ad1]
    driver.steps(10)
    assert driver.outputs().names() == []

    restored = duis_device_alert(ESME, 2, "8F36", NOW + MIN)
    driver.alert("restored", restored, NOW + MIN, partition=1, key=ESME.encode())
    driver.until(lambda: driver.outputs().names() == ["ad1", "restored"], "the AD1 released by the evidence")
    driver.steps(5)
    assert [name for _, name in driver.outputs().forwarded] == ["restored", "ad1"]
    assert driver.metric("poa_alerts_total", decision="forwarded", alert_code="AD1", reason="outage_evidence") == 1


def test_a_duis_ad1_held_for_evidence_without_any_is_suppressed_with_its_own_time(
    cluster: Cluster, make_driver: Any
) -> None:
    cluster.append(T.service_requests, 0, ESME.encode(), duis_request(5), NOW - 5 * MIN)
    driver = make_driver()
    ad1 = duis_ad1(1, NOW - 2 * MIN)
    driver.alert("ad1", ad1, NOW - MIN)
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
    for partition in (0, 1):  # four DUIS alerts past t + A on every partition: evidence is complete
        for n in range(4):
            at = NOW + 2 * MIN + 10 * (n + 1)
            driver.alert(f"p{partition}-{n}", duis_device_alert(CHF, 10 * partition + n + 3, "8F3E", at), at, partition)
    driver.until(lambda: driver.outputs().suppressed_names == ["ad1"], "the AD1 suppressed")
    assert driver.outputs().suppressed[0]["alert"]["received_at"] == NOW - MIN


def test_the_event_time_lag_counts_duis_alerts_read_behind_a_waiting_ad1() -> None:
    """poa_event_time_lag_seconds: how far decisions trail the newest alert read, DUIS alerts included."""
    frontier = ReadFrontier()
    frontier.track([(T.service_requests, 0)], {})  # nothing read there: the AD1 waits for its inputs
    triage = AlertTriage(T, CODEC, filter_state(), frontier, AlertQueues(), 30.0)
    triage.holds.assigned([0])
    values = [(duis_ad1(1, R + 4 * MIN), R + 5 * MIN), (duis_device_alert(CHF, 2, "8F3E", R + 15 * MIN), R + 15 * MIN)]
    triage.triage([Message(topic=T.alerts, partition=0, offset=i, key=CHF.encode(), value=v,
                           timestamp=(TIMESTAMP_CREATE_TIME, at)) for i, (v, at) in enumerate(values)],
                  triage.next_read(), 0.0)  # fmt: skip
    triage.drain(0.0, hold_clock_stopped=False)
    assert triage.holds.sizes() == {0: 2}
    assert triage.event_times(0) == (R + 15 * MIN, 0)
