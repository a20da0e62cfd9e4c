"""Writes the benchmark's input records as the DSP would: `python -m bench.feed PARAMS.json RESULT.json`.

Run as a child process so that producing a million alerts neither bloats nor blocks the orchestrator.
Two jobs: `campaign` (service requests and outcomes, in received_at order) and `backlog` (alerts in
received_at order, each with the decision the contract requires, counted for the final check; Avro records, or
with `"format": "duis"` DUIS documents).
"""

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.kafka_ops import settings_for
from bench.scenario import AlertFactory, AlertMix, WorldParams, backlog, build_campaign
from pipeline.tools.bulk_producer import BulkProducer
from pipeline.wire.avro_codec import AvroCodec


def produce_campaign(p: dict[str, Any]) -> dict[str, Any]:
    world = WorldParams(**p["world"])
    campaign = build_campaign(world)
    codec = AvroCodec()
    out = BulkProducer(settings_for(p["bootstrap"]), client_id="bench-feed")
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
    duis = p.get("format") == "duis"  # DUIS documents, stamped with their received_at (contract 9)
    mix = AlertMix(**p.get("mix", {}))
    factory = AlertFactory(world, build_campaign(world), AvroCodec(), mix, p["seed"], duis=duis)
    out = BulkProducer(settings_for(p["bootstrap"]), client_id="bench-feed")
    started = time.monotonic()
    expected: Counter[str] = Counter()
    topic = p["topic"]
    for alert in backlog(factory, p["count"], p["first_ms"], p["last_ms"], p["prefix"]):
        out.produce(topic, alert.key, alert.value, alert.received_at if duis else None)
        expected[alert.expected] += 1
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
