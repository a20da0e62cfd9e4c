"""The bench phase `evidence-latency` (issue 12): decision latency at a paced 5,000 alerts/s through the worker
of the last revision without contract rule 9 (before) and through the current tree (after), in one run.

Same broker, same world (the reference-data and campaign topics are inputs only, so every run shares them),
same offered load and alert mix; each run has its own alert and output topics, app ID and state folder, so
no run reads another's alerts or state. The sides alternate (before, after, before, after) so that load from
elsewhere on the host hits both. The before tree is `git archive` of the revision unpacked under the bench's
work folder and put first on PYTHONPATH for its worker (same interpreter, same packages): the clone itself
is left untouched, and nothing is left behind if the run is killed.

Event times are the wall clock (bench/latency.py stamps received_at at send time). Each paced run lasts a
little longer than A + grace, so the AD1s held early come out while alerts still arrive: an AD1 at t is
decided once every alert partition has been read past t + A (about A after it, while the load goes on), or,
for the last A of the run, once the wall clock passes t + A + grace (rule 7); the receiver keeps reading
until they are all out. `--quick` shortens the wait (A = 1 min, grace 5 s) for both sides.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench import kafka_ops, latency_classes
from bench.latency_classes import IN_WINDOW, IN_WINDOW_FORWARDED, IN_WINDOW_SUPPRESSED, NOT_COVERED, ClassSamples
from bench.procs import Worker, worker_env
from pipeline.kafka.topics import create_topics
from pipeline.settings import Topics

if TYPE_CHECKING:
    from bench.run_benchmark import Bench

BEFORE_REVISION = "26aa030"  # the last commit of main without rule 9 (merged into evidence-merged at d2920f1)
RATE = 5_000
DEFAULT_A_MINUTES, DEFAULT_GRACE_S = 3, 30.0  # the worker's defaults (pipeline/settings.py)
QUICK_A_MINUTES, QUICK_GRACE_S = 1, 5.0
DRAIN_MARGIN_S = 90.0  # how long the receiver waits for more beyond the longest expected wait
PER_RUN_TOPICS = ("alerts", "dno_alerts", "suppressed", "dead_letter", "control", "shadow", "released")


def export_revision(repo: Path, revision: str, into: Path) -> str | None:
    """Unpack `revision`'s pipeline/ and schemas/ under `into`; None when done, else why it could not be."""
    try:
        known = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "-e", f"{revision}^{{commit}}"], capture_output=True, timeout=30
        )
    except OSError as exc:
        return f"git cannot be run ({exc}): the before half is skipped"
    if known.returncode != 0:
        return f"revision {revision} is not in this clone's history (a shallow clone?): the before half is skipped"
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", revision, "pipeline", "schemas"],
        capture_output=True,
        timeout=60,
    )
    if archive.returncode != 0:
        return f"git archive {revision} failed: {archive.stderr.decode(errors='replace').strip()[:300]}"
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True, timeout=60)
    return None


def _imported_from(env: dict[str, str]) -> Path:
    """Where a worker started with `env` takes the `pipeline` package from (the before tree must win over the
    editable install of the current one). -P: like the `poa-filter` script, nothing from the current folder."""
    out = subprocess.run(
        [sys.executable, "-P", "-c", "import pipeline; print(pipeline.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(out.stdout.strip()).resolve().parent


def _alerts_by_reason(metrics: str, reason: str) -> float:
    """poa_alerts_total summed over decisions and codes for one reason (0 when the worker has no such reason)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("poa_alerts_total{") and f'reason="{reason}"' in line
    )


class EvidenceLatencyPhase:
    def __init__(self, bench: "Bench") -> None:
        self.bench = bench
        quick = bench.args.quick
        self.a_minutes, self.grace_s = (
            (QUICK_A_MINUTES, QUICK_GRACE_S) if quick else (DEFAULT_A_MINUTES, DEFAULT_GRACE_S)
        )
        self.bound_ms = (self.a_minutes * 60 + self.grace_s) * 1000
        # Longer than A + grace: the AD1s held early come out while alerts still arrive, so the alerts no window
        # covers are measured beside the held-AD1 traffic, as in steady operation.
        self.duration = self.bound_ms / 1000 + (15.0 if quick else 30.0)
        self.rounds: int = bench.args.evidence_rounds
        self.root = bench.work / "evidence-latency"

    def run(self) -> dict[str, Any]:
        b = self.bench
        repo = Path(__file__).resolve().parent.parent
        before_tree = self.root / f"tree-{BEFORE_REVISION}"
        skipped = export_revision(repo, BEFORE_REVISION, before_tree)
        if skipped:
            b.say(f"  !! {skipped}")
        else:
            imported = _imported_from(self._env("check", before_tree))
            if imported != (before_tree / "pipeline").resolve():
                raise RuntimeError(f"a worker given the {BEFORE_REVISION} tree would import pipeline from {imported}")
        sides = ["after"] if skipped else ["before", "after"]
        result: dict[str, Any] = {
            "before_revision": BEFORE_REVISION,
            "before_skipped": skipped,
            "rate": RATE,
            "duration_s": self.duration,
            "rounds": self.rounds,
            "order": [f"{side}-{r + 1}" for r in range(self.rounds) for side in sides],
            "evidence_after_minutes": self.a_minutes,
            "evidence_grace_s": self.grace_s,
            "a_plus_grace_s": self.bound_ms / 1000,
            "shortened_wait": b.args.quick,
            "alert_mix": b.mix,
            "runs": [],
        }
        samples: dict[str, list[dict[str, ClassSamples]]] = {side: [] for side in sides}
        try:
            for label in result["order"]:
                side = label.split("-", 1)[0]
                run_samples, summary = self._one(label, before_tree if side == "before" else None)
                samples[side].append(run_samples)
                result["runs"].append(summary)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
        pooled = {side: latency_classes.pool(runs) for side, runs in samples.items()}
        result["by_side"] = {
            side: {
                name: latency_classes.stats(
                    s, self.bound_ms if side == "after" and name.startswith(IN_WINDOW) else None
                )
                for name, s in classes.items()
            }
            for side, classes in pooled.items()
        }
        if "before" in result["by_side"]:
            before, after = result["by_side"]["before"], result["by_side"]["after"]
            result["after_to_before"] = {
                name: latency_classes.ratios(before[name], after[name])
                for name in latency_classes.CLASSES
                if not name.startswith(IN_WINDOW)  # those wait minutes by design: absolute figures say more
            }
        return result

    def _env(self, label: str, tree: Path | None) -> dict[str, str]:
        b = self.bench
        defaults = asdict(Topics())
        topics = {**b.topics, **{name: f"{b.tag}.evidence-{label}.{defaults[name]}" for name in PER_RUN_TOPICS}}
        env = worker_env(b.bootstrap, f"{b.tag}-evidence-{label}", self.root / "state" / label, topics)
        env["POA_EVIDENCE_AFTER_MINUTES"] = str(self.a_minutes)
        env["POA_EVIDENCE_GRACE_SECONDS"] = str(self.grace_s)
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH")) if p)
        return env

    def _one(self, label: str, tree: Path | None) -> tuple[dict[str, ClassSamples], dict[str, Any]]:
        """One paced run through a fresh worker (the before tree's, with `tree`) on fresh topics."""
        b = self.bench
        env = self._env(label, tree)
        outputs = [env["POA_TOPIC_DNO_ALERTS"], env["POA_TOPIC_SUPPRESSED"], env["POA_TOPIC_DEAD_LETTER"]]
        partitions = b.scale.alert_partitions
        create_topics(kafka_ops.admin(b.bootstrap), {t: partitions for t in [env["POA_TOPIC_ALERTS"], *outputs]})
        load = os.getloadavg()[0]
        w = Worker(b.children, env, b.logs, f"worker-evidence-{label}")
        b.workers.append(w)
        try:
            w.start()
            ready_s = w.wait_ready(120 + b.scale.tracked / 4_000)
            b.wait_state_read(w)
            before = w.metrics()
            drain_s = (self.bound_ms / 1000 if tree is None else 0) + DRAIN_MARGIN_S
            b.say(f"  {label}: worker ready in {ready_s:.1f} s; {RATE:,}/s for {self.duration:.0f} s")
            run = b.paced(
                f"evidence-{label}", f"E{label}-", env["POA_TOPIC_ALERTS"], outputs, RATE, self.duration, drain_s
            )
            after = w.metrics()
        finally:
            b.stop_worker(w)
            shutil.rmtree(self.root / "state" / label, ignore_errors=True)
        send, receive = np.load(run.arrays["send"]), np.load(run.arrays["receive"])
        classes = latency_classes.split(send, receive, latency_classes.WARMUP_S)
        not_covered = latency_classes.stats(classes[NOT_COVERED])
        in_window = latency_classes.stats(classes[IN_WINDOW])
        summary = {
            "run": label,
            "worker_tree": BEFORE_REVISION if tree is not None else "current",
            "ready_s": round(ready_s, 1),  # a fresh state built from Kafka: the reference topics read
            "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],  # at its start and end
            "sent": run.sender["sent"],
            "achieved_rate": round(run.sender["sent"] / run.sender["seconds"]) if run.sender["seconds"] else None,
            "received": run.received["received"],
            "duplicates": run.received["duplicates"],
            "expected_suppressed_by_rule_5": run.sender["expected_suppressed"],
            "suppressed_received": int((receive["kind"] == latency_classes.SUPPRESSED_KIND).sum()),
            "in_window_read_back_suppressed": int(len(classes[IN_WINDOW_SUPPRESSED].latencies_ms)),
            "in_window_read_back_forwarded": int(len(classes[IN_WINDOW_FORWARDED].latencies_ms)),
            "forwarded_outage_evidence": _alerts_by_reason(after, "outage_evidence")
            - _alerts_by_reason(before, "outage_evidence"),
            "forwarded_hold_expired": _alerts_by_reason(after, "hold_expired")
            - _alerts_by_reason(before, "hold_expired"),
            NOT_COVERED: {k: not_covered[k] for k in ("count", "missing", "p50_ms", "p99_ms", "p999_ms", "max_ms")},
            IN_WINDOW: {k: in_window[k] for k in ("count", "missing", "p50_ms", "max_ms")},
        }
        b.say(
            f"  {label}: no window {not_covered['p50_ms']} / {not_covered['p99_ms']} / {not_covered['p999_ms']} ms "
            f"(p50/p99/p99.9); AD1s in windows p50 {in_window['p50_ms']} ms, max {in_window['max_ms']} ms, "
            f"{in_window['missing']} missing"
        )
        return classes, summary
