"""Drives a real `poa-filter worker` process through real topics, like a DSP producer and a DNO consumer."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from pipeline.kafka import clients
from pipeline.settings import Settings
from pipeline.wire.avro_codec import AvroCodec

CODEC = AvroCodec()
POA_FILTER = str(Path(sys.executable).parent / "poa-filter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(settings: Settings, **overrides: str) -> dict[str, str]:
    t = settings.topics
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "POA_APP_ID": settings.app_id,
            "POA_DATA_DIR": settings.data_dir,
            "POA_TOPIC_SERVICE_REQUESTS": t.service_requests,
            "POA_TOPIC_ACTIVATION_OUTCOMES": t.activation_outcomes,
            "POA_TOPIC_ALERTS": t.alerts,
            "POA_TOPIC_INVENTORY": t.inventory,
            "POA_TOPIC_TRACKED_DEVICES": t.tracked_devices,
            "POA_TOPIC_DNO_ALERTS": t.dno_alerts,
            "POA_TOPIC_SUPPRESSED": t.suppressed,
            "POA_TOPIC_DEAD_LETTER": t.dead_letter,
            "POA_TOPIC_CONTROL": t.control,
            "POA_TOPIC_SHADOW": t.shadow,
        }
    )
    env.update(overrides)
    return env


class WorkerProcess:
    def __init__(self, settings: Settings, log_dir: Path, **env: str) -> None:
        self.settings = settings
        self.port = free_port()
        self.explain_port = free_port()  # the local listener for /explain without a token (127.0.0.1 alone)
        self.env = worker_env(settings, POA_METRICS_PORT=str(self.port), POA_EXPLAIN_PORT=str(self.explain_port),
                              **env)  # fmt: skip
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> "WorkerProcess":
        self.starts += 1
        self.log_path = self.log_dir / f"worker-{self.port}-{self.starts}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([POA_FILTER, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self.ready, timeout, "worker ready", alive=self)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except (OSError, AttributeError):
            return ""


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, alive: WorkerProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if alive is not None and alive.proc is not None and not alive.alive():
            raise AssertionError(
                f"worker exited ({alive.proc.returncode}) while waiting for {what}; its log ends:\n{alive.log()}"
            )
        time.sleep(0.1)
    tail = f"; worker log ends:\n{alive.log()}" if alive is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")


# The DSP's producer in tests: idempotent (a broker restart must not reorder or duplicate its input).
DSP_PRODUCER_TUNING: dict[str, Any] = {"linger.ms": 5, "acks": "all", "enable.idempotence": True}


class DspProducer:
    """Writes input records as the DSP would: Avro single-object values, device ID keys."""

    def __init__(self, settings: Settings) -> None:
        self.topics = settings.topics
        self.producer = clients.producer(settings, DSP_PRODUCER_TUNING)

    def send(self, topic: str, key: str | bytes | None, value: bytes | None) -> None:
        self.producer.produce(topic, value, key.encode() if isinstance(key, str) else key)

    def record(self, topic: str, key: str, record_name: str, datum: dict[str, Any]) -> None:
        self.send(topic, key, CODEC.encode(record_name, datum))

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "records were not delivered"

    def tracked_esme_on(self, chf: str, esme: str, at: int, tracked_key: str | None = None) -> None:
        """The reference data of one HAN: the ESME's inventory record on CH Function `chf`, and the ESME on
        the tracked list (keyed `tracked_key`, by default its own ID as written), then flushed."""
        t = self.topics
        self.record(t.inventory, esme, "InventoryRecord",
                    {"device_id": esme, "device_type": "ESME", "chf_id": chf, "mpxn": None, "updated_at": at})
        key = esme if tracked_key is None else tracked_key
        self.record(t.tracked_devices, key, "TrackedDevice",
                    {"device_id": key, "manufacturer": None, "model": None, "firmware_version": None,
                     "list_version": None, "added_at": at})  # fmt: skip
        self.flush()


@dataclass
class Outputs:
    """Everything on the three output topics, read_committed, as a DNO and an auditor would read it."""

    forwarded: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    suppressed: list[tuple[bytes | None, dict[str, Any]]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, dict[str, Any]]] = field(default_factory=list)

    def forwarded_ids(self) -> list[str]:
        return [CODEC.decode("DeviceAlert", v)["alert_id"] for _, v in self.forwarded]

    def suppressed_ids(self) -> list[str]:
        return [s["alert"]["alert_id"] for _, s in self.suppressed]

    def alert_dead_letters(self, alerts_topic: str) -> list[dict[str, Any]]:
        return [d for _, d in self.dead_letters if d["source_topic"] == alerts_topic]

    @property
    def alert_outputs(self) -> int:
        return len(self.forwarded) + len(self.suppressed)


class OutputReader:
    def __init__(self, settings: Settings) -> None:
        self.topics = settings.topics
        self.consumer = clients.consumer(
            settings, "test-output-reader", clients.ASSIGNED_READER_TUNING, **{"enable.partition.eof": False}
        )
        self.outputs = Outputs()
        self._assigned = False

    def _assign(self) -> None:
        parts = []
        metadata = self.consumer.list_topics(timeout=10).topics
        for topic in self.topics.outputs:
            if topic not in metadata or not metadata[topic].partitions:
                return
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata[topic].partitions]
        self.consumer.assign(parts)
        self._assigned = True

    def poll(self, seconds: float = 0.5) -> Outputs:
        if not self._assigned:
            self._assign()
            if not self._assigned:
                time.sleep(seconds)
                return self.outputs
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(10_000, 0.1):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    continue
                topic, value = msg.topic(), msg.value()
                assert value is not None, f"a null value on {topic}"
                if topic == self.topics.dno_alerts:
                    self.outputs.forwarded.append((msg.key(), value))
                elif topic == self.topics.suppressed:
                    self.outputs.suppressed.append((msg.key(), CODEC.decode("SuppressedAlert", msg.value())))
                else:
                    self.outputs.dead_letters.append((msg.key(), CODEC.decode("DeadLetter", msg.value())))
        return self.outputs

    def wait_for(self, predicate: Callable[[Outputs], bool], timeout: float, what: str,
                 worker: WorkerProcess | None = None) -> Outputs:
        wait_until(lambda: predicate(self.poll(0.3)), timeout, what, alive=worker)
        self.poll(1.0)  # anything extra (duplicates) that arrives just after
        return self.outputs

    def close(self) -> None:
        self.consumer.close()


def ids(items: Iterable[str]) -> list[str]:
    return sorted(items)
