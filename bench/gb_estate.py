"""Great Britain's estate on one worker (issue 19), at a `--scale` fraction: load, first start, restart, rebuild.

At scale 1: 20 million homes with a CH Function and an ESME, postcodes in sectors of about 2,500 homes,
14 million other devices (gas meters, IHDs, ...) on those HANs, 1.44 million tracked ESMEs spread across the
estate: 54 million inventory rows. The project's own loaders put the CSVs on fresh topics of the local broker;
then a worker on empty state is timed to ready (the reference topics read, contract 5.5), restarted with its
state, and started again after its state folder is deleted. Each start reports its time to ready, the peak
RSS of the worker process and its children, and the state on disk.

    python -m bench.gb_estate --scale 0.01 [--profile]
"""

import argparse
import csv
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench import kafka_ops, profiling
from bench.procs import POA_FILTER, Children, Worker, run_tool, worker_env
from bench.scenario import eui64
from pipeline.kafka.topics import create_topics

HOMES, OTHERS, TRACKED = 20_000_000, 14_000_000, 1_440_000  # at scale 1
SECTOR_HOMES = 2_500
OTHER_TYPES = ("GSME", "IHD", "GPF", "PPMID")
_CHF, _ESME, _OTHER = 0x00DB_1000_0000_0000, 0x00DB_2000_0000_0000, 0x00DB_3000_0000_0000
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # postcode unit letters
MB = 1024 * 1024
UPDATED_AT = 1_760_000_000_000


def postcode(home: int) -> str:
    """A postcode of the home's sector (SECTOR_HOMES homes each): outward two letters and two digits."""
    sector = home // SECTOR_HOMES
    outward = f"{chr(65 + sector // 2600 % 26)}{chr(65 + sector // 100 % 26)}{sector % 100:02d}"
    return f"{outward} 1{_LETTERS[home % 20]}{_LETTERS[home // 20 % 20]}"


def write_csvs(scale: float, out: Path) -> dict[str, Any]:
    """tracked.csv and inventory.csv of the estate at this scale; rows of a home together, homes in order."""
    homes, others, tracked = max(1, int(HOMES * scale)), int(OTHERS * scale), max(1, int(TRACKED * scale))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "tracked.csv", "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["device_id", "manufacturer", "model", "firmware_version", "list_version", "added_at"])
        w.writerows((eui64(_ESME | i * homes // tracked), "Landis+Gyr", "E470", "5.3.20", "MP102B", UPDATED_AT)
                    for i in range(tracked))  # fmt: skip
    with open(out / "inventory.csv", "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["device_id", "device_type", "chf_id", "mpxn", "updated_at", "postcode"])
        other = 0
        for h in range(homes):
            chf, pc = eui64(_CHF | h), postcode(h)
            w.writerow((chf, "CHF", "", "", UPDATED_AT, pc))
            w.writerow((eui64(_ESME | h), "ESME", chf, str(1_000_000_000_000 + h), UPDATED_AT, pc))
            while other < others * (h + 1) // homes:
                w.writerow((eui64(_OTHER | other), OTHER_TYPES[other % 4], chf, "", UPDATED_AT, pc))
                other += 1
    return {"homes": homes, "other_devices": others, "tracked": tracked, "inventory_rows": 2 * homes + others,
            "sectors": (homes + SECTOR_HOMES - 1) // SECTOR_HOMES}  # fmt: skip


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children."""
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def dir_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MB, 1) if path.exists() else 0.0


class Estate:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tag = f"gb-{uuid.uuid4().hex[:8]}"
        self.out = Path(args.out)
        self.work = self.out / "gb-work"
        self.logs = self.out / "gb-logs"
        self.state_dir = self.work / "state"
        self.children = Children()
        self.topics = {
            name: f"{self.tag}.{name}"
            for name in ("service_requests", "activation_outcomes", "alerts", "inventory", "tracked_devices")
        }
        self.results: dict[str, Any] = {"scale": args.scale, "tag": self.tag}
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", flush=True)

    def run(self) -> int:
        kafka_ops.check_broker(self.args.bootstrap)
        shutil.rmtree(self.work, ignore_errors=True)
        try:
            self.say(f"writing the estate at scale {self.args.scale}")
            self.results["estate"] = write_csvs(self.args.scale, self.work / "csv")
            self.say(f"  {self.results['estate']}")
            create_topics(
                kafka_ops.admin(self.args.bootstrap),
                {topic: 3 for topic in self.topics.values()},
                {self.topics[n]: {"cleanup.policy": "compact"} for n in ("inventory", "tracked_devices")},
            )
            self.load()
            self.results["first_start"] = self.start("worker-1-empty-state", profile=self.args.profile)
            self.results["restart"] = self.start("worker-2-restart")
            shutil.rmtree(self.state_dir)
            self.results["state_deleted"] = self.start("worker-3-state-deleted")
        finally:
            self.children.stop_all()
            if not self.args.keep_topics:
                client = kafka_ops.admin(self.args.bootstrap)
                kafka_ops.delete_topics(client, self.tag)
                kafka_ops.delete_groups(client, self.tag)
            if not self.args.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"gb-{self.args.scale}.json"
        path.write_text(json.dumps(self.results, indent=2))
        self.say(f"results in {path}")
        return 0

    def load(self) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.args.bootstrap,
               "POA_TOPIC_TRACKED_DEVICES": self.topics["tracked_devices"],
               "POA_TOPIC_INVENTORY": self.topics["inventory"]}  # fmt: skip
        estate = self.results["estate"]
        for kind, rows in (("tracked", estate["tracked"]), ("inventory", estate["inventory_rows"])):
            self.say(f"poa-filter load-{kind} ({rows:,} rows)")
            path = self.work / "csv" / f"{kind}.csv"
            code, seconds = run_tool(self.children, [POA_FILTER, f"load-{kind}", str(path)],
                                     self.logs / f"load-{kind}.log", timeout=600 + rows / 1_000, env=env)  # fmt: skip
            if code != 0:
                raise RuntimeError(f"load-{kind} exited {code}; see {self.logs / f'load-{kind}.log'}")
            self.results[f"load_{kind}"] = {
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
            }
            self.say(f"  {seconds:.1f} s, {rows / seconds:,.0f} rows/s")

    def start(self, name: str, profile: bool = False) -> dict[str, Any]:
        """Start a worker, time it to ready with its peak RSS (process and children), stop it, size its state."""
        env = worker_env(self.args.bootstrap, self.tag, self.state_dir, self.topics)
        self.say(f"{name}: starting a worker")
        w = Worker(self.children, env, self.logs, name).start()
        spy = profiling.start(w.pid, self.logs / f"{name}.pyspy.txt", rate=50) if profile else None
        peak, last_said, rows = 0, time.monotonic(), self.results["estate"]["inventory_rows"]
        deadline = time.monotonic() + 600 + rows / 500
        while not w.ready():
            if not w.alive():
                raise RuntimeError(f"{name} exited before ready:\n{w.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not ready in time:\n{w.log_tail()}")
            peak = max(peak, tree_rss(w.pid))
            if time.monotonic() - last_said > 10:
                last_said = time.monotonic()
                self.say(f"  {last_said - w.started_at:.0f} s: {self._records_read(w):,.0f} state records read, "
                         f"RSS {tree_rss(w.pid) / MB:.0f} MB")  # fmt: skip
            time.sleep(0.05)
        ready_s = time.monotonic() - w.started_at
        cpu = w.cpu_seconds()
        if spy is not None:
            profiling.stop(spy)
        for _ in range(20):  # a few seconds deciding nothing: the memory it keeps once ready
            peak = max(peak, tree_rss(w.pid))
            time.sleep(0.1)
        w.stop()
        out = {"ready_s": round(ready_s, 2), "cpu_s": cpu and round(cpu, 1), "peak_rss_mb": round(peak / MB),
               "state_mb": dir_mb(self.state_dir), "rows_per_s_to_ready": round(rows / ready_s)}  # fmt: skip
        if spy is not None:
            raw = self.logs / f"{name}.pyspy.txt"
            out["profile"] = profiling.summarise(raw) if raw.exists() else "no profile written"
        self.say(f"  {name}: {out if spy is None else {k: v for k, v in out.items() if k != 'profile'}}")
        return out

    def _records_read(self, w: Worker) -> float:
        try:
            metrics = w.metrics()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("poa_input_records_total{"))  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gb_estate", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of GB's estate (1: 54 million rows)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--profile", action="store_true", help="py-spy the first start (state built from Kafka)")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--keep-work", action="store_true", help="keep the CSVs and the state folder")
    parser.add_argument("--out", default="bench-results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    estate = Estate(parse_args(argv))
    estate.children.install_handlers()
    return estate.run()


if __name__ == "__main__":
    sys.exit(main())
