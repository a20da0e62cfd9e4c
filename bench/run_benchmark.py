"""`make bench`: poa-filter's throughput, latency, bulk-load and recovery figures on a real broker (issue 3).

One run, in this order, each phase bounded by a timeout and recorded even when a later one fails:
 1. world: a tracked list and inventory (CSV), a firmware campaign, per-run topics;
 2. bulk load through the real loaders (`poa-filter load-tracked` / `load-inventory`);
 3. the campaign's service requests and outcomes onto their topics;
 4. worker ready times: first start (state built from Kafka), restart with local state, restart after
    the state folder was deleted (issue 4's recovery figures);
 5. a backlog of alerts written while no worker runs;
 6. the ceiling: a raw confluent-kafka pass-through of that backlog, transactional and plain, and the
    latency floor: the same paced 5,000 alerts/s through the transactional pass-through;
 7. one worker drains the backlog (sustained rate from its committed offsets; optionally profiled);
 8. decision latency at paced offered loads (1,000, 5,000, 10,000 alerts/s), end to end;
 9. two worker processes drain a second backlog of the same size (scaling);
10. every output read back read_committed: each alert exactly once, the expected suppressions;
11. evidence-latency (bench/evidence_latency.py): 5,000 alerts/s through the worker of the last revision
    without contract rule 9 and through the current one, alternated, latencies split by alert class;
12. DUIS (contract 9, before 10): a backlog of the same size and mix as DUIS documents, drained by one worker,
    against the Avro drain of the same run.
`--only evidence-latency` runs 1 to 3 and 11 alone; `--only duis` runs 1 to 3, 5, 7, 12 and 10; `--only drain`
runs 1 to 3, 5 to 7 (without the latency floor) and 10: the backlog with its campaign against the raw pass-through.
Peak RSS of every worker process is sampled throughout. Results: bench-results/results.json and
chart.png, and a summary table on stdout. Topics are named per run and deleted afterwards.
"""

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench import gb_estate, kafka_ops, latency_classes, profiling, report
from bench.evidence_latency import QUICK_A_MINUTES, QUICK_GRACE_S, EvidenceLatencyPhase
from bench.latency_classes import WARMUP_S
from bench.procs import POA_FILTER, Children, Worker, run_json_tool, run_tool, worker_env
from bench.scenario import HOUR_MS, WorldParams, write_csvs
from pipeline.kafka.topics import create_topics
from pipeline.settings import Settings, Topics
from pipeline.worker.evidence_holds import held_topic

MB = 1024 * 1024
EVIDENCE_LATENCY = "evidence-latency"  # the phases `--only` can pick
DUIS = "duis"
DRAIN = "drain"


@dataclass(frozen=True)
class Scale:
    tracked: int
    untracked: int
    campaign: int
    backlog: int
    rates: tuple[int, ...]
    latency_main_s: float  # duration at 5,000/s, the headline load
    latency_other_s: float
    alert_partitions: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Scale":
        tracked = args.tracked if args.tracked is not None else (50_000 if args.quick else 1_500_000)
        backlog = args.backlog if args.backlog is not None else (100_000 if args.quick else 1_000_000)
        return cls(
            tracked=tracked,
            untracked=tracked // 10,
            campaign=min(40_000, max(1_000, tracked // 10)),
            backlog=backlog,
            rates=tuple(args.rates),
            latency_main_s=6.0 if args.quick else 30.0,
            latency_other_s=4.0 if args.quick else 15.0,
            alert_partitions=args.alert_partitions,
        )


@dataclass(frozen=True)
class PacedRun:
    """One paced run: what the sender and the receiver reported, and their per-alert arrays (npz files)."""

    sender: dict[str, Any]
    received: dict[str, Any]
    arrays: dict[str, Path]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale = Scale.from_args(args)
        self.bootstrap: str = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        self.out = Path(args.out).resolve()
        self.work = self.out / "work"
        self.logs = self.work / "logs"
        self.tag = f"bench-{datetime.now(UTC):%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
        self.topics = {f.name: f"{self.tag}.{f.default}" for f in fields(Topics)}
        self.app_id = f"{self.tag}-filter"
        self.state_dir = self.work / "state"
        self.children = Children()
        self.started = time.monotonic()
        self.results: dict[str, Any] = {"errors": [], "phases": {}}
        self.workers: list[Worker] = []
        self.live_worker: Worker | None = None
        self.sent: dict[str, int] = {}  # alerts written, by phase
        self.expected_suppressed: dict[str, int] = {}
        self.mix = {"ad1_in_window": args.ad1_in_window, "ad1_outside": args.ad1_outside}

    # --- plumbing -----------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", flush=True)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times a phase and records its failure without stopping the run (later phases check what they need)."""
        self.say(f"== {name} (load average {os.getloadavg()[0]:.1f})")
        psutil.cpu_percent()
        started = time.monotonic()
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and the run goes on
            self.say(f"!! {name} failed: {exc}")
            self.results["errors"].append(
                {"phase": name, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
            )
        finally:
            self.results["phases"][name] = {
                "seconds": round(time.monotonic() - started, 1),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "machine_cpu_pct": psutil.cpu_percent(),
            }

    def failed(self, *phases: str) -> bool:
        return any(e["phase"] in phases for e in self.results["errors"])

    def worker(self, name: str) -> Worker:
        env = worker_env(self.bootstrap, self.app_id, self.state_dir, self.topics)
        if self.args.quick:  # AD1s in windows wait A + grace live (rule 9): shortened, as in the evidence phase
            env["POA_EVIDENCE_AFTER_MINUTES"] = str(QUICK_A_MINUTES)
            env["POA_EVIDENCE_GRACE_SECONDS"] = str(QUICK_GRACE_S)
        w = Worker(self.children, env, self.logs, name)
        self.workers.append(w)
        return w

    @property
    def evidence_wait_s(self) -> float:
        """How long, live, an AD1 in a window waits for its evidence (A + grace) in this run's workers."""
        if self.args.quick:
            return QUICK_A_MINUTES * 60 + QUICK_GRACE_S
        s = Settings()
        return s.evidence_after_minutes * 60 + s.evidence_grace_seconds

    def stop_worker(self, w: Worker) -> float:
        seconds = w.stop()
        self._record_rss(w)
        return seconds

    def _record_rss(self, w: Worker) -> None:
        peaks = self.results.setdefault("rss", {"by_process_mb": {}})
        if w.rss is not None:
            peaks["by_process_mb"][w.log_path.stem] = round(w.rss.peak / MB, 1)
            peaks["peak_mb"] = max(peaks["by_process_mb"].values())

    # --- the run ------------------------------------------------------------------------------------

    def run(self) -> int:
        kafka_ops.check_broker(self.bootstrap)
        if self.args.profile and not Path(profiling.PY_SPY).exists():
            raise SystemExit(f"--profile needs py-spy: {Path(sys.executable).parent / 'pip'} install py-spy")
        if self.work.exists():
            shutil.rmtree(self.work)
        self.logs.mkdir(parents=True)
        self.results["run"] = self._run_info()
        self.say(f"run {self.tag} on {self.bootstrap}: {asdict(self.scale)}")
        self.say(
            f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, a busy loop gets "
            f"{self.results['run']['cpu_share_available_at_start']:.0%} of a core"
        )
        try:
            with self.phase("setup"):
                self.setup()
            if not self.failed("setup"):
                self.body()
        finally:
            self.children.stop_all()
            for w in self.workers:
                self._record_rss(w)
            with self.phase("clean-up"):
                self.cleanup()
            self.results["run"]["total_s"] = round(time.monotonic() - self.started, 1)
            self.results["run"]["cpu_share_available_at_end"] = _cpu_share()
            changed = _pipeline_hash() != self.results["run"]["pipeline_sha256_at_start"]
            self.results["run"]["pipeline_changed_during_run"] = changed
            if changed:
                self.say("!! pipeline/*.py changed during the run: workers started at different times ran other code")
            self.write()
        return 1 if self.results["errors"] else 0

    def body(self) -> None:
        with self.phase("bulk load"):
            self.bulk_load()
        with self.phase("campaign"):
            self.campaign()
        if self.failed("bulk load", "campaign"):
            return
        if self.args.only in (None, DUIS, DRAIN):
            self.throughput_phases(duis_only=self.args.only == DUIS, drain_only=self.args.only == DRAIN)
        if self.args.only in (None, EVIDENCE_LATENCY) and not self.args.skip_evidence_latency:
            with self.phase(EVIDENCE_LATENCY):
                self.results["evidence_latency"] = EvidenceLatencyPhase(self).run()

    def throughput_phases(self, duis_only: bool = False, drain_only: bool = False) -> None:
        """Every phase but the evidence latency; with `duis_only` (`--only duis`), the backlog drained by one
        worker as Avro records, then the same mix as DUIS documents, and the outputs checked; with `drain_only`
        (`--only drain`), the backlog against the raw pass-through of the same run, and the outputs checked."""
        if not (duis_only or drain_only):
            with self.phase("ready times"):
                self.ready_times()
        with self.phase("backlog"):
            self.backlog()
        if self.failed("backlog"):
            return
        if not duis_only:
            with self.phase("pass-through"):
                self.passthrough(latency_floor=not drain_only)
        with self.phase("drain, 1 worker"):
            self.drain_one()
        if self.live_worker is not None:
            if not (duis_only or drain_only):
                with self.phase("latency"):
                    self.latency()
            self.stop_worker(self.live_worker)
            self.live_worker = None
        if not (duis_only or drain_only or self.args.skip_scaling):
            with self.phase("drain, 2 workers"):
                self.drain_two()
        if duis_only or not (drain_only or self.args.skip_duis):
            with self.phase("drain DUIS, 1 worker"):
                self.drain_duis()
        with self.phase("settle AD1s held for evidence"):
            self.settle_held()
        with self.phase("verify outputs"):
            self.verify()

    def settle_held(self) -> None:
        """AD1s in windows wait on the held topic until their evidence is complete (rule 9; live, A + grace
        after their time), so the last ones of the runs above may still be there: a worker runs until the
        group has committed every held AD1, so that every alert is out when the outputs are checked."""
        topic = held_topic(self.app_id)
        waiting = kafka_ops.uncommitted_records(self.bootstrap, self.app_id, topic)
        if not waiting:
            self.say("  no AD1s left waiting for evidence")
            return
        w = self.worker("worker-7-settle")
        try:
            w.start()
            w.wait_ready(120 + self.scale.tracked / 4_000)
            began = time.monotonic()
            deadline = began + self.evidence_wait_s + Settings().max_hold_seconds + 120
            while kafka_ops.uncommitted_records(self.bootstrap, self.app_id, topic):
                if time.monotonic() > deadline or not w.alive():
                    raise RuntimeError(f"AD1s still on {topic} after {time.monotonic() - began:.0f} s")
                time.sleep(2)
            self.say(f"  {waiting:,} held AD1s decided in {time.monotonic() - began:.0f} s")
        finally:
            self.stop_worker(w)

    def _run_info(self) -> dict[str, Any]:
        import confluent_kafka

        def git(*args: str) -> str:
            try:
                return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                return ""

        return {
            "tag": self.tag,
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "bootstrap": self.bootstrap,
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "python": platform.python_version(),
            "confluent_kafka": confluent_kafka.__version__,
            "librdkafka": confluent_kafka.libversion()[0],
            "git_commit": git("rev-parse", "--short", "HEAD"),
            "pipeline_uncommitted_changes": bool(git("status", "--porcelain", "pipeline")),
            "pipeline_sha256_at_start": _pipeline_hash(),
            "quick": self.args.quick,
            "profiled": self.args.profile,
            "scale": asdict(self.scale),
            "alert_mix": self.mix,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "cpu_share_available_at_start": _cpu_share(),
        }

    # --- phases -------------------------------------------------------------------------------------

    def setup(self) -> None:
        s = self.scale
        self.world = WorldParams(s.tracked, s.untracked, s.campaign, int(time.time() * 1000), self.args.seed)
        compacted = {"cleanup.policy": "compact"}
        t = self.topics
        create_topics(
            kafka_ops.admin(self.bootstrap),
            {
                t["service_requests"]: 3,
                t["activation_outcomes"]: 2,
                t["alerts"]: s.alert_partitions,
                t["inventory"]: 3,
                t["tracked_devices"]: 3,
                f"{self.tag}.passthrough-txn": s.alert_partitions,
                f"{self.tag}.passthrough-plain": s.alert_partitions,
                f"{self.tag}.passthrough-live-in": s.alert_partitions,
                f"{self.tag}.passthrough-live-out": s.alert_partitions,
            },
            {t["inventory"]: compacted, t["tracked_devices"]: compacted},
        )
        started = time.monotonic()
        self.tracked_csv, self.inventory_csv, tracked_rows, inventory_rows = write_csvs(self.world, self.work / "csv")
        self.results["world"] = {
            "tracked_rows": tracked_rows,
            "inventory_rows": inventory_rows,
            "csv_mb": round((self.tracked_csv.stat().st_size + self.inventory_csv.stat().st_size) / MB, 1),
            "csv_write_s": round(time.monotonic() - started, 1),
            "topics": self.topics,
        }

    def bulk_load(self) -> None:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "POA_TOPIC_TRACKED_DEVICES": self.topics["tracked_devices"],
            "POA_TOPIC_INVENTORY": self.topics["inventory"],
        }
        client = kafka_ops.admin(self.bootstrap)
        out: dict[str, Any] = {}
        for kind, path, topic, rows in (
            ("tracked", self.tracked_csv, self.topics["tracked_devices"], self.results["world"]["tracked_rows"]),
            ("inventory", self.inventory_csv, self.topics["inventory"], self.results["world"]["inventory_rows"]),
        ):
            log = self.logs / f"load-{kind}.log"
            self.say(f"poa-filter load-{kind} ({rows:,} rows)")
            cpu0 = _children_cpu()
            code, seconds = run_tool(
                self.children, [POA_FILTER, f"load-{kind}", str(path)], log, timeout=120 + rows / 2_000, env=env
            )
            cpu = _children_cpu() - cpu0  # the loader and its worker processes, all reaped by now
            on_topic = sum(kafka_ops.end_offsets(client, topic).values())
            out[kind] = {
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "cpu_s": round(cpu, 1),
                "cpu_us_per_row": round(1e6 * cpu / rows, 1),
                "exit_code": code,
                "records_on_topic": on_topic,
                "loader_summary": log.read_text(errors="replace").strip().splitlines()[-3:],
            }
            self.say(f"  {kind}: {seconds:.1f} s, {rows / seconds:,.0f} rows/s, exit {code}")
            if code != 0 or on_topic != rows:
                raise RuntimeError(f"load-{kind} exited {code} with {on_topic} of {rows} records on {topic}")
        out["total_s"] = round(out["tracked"]["seconds"] + out["inventory"]["seconds"], 2)
        self.results["load"] = out

    def campaign(self) -> None:
        self.results["campaign"] = run_json_tool(
            self.children,
            "bench.feed",
            {"job": "campaign", "bootstrap": self.bootstrap, "world": self.world.to_json(), "topics": self.topics},
            self.work,
            "campaign",
            timeout=300,
        )
        self.say(f"  {self.results['campaign']}")

    def wait_state_read(self, w: Worker, timeout: float = 120) -> None:
        """Until the worker has read every service request and outcome (from its /metrics counters)."""
        want = self.results["campaign"]["service_requests"] + self.results["campaign"]["activation_outcomes"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                w.ready()
                and _read_count(w.metrics(), (self.topics["service_requests"], self.topics["activation_outcomes"]))
                >= want
            ):
                return
            time.sleep(0.5)

    def ready_times(self) -> None:
        ready: dict[str, Any] = {}
        self.results["ready"] = ready
        self._time_ready(ready, "first_start", "worker-1-first-start", "first start (state built from Kafka)")
        self._time_ready(ready, "restart_local", "worker-2-restart-local-state", "restart with local state", False)
        if self.args.skip_rebuild:
            return
        shutil.rmtree(self.state_dir)
        self._time_ready(ready, "rebuild", "worker-3-state-deleted", "restart after deleting the state folder")

    def _time_ready(self, ready: dict[str, Any], key: str, name: str, what: str, from_kafka: bool = True) -> None:
        """Start a worker and time it to ready (with its CPU, when it reads its state from Kafka), then stop it."""
        w = self.worker(name).start()
        ready[f"{key}_s"] = round(w.wait_ready(120 + self.scale.tracked / 4_000), 2)
        if from_kafka:
            ready[f"{key}_cpu_s"] = w.cpu_seconds()
        self.say(f"  {what}: ready in {ready[f'{key}_s']} s")
        if from_kafka:
            self.wait_state_read(w)
        ready[f"{key}_stop_s"] = round(self.stop_worker(w), 2)

    def _produce_backlog(self, name: str, prefix: str, duis: bool = False) -> dict[str, Any]:
        now = self.world.now_ms
        result = run_json_tool(
            self.children,
            "bench.feed",
            {
                "job": "backlog",
                "bootstrap": self.bootstrap,
                "world": self.world.to_json(),
                "topic": self.topics["alerts"],
                "count": self.scale.backlog,
                "first_ms": now - 2 * HOUR_MS,
                # every AD1's evidence complete by the records and the wall clock: the drain is decided at once
                "last_ms": now - 60_000 - int(self.evidence_wait_s * 1000),
                "prefix": prefix,
                "seed": f"{name}-{self.args.seed}",
                "mix": self.mix,
                "format": "duis" if duis else "avro",
            },
            self.work,
            name,
            timeout=120 + self.scale.backlog / (2_000 if duis else 5_000),
        )
        self.sent[name] = result["produced"]
        self.expected_suppressed[name] = result["expected"].get("suppress", 0)
        self.say(f"  {result['produced']:,} alerts in {result['seconds']:.1f} s; decisions due: {result['expected']}")
        return result

    def backlog(self) -> None:
        self.results["backlog"] = self._produce_backlog("backlog", "B")
        client = kafka_ops.admin(self.bootstrap)
        self.backlog_ends = kafka_ops.end_offsets(client, self.topics["alerts"])
        if sum(self.backlog_ends.values()) != self.results["backlog"]["produced"]:
            raise RuntimeError(
                f"alert topic holds {sum(self.backlog_ends.values())} records, expected "
                f"{self.results['backlog']['produced']}"
            )

    def passthrough(self, latency_floor: bool = True) -> None:
        out: dict[str, Any] = {}
        self.results["passthrough"] = out
        for mode in ("txn", "plain"):
            result = run_json_tool(
                self.children,
                "bench.passthrough",
                {
                    "bootstrap": self.bootstrap,
                    "source": self.topics["alerts"],
                    "target": f"{self.tag}.passthrough-{mode}",
                    "group": f"{self.tag}-passthrough-{mode}",
                    "mode": mode,
                    "expect": self.results["backlog"]["produced"],
                    "timeout": 60 + self.scale.backlog / 5_000,
                },
                self.work,
                f"passthrough-{mode}",
                timeout=120 + self.scale.backlog / 4_000,
            )
            result["sustained_rate"] = kafka_ops.sustained_rate(result.pop("checkpoints"), result["records"])
            result["cpu_us_per_alert"] = round(1e6 * result["cpu_s"] / result["records"], 1)
            out[mode] = result
            self.say(
                f"  pass-through {mode}: {result['rate']:,.0f}/s mean, "
                f"{result['sustained_rate'] or 0:,.0f}/s sustained, {result['cpu_s']:.1f} s CPU"
            )
        if not latency_floor:
            return
        # The latency floor: the same paced load through the transactional pass-through, no worker running.
        rate = 5_000
        latency = self._latency_at(None, rate, self.scale.latency_other_s)
        out["latency_at_5000"] = latency
        self.say(
            f"  pass-through txn at {rate:,}/s: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
            f"p99.9 {latency['p999_ms']} ms"
        )

    def _drain(
        self, workers: list[Worker], start: dict[int, int], ends: dict[int, int], profile_to: Path | None = None
    ) -> dict[str, Any]:
        """Start the workers, wait until their group committed every offset up to `ends`; figures."""
        total = sum(ends[p] - start.get(p, 0) for p in ends)
        timeout = 120 + total / 2_000
        spawned = time.monotonic()
        for w in workers:
            w.start()
        ready_s = [w.wait_ready(timeout) for w in workers]
        ready_at = max(w.started_at + r for w, r in zip(workers, ready_s, strict=True))
        cpu0 = [w.cpu_seconds() or 0.0 for w in workers]
        spy = profiling.start(workers[0].pid, profile_to) if profile_to is not None else None
        progress = kafka_ops.Progress(self.bootstrap, self.app_id, self.topics["alerts"], ends, start)
        try:
            done_at = progress.wait(timeout, alive=lambda: all(w.alive() for w in workers))
            last_output_at = self._held_decided(timeout, lambda: all(w.alive() for w in workers))
        finally:
            if spy is not None:
                profiling.stop(spy)
        cpu = [(w.cpu_seconds() or 0.0) - c for w, c in zip(workers, cpu0, strict=True)]
        sustained = kafka_ops.sustained_rate(progress.samples, total)
        cpu_us = 1e6 * sum(cpu) / total
        return {
            "alerts": total,
            "ready_s": [round(r, 2) for r in ready_s],
            "drain_s_from_start": round(done_at - spawned, 2),
            "drain_s_from_ready": round(done_at - ready_at, 2),
            "mean_rate_from_ready": round(total / (done_at - ready_at)),
            # AD1s in windows leave their partition for the held topic before they are decided (rule 9): the
            # drain is over when the last of them is, not when the alert offsets are committed.
            "last_output_s_from_ready": round(last_output_at - ready_at, 2),
            "rate_to_last_output": round(total / (last_output_at - ready_at)),
            "sustained_rate": round(sustained) if sustained else None,
            "worker_cpu_pct_of_one_core": [round(100 * c / (done_at - ready_at)) for c in cpu],
            # Independent of other load on the host: what one alert costs the worker process(es) in CPU,
            # and the rate that cost allows on one dedicated core (a projection, not a measurement).
            "cpu_us_per_alert": round(cpu_us, 1),
            "rate_if_one_full_core": round(1e6 / cpu_us) if cpu_us else None,
            "progress": [
                (round(t - ready_at, 2), n) for t, n in progress.samples[:: max(1, len(progress.samples) // 200)]
            ],
        }

    def _held_decided(self, timeout: float, alive: Callable[[], bool]) -> float:
        """When the group had committed every record of the held topic (every AD1 in a window decided); the
        backlog ends a minute before the run's start, so every AD1's evidence is complete by the records read."""
        topic, deadline = held_topic(self.app_id), time.monotonic() + timeout
        while kafka_ops.uncommitted_records(self.bootstrap, self.app_id, topic, timeout=10):
            if time.monotonic() > deadline or not alive():
                raise RuntimeError(f"AD1s still undecided on {topic} after the drain")
            time.sleep(0.2)
        return time.monotonic()

    def drain_one(self) -> None:
        w = self.worker("worker-4-drain")
        start = kafka_ops.committed_offsets(
            kafka_ops.admin(self.bootstrap), self.app_id, self.topics["alerts"], self.backlog_ends
        )
        profile = self.work / "profile.raw.txt" if self.args.profile else None
        result = self._drain([w], start, self.backlog_ends, profile)
        self.live_worker = w
        pt = self.results.get("passthrough", {})
        rate = result["sustained_rate"]
        for mode in ("txn", "plain"):
            ceiling = pt.get(mode, {}).get("sustained_rate")
            if rate and ceiling:
                pt[f"worker_to_{mode}"] = round(rate / ceiling, 3)
        self.results["worker_1"] = result
        last = result["rate_to_last_output"]
        for mode in ("txn", "plain"):
            ceiling = pt.get(mode, {}).get("sustained_rate")
            if ceiling:
                pt[f"last_output_to_{mode}"] = round(last / ceiling, 3)
        self.say(
            f"  last output {result['last_output_s_from_ready']} s from ready: {last:,}/s, "
            f"{pt.get('last_output_to_plain', 0)}x the plain pass-through"
        )
        self.say(
            f"  drained {result['alerts']:,} in {result['drain_s_from_ready']} s from ready "
            f"({result['drain_s_from_start']} s from start); sustained {rate or 0:,}/s; "
            f"CPU {result['worker_cpu_pct_of_one_core']}% of a core"
        )
        if profile is not None and profile.exists():
            self.results["profile"] = profiling.summarise(profile)
            shutil.copy(profile, self.out / "profile.raw.txt")

    def latency(self) -> None:
        assert self.live_worker is not None
        self.results["latency"] = []
        for rate in self.scale.rates:
            duration = self.scale.latency_main_s if rate == 5_000 else self.scale.latency_other_s
            try:
                result = self._latency_at(self.live_worker, rate, duration)
            except Exception as exc:  # noqa: BLE001 - one load level failing leaves the others
                result = {"rate": rate, "error": f"{type(exc).__name__}: {exc}"}
                self.results["errors"].append(
                    {"phase": f"latency {rate}/s", "error": result["error"], "trace": traceback.format_exc()[-3000:]}
                )
            self.results["latency"].append(result)
            if "p50_ms" in result:
                self.say(
                    f"  {rate:,}/s (sent {result['achieved_rate']:,.0f}/s, out {result['output_rate']:,.0f}/s), "
                    f"{report.by_class(result)}"
                )
            else:
                self.say(f"  {rate:,}/s: {result.get('error')}")

    def _latency_at(self, w: Worker | None, rate: int, duration: float) -> dict[str, Any]:
        """Paced sender -> (the worker, or with w None the live transactional pass-through) -> receiver."""
        name, prefix = (f"latency-{rate}", f"L{rate}-") if w else (f"latency-passthrough-{rate}", f"P{rate}-")
        t = self.topics
        relay = None
        if w is not None:
            source, outputs = t["alerts"], [t["dno_alerts"], t["suppressed"], t["dead_letter"]]
        else:
            source, outputs = f"{self.tag}.passthrough-live-in", [f"{self.tag}.passthrough-live-out"]
            ready, stop = self.work / f"{name}.relay-ready", self.work / f"{name}.relay-stop"
            for f in (ready, stop):
                f.unlink(missing_ok=True)
            relay = self._start_child(
                "bench.passthrough",
                f"{name}-relay",
                {
                    "bootstrap": self.bootstrap,
                    "source": source,
                    "target": outputs[0],
                    "mode": "txn",
                    "follow": True,
                    "group": f"{self.tag}-passthrough-live",
                    "expect": 10**12,
                    "timeout": duration + 300,
                    "ready_file": str(ready),
                    "stop_file": str(stop),
                },
            )
            self._wait_file(ready, relay, f"{name}-relay")
        histogram_before = _histogram(w.metrics()) if w else {}
        # AD1s in windows come out A + grace after their time (rule 9): the receiver waits for them too.
        drain_s = 60 + (self.evidence_wait_s if w else 0)
        run = self.paced(name, prefix, source, outputs, rate, duration, drain_s=drain_s)
        result = {
            "rate": rate,
            "duration_s": duration,
            **_latency_stats(run.arrays["send"], run.arrays["receive"]),
            "receiver": run.received,
        }
        if relay is not None:
            stop.write_text("stop")
            relay.wait(60)
            return result
        assert w is not None
        # Rule 9: AD1s in windows wait for evidence, the rest must not; one percentile over both hides both.
        classes = latency_classes.split(np.load(run.arrays["send"]), np.load(run.arrays["receive"]), WARMUP_S)
        result["not_covered"] = latency_classes.stats(classes[latency_classes.NOT_COVERED])
        result["ad1_in_window"] = latency_classes.stats(
            classes[latency_classes.IN_WINDOW], self.evidence_wait_s * 1000
        )
        self.sent[name] = run.sender["sent"]
        self.expected_suppressed[name] = run.sender["expected_suppressed"]
        result["expected_suppressed"] = run.sender["expected_suppressed"]
        result["worker_histogram"] = _histogram_quantiles(histogram_before, _histogram(w.metrics()))
        return result

    def paced(
        self, name: str, prefix: str, source: str, outputs: list[str], rate: int, duration: float, drain_s: float
    ) -> PacedRun:
        """A receiver on `outputs`, then `rate` alerts/s for `duration` s onto `source`; returns once the
        receiver has every output or nothing new came for `drain_s` after the sender finished."""
        files = {k: self.work / f"{name}.{k}" for k in ("ready", "done")}
        for f in files.values():
            f.unlink(missing_ok=True)
        arrays = {k: self.work / f"{name}.{k}.npz" for k in ("send", "receive")}
        receiver = self._start_child(
            "bench.latency",
            f"{name}-receive",
            {
                "job": "receive",
                "bootstrap": self.bootstrap,
                "topics": outputs,
                "prefix": prefix,
                "capacity": int(rate * duration) + 1,
                "ready_file": str(files["ready"]),
                "done_file": str(files["done"]),
                "arrays": str(arrays["receive"]),
                "timeout": duration + drain_s + 120,
                "grace": drain_s,
            },
        )
        self._wait_file(files["ready"], receiver, f"{name}-receive")
        sender = run_json_tool(
            self.children,
            "bench.latency",
            {
                "job": "send",
                "bootstrap": self.bootstrap,
                "topic": source,
                "rate": rate,
                "duration": duration,
                "prefix": prefix,
                "world": self.world.to_json(),
                "seed": f"{name}-{self.args.seed}",
                "mix": self.mix,
                "done_file": str(files["done"]),
                "arrays": str(arrays["send"]),
            },
            self.work,
            f"{name}-send",
            timeout=duration + 120,
        )
        receiver.wait(duration + drain_s + 180)
        received = json.loads((self.work / f"{name}-receive.result.json").read_text())
        return PacedRun(sender, received, arrays)

    def _start_child(self, module: str, name: str, params: dict[str, Any]) -> subprocess.Popen[bytes]:
        params_path = self.work / f"{name}.params.json"
        params_path.write_text(json.dumps(params))
        return self.children.spawn(
            [sys.executable, "-m", module, str(params_path), str(self.work / f"{name}.result.json")],
            self.logs / f"{name}.log",
        )

    def _wait_file(self, path: Path, proc: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name} did not start; see {self.logs / (name + '.log')}")
            time.sleep(0.05)

    def drain_two(self) -> None:
        client = kafka_ops.admin(self.bootstrap)
        start = kafka_ops.end_offsets(client, self.topics["alerts"])
        committed = kafka_ops.committed_offsets(client, self.app_id, self.topics["alerts"], start)
        if committed != start:
            raise RuntimeError(f"alerts not all committed before the scaling run: {committed} vs {start}")
        slots = sorted(self.state_dir.glob(f"{self.app_id}-*"))
        if not slots:
            raise RuntimeError(f"no worker state folder under {self.state_dir}")
        twin = self.state_dir / f"{self.app_id}-1"
        if slots[0] != twin:
            shutil.rmtree(twin, ignore_errors=True)
            shutil.copytree(slots[0], twin)  # the second worker starts from the same local state
        self.results["backlog_2"] = self._produce_backlog("backlog-2", "S")
        ends = kafka_ops.end_offsets(client, self.topics["alerts"])
        workers = [self.worker("worker-5-scale-a"), self.worker("worker-6-scale-b")]
        try:
            result = self._drain(workers, start, ends)
        finally:
            for w in workers:
                self.stop_worker(w)
        one = self.results.get("worker_1", {}).get("sustained_rate")
        if one and result["sustained_rate"]:
            result["scaling"] = round(result["sustained_rate"] / one, 2)
        self.results["worker_2"] = result
        self.say(
            f"  2 workers drained {result['alerts']:,} in {result['drain_s_from_ready']} s from ready; "
            f"sustained {result['sustained_rate'] or 0:,}/s; CPU {result['worker_cpu_pct_of_one_core']}%"
        )

    def drain_duis(self) -> None:
        """The make-bench mix as DUIS documents (contract 9), drained by one worker from where the group stands:
        DUIS alerts/s against the Avro drain of this run (`worker_1`), on the same state and broker."""
        client = kafka_ops.admin(self.bootstrap)
        start = kafka_ops.end_offsets(client, self.topics["alerts"])
        committed = kafka_ops.committed_offsets(client, self.app_id, self.topics["alerts"], start)
        if committed != start:
            raise RuntimeError(f"alerts not all committed before the DUIS run: {committed} vs {start}")
        self.results["backlog_duis"] = self._produce_backlog("backlog-duis", "D", duis=True)
        ends = kafka_ops.end_offsets(client, self.topics["alerts"])
        w = self.worker("worker-8-duis")
        profile = self.work / "profile-duis.raw.txt" if self.args.profile else None
        try:
            result = self._drain([w], start, ends, profile)
        finally:
            self.stop_worker(w)
        if profile is not None and profile.exists():
            self.results["profile_duis"] = profiling.summarise(profile)
            shutil.copy(profile, self.out / "profile-duis.raw.txt")
        avro = self.results.get("worker_1", {}).get("sustained_rate")
        if avro and result["sustained_rate"]:
            result["duis_to_avro"] = round(result["sustained_rate"] / avro, 3)
        self.results["worker_duis"] = result
        self.say(
            f"  DUIS: drained {result['alerts']:,} in {result['drain_s_from_ready']} s from ready; sustained "
            f"{result['sustained_rate'] or 0:,}/s (Avro in this run: {avro or 0:,}/s); "
            f"CPU {result['cpu_us_per_alert']} us an alert"
        )

    def verify(self) -> None:
        t = self.topics
        counts = kafka_ops.count_outputs(
            self.bootstrap,
            {"forwarded": t["dno_alerts"], "suppressed": t["suppressed"], "dead_letter": t["dead_letter"]},
        )
        sent = sum(self.sent.values())
        by_topic = counts["by_topic"]
        assert isinstance(by_topic, dict)
        suppressed, expected = by_topic.get("suppressed", 0), sum(self.expected_suppressed.values())
        problems = []
        if counts["distinct_alert_ids"] != sent:
            problems.append(f"{counts['distinct_alert_ids']:,} distinct alerts out, {sent:,} in")
        if counts["duplicates"]:
            problems.append(f"{counts['duplicates']} duplicates")
        if by_topic.get("dead_letter", 0):
            problems.append(f"{by_topic['dead_letter']} dead letters")
        if suppressed != expected:
            problems.append(f"{suppressed:,} suppressed, {expected:,} due")
        self.results["correctness"] = {
            **counts,
            "alerts_in": sent,
            "suppressed_due": expected,
            "verdict": "OK" if not problems else "MISMATCH",
            "detail": "; ".join(problems)
            or f"{sent:,} alerts in, each exactly once out; {suppressed:,} suppressed as due",
        }
        self.say(f"  {self.results['correctness']['verdict']}: {self.results['correctness']['detail']}")
        if problems:
            raise RuntimeError("; ".join(problems))

    def cleanup(self) -> None:
        if not self.args.keep_topics:
            client = kafka_ops.admin(self.bootstrap)
            # the run's own topics, and the workers' internal ones (prefixed with their app IDs)
            deleted = kafka_ops.delete_topics(client, f"{self.tag}.") + kafka_ops.delete_topics(client, f"{self.tag}-")
            groups = kafka_ops.delete_groups(client, f"{self.tag}-")
            self.say(f"  deleted {len(deleted)} topics and {len(groups)} consumer groups of this run")
        if not self.args.keep_work:
            for folder in (self.work / "csv", self.state_dir):
                shutil.rmtree(folder, ignore_errors=True)
            for f in self.work.glob("*.npz"):
                f.unlink()

    def write(self) -> None:
        self.results["headline"] = [
            dict(zip(("figure", "measured", "target", "verdict"), row, strict=True))
            for row in report.headline(self.results)
        ]
        self.results["targets"] = report.TARGETS
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))
        try:
            report.chart(self.results, self.out / "chart.png")
        except Exception as exc:  # noqa: BLE001 - a chart failure must not hide the figures
            self.say(f"chart failed: {exc}")
        print()
        print(report.table(self.results))
        for key, drain in (("profile", "the drain"), ("profile_duis", "the DUIS drain")):
            profile = self.results.get(key)
            if profile and profile.get("samples"):
                print(f"\nworker profile during {drain} (py-spy, {profile['samples']} samples of the main thread):")
                for name, pct in profile["categories_pct"]:
                    print(f"  {pct:5.1f}%  {name}")
        print(f"\nresults: {self.out / 'results.json'}, chart: {self.out / 'chart.png'}, logs: {self.logs}")


def _pipeline_hash() -> str:
    """Which worker code was measured: the source tree can change between runs (or during one)."""
    import hashlib

    import pipeline

    digest = hashlib.sha256()
    root = Path(pipeline.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_share(seconds: float = 1.0) -> float:
    """Share of one core a busy Python loop gets right now (1.0 on an idle machine): other load on the
    host slows every figure of the run, and this says by how much."""
    wall0, cpu0 = time.monotonic(), time.process_time()
    while time.monotonic() - wall0 < seconds:
        sum(range(1000))
    return round((time.process_time() - cpu0) / (time.monotonic() - wall0), 2)


# --- metrics and latency arithmetic -------------------------------------------------------------------


def _read_count(metrics: str, topics: tuple[str, ...]) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("poa_input_records_total{") and any(f'topic="{t}"' in line for t in topics):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _histogram(metrics: str) -> dict[float, float]:
    """Cumulative bucket counts of poa_decision_latency_seconds (le -> count), summed over its label (AD1s that
    waited for evidence and the rest)."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith("poa_decision_latency_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def _histogram_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """The worker's own view (alert read -> transaction committed), as bucket upper bounds: coarse."""
    diff = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = diff[-1][1] if diff else 0
    out: dict[str, Any] = {"count": int(total)}
    for q, name in ((0.5, "p50_le_ms"), (0.99, "p99_le_ms"), (0.999, "p999_le_ms")):
        bound = next((le for le, n in diff if total and n >= q * total), None)
        out[name] = None if bound is None or bound == math.inf else round(bound * 1000, 1)
    return out


def _latency_stats(send_path: Path, receive_path: Path) -> dict[str, Any]:
    send, recv = np.load(send_path), np.load(receive_path)
    sent_at, suppress = send["sent_at"], send["suppress"]
    received_at, created_at, kind = recv["received_at"], recv["created_at"], recv["kind"]
    n = min(len(sent_at), len(received_at))
    sent_at, suppress, received_at, created_at, kind = (
        sent_at[:n],
        suppress[:n],
        received_at[:n],
        created_at[:n],
        kind[:n],
    )
    measured = sent_at >= np.nanmin(sent_at) + WARMUP_S
    got = ~np.isnan(received_at)
    e2e = (received_at - sent_at)[measured & got] * 1000
    to_produce = (created_at - sent_at)[measured & got] * 1000
    ad1 = (received_at - sent_at)[measured & got & suppress] * 1000
    span_in = np.nanmax(sent_at) - np.nanmin(sent_at)
    span_out = np.nanmax(received_at) - np.nanmin(received_at) if got.any() else 0

    # Stalls: the longest pauses in the output stream while input kept coming at a steady pace. A pause
    # far beyond the loop's normal step (e.g. housekeeping run inside the decision loop) shows here.
    arrivals = np.sort(received_at[got])
    gaps = np.diff(arrivals) * 1000 if len(arrivals) > 1 else np.zeros(0)
    longest = sorted((round(float(g), 1) for g in gaps), reverse=True)[:3]

    def pct(values: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if len(values) else None

    return {
        "sent": int(n),
        "received": int(got.sum()),
        "missing": int(n - got.sum()),
        "measured": int(len(e2e)),
        "achieved_rate": round(n / span_in) if span_in > 0 else None,
        "output_rate": round(int(got.sum()) / span_out) if span_out > 0 else None,
        "suppressed_received": int((kind == 1).sum()),
        "dead_letters_received": int((kind == 2).sum()),
        "p50_ms": pct(e2e, 50),
        "p90_ms": pct(e2e, 90),
        "p99_ms": pct(e2e, 99),
        "p999_ms": pct(e2e, 99.9),
        "max_ms": pct(e2e, 100),
        "mean_ms": round(float(e2e.mean()), 2) if len(e2e) else None,
        "ad1_suppressed_p50_ms": pct(ad1, 50),
        "ad1_p99_ms": pct(ad1, 99),
        "longest_output_gaps_ms": longest,
        "output_gaps_over_250ms": int((gaps > 250).sum()),
        "to_worker_produce_p50_ms": pct(to_produce, 50),
        "to_worker_produce_p99_ms": pct(to_produce, 99),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run_benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 50k tracked devices, 100k-alert backlog")
    parser.add_argument(
        "--tracked", type=int, default=None, help="tracked devices (default 1,500,000; 50,000 with --quick)"
    )
    parser.add_argument(
        "--backlog", type=int, default=None, help="alerts per backlog (default 1,000,000; 100,000 quick)"
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[1_000, 5_000, 10_000], help="paced loads, alerts/s")
    parser.add_argument("--alert-partitions", type=int, default=6)
    parser.add_argument("--ad1-in-window", type=float, default=0.05, help="share of AD1s inside windows (0.05)")
    parser.add_argument("--ad1-outside", type=float, default=0.05, help="share of AD1s outside windows (0.05)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="attach py-spy to the worker during the 1-worker drains")
    parser.add_argument("--skip-rebuild", action="store_true", help="skip the restart after deleting the state")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the two-worker drain")
    parser.add_argument(
        "--skip-evidence-latency", action="store_true", help="skip the before/after rule 9 latency comparison"
    )
    parser.add_argument(
        "--only",
        choices=[EVIDENCE_LATENCY, DUIS, DRAIN],
        help="after the world, bulk load and campaign, run only this phase (evidence-latency: latency at 5,000/s "
        "before and after rule 9; duis: an Avro and a DUIS backlog of the same mix, each drained by one worker; drain: "
        "the backlog drained by one worker against the raw pass-through)",
    )
    parser.add_argument("--skip-duis", action="store_true", help="skip the DUIS drain in a full run")
    parser.add_argument(
        "--evidence-rounds", type=int, default=2, help="before/after pairs in the evidence-latency phase (2)"
    )
    parser.add_argument("--keep-topics", action="store_true", help="leave this run's topics on the broker")
    parser.add_argument("--keep-work", action="store_true", help="keep CSVs, worker state and latency arrays")
    parser.add_argument("--out", default="bench-results", help="folder for results.json, chart.png and logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--estate" in args:  # `--estate gb [--scale F ...]`: Great Britain's estate on one worker (issue 19)
        i = args.index("--estate")
        if args[i + 1 : i + 2] != ["gb"]:
            raise SystemExit("--estate: only 'gb' is known")
        return gb_estate.main(args[:i] + args[i + 2 :])
    bench = Bench(parse_args(argv))
    bench.children.install_handlers()
    atexit.register(bench.children.stop_all)
    return bench.run()


if __name__ == "__main__":
    sys.exit(main())
