"""Contract 6: start-up rides out a broker outage. Every start-up step (finding the input topics, checking the
output topics, looking up where the reference topics end) waits for the broker, says so on /ready, stops
promptly on SIGTERM, and never exits for it; once the broker is back, the worker finishes starting and decides
by the rules.

On a broker of this module's own (`private_broker`): the tests stop it.
"""

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.kafka import clients
from pipeline.kafka.admin import EndOffsetLookup
from pipeline.settings import Settings
from pipeline.worker.metrics import Readiness
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.startup import StartupSteps
from tests.integration.private_broker import PrivateBroker, private_kafka_fixture  # noqa: F401 - a fixture
from tests.integration.scenario import campaign
from tests.integration.scenario_play import check_decisions, write_live, write_reference
from tests.integration.worker_harness import DspProducer, OutputReader, WorkerProcess, wait_until

pytestmark = pytest.mark.broker

OLD_END_OFFSET_WAIT_S = 30  # how long the end-offset wait lasted before it raised (and the worker exited)


@pytest.fixture(scope="module")
def broker(private_kafka: PrivateBroker) -> str:
    """Overrides the shared broker for this module: `settings` then creates its topics on the private one."""
    return private_kafka.bootstrap


def ready_text(worker: WorkerProcess) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=2) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return ""


def test_worker_started_while_the_broker_is_down_waits_and_then_decides(
    private_kafka: PrivateBroker, settings: Settings, tmp_path: Path
) -> None:
    sc = campaign(homes=30, seed=5)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    private_kafka.down()
    worker = WorkerProcess(settings, tmp_path).start()
    reader: OutputReader | None = None
    try:
        wait_until(lambda: "no Kafka broker reachable" in ready_text(worker), 60, "/ready to name the outage", worker)
        time.sleep(5)
        assert worker.alive() and not worker.ready()
        private_kafka.up()
        worker.wait_ready(120)
        reader = OutputReader(settings)
        check_decisions(reader, sc, write_live(DspProducer(settings), sc), worker)
        assert worker.starts == 1 and worker.alive()
    finally:
        private_kafka.up()  # idempotent: the next test needs it
        worker.stop()
        if reader is not None:
            reader.close()
    assert "no Kafka broker reachable" in worker.log_path.read_text()


def steps_for(settings: Settings, stopping: threading.Event) -> tuple[StartupSteps, Readiness]:
    readiness, admin = Readiness(), clients.admin_client(settings)
    permissions = PermissionWatch(readiness, settings, admin, f"{settings.app_id}-tx")
    return StartupSteps(admin, readiness, permissions, stopping.is_set), readiness


def test_each_start_up_step_waits_out_an_outage_longer_than_the_old_time_out(
    private_kafka: PrivateBroker, settings: Settings
) -> None:
    """Output-topic check and end-offset look-up with the broker gone for longer than the end-offset wait used
    to last: both wait, name the outage on /ready, and finish once the broker is back. (Before, the output
    check raised at once and the end-offset wait raised TimeoutError after 30 s: the worker exited.)"""
    t = settings.topics
    steps, readiness = steps_for(settings, threading.Event())
    results: dict[str, object] = {}

    def start_up() -> None:
        steps.output_topics(t.outputs, 3, [t.alerts])
        results["ends"] = steps.end_offsets(
            EndOffsetLookup(lambda: clients.admin_client(settings)), [(t.inventory, p) for p in range(3)]
        )

    private_kafka.down()
    try:
        starting = threading.Thread(target=start_up, daemon=True)
        starting.start()
        time.sleep(OLD_END_OFFSET_WAIT_S + 5)
        assert starting.is_alive(), "a start-up step gave up while the broker was down"
        ready, reason = readiness.status()
        assert not ready and reason.startswith("no Kafka broker reachable (checking the output topics)")
    finally:
        private_kafka.up()
    starting.join(120)
    assert not starting.is_alive()
    assert results["ends"] == {(t.inventory, p): 0 for p in range(3)}


def test_sigterm_ends_a_start_up_wait_promptly(private_kafka: PrivateBroker, settings: Settings) -> None:
    stopping = threading.Event()
    steps, _ = steps_for(settings, stopping)
    outcome: list[BaseException] = []

    def find() -> None:
        try:
            steps.input_topics([settings.topics.alerts])
        except InterruptedError as exc:
            outcome.append(exc)

    private_kafka.down()
    try:
        finding = threading.Thread(target=find, daemon=True)
        finding.start()
        time.sleep(3)
        stopping.set()
        finding.join(15)  # a metadata look-up in flight (5 s) and a back-off step
        assert not finding.is_alive() and len(outcome) == 1
    finally:
        private_kafka.up()
