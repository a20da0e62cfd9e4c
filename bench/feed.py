"""Writes the benchmark's input records as the DSP would: `python -m bench.feed PARAMS.json RESULT.json`.

Run as a child process so that producing a million alerts neither bloats nor blocks the orchestrator.
Two jobs: `campaign` (service requests and outcomes, in received_at order) and `backlog` (alerts in
received_at order, each with the decision the contract requires, counted for the final check).
"""

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bench.scenario import AlertFactory, AlertMix, WorldParams, backlog, build_campaign
from pipeline.kafka.batches import produce_when_room
from pipeline.wire.avro_codec import AvroCodec


class CheckedProducer:
    """Throughput-tuned producer that counts failed deliveries: a partial backlog must not pass as full."""

    def __init__(self, bootstrap: str, linger_ms: int = 20) -> None:
        self.failed = 0
        self.first_error: KafkaError | None = None
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": linger_ms,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
            }
        )

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.first_error = self.first_error or err

    def produce(self, topic: str, key: bytes, value: bytes, timestamp: int = 0) -> None:
        produce_when_room(self.producer, topic, value, key, timestamp=timestamp)

    def flush(self) -> None:
        if self.producer.flush(120) != 0 or self.failed:
            raise RuntimeError(f"{self.failed} records not delivered (first error: {self.first_error})")


def produce_campaign(p: dict[str, Any]) -> dict[str, Any]:
    world = WorldParams(**p["world"])
    campaign = build_campaign(world)
    codec = AvroCodec()
    out = CheckedProducer(p["bootstrap"])
    for datum in campaign.requests:
        out.produce(
            p["topics"]["service_requests"], datum["target_device_id"].encode(), codec.encode("ServiceRequest", datum)
        )
    for datum in campaign.outcomes:
        out.produce(
            p["topics"]["activation_outcomes"], datum["device_id"].encode(), codec.encode("ActivationOutcome", datum)
        )
    out.flush()
    pending, active = campaign.windows_at(world.now_ms)
    return {**campaign.counts(), "windows_pending_at_start": pending, "windows_active_at_start": active}


def produce_backlog(p: dict[str, Any]) -> dict[str, Any]:
    world = WorldParams(**p["world"])
    factory = AlertFactory(world, build_campaign(world), AvroCodec(), AlertMix(**p.get("mix", {})), p["seed"])
    out = CheckedProducer(p["bootstrap"])
    started = time.monotonic()
    expected: Counter[str] = Counter()
    topic = p["topic"]
    for key, value, decision in backlog(factory, p["count"], p["first_ms"], p["last_ms"], p["prefix"]):
        out.produce(topic, key, value)
        expected[decision] += 1
    out.flush()
    return {"produced": sum(expected.values()), "expected": dict(expected), "seconds": time.monotonic() - started}


def main() -> None:
    params = json.loads(Path(sys.argv[1]).read_text())
    job = {"campaign": produce_campaign, "backlog": produce_backlog}[params["job"]]
    result = job(params)
    with open(sys.argv[2], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
