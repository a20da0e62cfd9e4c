"""Contract 6 on a replicated cluster (deploy/kafka/cluster.sh: three nodes, replication factor 3,
min.insync.replicas=2 for the filter's topics and the transaction state log): a broker that leads the alert
partitions, or that is the worker's transaction coordinator, is SIGKILLed while alerts flow and then brought
back; every alert still ends in exactly one output exactly once (read_committed), with the decision of an
undisturbed run and, forwarded, its input bytes. The checks are the fault tests' own (fault_tools)."""

import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.kafka import clients, topics
from pipeline.settings import Settings, Topics
from tests.integration.cluster.three_brokers import ThreeBrokers, three_brokers_fixture  # noqa: F401 - a fixture
from tests.integration.fault_tools import StreamWriter, check_exactly_once
from tests.integration.test_faults import decided, prepare, started
from tests.integration.worker_harness import OutputReader, wait_until

pytestmark = pytest.mark.cluster

# Down longer than the controller's broker session timeout (9 s): the node is fenced and its partitions
# led by others, as in a real crash, before it comes back.
DOWN_S = 12
TRANSACTION_LOG = "__transaction_state"  # one partition (deploy/kafka/server.properties): one coordinator


@pytest.fixture
def app(three_brokers: ThreeBrokers, tmp_path: Path) -> Settings:
    """Fresh input topics, replicated on the three nodes, min.insync.replicas=2 (outputs: the worker's)."""
    tag = uuid.uuid4().hex[:10]
    names = Topics(**{name: f"t{tag}.{default}" for name, default in vars(Topics()).items()})
    settings = replace(Settings(), bootstrap_servers=three_brokers.bootstrap, app_id=f"poa-filter-3b-{tag}",
                       data_dir=str(tmp_path / "state"), metrics_port=0, topics=names)
    parts = {names.service_requests: 3, names.activation_outcomes: 2, names.alerts: 3, names.inventory: 3,
             names.tracked_devices: 2}
    config = {name: {"min.insync.replicas": "2",
                     **({"cleanup.policy": "compact"} if name in names.reference_inputs else {})} for name in parts}
    topics.create_topics(clients.admin_client(settings), parts, config, replication_factor=3)
    return settings


def crash_while_alerts_flow(three_brokers: ThreeBrokers, app: Settings, tmp_path: Path, seed: int,
                            victim: str) -> None:
    """~6k alerts written over 40 s; once a fifth are decided, the chosen broker is SIGKILLed, left down
    DOWN_S, and restarted while the DSP keeps writing."""
    stream = prepare(app, homes=2000, seed=seed, bad_every=400)
    worker, reader = started(app, tmp_path), OutputReader(app)
    writer = StreamWriter(app, stream.records, seconds=40)
    try:
        writer.start()
        wait_until(lambda: decided(reader) > stream.alert_count // 5, 120, "a fifth of the alerts decided", worker)
        topic = app.topics.alerts if victim == "alert leader" else TRANSACTION_LOG
        node = three_brokers.leader(topic, 0)
        three_brokers.kill(node)
        decided_at_kill = decided(reader)
        time.sleep(DOWN_S)
        assert three_brokers.leader(topic, 0) not in (node, -1), f"no new leader after the {victim} was killed"
        three_brokers.up(node)
        writer.finish()
        check_exactly_once(reader, stream, worker, timeout=240)
        assert decided_at_kill < stream.alert_count, "the broker died after every alert was decided"
        assert worker.alive()
    finally:
        worker.stop()
        reader.close()


def test_sigkill_the_leader_of_the_alert_partition_while_alerts_flow(
    three_brokers: ThreeBrokers, app: Settings, tmp_path: Path
) -> None:
    crash_while_alerts_flow(three_brokers, app, tmp_path, seed=31, victim="alert leader")


def test_sigkill_the_transaction_coordinator_while_alerts_flow(
    three_brokers: ThreeBrokers, app: Settings, tmp_path: Path
) -> None:
    crash_while_alerts_flow(three_brokers, app, tmp_path, seed=37, victim="transaction coordinator")
