"""Operator modes in the worker's loop (contract 8), over the stand-in cluster: the mode in force now on
/ready and in the metrics, with upcoming changes apart, and a mode change never missed for an AD1 read after
it was written, though its transaction's markers are still on their way."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.core.explanation import iso_utc
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.wire.control_records import CONTROL_KEY, encode_schedule
from tests.unit.worker.kafka_stand_ins import Cluster
from tests.unit.worker.test_worker_loop import CHF, CODEC, ESME, MIN, Driver, R, T, alert, one_home, service_request

HOUR = 60 * MIN


@pytest.fixture
def cluster() -> Cluster:
    cluster = one_home()
    cluster.append(T.service_requests, 0, ESME.encode(), service_request(ESME, R))
    return cluster


@pytest.fixture
def driver(cluster: Cluster, tmp_path: Path) -> Iterator[Driver]:
    driver = Driver(cluster, tmp_path)
    yield driver
    driver.worker.close()


def write_schedule(cluster: Cluster, *changes: tuple[Mode, int]) -> int:
    """What `poa-filter mode` writes: the whole schedule under key `mode`; its offset."""
    schedule = ModeSchedule.of(Mode.FILTER, [ModeChange(m, at, "test", "ops", i) for i, (m, at) in enumerate(changes)])
    return cluster.append(T.control, 0, CONTROL_KEY, encode_schedule(CODEC, schedule, T.control))


def ready_lines(driver: Driver) -> list[str]:
    return driver.worker.readiness.status()[1].split("\n")


def test_ready_and_the_metric_show_the_mode_in_force_now_and_upcoming_changes_apart(driver: Driver) -> None:
    """Shadow in force, the go-live scheduled for later: shadow is shown until the go-live's time comes."""
    now = driver.clock.wall_ms()
    go_live = now + HOUR
    write_schedule(driver.cluster, (Mode.SHADOW, now - HOUR), (Mode.FILTER, go_live))
    driver.until(lambda: any(line.startswith("mode: shadow") for line in ready_lines(driver)), "the schedule read")
    assert f"mode: shadow since {iso_utc(now - HOUR)} (set by ops)" in ready_lines(driver)
    assert f"upcoming mode change: filter from {iso_utc(go_live)} (set by ops)" in ready_lines(driver)
    assert (driver.metric("poa_mode", mode="shadow"), driver.metric("poa_mode", mode="filter")) == (1, 0)
    assert driver.metric("poa_mode_next_change_timestamp_seconds", mode="filter") == go_live / 1000

    driver.clock.advance(HOUR / 1000)  # the go-live's time has come
    driver.steps(1)
    assert f"mode: filter since {iso_utc(go_live)} (set by ops)" in ready_lines(driver)
    assert not any(line.startswith("upcoming") for line in ready_lines(driver))
    assert (driver.metric("poa_mode", mode="shadow"), driver.metric("poa_mode", mode="filter")) == (0, 1)
    assert driver.metric("poa_mode_next_change_timestamp_seconds", mode="filter") == 0  # no series


def test_a_mode_change_written_before_an_ad1_is_not_missed_while_its_commit_is_not_yet_visible(
    driver: Driver,
) -> None:
    """Pass-through from R; then filter again from R + 10 min, committed before the AD1 at R + 11 min is
    written, but its transaction's markers not yet written: a read_committed look-up still ends before it."""
    write_schedule(driver.cluster, (Mode.PASS_THROUGH, R))
    driver.until(lambda: driver.worker.state_feed.schedule.mode_at(R) is Mode.PASS_THROUGH, "pass-through read")
    write_schedule(driver.cluster, (Mode.PASS_THROUGH, R), (Mode.FILTER, R + 10 * MIN))
    driver.cluster.marker_lag[(T.control, 0)] = 1
    driver.cluster.append(T.alerts, 0, CHF.encode(), alert("ad1", "AD1", R + 11 * MIN))
    driver.steps(30)
    assert driver.forwarded() == [], "decided under pass-through: the change was missed"

    driver.cluster.marker_lag.clear()  # the markers are written: the change is read, then the AD1 decided
    driver.until(lambda: driver.suppressed() == ["ad1"], "the AD1 suppressed in filter mode")
    assert driver.forwarded() == []
