"""CPU cost of each step the worker does per record, in isolation: `python -m bench.microbench`.

Why: the end-to-end figures say how fast the worker is; this says where a 20 us/alert budget (50,000
alerts/s on one core) goes, without Kafka or other processes in the way. Times are process CPU time
(`time.process_time`), so they hold on a busy machine too. It drives the pipeline's own classes (codec,
validators, FilterState on RocksDB, StateFeed, metrics), so it follows their changes; it is a diagnostic,
not part of `make bench`.
"""

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from bench.scenario import AlertFactory, AlertMix, WorldParams, build_campaign, chf_of, esme_of
from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Suppress
from pipeline.core.filter_state import FilterState, SweepPass
from pipeline.core.key_value import StagedStore
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest
from pipeline.settings import Settings, Topics
from pipeline.wire import validation
from pipeline.wire.alert_bytes import read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import fast_alerts, messages
from pipeline.wire.output_records import audit_fields, suppressed_alert
from pipeline.worker.evidence_reader import EvidenceReader
from pipeline.worker.filter_worker import READ_BATCH as EVIDENCE_BATCH
from pipeline.worker.hold_queues import read_alert
from pipeline.worker.metrics import Readiness, WorkerMetrics
from pipeline.worker.permissions import PermissionWatch
from pipeline.worker.rocks_store import RocksBackend
from pipeline.worker.state_feed import StateFeed

MINUTE_MS = 60_000
SWEEP_SLICE = 200  # keys per sweep slice, as the worker's SWEEP_SLICE
COMMIT_EVERY = 20_000  # staged keys per RocksDB write batch while loading (the worker's bootstrap has none)


def per_op(fn: Callable[[int], object], n: int) -> float:
    """Microseconds of CPU per call of fn(i), i in range(n)."""
    started = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - started) / n * 1e6


class _Batches:
    """A consumer handing out the alerts in batches of EVIDENCE_BATCH, spread over 12 partitions."""

    def __init__(self, values: list[bytes]) -> None:
        messages = [
            Message(topic="dsp.alerts", partition=i % 12, offset=i // 12, value=v) for i, v in enumerate(values)
        ]
        self.batches = [messages[i : i + EVIDENCE_BATCH] for i in range(0, len(messages), EVIDENCE_BATCH)][::-1]

    def incremental_assign(self, partitions: object) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop() if self.batches else []


def evidence_read_us(values: list[bytes], codec: AvroCodec, state: FilterState) -> float:
    """CPU us per alert of EvidenceReader.read (batch size as the worker's) through a stand-in consumer."""
    batches = _Batches(values)
    permissions = PermissionWatch(Readiness(WorkerMetrics().ready), Settings(), None, "bench")  # type: ignore[arg-type]
    reader = EvidenceReader(
        "dsp.alerts", lambda: batches, None, state, codec, EvidencePolicy(), 30_000, permissions  # type: ignore[arg-type,return-value]
    )  # fmt: skip
    reader.start(12)
    started = time.process_time()
    while reader.read(EVIDENCE_BATCH):
        pass
    spent = time.process_time() - started
    state.commit()
    return spent / len(values) * 1e6


def storm_lookup_us(sector_homes: int, lookups: int) -> dict[str, float]:
    """CPU us per storm look-up (rule 9.b, `FilterState.evidence_for`, RocksDB) for an AD1 in a window, in one
    postcode sector of `sector_homes` homes (a GB sector is about 2,500): with no AD1s kept, with a campaign in
    the sector (a tenth of its homes activated over 30 minutes, each raising an AD1 in its window, and two AD1s
    outside any window: K - 1), and with a storm besides (a fifth of the other homes raising AD1s outside windows).
    """
    policy = EvidencePolicy()
    t0 = int(time.time() * 1000) - 120 * MINUTE_MS
    campaign = list(range(0, sector_homes, 10))
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="poa-microbench-storm-") as folder:
        backend = RocksBackend(Path(folder) / "state")
        state = FilterState(StagedStore(backend), WindowPolicy())
        for h in range(sector_homes):
            chf, esme = chf_of(h), esme_of(h)
            postcode = f"SW1A 1{h % 26 + 65:c}{h % 23 + 65:c}"
            state.put_inventory(chf, InventoryRecord(chf, "CHF", None, None, t0, postcode))
            state.put_inventory(esme, InventoryRecord(esme, "ESME", chf, "1", t0, None))
            state.put_tracked(esme, True)
        activated = {h: t0 + k * 30 * MINUTE_MS // len(campaign) for k, h in enumerate(campaign)}
        for h, r in activated.items():
            state.apply_service_request(ServiceRequest(f"bench-{h}", "11.3", esme_of(h), None, None, r))
        state.commit()
        targets = [DeviceAlert(f"ad1-{h}", "AD1", chf_of(h), None, None, r + MINUTE_MS, None)
                   for h, r in activated.items()]  # fmt: skip
        assert all(isinstance(state.decide(a), Suppress) for a in targets)

        def measure(name: str) -> None:
            out[name] = per_op(lambda i: state.evidence_for(targets[i % len(targets)], policy), lookups)

        measure(f"storm look-up, {sector_homes:,}-home sector, no AD1s kept (RocksDB)")
        for a in targets:
            state.put_evidence_alert(a)
        outside = [h for h in range(sector_homes) if h not in activated]
        for h in outside[:2]:
            state.put_evidence_alert(DeviceAlert(f"out-{h}", "AD1", chf_of(h), None, None, t0 + 15 * MINUTE_MS, None))
        state.commit()
        assert all(state.evidence_for(a, policy) is None for a in targets[len(targets) // 3 : len(targets) // 2])
        measure(f"storm look-up, {sector_homes:,}-home sector, a campaign in it (RocksDB)")

        def after_a_change(i: int) -> object:
            """Verdicts remembered from the look-ups before are forgotten: each judges the span's AD1s again."""
            state.put_tracked("bench-untracked", i % 2 == 0)
            return state.evidence_for(targets[i], policy)

        name = f"storm look-up, {sector_homes:,}-home sector, a campaign, a rule 5 input changed before each"
        out[name] = per_op(after_a_change, min(lookups, len(targets)))
        for k, h in enumerate(outside[2::5]):
            at = t0 + k * 30 * MINUTE_MS // len(outside[2::5])
            state.put_evidence_alert(DeviceAlert(f"storm-{h}", "AD1", chf_of(h), None, None, at, None))
        state.commit()
        measure(f"storm look-up, {sector_homes:,}-home sector, a campaign and a storm (RocksDB)")
        backend.close()
    return out


def run(homes: int, campaign_size: int, n: int) -> dict[str, Any]:
    codec = AvroCodec()
    topics = Topics()
    world = WorldParams(homes, homes // 10, campaign_size, int(time.time() * 1000), 1)
    campaign = build_campaign(world)
    out: dict[str, Any] = {"homes": homes, "campaign": campaign_size, "us_per_op": {}}
    us = out["us_per_op"]
    with tempfile.TemporaryDirectory(prefix="poa-microbench-") as folder:
        backend = RocksBackend(Path(folder) / "state")
        store = StagedStore(backend)
        state = FilterState(store, WindowPolicy())
        feed = StateFeed(topics, codec, state)
        now = world.now_ms

        def tracked_value(h: int) -> bytes:
            return codec.encode(
                "TrackedDevice",
                {
                    "device_id": esme_of(h),
                    "manufacturer": "L+G",
                    "model": "E470",
                    "firmware_version": "5.3",
                    "list_version": "1",
                    "added_at": now,
                },
            )

        def inventory_values(h: int) -> list[tuple[bytes, bytes]]:
            chf = chf_of(h)
            return [
                (
                    chf.encode(),
                    codec.encode(
                        "InventoryRecord",
                        {"device_id": chf, "device_type": "CHF", "chf_id": None, "mpxn": None, "updated_at": now},
                    ),
                ),
                (
                    esme_of(h).encode(),
                    codec.encode(
                        "InventoryRecord",
                        {"device_id": esme_of(h), "device_type": "ESME", "chf_id": chf, "mpxn": "1", "updated_at": now},
                    ),
                ),
            ]

        def apply_all(kind: str, count: int) -> float:
            """CPU us per record applied through StateFeed, encoding excluded, committed in batches."""
            spent = 0.0
            for start in range(0, count, COMMIT_EVERY):
                block = range(start, min(count, start + COMMIT_EVERY))
                if kind == "tracked":
                    records = [(esme_of(h).encode(), tracked_value(h)) for h in block]
                    topic = topics.tracked_devices
                else:
                    records = [kv for h in block for kv in inventory_values(h)]
                    topic = topics.inventory
                started = time.process_time()
                for key, value in records:
                    feed.apply(topic, key, value)
                state.commit()
                spent += time.process_time() - started
            return spent / (count if kind == "tracked" else 2 * count) * 1e6

        us["state: apply tracked-list record"] = apply_all("tracked", homes)
        us["state: apply inventory record"] = apply_all("inventory", homes + homes // 10)
        requests = [codec.encode("ServiceRequest", d) for d in campaign.requests]
        outcomes = [codec.encode("ActivationOutcome", d) for d in campaign.outcomes]
        us["state: apply service request"] = per_op(
            lambda i: feed.apply(topics.service_requests, None, requests[i]), len(requests)
        )
        us["state: apply activation outcome"] = per_op(
            lambda i: feed.apply(topics.activation_outcomes, None, outcomes[i]), len(outcomes)
        )
        state.commit()

        factory = AlertFactory(world, campaign, codec, AlertMix(), "microbench")
        t = now - 60 * 60_000
        values = [factory.make(f"M{i:08d}", t + i) for i in range(n)]
        ad1_in = [v for _k, v, e, _c, _t in values if e == "suppress"]
        alerts = [validation.device_alert(codec.decode("DeviceAlert", v)) for _k, v, _e, _c, _t in values]
        other = [a for a in alerts if a.alert_code != "AD1"]
        ad1_out = [
            a for a, made in zip(alerts, values, strict=True) if a.alert_code == "AD1" and made.expected != "suppress"
        ]
        ad1_hit = [validation.device_alert(codec.decode("DeviceAlert", v)) for v in ad1_in]
        raw = [v for _k, v, _e, _c, _t in values]
        datums = [codec.decode("DeviceAlert", v) for v in raw]
        us["alert: AvroCodec.decode"] = per_op(lambda i: codec.decode("DeviceAlert", raw[i]), n)
        us["alert: validate (validation.device_alert)"] = per_op(lambda i: validation.device_alert(datums[i]), n)
        us["alert: read_alert (decode + validate + queue item)"] = per_op(
            lambda i: read_alert(codec, 0, i, b"k", raw[i], i, 0.0, timestamp=None), n
        )
        header = codec.single_object_header("DeviceAlert")
        us["alert: alert_wire.read_alert_fields (the worker's path)"] = per_op(
            lambda i: read_alert_fields(raw[i], header), n
        )
        # Every worker reads every alert for rule 9's evidence: EvidenceReader.read itself, over 12 partitions.
        us["evidence: read an alert for evidence (every worker, every alert)"] = evidence_read_us(raw, codec, state)
        # The same mix as DUIS documents (contract 9): each reader alone, and the worker's input path.
        duis_factory = AlertFactory(world, campaign, codec, AlertMix(), "microbench", duis=True)
        duis = [duis_factory.make(f"D{i:08d}", t + i) for i in range(n)]
        us["DUIS alert: strict reader (lxml parse and walk)"] = per_op(
            lambda i: messages.read_device_alert(duis[i].value, duis[i].received_at), n
        )
        us["DUIS alert: fast reader (declines to the strict one)"] = per_op(
            lambda i: fast_alerts.read_device_alert(duis[i].value, duis[i].received_at), n
        )
        us["DUIS alert: read_alert (the worker's path: read, validate, queue item)"] = per_op(
            lambda i: read_alert(codec, 0, i, b"k", duis[i].value, i, 0.0, timestamp=duis[i].received_at), n
        )
        us["decide: not AD1"] = per_op(lambda i: state.decide(other[i % len(other)]), n)
        us["decide: AD1 outside any window (RocksDB)"] = per_op(
            lambda i: state.decide(ad1_out[i % len(ad1_out)]), len(ad1_out)
        )
        us["decide: AD1 inside a window (RocksDB)"] = per_op(
            lambda i: state.decide(ad1_hit[i % len(ad1_hit)]), len(ad1_hit)
        )
        us["evidence: look for supply evidence for an AD1 in a window (RocksDB)"] = per_op(
            lambda i: state.evidence_for(ad1_hit[i % len(ad1_hit)], EvidencePolicy()), len(ad1_hit)
        )
        decisions = [state.decide(a) for a in ad1_hit]
        hit_datums = [codec.decode("DeviceAlert", v) for v in ad1_in]
        suppressed = [(d, s) for d, s in zip(hit_datums, decisions, strict=True) if isinstance(s, Suppress)]
        us["encode SuppressedAlert (audit record)"] = per_op(
            lambda i: codec.encode("SuppressedAlert", suppressed_alert(*suppressed[i % len(suppressed)])), n // 10
        )
        audit_header = codec.header("SuppressedAlert")
        hit_values = [v for v, s in zip(ad1_in, decisions, strict=True) if isinstance(s, Suppress)]
        bodies = [v[len(header) :] for v in hit_values]
        us["splice SuppressedAlert (alert_wire, the worker's path)"] = per_op(
            lambda i: suppressed_alert_bytes(
                audit_header, bodies[i % len(bodies)], audit_fields(suppressed[i % len(suppressed)][1])
            ),
            n // 10,
        )
        metrics = WorkerMetrics()
        us["metrics: alerts.labels(...).inc()"] = per_op(
            lambda i: metrics.alerts.labels("forwarded", "8F36", "not_ad1").inc(), n
        )
        # A whole housekeeping pass, in the worker's slices.
        sweep = SweepPass(now, 2 * 86_400_000)
        slices, started = 1, time.process_time()
        while not state.sweep_some(sweep, SWEEP_SLICE):
            slices += 1
        out["sweep_ms"] = round((time.process_time() - started) * 1000, 1)
        out["sweep_slice_ms"] = round(out["sweep_ms"] / slices, 2)
        backend.close()
    mix = AlertMix()
    # The worker's path: every alert read by alert_wire; non-AD1s forwarded as read, AD1s
    # decided against the state, suppressed ones spliced; metrics are counted per batch, not per alert.
    per_alert = (
        us["alert: alert_wire.read_alert_fields (the worker's path)"]
        + mix.ad1_outside * us["decide: AD1 outside any window (RocksDB)"]
        + mix.ad1_in_window
        * (us["decide: AD1 inside a window (RocksDB)"] + us["splice SuppressedAlert (alert_wire, the worker's path)"])
    )
    out["per_alert_us_for_the_bench_mix"] = round(per_alert, 2)
    out["max_alerts_per_s_one_core_before_kafka"] = round(1e6 / per_alert)
    out["us_per_op"] = {k: round(v, 2) for k, v in us.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--homes", type=int, default=200_000, help="tracked homes in the RocksDB state")
    parser.add_argument("--campaign", type=int, default=40_000, help="activations (for decide and the sweep)")
    parser.add_argument("--alerts", type=int, default=50_000, help="alerts per measurement")
    parser.add_argument("--sector-homes", type=int, default=2_500, help="homes in the storm look-ups' sector")
    parser.add_argument("--storm-only", action="store_true", help="measure the storm look-ups alone")
    parser.add_argument("--out", default="bench-results/microbench.json")
    args = parser.parse_args()
    storm = storm_lookup_us(args.sector_homes, 500)
    result = {"us_per_op": {}} if args.storm_only else run(args.homes, args.campaign, args.alerts)
    result["us_per_op"].update({k: round(v, 2) for k, v in storm.items()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    width = max(len(k) for k in result["us_per_op"])
    for name, value in result["us_per_op"].items():
        print(f"{name.ljust(width)}  {value:8.2f} us")
    if args.storm_only:
        return
    print(f"{'FilterState.sweep_some, one whole pass'.ljust(width)}  {result['sweep_ms']:8.1f} ms")
    print(f"{'  in slices of 200 keys'.ljust(width)}  {result['sweep_slice_ms']:8.2f} ms per slice")
    print(
        f"per alert for the bench mix (no Kafka): {result['per_alert_us_for_the_bench_mix']} us "
        f"-> at most {result['max_alerts_per_s_one_core_before_kafka']:,} alerts/s on one core"
    )


if __name__ == "__main__":
    main()
