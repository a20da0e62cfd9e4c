"""Contract 6: every alert ends in exactly one output topic, exactly once, across crashes, restarts, broker
restarts and rebalances; state survives restarts and is rebuilt from Kafka when lost.

Each test drives real `poa-filter worker` processes while a DSP keeps writing, disturbs them, and then
checks the read_committed outputs against an undisturbed run: the decisions of the pure core on the whole
input (`Scenario.reference_decisions`) and of the scenario's construction (`intent`), forwarded bytes
identical to the input, bad alerts and bad state records dead-lettered exactly once.

All of them run on a broker of their own (`private_broker`), not on the shared one: one of them stops the
broker, and the others' fault timing (kills at random points, session time-outs) should not depend on what
else the shared broker is doing.
"""

import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.fault_tools import (
    Stream,
    StreamWriter,
    build_stream,
    check_exactly_once,
    drop_from_reference,
    metric,
    split_after_alerts,
    tracked_list,
)
from tests.integration.private_broker import PrivateBroker, private_kafka_fixture  # noqa: F401 - a fixture
from tests.integration.scenario import BASE, HOUR, campaign
from tests.integration.scenario_play import write_reference
from tests.integration.worker_harness import DspProducer, OutputReader, WorkerProcess, wait_until

pytestmark = pytest.mark.broker

# Down this long before `kafka.sh up` starts it again, which takes seconds more: longer than the worker's
# consumer session time-out (10 s), as a real broker restart or outage is.
OUTAGE_PAUSE_S = 8


@pytest.fixture(scope="module")
def broker(private_kafka: PrivateBroker) -> str:
    """Overrides the shared broker for this module: `settings` then creates its topics on the private one."""
    return private_kafka.bootstrap


def prepare(settings: Settings, homes: int, seed: int, bad_every: int, drop_every: int = 0,
            bad_state_every: int = 0) -> Stream:  # fmt: skip
    """A campaign's reference data written; its activation inputs and alerts built, not yet written."""
    # A home every hour from `start`: the campaign ends a month before BASE, well before the wall clock, so its
    # AD1s in windows do not wait the wall-clock bound of rule 7 (decision record 5).
    sc = campaign(homes=homes, seed=seed, start=BASE - homes * HOUR - 30 * 24 * HOUR)
    if drop_every:
        drop_from_reference(sc, drop_every)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    return build_stream(settings.topics, sc, bad_every=bad_every, bad_state_every=bad_state_every)


def started(settings: Settings, tmp_path: Path) -> WorkerProcess:
    worker = WorkerProcess(settings, tmp_path).start()
    worker.wait_ready(120)
    return worker


def decided(reader: OutputReader, seconds: float = 0.05) -> int:
    outputs = reader.poll(seconds)
    return outputs.alert_outputs + len(outputs.dead_letters)


def test_sigkill_at_random_points_while_alerts_flow(settings: Settings, tmp_path: Path) -> None:
    """~21k alerts written over 90 s; the worker is SIGKILLed at seeded random points (every fourth kill
    during its start-up) and restarted at once, at least 12 times and for as long as the DSP writes.
    (Each kill costs a session timeout, 6 s, before the group hands the partitions to the new process.)"""
    rng = random.Random(20260301)
    stream = prepare(settings, homes=7000, seed=5, bad_every=1000, bad_state_every=250)
    worker, reader = started(settings, tmp_path), OutputReader(settings)
    writer = StreamWriter(settings, stream.records, seconds=90)
    kills: list[tuple[str, int]] = []  # (where, alerts decided by then)
    try:
        writer.start()
        while writer.writing or len(kills) < 12:
            if len(kills) % 4 == 3:  # somewhere in start-up: state restore, group join, first transaction
                time.sleep(rng.uniform(0.05, 1.5))
                where = "ready" if worker.ready() else "starting"
            else:
                worker.wait_ready(120)
                time.sleep(rng.uniform(0.05, 1.5))
                where = "running"
            worker.stop(signal.SIGKILL)
            kills.append((where, decided(reader)))
            worker.start()
        writer.finish()
        check_exactly_once(reader, stream, worker)
        in_flow = [n for _, n in kills if n < stream.alert_count]
        assert len(in_flow) >= 10, f"too few kills while alerts were still undecided: {kills}"
    finally:
        worker.stop()
        reader.close()


def test_sigterm_in_the_middle_of_a_batch(settings: Settings, tmp_path: Path) -> None:
    """A backlog of ~45k alerts; SIGTERM as soon as a worker has committed its first alerts, up to four
    times. Each stop must be clean (exit 0, after the batch under way) and lose or double nothing."""
    rng = random.Random(5)
    stream = prepare(settings, homes=15000, seed=23, bad_every=700, bad_state_every=500)
    StreamWriter(settings, stream.records, seconds=0).start().finish()  # a backlog: every read is a full batch
    worker, reader = WorkerProcess(settings, tmp_path), OutputReader(settings)
    interrupted = 0
    try:
        for _ in range(4):
            worker.start()
            # Decisions are counted once committed; the next batch is under way by then.
            wait_until(lambda: metric(worker, "poa_alerts_total") > 0, 60, "the first batch decided", worker)
            time.sleep(rng.uniform(0, 0.1))
            assert worker.stop(signal.SIGTERM) == 0
            assert "stopping after the current batch" in worker.log()
            if decided(reader, 1) >= stream.alert_count:
                break
            interrupted += 1
        assert interrupted >= 2, "the backlog was gone before the SIGTERMs"
        worker.start()
        check_exactly_once(reader, stream, worker)
    finally:
        worker.stop()
        reader.close()


def test_sigterm_while_reading_the_reference_topics_keeps_their_dead_letters(settings: Settings,
                                                                             tmp_path: Path) -> None:
    """Contract 6: a bad record on any input topic goes to the dead-letter topic; a graceful stop must not lose
    it. The bad tracked-list records come first, then a long valid list, so that the worker is still reading
    the reference topics (start-up) when it is stopped. (Bad state records are written once the worker owns
    them, after start-up: those met before the stop are recorded in its local state, or read again.)"""
    topics = settings.topics
    bad = [(topics.tracked_devices, f"AA-00-00-00-00-00-00-{i:02X}".encode(), f"not a tracked device #{i}".encode())
           for i in range(3)]
    StreamWriter(settings, [*bad, *tracked_list(topics, 100_000)], seconds=0).start().finish()
    worker, reader = WorkerProcess(settings, tmp_path).start(), OutputReader(settings)
    try:
        read = f'poa_input_records_total{{topic="{topics.tracked_devices}"}}'
        wait_until(lambda: metric(worker, read) >= 20_000, 60, "a fifth of the tracked list read", worker)
        assert not worker.ready(), "the worker read the whole tracked list before the SIGTERM: make it longer"
        assert worker.stop(signal.SIGTERM) == 0
        worker.start().wait_ready(120)
        outputs = reader.wait_for(lambda o: len(o.dead_letters) >= len(bad), 20, "the dead letters", worker)
        assert Counter(d["value"] for _, d in outputs.dead_letters) == Counter(value for _, _, value in bad)
    finally:
        worker.stop()
        reader.close()


def test_second_worker_joins_and_leaves_under_load(settings: Settings, tmp_path: Path) -> None:
    """A second worker (same POA_APP_ID and POA_DATA_DIR) joins while alerts flow, takes partitions, decides
    some, and leaves with SIGTERM; its partitions go back to the first worker (after the session time-out:
    static members do not leave the group on close)."""
    stream = prepare(settings, homes=3000, seed=17, bad_every=500, bad_state_every=60)
    first, reader = started(settings, tmp_path), OutputReader(settings)
    second = WorkerProcess(settings, tmp_path)  # the same POA_DATA_DIR: it claims the next free state slot
    writer = StreamWriter(settings, stream.records, seconds=25)
    try:
        writer.start()
        wait_until(lambda: decided(reader) > stream.alert_count // 10, 60, "a tenth of the alerts decided", first)
        second.start()
        wait_until(lambda: metric(second, "poa_alerts_total") > 0, 120, "the second worker deciding alerts", second)
        time.sleep(2)
        assert second.stop(signal.SIGTERM) == 0
        writer.finish()
        check_exactly_once(reader, stream, first)
        assert first.alive()
        assert "revoked alert partitions" in first.log_path.read_text()
        slots = sorted(p.name for p in Path(settings.data_dir).iterdir())
        assert slots == [f"{settings.app_id}-0", f"{settings.app_id}-1"]
    finally:
        second.stop()
        first.stop()
        reader.close()


def test_lost_local_state_is_rebuilt_from_kafka(settings: Settings, tmp_path: Path) -> None:
    """All requests, outcomes and reference data (with tombstones) and half the alerts are decided; the worker
    is SIGKILLed and its state folder deleted; the other half of the alerts, written after the restart, must
    be decided on state rebuilt from the topics. The rebuild reads the bad state records again: each is
    still dead-lettered exactly once."""
    topics = settings.topics
    stream = prepare(settings, homes=1500, seed=19, bad_every=300, drop_every=5, bad_state_every=40)
    before, after = split_after_alerts(stream, len(stream.sent) // 2)
    worker, reader = started(settings, tmp_path), OutputReader(settings)
    try:
        StreamWriter(settings, before, seconds=0).start().finish()
        first_half = sum(1 for topic, _, _ in before if topic == topics.alerts)
        wait_until(lambda: decided(reader) >= first_half + len(stream.bad_state), 60,
                   "the first half decided, the bad state records dead-lettered", worker)  # fmt: skip
        worker.stop(signal.SIGKILL)
        shutil.rmtree(settings.data_dir)
        worker.start()
        # Alerts written after the restart, deciding on requests and reference data written before it.
        StreamWriter(settings, after, seconds=3).start().finish()
        check_exactly_once(reader, stream, worker)
        requests = sum(1 for topic, _, _ in before if topic == topics.service_requests)
        assert metric(worker, f'poa_input_records_total{{topic="{topics.service_requests}"}}') == requests
    finally:
        worker.stop()
        reader.close()


def test_broker_restart_under_load(private_kafka: PrivateBroker, settings: Settings, tmp_path: Path) -> None:
    """The broker is stopped cleanly while alerts flow and started again OUTAGE_PAUSE_S later (the outage is
    that plus its start-up, 15-30 s); the same worker process must ride it out and resume."""
    stream = prepare(settings, homes=2500, seed=13, bad_every=400, bad_state_every=60)
    worker, reader = started(settings, tmp_path), OutputReader(settings)
    writer = StreamWriter(settings, stream.records, seconds=20)
    try:
        writer.start()
        wait_until(lambda: decided(reader) > stream.alert_count // 5, 60, "a fifth of the alerts decided", worker)
        private_kafka.down()
        stopped = time.monotonic()
        time.sleep(OUTAGE_PAUSE_S)
        assert worker.alive(), "the worker exited when the broker went away"
        private_kafka.up()
        print(f"broker outage {time.monotonic() - stopped:.1f}s")
        writer.finish(timeout=120)
        # /ready says little here: it stays 200 through an outage. Progress is what counts.
        so_far = decided(reader, 1)
        if so_far < stream.alert_count:
            wait_until(lambda: decided(reader) > so_far, 60, "decisions to resume after the broker restart", worker)
        check_exactly_once(reader, stream, worker)
        assert worker.starts == 1 and worker.alive()
    finally:
        worker.stop()
        reader.close()
