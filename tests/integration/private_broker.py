"""A Kafka broker of the fault tests' own, started with the project's `deploy/kafka/kafka.sh`.

The shared test broker (127.0.0.1:9092) is never stopped or restarted by a test: other tests and other
people use it. Tests that stop the broker, and tests whose timing must not depend on other load on the
shared one, use this broker instead: its own ports (picked free at start), its own data dir (under the
pytest tmp dir, jars fetched there by Maven on first use), stopped when the module is done.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from tests.integration.worker_harness import free_port

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
START_ATTEMPTS = 3  # the free ports are picked before the broker binds them; another process may win the race


class StoppableBroker(Protocol):
    def down(self) -> None: ...


Broker = TypeVar("Broker", bound=StoppableBroker)


def running(broker: Broker) -> Iterator[Broker]:
    """A fixture's body for a broker of its own: hands out the started broker, brings it down at the end."""
    try:
        yield broker
    finally:
        broker.down()


class PrivateBroker:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = self.controller_port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _kafka_sh(self, command: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(self.data_dir),
        )
        return subprocess.run(
            ["bash", str(KAFKA_SH), command], env=env, capture_output=True, text=True, timeout=timeout
        )

    def _run(self, command: str) -> None:
        result = self._kafka_sh(command)
        if result.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed ({result.returncode}):\n{result.stderr[-3000:]}")

    def start(self) -> "PrivateBroker":
        """First start: free ports, jars, storage. Later starts keep the ports (clients reconnect to them)."""
        for attempt in range(START_ATTEMPTS):
            self.port, self.controller_port = free_port(), free_port()
            result = self._kafka_sh("up")
            if result.returncode == 0:
                return self
            if "already in use" not in result.stderr or attempt == START_ATTEMPTS - 1:
                raise RuntimeError(f"kafka.sh up failed ({result.returncode}):\n{result.stderr[-3000:]}")
        raise AssertionError("unreachable")

    def up(self) -> None:
        self._run("up")

    def down(self) -> None:
        self._run("down")

    def restart(self) -> None:
        self._run("restart")


@pytest.fixture(scope="module", name="private_kafka")
def private_kafka_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker for this test module alone; import this fixture into the module that needs it."""
    yield from running(PrivateBroker(tmp_path_factory.mktemp("private-kafka")).start())
