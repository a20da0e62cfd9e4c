"""The ceiling: a raw confluent-kafka pass-through of the alert topic, `python -m bench.passthrough P.json R.json`.

It consumes exactly as the worker does (the worker's consumer settings and batch reads) and produces the
same bytes to another topic with the worker's producer settings; in `txn` mode one Kafka
transaction per batch carries the outputs and the consumer offsets (what exactly-once costs), in
`plain` mode records are produced without transactions and flushed at the end. No decoding, no state:
whatever the worker does beyond this is its own overhead.

With `follow`, it starts at the end of the topic and copies live traffic until a stop file appears: the
latency phase runs the same paced load through it, for a latency floor measured in the same conditions.
"""

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.kafka_ops import settings_for
from pipeline.kafka import clients
from pipeline.kafka.batches import next_batch, produce_when_room
from pipeline.worker.filter_worker import ALERT_WAIT_S, READ_BATCH


def run(p: dict[str, Any], on_read: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Copy `expect` records; `on_read(copied so far, batch size)` hears of each batch as soon as it is read."""
    txn = p["mode"] == "txn"
    settings = settings_for(p["bootstrap"])
    consumer = clients.consumer(settings, p["group"], clients.ALERT_CONSUMER_TUNING)
    producer = clients.producer(
        settings, clients.TRANSACTIONAL_PRODUCER_TUNING, **({"transactional.id": f"{p['group']}-tx"} if txn else {})
    )
    if txn:
        producer.init_transactions(30)
    assigned: list[float] = []

    def on_assign(c: Consumer, parts: list[TopicPartition]) -> None:
        if p.get("follow"):  # start exactly at the current end: every record written after this is copied
            for tp in parts:
                tp.offset = c.get_watermark_offsets(tp, timeout=10)[1]
            c.assign(parts)
        assigned.append(time.monotonic())

    consumer.subscribe([p["source"]], on_assign=on_assign)
    started = time.monotonic()
    deadline = started + p["timeout"]
    expect, target = p["expect"], p["target"]
    if p.get("follow"):
        while not assigned:
            if time.monotonic() > deadline:
                raise TimeoutError("pass-through was not assigned its partitions in time")
            consumer.consume(100, 0.1)
        Path(p["ready_file"]).write_text("ready")
        stop_file = Path(p["stop_file"])
    count = 0
    first_at: float | None = None
    checkpoints: list[tuple[float, int]] = []
    cpu0 = _cpu()
    while count < expect:
        if p.get("follow") and stop_file.exists():
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"pass-through copied {count} of {expect} records in {p['timeout']} s")
        # Read as the worker's loop reads: no latency the worker does not have.
        messages = [m for m in next_batch(consumer, READ_BATCH, ALERT_WAIT_S) if m.error() is None]
        if not messages:
            continue
        if on_read is not None:
            on_read(count, len(messages))
        if first_at is None:
            first_at = time.monotonic()
        if txn:
            producer.begin_transaction()
        last: dict[int, int] = {}
        for m in messages:
            produce_when_room(producer, target, m.value(), m.key(), poll_s=0.01)
            last[m.partition()] = m.offset()  # type: ignore[index,assignment]
        if txn:
            offsets = [TopicPartition(p["source"], part, off + 1) for part, off in last.items()]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        else:
            producer.poll(0)
        count += len(messages)
        checkpoints.append((time.monotonic(), count))
    if producer.flush(60) != 0:
        raise RuntimeError("pass-through records left undelivered")
    done_at = time.monotonic()
    checkpoints.append((done_at, count))
    cpu = _cpu() - cpu0
    consumer.close()
    first_at = first_at or done_at
    return {
        "mode": p["mode"],
        "records": count,
        "startup_s": (assigned[0] if assigned else first_at) - started,
        "first_to_done_s": done_at - first_at,
        "rate": count / (done_at - first_at) if done_at > first_at else 0.0,
        "checkpoints": [(t - first_at, n) for t, n in checkpoints],
        "cpu_s": cpu,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    params = json.loads(Path(sys.argv[1]).read_text())
    with open(sys.argv[2], "w") as handle:
        json.dump(run(params), handle)


if __name__ == "__main__":
    main()
