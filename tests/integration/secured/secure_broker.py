"""The project's secured broker (`deploy/kafka/secure-kafka.sh`) for one test module: its own free ports and
data dir, SCRAM and mutual-TLS listeners, ACLs enforced, stopped when the module is done."""

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.kafka import clients, topics
from pipeline.settings import Settings, Topics
from tests.integration.worker_harness import free_port

SECURE_KAFKA_SH = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "secure-kafka.sh"
START_ATTEMPTS = 3  # free ports are picked before the broker binds them; another process may win the race


class SecureBroker:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = self.mtls_port = self.controller_port = 0

    @property
    def bootstrap(self) -> str:
        """The SASL_SSL (SCRAM-SHA-512) listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    def client_config(self, user: str, mtls: bool = False) -> Path:
        """The librdkafka properties file the script wrote for `user` (admin, worker, loader)."""
        return self.data_dir / "clients" / f"{user}{'-mtls' if mtls else ''}.properties"

    def password(self, user: str) -> str:
        return (self.data_dir / "security" / f"{user}.password").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.data_dir / "security" / "ca.pem"

    def settings(self, user: str, mtls: bool = False) -> Settings:
        return replace(
            Settings(),
            bootstrap_servers=self.mtls_bootstrap if mtls else self.bootstrap,
            client_config_file=str(self.client_config(user, mtls)),
        )

    def script(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            KAFKA_SECURE_PORT=str(self.port),
            KAFKA_MTLS_PORT=str(self.mtls_port),
            KAFKA_SECURE_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_SECURE_DATA_DIR=str(self.data_dir),
        )
        return subprocess.run(
            ["bash", str(SECURE_KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> "SecureBroker":
        for attempt in range(START_ATTEMPTS):
            self.port, self.mtls_port, self.controller_port = free_port(), free_port(), free_port()
            result = self.script("up")
            if result.returncode == 0:
                return self
            if "already in use" not in result.stderr or attempt == START_ATTEMPTS - 1:
                raise RuntimeError(f"secure-kafka.sh up failed ({result.returncode}):\n{result.stderr[-3000:]}")
        raise AssertionError("unreachable")

    def acls(self, *args: str) -> str:
        """Kafka's AclCommand as the admin (`secure-kafka.sh acls ...`)."""
        result = self.script("acls", *args, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"acls {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.stdout

    def down(self) -> None:
        result = self.script("down")
        if result.returncode != 0:
            raise RuntimeError(f"secure-kafka.sh down failed:\n{result.stderr[-3000:]}")


@pytest.fixture(scope="module", name="secure_kafka")
def secure_kafka_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    kafka = SecureBroker(tmp_path_factory.mktemp("secure-kafka")).start()
    try:
        yield kafka
    finally:
        kafka.down()


def create_topics(admin_settings: Settings, names: dict[str, int], compacted: Sequence[str] = ()) -> None:
    """As the admin: the DSP's topics (and outputs, when the DSP pre-creates them)."""
    topics.create_topics(clients.admin_client(admin_settings), names,
                         {name: {"cleanup.policy": "compact"} for name in compacted})


def fresh_topics(tag: str) -> Topics:
    return Topics(**{name: f"t{tag}.{default}" for name, default in vars(Topics()).items()})
