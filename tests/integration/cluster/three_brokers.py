"""The project's three-node cluster (`deploy/kafka/cluster.sh`) for one test module: free ports, its own data
dir, nodes killed and restarted by node id, stopped when the module is done."""

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.kafka import clients
from pipeline.settings import Settings
from tests.integration.worker_harness import free_port

CLUSTER_SH = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "cluster.sh"
START_ATTEMPTS = 3  # free ports are picked before the brokers bind them; another process may win the race


class ThreeBrokers:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports: list[int] = []
        self.controller_ports: list[int] = []

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def script(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            KAFKA_CLUSTER_PORTS=",".join(map(str, self.ports)),
            KAFKA_CLUSTER_CONTROLLER_PORTS=",".join(map(str, self.controller_ports)),
            KAFKA_CLUSTER_DATA_DIR=str(self.data_dir),
        )
        return subprocess.run(["bash", str(CLUSTER_SH), *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    def _run(self, *args: str) -> None:
        result = self.script(*args)
        if result.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")

    def start(self) -> "ThreeBrokers":
        for attempt in range(START_ATTEMPTS):
            self.ports = [free_port() for _ in range(3)]
            self.controller_ports = [free_port() for _ in range(3)]
            result = self.script("up")
            if result.returncode == 0:
                return self
            self.script("down")
            if "already in use" not in result.stderr or attempt == START_ATTEMPTS - 1:
                raise RuntimeError(f"cluster.sh up failed ({result.returncode}):\n{result.stderr[-3000:]}")
        raise AssertionError("unreachable")

    def kill(self, node: int) -> None:
        """SIGKILL: a crash, no clean shutdown, no leadership handed over."""
        self._run("kill", str(node))

    def up(self, node: int) -> None:
        self._run("up", str(node))

    def down(self) -> None:
        self._run("down")

    def leader(self, topic: str, partition: int) -> int:
        """The node id leading a partition (-1 while it has none)."""
        admin = clients.admin_client(replace(Settings(), bootstrap_servers=self.bootstrap))
        metadata = admin.list_topics(topic, timeout=10)
        return metadata.topics[topic].partitions[partition].leader


@pytest.fixture(scope="module", name="three_brokers")
def three_brokers_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeBrokers]:
    cluster = ThreeBrokers(tmp_path_factory.mktemp("three-brokers")).start()
    try:
        yield cluster
    finally:
        cluster.down()
