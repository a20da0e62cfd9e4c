"""Decision latency at a fixed offered load: `python -m bench.latency PARAMS.json RESULT.json`.

Two child processes, so neither the paced producer nor the clock-stamping consumer shares an
interpreter (and a GIL) with the other or with the orchestrator:
- `send`: a DSP producer paced to R alerts/s; each alert's received_at is the wall clock at send
  time (so the worker's event time is the wall clock, as live) and its produce timestamp is recorded,
  with the alert's class (AD1 or not, in a window or not);
- `receive`: a DNO consumer (read_committed) on the three output topics, which stamps the wall clock
  when each output becomes readable and records the output's CreateTime (the worker's produce call).
Latency, end to end, is receive time minus send time: DSP produce -> broker -> worker -> transaction
committed -> visible to a read_committed consumer. Same host, same clock.
"""

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition

from bench.kafka_ops import settings_for
from bench.scenario import SUPPRESS, AlertFactory, AlertMix, WorldParams, alert_id_of, build_campaign
from pipeline.kafka import clients
from pipeline.kafka.batches import next_batch
from pipeline.wire.avro_codec import AvroCodec

# A DSP sending alerts one by one as they happen: each is sent within a millisecond.
PACED_PRODUCER_TUNING: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 1,
    "compression.type": "lz4",
}


def send(p: dict[str, Any]) -> dict[str, Any]:
    world = WorldParams(**p["world"])
    factory = AlertFactory(world, build_campaign(world), AvroCodec(), AlertMix(**p.get("mix", {})), p["seed"])
    producer = clients.producer(settings_for(p["bootstrap"]), PACED_PRODUCER_TUNING)
    rate, total, prefix, topic = p["rate"], int(p["rate"] * p["duration"]), p["prefix"], p["topic"]
    sent_at = np.full(total, math.nan)
    suppress = np.zeros(total, dtype=bool)
    ad1 = np.zeros(total, dtype=bool)
    t0 = time.time() + 0.2
    sent = 0
    while sent < total:
        now = time.time()
        due = min(total, int((now - t0) * rate) + 1)
        for seq in range(sent, due):
            alert = factory.make(f"{prefix}{seq:08d}", int(now * 1000))
            stamp = time.time()
            producer.produce(topic, alert.value, alert.key, timestamp=int(stamp * 1000))
            sent_at[seq] = stamp
            suppress[seq] = alert.expected == SUPPRESS
            ad1[seq] = alert.code == "AD1"
        sent = max(sent, due)
        producer.poll(0)
        wait = t0 + sent / rate - time.time()
        if wait > 0:
            time.sleep(min(wait, 0.002))
    if producer.flush(60) != 0:
        raise RuntimeError("paced alerts left undelivered")
    np.savez(p["arrays"], sent_at=sent_at, suppress=suppress, ad1=ad1)
    Path(p["done_file"]).write_text(str(total))
    return {
        "sent": total,
        "seconds": float(np.nanmax(sent_at) - np.nanmin(sent_at)),
        "expected_suppressed": int(suppress.sum()),
    }


def receive(p: dict[str, Any]) -> dict[str, Any]:
    consumer = clients.consumer(
        settings_for(p["bootstrap"]),
        f"{p['prefix']}latency",
        clients.ASSIGNED_READER_TUNING,
        **{"fetch.wait.max.ms": 5, "enable.partition.eof": False},  # outputs stamped as soon as readable
    )
    assignment = []
    topics: list[str] = p["topics"]
    for topic in topics:
        for part in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            assignment.append(TopicPartition(topic, part, high))
    consumer.assign(assignment)
    consumer.consume(1, 0.5)  # the fetch sessions are set up before the sender starts
    Path(p["ready_file"]).write_text("ready")
    capacity, prefix = p["capacity"], p["prefix"].encode()
    received_at = np.full(capacity, math.nan)
    created_at = np.full(capacity, math.nan)
    kind = np.full(capacity, -1, dtype=np.int8)
    duplicates = others = 0
    done_file = Path(p["done_file"])
    expected: int | None = None
    done_seen = 0.0
    count = 0
    deadline = time.time() + p["timeout"]
    while time.time() < deadline:
        messages = next_batch(consumer, 1000, 0.05)  # returns as soon as one output is readable
        now = time.time()
        for m in messages:
            value = m.value()
            if m.error() is not None or not value:
                continue
            alert_id = alert_id_of(value)
            if not alert_id.startswith(prefix):
                others += 1
                continue
            seq = int(alert_id[len(prefix) :])
            if kind[seq] >= 0:
                duplicates += 1
                continue
            received_at[seq] = now
            created_at[seq] = m.timestamp()[1] / 1000
            kind[seq] = topics.index(m.topic())  # type: ignore[arg-type]
            count += 1
        if expected is None and done_file.exists():
            expected, done_seen = int(done_file.read_text()), now
        if expected is not None and (count >= expected or now - done_seen > p["grace"]):
            break
    consumer.close()
    np.savez(p["arrays"], received_at=received_at, created_at=created_at, kind=kind)
    return {"received": count, "duplicates": duplicates, "other_records": others}


def main() -> None:
    params = json.loads(Path(sys.argv[1]).read_text())
    result = {"send": send, "receive": receive}[params["job"]](params)
    with open(sys.argv[2], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
