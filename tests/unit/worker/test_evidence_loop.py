"""Rules 7 and 9 in the worker's loop, over stand-in clients: an AD1 in a window leaves its partition for the
held topic while evidence may still come, without holding the alerts behind it; evidence read on another
partition releases it; and the wait is bounded (rule 8)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.worker.evidence_holds import DECISIONS_PER_PASS, held_topic
from pipeline.worker.triage import Decided
from tests.unit.worker.fake_clock import FakeClock
from tests.unit.worker.kafka_stand_ins import NO_OFFSET, Cluster
from tests.unit.worker.test_worker_loop import CHF, CODEC, ESME, MIN, Driver, T, cluster, service_request

__all__ = ["cluster"]  # the fixture, shared with the loop's tests

NOW = 1_772_323_200_000  # the fake clock's wall time at the start of each test: event times around it


def alert(alert_id: str, code: str, device: str, received_at: int) -> bytes:
    return CODEC.encode("DeviceAlert", {
        "alert_id": alert_id, "alert_code": code, "device_id": device, "mpxn": None,
        "raised_at": None, "received_at": received_at, "payload": None,
    })  # fmt: skip


class EvidenceDriver(Driver):
    def __init__(self, cluster: Cluster, data_dir: Path, clock: FakeClock | None = None, **settings: Any) -> None:
        super().__init__(cluster, data_dir, clock or FakeClock(NOW), **settings)

    def shadowed(self) -> list[str]:
        return [CODEC.decode("SuppressedAlert", v)["alert"]["alert_id"] for _, v in self.cluster.records(T.shadow)]

    def run(self, seconds: float, step_s: float = 1.0) -> None:
        """Step the loop while `seconds` pass on its clock, `step_s` a step."""
        for _ in range(round(seconds / step_s)):
            self.clock.advance(step_s)
            self.worker.step()

    def held(self) -> list[str]:
        held = [value or b"" for _, value in self.cluster.records(held_topic("loop-test"))]
        envelope = len(b"POAH\x01") + 4 + 8 + 8  # magic, source partition, offset, first read (evidence_holds)
        return [CODEC.decode("DeviceAlert", value[envelope:])["alert_id"] for value in held]


def latencies(driver: EvidenceDriver) -> dict[str, float]:
    """poa_decision_latency_seconds's counts by whether the alert waited for evidence (those counted)."""
    counts = {}
    for family in driver.worker.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "poa_decision_latency_seconds_count" and sample.value:
                counts[sample.labels.get("waited_for_evidence", "false")] = sample.value
    return counts


@pytest.fixture
def activation(cluster: Cluster) -> Cluster:
    """ESME's immediate activation five minutes ago: its window covers now."""
    cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, NOW - 5 * MIN))
    return cluster


@pytest.fixture
def driver(activation: Cluster, tmp_path: Path) -> Iterator[EvidenceDriver]:
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=3600.0)
    yield driver
    driver.worker.close()


def test_an_ad1_in_a_window_waits_on_the_held_topic_without_holding_the_alerts_behind_it(
    driver: EvidenceDriver,
) -> None:
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW - MIN))
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("behind", "8F01", CHF, NOW - MIN + 1))
    driver.until(lambda: driver.forwarded() == ["behind"], "the alert behind the AD1 forwarded")
    driver.until(lambda: driver.alert_offset(0) == 2, "both offsets committed")
    assert driver.held() == ["ad1"] and driver.suppressed() == []
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 read back from the held topic")
    driver.steps(20)
    assert driver.forwarded() == ["behind"] and driver.suppressed() == []
    assert latencies(driver) == {"false": 1}, "the AD1 is not decided yet: its write to the held topic is no decision"

    # Supply evidence from the ESME on the HAN, on the other alert partition, received after the AD1.
    driver.cluster.append(T.alerts, 1, ESME.encode(), alert("restored", "8F35", ESME, NOW + MIN))
    driver.until(lambda: "ad1" in driver.forwarded(), "the AD1 released by the evidence")
    driver.steps(5)
    assert driver.forwarded() == ["behind", "restored", "ad1"] and driver.suppressed() == []
    assert driver.cluster.committed_offset("loop-test", (held_topic("loop-test"), 0)) == 1
    assert driver.metric("poa_alerts_total", decision="forwarded", alert_code="AD1", reason="outage_evidence") == 1
    assert latencies(driver) == {"false": 2, "true": 1}, "the AD1, decided once its evidence was read"
    # Records read: the three alerts under the alert topic, the held AD1 read back under the held topic.
    assert driver.metric("poa_input_records_total", topic=T.alerts) == 3
    assert driver.metric("poa_input_records_total", topic=held_topic("loop-test")) == 1


def test_an_ad1_without_evidence_is_suppressed_once_every_partition_is_read_past_t_plus_a(
    driver: EvidenceDriver,
) -> None:
    t = NOW - MIN
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, t))
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
    for partition in (0, 1):  # four records past t + A on every partition: the frontier corroborates them
        for n in range(4):
            other = alert(f"p{partition}-{n}", "8F01", CHF, t + 3 * MIN + 1 + n)
            driver.cluster.append(T.alerts, partition, CHF.encode(), other)
    driver.until(lambda: driver.suppressed() == ["ad1"], "the AD1 suppressed")
    assert driver.cluster.committed_offset("loop-test", (held_topic("loop-test"), 0)) == 1


BOUND_S = 3 * 60 + 30 + 30  # A + grace + POA_MAX_HOLD_SECONDS with A = 3 min, grace 30 s, max hold 30 s


def test_the_wait_for_evidence_is_bounded_and_ends_in_forwarding(activation: Cluster, tmp_path: Path) -> None:
    """Rule 8: an AD1 whose evidence is still not complete A + grace + POA_MAX_HOLD_SECONDS after it was first
    read is forwarded (`hold_expired`, counted as an evidence wait), and not a second before. Its t is ten
    minutes ahead of the clock, so no end offset looked up by then covers t + A + grace."""
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=30.0)
    try:
        driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW + 10 * MIN))
        driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
        driver.run(BOUND_S - 2)
        assert driver.forwarded() == [] and driver.suppressed() == [], "decided before its bound"
        driver.run(5)  # the bound passed, end offsets looked up after it, the transaction committed
        assert driver.forwarded() == ["ad1"] and driver.suppressed() == []
        driver.steps(5)  # the transaction settles: its decisions are counted
        assert driver.held() == ["ad1"]
        assert driver.metric("poa_alerts_total", decision="forwarded", alert_code="AD1", reason="hold_expired") == 1
        assert driver.metric("poa_holds_expired_total", held_for="evidence") == 1
        assert driver.metric("poa_holds_expired_total", held_for="inputs") == 0
    finally:
        driver.worker.close()


def test_the_bound_of_the_wait_for_evidence_stops_while_no_broker_answers(activation: Cluster, tmp_path: Path) -> None:
    """Forwarding because of an outage would make decisions depend on its length: the bound counts again from
    when a broker answers. The AD1 is dated twenty minutes ahead: its evidence is not complete by the
    wall clock before the end of the test."""
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=30.0)
    try:
        driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW + 20 * MIN))
        driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
        driver.run(60)
        driver.cluster.lookups_answer = False  # nothing answers from here on
        driver.run(1)  # the look-ups answered before that are taken
        driver.worker.watch.on_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        driver.run(10 * 60, step_s=5.0)
        assert driver.forwarded() == [], "forwarded during the outage"
        driver.cluster.answer_lookups()  # the broker is back: the bound counts from now
        driver.run(BOUND_S - 2)
        assert driver.forwarded() == [], "forwarded before a full bound after the outage"
        driver.run(5)  # the bound passed, end offsets looked up after it, the transaction committed
        assert driver.forwarded() == ["ad1"]
    finally:
        driver.worker.close()


def test_alerts_no_window_covers_never_go_to_the_held_topic(driver: EvidenceDriver) -> None:
    other_chf = "00-1B-C5-0C-00-00-00-09"
    driver.cluster.append(T.alerts, 0, other_chf.encode(), alert("outage", "AD1", other_chf, NOW))
    driver.until(lambda: driver.forwarded() == ["outage"], "the AD1 forwarded as read")
    assert driver.held() == []
    assert driver.cluster.committed_offset("loop-test", (held_topic("loop-test"), 0)) == NO_OFFSET


def test_a_held_partition_is_paused_while_many_ad1s_wait_in_memory_and_none_is_lost(
    driver: EvidenceDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AD1s waiting for evidence are kept in memory once read back; beyond the cap their held partition is
    no longer fetched (they wait on the broker), and fetching resumes as they are decided."""
    monkeypatch.setattr("pipeline.worker.alert_reader.MAX_QUEUED_PER_PARTITION", 4)
    t = NOW - MIN
    for n in range(4):
        driver.cluster.append(T.alerts, 0, CHF.encode(), alert(f"ad1-{n}", "AD1", CHF, t + n))
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 4, "four AD1s read back: the cap")
    for n in range(4, 10):
        driver.cluster.append(T.alerts, 0, CHF.encode(), alert(f"ad1-{n}", "AD1", CHF, t + n))
    driver.until(lambda: len(driver.held()) == 10, "the ten AD1s on the held topic")
    driver.steps(20)
    assert driver.worker.triage.held_for_evidence() == 4, "the rest wait on the broker, not in memory"
    # Those on the broker behind the paused held partition are held for evidence too (issue 18.16).
    monkeypatch.setattr("pipeline.worker.housekeeping.GAUGE_INTERVAL_S", 0.0)
    driver.until(lambda: driver.metric("poa_held_alerts_by_reason", reason="evidence") == 10, "ten held")
    for partition in (0, 1):  # every partition read past t + A: the AD1s can be decided
        for n in range(4):
            driver.cluster.append(T.alerts, partition, CHF.encode(), alert(f"p{partition}-{n}", "8F01", CHF,
                                                                          t + 3 * MIN + 100 + n))  # fmt: skip
    driver.until(lambda: len(driver.suppressed()) == 10, "every AD1 read back and suppressed")
    assert sorted(driver.suppressed()) == sorted(f"ad1-{n}" for n in range(10))
    assert driver.cluster.committed_offset("loop-test", (held_topic("loop-test"), 0)) == 10


def test_an_ad1_past_its_bound_after_a_stall_is_decided_on_fresh_end_offsets_not_forwarded(
    activation: Cluster, tmp_path: Path
) -> None:
    """Ten minutes pass without a step (a stall, a restart): the AD1 is past its bound, but its evidence is
    complete (nothing more was written; the wall clock is past t + A + grace). It is decided by the rules on
    end offsets looked up after the bound, not forwarded on the stale ones."""
    driver = EvidenceDriver(activation, tmp_path, max_hold_seconds=30.0)
    try:
        driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW - MIN))
        driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
        driver.steps(5)
        driver.clock.advance(10 * MIN / 1000)  # a stall: no step for ten minutes
        driver.steps(1)
        assert driver.forwarded() == []
        driver.until(lambda: driver.suppressed() == ["ad1"], "the AD1 suppressed on fresh end offsets")
        assert driver.forwarded() == []
    finally:
        driver.worker.close()


def test_an_ad1_whose_inputs_are_stuck_is_forwarded_at_its_bound_and_counted_apart_from_evidence_waits(
    cluster: Cluster, tmp_path: Path
) -> None:
    """poa_holds_expired_total says what a hold_expired AD1 waited for, so ops can tell a stuck input from
    evidence that did not come (two alerts of their own)."""
    cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, NOW - 5 * MIN))
    cluster.slow.add((T.service_requests, 0))  # the activation is never read
    driver = EvidenceDriver(cluster, tmp_path, max_hold_seconds=0.0)
    try:
        driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW - MIN))
        driver.until(lambda: driver.forwarded() == ["ad1"], "the AD1 forwarded at the end of its hold")
        driver.steps(5)
        assert driver.metric("poa_holds_expired_total", held_for="inputs") == 1
        assert driver.metric("poa_holds_expired_total", held_for="evidence") == 0
    finally:
        driver.worker.close()


@pytest.mark.parametrize(
    "value",
    [alert(" ", "8F35", ESME, NOW), alert("restored", "8F35", ESME[:-2] + "ZZ", NOW), b"\xc3\x01junk"],
    ids=["blank-alert-id", "bad-device-id", "undecodable"],
)
def test_invalid_supply_evidence_releases_nothing(driver: EvidenceDriver, value: bytes) -> None:
    """Rule 9.a counts a valid 8F35/8F36 only: a dead-lettered one is no evidence."""
    t = NOW - MIN
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, t))
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 1, "the AD1 held for evidence")
    driver.cluster.append(T.alerts, 1, ESME.encode(), value)
    for partition in (0, 1):
        for n in range(4):
            later = alert(f"p{partition}-{n}", "8F01", CHF, t + 3 * MIN + 1 + n)
            driver.cluster.append(T.alerts, partition, CHF.encode(), later)
    driver.until(lambda: driver.suppressed() == ["ad1"], "the AD1 suppressed")
    assert "ad1" not in driver.forwarded()


HELD_TOPIC = held_topic("loop-test")


def test_supply_evidence_releases_a_held_ad1_at_once_behind_an_undecided_one_and_a_re_read_decides_it_once(
    activation: Cluster, tmp_path: Path
) -> None:
    """Decision record 5: supply evidence releases an AD1 at once, wherever it sits in its held partition. Here
    it sits behind an AD1 dated twenty minutes ahead (undecided for long). The held offset stays at the first
    undecided; a worker that reads the partition again after a crash does not decide the released one twice."""
    first = EvidenceDriver(activation, tmp_path / "first")
    second: EvidenceDriver | None = None
    try:
        activation.append(T.alerts, 0, CHF.encode(), alert("ahead", "AD1", CHF, NOW + 20 * MIN))
        activation.append(T.alerts, 0, CHF.encode(), alert("behind", "AD1", CHF, NOW - MIN))
        first.until(lambda: first.worker.triage.held_for_evidence() == 2, "both AD1s held for evidence")
        activation.append(T.alerts, 1, ESME.encode(), alert("restored", "8F35", ESME, NOW))  # evidence for "behind"
        first.until(lambda: "behind" in first.forwarded(), "the AD1 behind released by the evidence")
        first.steps(5)
        assert first.forwarded() == ["restored", "behind"] and first.suppressed() == []
        offset, metadata = activation.committed_with_metadata("loop-test", (HELD_TOPIC, 0))
        assert offset == 0 and metadata, "committed up to the undecided AD1, the one decided beyond it named"

        # The first worker crashes (it takes no more steps); another reads the held partition again.
        second = EvidenceDriver(activation, tmp_path / "second", clock=first.clock)
        second.until(lambda: second.worker.triage.held_for_evidence() == 1, "only the undecided AD1 held again")
        second.run(24 * 60, step_s=5.0)  # past t + A + grace of the AD1 ahead: its evidence is complete
        assert second.suppressed() == ["ahead"]
        assert second.forwarded() == ["restored", "behind"], "each output once"
        assert activation.committed_with_metadata("loop-test", (HELD_TOPIC, 0)) == (2, "")
    finally:
        first.worker.close()
        if second is not None:
            second.worker.close()


def test_an_ad1_with_an_outlying_time_does_not_hold_up_its_held_partition(driver: EvidenceDriver) -> None:
    """The AD1 behind it is decided once every partition is read past its t + A, not A + grace +
    POA_MAX_HOLD_SECONDS later when the one ahead is forwarded."""
    t = NOW - MIN
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ahead", "AD1", CHF, NOW + 20 * MIN))
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("behind", "AD1", CHF, t))
    driver.until(lambda: driver.worker.triage.held_for_evidence() == 2, "both AD1s held for evidence")
    for partition in (0, 1):  # four records past t + A on every partition: the frontier corroborates them
        for n in range(4):
            driver.cluster.append(T.alerts, partition, CHF.encode(), alert(f"p{partition}-{n}", "8F01", CHF,
                                                                          t + 3 * MIN + 1 + n))  # fmt: skip
    driver.until(lambda: driver.suppressed() == ["behind"], "the AD1 behind suppressed")
    assert driver.worker.triage.held_for_evidence() == 1


def test_in_shadow_mode_an_ad1_in_a_window_reaches_the_dno_at_once_and_its_shadow_record_is_written_once(
    activation: Cluster, tmp_path: Path
) -> None:
    """Contract 8: shadow mode changes nothing a DNO sees. The shadow record waits for the evidence, and a
    failed transaction (the held AD1 read again) writes neither it nor the alert twice."""
    driver = EvidenceDriver(activation, tmp_path, initial_mode="shadow")
    try:
        activation.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", CHF, NOW - MIN))
        driver.until(lambda: driver.forwarded() == ["ad1"], "the AD1 forwarded as read")
        assert driver.held() == ["ad1"] and driver.shadowed() == []
        activation.commit_failures.append(KafkaException(KafkaError(KafkaError._FAIL, "injected failure")))
        driver.run(4 * 60)  # past t + A + grace: no evidence came, the rules suppress it
        assert driver.metric("poa_transactions_total", result="aborted") == 1
        assert driver.shadowed() == ["ad1"] and driver.forwarded() == ["ad1"]
        assert driver.metric("poa_alerts_total", decision="forwarded", alert_code="AD1", reason="shadow") == 1
    finally:
        driver.worker.close()
@pytest.mark.parametrize("max_clock_ahead_seconds", [3600, 3 * 3600])
def test_the_clock_tolerance_setting_holds_for_both_read_frontiers(
    cluster: Cluster, tmp_path: Path, max_clock_ahead_seconds: int
) -> None:
    """POA_MAX_CLOCK_AHEAD_SECONDS (contract 6): records two hours ahead of the wall clock move neither the
    service-request nor the alert partition's clock at the default hour, and both when it is raised."""
    ahead = NOW + 2 * 3600_000
    for n in range(4):
        cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, ahead + n))
        cluster.append(T.alerts, 0, CHF.encode(), alert(f"ahead-{n}", "8F01", CHF, ahead + n))
    driver = EvidenceDriver(cluster, tmp_path, max_clock_ahead_seconds=max_clock_ahead_seconds)
    try:
        driver.until(lambda: driver.worker.evidence.frontier.next_offsets()[(T.alerts, 0)] == 4, "alerts read")
        assert driver.worker.frontier.next_offsets()[(T.service_requests, 0)] == 4
        moved = max_clock_ahead_seconds > 2 * 3600
        assert driver.worker.frontier.clock((T.service_requests, 0)) == (ahead if moved else None)
        assert driver.worker.evidence.frontier.clock((T.alerts, 0)) == (ahead if moved else None)
    finally:
        driver.worker.close()


def test_the_evidence_readers_lag_is_exported_by_alert_partition(
    driver: EvidenceDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18.16: what makes AD1s in windows expire (hold_expired, evidence) is the evidence reader falling
    behind: its records not read, and how far its read clock trails the wall clock, per alert partition."""
    monkeypatch.setattr("pipeline.worker.housekeeping.GAUGE_INTERVAL_S", 0.0)
    monkeypatch.setattr("pipeline.worker.filter_worker.READ_BATCH", 2)  # the readers take two records a step
    for n in range(6):
        driver.cluster.append(T.alerts, 1, CHF.encode(), alert(f"a{n}", "8F01", CHF, NOW - 10 * MIN))
    evidence = driver.worker.evidence.frontier
    driver.until(lambda: evidence.next_offsets()[(T.alerts, 1)] == 2, "two records read for evidence")
    assert driver.metric("poa_evidence_lag_records", partition="1") == 4
    driver.until(lambda: evidence.next_offsets()[(T.alerts, 1)] == 6, "all read")
    driver.steps(1)
    assert driver.metric("poa_evidence_lag_records", partition="1") == 0
    assert driver.metric("poa_evidence_clock_lag_seconds", partition="1") >= 10 * 60
    assert driver.metric("poa_evidence_lag_records", partition="0") == 0


def test_a_backlog_of_held_ad1s_is_decided_in_bulk_each_pass_within_its_budget_each_once(
    driver: EvidenceDriver,
) -> None:
    """Issue 20: tens of thousands of AD1s in a window, read back from the held topic before their evidence is
    complete, become decidable together. They are decided over a few steps, not one a step (each waited for
    an end-offset look-up of its own), and no step decides more than its budget (a pass of the loop stays
    within a batch's worth of work, and the consumer in its group), each AD1 exactly once."""
    t, per_partition = NOW - MIN, 9_000  # nine thousand AD1s on each alert partition, a millisecond apart
    for partition in (0, 1):
        for n in range(per_partition):
            driver.cluster.append(T.alerts, partition, CHF.encode(), alert(f"ad1-{partition}-{n}", "AD1", CHF, t + n))
    total = 2 * per_partition
    driver.until(lambda: driver.worker.triage.held_for_evidence() == total, "every AD1 read back", max_steps=400)
    held_decisions: list[int] = []
    take = driver.worker.triage.take

    def counted() -> Decided:
        decided = take()
        held_decisions.append(sum(decided.evidence_latencies.values()))
        return decided

    driver.worker.triage.take = counted  # type: ignore[method-assign]
    for partition in (0, 1):  # every partition read past t + A: every AD1's evidence is complete
        for n in range(4):
            driver.cluster.append(T.alerts, partition, CHF.encode(), alert(f"p{partition}-{n}", "8F01", CHF,
                                                                          t + 3 * MIN + per_partition + n))  # fmt: skip
    # Meanwhile the backlog goes on: an AD1 no window covers on every step, so that each step has a new batch
    # number that end offsets looked up before it do not cover (storm evidence is final only once they do).
    outside = "00-1B-C5-0C-00-00-00-09"
    for n in range(200):
        if driver.worker.triage.held_for_evidence() == 0:
            break
        later = alert(f"outside-{n}", "AD1", outside, t + 3 * MIN + per_partition + 100 + n)
        driver.cluster.append(T.alerts, n % 2, outside.encode(), later)
        driver.worker.step()
    assert driver.worker.triage.held_for_evidence() == 0, f"{driver.worker.triage.held_for_evidence()} still held"
    driver.steps(5)
    busy = [n for n in held_decisions if n]
    assert max(busy) <= DECISIONS_PER_PASS, f"a step decided {max(busy)} held AD1s, beyond its budget"
    assert len(busy) <= 2 * total // DECISIONS_PER_PASS + 5, f"{len(busy)} steps for {total} AD1s: not in bulk"
    suppressed = driver.suppressed()
    assert len(suppressed) == total and sorted(suppressed) == sorted(
        f"ad1-{p}-{n}" for p in (0, 1) for n in range(per_partition)
    ), "each AD1 decided exactly once"
    committed = [driver.cluster.committed_offset("loop-test", (held_topic("loop-test"), p)) for p in (0, 1)]
    assert sum(max(offset, 0) for offset in committed) == total
