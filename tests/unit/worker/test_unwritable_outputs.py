"""Contract 6 and 7: one of the filter's own output topics it may not write (its Write ACL taken away) never
holds back the decisions of other alerts. The alerts whose outputs go there wait, in memory, at most their
bound counted from their first read (a failed transaction's rewind does not restart it), and are then
forwarded as they came; the rest go out; once the permission is back, all is as before; each alert ends in
exactly one output. Over the stand-in cluster, which refuses writes as librdkafka reports it."""

from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

from pipeline.core.operating_mode import Mode
from pipeline.core.read_frontier import ReadFrontier
from pipeline.worker.evidence_holds import EvidenceHolds, EvidenceWait, held_topic
from pipeline.worker.hold_queues import AlertQueues
from pipeline.worker.permissions import PROBE_INTERVAL_S
from pipeline.worker.triage import AlertTriage
from tests.unit.worker import test_triage_modes as modes
from tests.unit.worker.kafka_stand_ins import Cluster
from tests.unit.worker.test_evidence_loop import NOW, EvidenceDriver, activation, alert
from tests.unit.worker.test_triage_modes import Completeness
from tests.unit.worker.test_worker_loop import CHF, ESME, MIN, T, cluster, service_request

__all__ = ["activation", "cluster"]  # the fixtures

HELD = held_topic("loop-test")
OTHER_CHF = "00-1B-C5-0C-00-00-00-09"  # no window covers its AD1s
MAX_HOLD_S = 30.0
BOUND_S = 3 * 60 + 30 + MAX_HOLD_S  # A + grace + POA_MAX_HOLD_SECONDS


def early_activation(cluster: Cluster) -> Cluster:
    """ESME's immediate activation twenty minutes ago: its window covers AD1s from ten minutes ago, whose
    evidence is complete by the wall clock when they are read."""
    cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, NOW - 20 * MIN))
    return cluster


def ready_text(driver: EvidenceDriver) -> str:
    return driver.worker.readiness.status()[1]


def test_with_the_held_topic_unwritable_other_alerts_go_out_and_an_ad1_in_a_window_is_forwarded_at_its_bound(
    activation: Cluster, tmp_path: Path
) -> None:
    """The AD1 in a window is dated ten minutes ahead: its evidence is not complete before its bound. A second
    failed transaction during its wait (a rewind: it is read again) does not restart its bound."""
    activation.refuse_writes.add(HELD)
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=MAX_HOLD_S)
    try:
        activation.append(T.alerts, 0, CHF.encode(), alert("in-window", "AD1", CHF, NOW + 10 * MIN))
        activation.append(T.alerts, 1, OTHER_CHF.encode(), alert("outage", "AD1", OTHER_CHF, NOW))
        driver.until(lambda: driver.forwarded() == ["outage"], "the AD1 no window covers forwarded")
        assert f"TOPIC_AUTHORIZATION_FAILED on topic {HELD} (grant Write)" in ready_text(driver)
        driver.run(60)
        activation.append(T.alerts, 1, OTHER_CHF.encode(), alert("later", "8F01", OTHER_CHF, NOW + MIN))
        driver.run(5)
        assert driver.forwarded() == ["outage", "later"], "other alerts go out while the AD1 waits"
        activation.commit_failures.append(KafkaException(KafkaError(KafkaError._FAIL, "injected failure")))
        activation.append(T.alerts, 1, OTHER_CHF.encode(), alert("again", "8F01", OTHER_CHF, NOW + MIN))
        driver.run(BOUND_S - 60 - 5 - 10)
        assert driver.metric("poa_transactions_total", result="aborted") == 2
        assert driver.forwarded() == ["outage", "later", "again"], "forwarded before its bound"
        driver.run(20)
        assert driver.forwarded() == ["outage", "later", "again", "in-window"]
        assert driver.held() == [] and driver.suppressed() == []
        driver.steps(5)
        assert driver.metric("poa_holds_expired_total", held_for="output") == 1
        assert driver.alert_offset(0) == 1 and driver.alert_offset(1) == 3
    finally:
        driver.worker.close()


def test_with_the_audit_topic_unwritable_an_ad1_that_would_be_suppressed_is_forwarded_at_its_bound(
    activation: Cluster, tmp_path: Path
) -> None:
    t = NOW - MIN
    activation.refuse_writes.add(T.suppressed)
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=MAX_HOLD_S)
    try:
        activation.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, t))
        driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
        for partition in (0, 1):  # every partition read past t + A: the rules would suppress it now
            for n in range(4):
                driver.cluster.append(T.alerts, partition, CHF.encode(), alert(f"p{partition}-{n}", "8F01", CHF,
                                                                              t + 3 * MIN + 1 + n))  # fmt: skip
        driver.until(lambda: len(driver.forwarded()) == 8, "the alerts after it forwarded")
        assert f"TOPIC_AUTHORIZATION_FAILED on topic {T.suppressed} (grant Write)" in ready_text(driver)
        driver.run(BOUND_S - 20)
        assert "ad1" not in driver.forwarded() and driver.suppressed() == []
        driver.run(30)
        assert driver.forwarded().count("ad1") == 1 and len(driver.forwarded()) == 9
        assert driver.suppressed() == [] and driver.held() == ["ad1"]
        driver.steps(5)
        assert driver.metric("poa_alerts_total", decision="forwarded", alert_code="AD1", reason="hold_expired") == 1
        assert driver.cluster.committed_offset("loop-test", (HELD, 0)) == 1
    finally:
        driver.worker.close()


def test_once_the_permission_is_granted_back_ad1s_are_held_and_suppressed_as_before(
    activation: Cluster, tmp_path: Path
) -> None:
    activation.refuse_writes.add(HELD)
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=MAX_HOLD_S)
    try:
        activation.append(T.alerts, 1, OTHER_CHF.encode(), alert("outage", "AD1", OTHER_CHF, NOW))
        activation.append(T.alerts, 0, CHF.encode(), alert("first", "AD1", CHF, NOW - MIN))
        driver.until(lambda: driver.forwarded() == ["outage"], "the AD1 no window covers forwarded")
        activation.refuse_writes.clear()  # granted back
        driver.run(PROBE_INTERVAL_S + 1)
        assert "missing permission" not in ready_text(driver)
        activation.append(T.alerts, 0, CHF.encode(), alert("second", "AD1", CHF, NOW - MIN + 1))
        # The AD1 that waited in memory, and the one behind it, go to the held topic as before.
        driver.until(lambda: driver.held() == ["first", "second"], "the AD1s in a window on the held topic again")
        driver.run(4 * 60)  # past t + A + grace of both: no evidence came, the rules suppress them
        assert sorted(driver.suppressed()) == ["first", "second"] and driver.forwarded() == ["outage"]
    finally:
        driver.worker.close()


def test_with_the_dno_topic_unwritable_every_alert_waits_unread_and_goes_out_once_when_granted_back(
    activation: Cluster, tmp_path: Path
) -> None:
    """Nothing can be forwarded: alerts wait on the broker (their partitions paused), no transaction is tried
    in a loop, /ready says why; once granted back, each goes out once."""
    activation.refuse_writes.add(T.dno_alerts)
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=MAX_HOLD_S)
    try:
        activation.append(T.alerts, 1, OTHER_CHF.encode(), alert("outage", "AD1", OTHER_CHF, NOW))
        driver.until(lambda: driver.metric("poa_transactions_total", result="aborted") == 1, "the refused write")
        driver.run(10 * 60, step_s=5.0)
        activation.append(T.alerts, 1, OTHER_CHF.encode(), alert("later", "8F01", OTHER_CHF, NOW + MIN))
        driver.run(60)
        assert driver.metric("poa_transactions_total", result="aborted") == 1, "no transaction tried meanwhile"
        assert f"TOPIC_AUTHORIZATION_FAILED on topic {T.dno_alerts} (grant Write)" in ready_text(driver)
        assert driver.forwarded() == [] and driver.alert_offset(1) < 0
        activation.refuse_writes.clear()
        driver.run(PROBE_INTERVAL_S + 5)
        assert driver.forwarded() == ["outage", "later"] and driver.alert_offset(1) == 2
    finally:
        driver.worker.close()


def test_in_shadow_mode_with_the_held_or_shadow_topic_unwritable_an_ad1_in_a_window_reaches_the_dno_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Contract 8: shadow mode changes nothing a DNO sees, not even while its records cannot be written."""
    activation = early_activation(cluster)
    activation.refuse_writes.update({HELD, T.shadow})
    driver = EvidenceDriver(activation, tmp_path, initial_mode="shadow", max_hold_seconds=MAX_HOLD_S)
    try:
        activation.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW - 10 * MIN))  # evidence complete
        activation.append(T.alerts, 0, CHF.encode(), alert("held", "AD1", CHF, NOW - MIN))  # evidence may still come
        driver.until(lambda: driver.forwarded() == ["ad1", "held"], "both AD1s forwarded at once")
        driver.run(60)
        assert driver.forwarded() == ["ad1", "held"] and driver.shadowed() == [] and driver.held() == []
        assert driver.alert_offset(0) == 2
    finally:
        driver.worker.close()


def test_with_the_audit_topic_unwritable_an_ad1_suppressed_as_read_waits_on_the_held_topic_not_in_its_partition(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Its evidence is complete when read (a backlog): the rules would suppress it at once. It waits on the held
    topic, so the alert behind it in its partition goes out at once; it is forwarded at its bound."""
    activation = early_activation(cluster)
    activation.refuse_writes.add(T.suppressed)
    t = NOW - 10 * MIN
    activation.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, t))
    activation.append(T.alerts, 0, CHF.encode(), alert("behind", "8F01", CHF, t + 1))
    for partition in (0, 1):  # a backlog: every partition holds records past t + A
        for n in range(4):
            activation.append(T.alerts, partition, CHF.encode(), alert(f"p{partition}-{n}", "8F01", CHF,
                                                                       t + 3 * MIN + 1 + n))  # fmt: skip
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=MAX_HOLD_S)
    try:
        driver.until(lambda: "behind" in driver.forwarded(), "the alert behind it forwarded")
        driver.until(lambda: driver.held() == ["ad1"], "the AD1 on the held topic")
        assert "ad1" not in driver.forwarded()
        driver.run(BOUND_S + 20)
        assert sorted(driver.forwarded()) == sorted(["ad1", "behind", *(f"p{p}-{n}" for p in (0, 1) for n in range(4))])
        assert driver.suppressed() == [] and driver.alert_offset(0) == 6
    finally:
        driver.worker.close()


def triage_refusing(mode: Mode, unwritable: frozenset[str]) -> AlertTriage:
    """A triage whose AD1s' evidence is complete when read (the stand-in says so), with `unwritable` refused."""
    evidence = EvidenceWait(Completeness(True), EvidenceHolds(modes.CODEC), modes.HELD, max_wait_ms=240_000)
    triage = AlertTriage(modes.TOPICS, modes.CODEC, modes.filter_state(), ReadFrontier(), AlertQueues(), 30.0,
                         lambda: modes.schedule((mode, modes.T)), evidence=evidence,
                         unwritable=lambda: unwritable)  # fmt: skip
    triage.holds.assigned([0])
    return triage


def test_an_ad1_whose_audit_record_cannot_be_written_waits_on_the_held_topic_when_it_can() -> None:
    _, decided = modes.decided_ad1(triage_refusing(Mode.FILTER, frozenset({modes.TOPICS.suppressed})))
    assert [topic for topic, _, _ in decided.records] == [modes.HELD] and decided.tally == {}


def test_with_the_held_topic_unwritable_too_it_waits_in_memory_from_its_first_read_then_is_forwarded() -> None:
    triage = triage_refusing(Mode.FILTER, frozenset({modes.TOPICS.suppressed, modes.HELD}))
    value, decided = modes.decided_ad1(triage)
    assert decided.records == [] and triage.holds.sizes() == {0: 1}
    triage.forget_undecided()  # a failed transaction: it is read again later, its bound kept
    triage.triage([modes.message(0, value)], triage.next_read(), 200.0)
    triage.drain(239.0, hold_clock_stopped=False)
    assert triage.take().records == []
    triage.drain(240.0, hold_clock_stopped=False)
    decided = triage.take()
    assert decided.records == [(modes.TOPICS.dno_alerts, modes.CHF.encode(), value)]
    assert decided.expired == {"output": 1} and decided.next_offsets == {0: 1}


def test_in_shadow_mode_an_ad1_whose_shadow_record_cannot_be_written_is_forwarded_at_once() -> None:
    value, decided = modes.decided_ad1(triage_refusing(Mode.SHADOW, frozenset({modes.TOPICS.shadow})))
    assert decided.records == [(modes.TOPICS.dno_alerts, modes.CHF.encode(), value)]
