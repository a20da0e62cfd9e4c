"""Faust vs confluent-kafka pass-through baseline: why the worker's hot path is on confluent-kafka.

NOT part of the project's dependencies: the Faust scenarios need faust-streaming (0.15+, on
aiokafka 0.13+) installed separately, in a virtualenv of its own outside the repo, with what the
project's Kafka helpers import; run it as a module from the repository root:

    python3 -m venv ../faustvenv
    ../faustvenv/bin/pip install 'faust-streaming>=0.15' 'aiokafka[lz4]>=0.13' uvloop \
        confluent-kafka fastavro rocksdict prometheus-client
    ../faustvenv/bin/python -m bench.faust_baseline --bootstrap 127.0.0.1:49092 --messages 300000

Use a private broker (transactions and throw-away topics), e.g.
    KAFKA_PORT=49092 KAFKA_CONTROLLER_PORT=49093 KAFKA_DATA_DIR=../kafka-faust \
        bash deploy/kafka/kafka.sh up      # ... and `down` afterwards

What it does: pre-produces N messages of ~120 bytes (the size of an Avro alert) to a fresh
3-partition input topic with the loaders' bulk producer (lz4-compressed, as the worker's outputs
are; Faust writes its output uncompressed, which costs it less CPU, not more), then, for each
scenario, runs ONE child process (this module with --child) in a fresh consumer group that copies
the input topic to a fresh 3-partition output topic, bounded by --timeout. Faust runs twice: with
its defaults, and at its best:

  a  faust-agent        Faust defaults, `async for v in stream: await out.send(value=v)`
  b  faust-take         Faust defaults, `stream.take(5000, within=0.1)` + `out.send_soon(value=v)`
  c  faust-discard      Faust defaults, consume and discard (ceiling of Faust's consume path)
  d  faust-eos          (b) with processing_guarantee='exactly_once'
  g  best-take          (b) tuned: see FAUST_BEST (larger buffers and take() batches, Cython fast
                        paths, uvloop, no Monitor sensor, producer batching like the confluent ones)
  h  best-discard       (c) tuned the same way
  i  best-eos           (d) tuned the same way
  j  best-take-confluent (g) on faust's confluent-kafka driver (`confluent://`) instead of aiokafka;
                        not in the default list: with faust-streaming 0.15.3 it never got a partition
                        assignment (stuck at "Recovery: Starting...")
  e  ck-plain           the benchmark's pass-through (bench/passthrough.py: the worker's consumer and
                        producer settings and batch reads), no transactions
  f  ck-txn             the same, one transaction per batch with the consumer offsets (what the
                        worker does)

Throughput is N / (time the child consumed its first message -> time the Nth message is
visible on the output topic to a read_committed consumer run by the parent). For the discard
scenarios the end is the child consuming its Nth message. 'inproc' is the child's own view (last
message produced and flushed / transaction committed). CPU is user+sys of the child process over
the same window (all threads, from /proc), plus the broker's if --broker-pid is given, plus the
parent's counter; 'us/msg' (child CPU per message) is the figure least disturbed by other load on
the machine (the 'load' column). A run that hits --timeout reports a partial rate over the
messages it got through. The parent keeps counting for --settle s after the end to catch
duplicates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Scenario:
    name: str
    engine: str  # "faust" or "confluent"
    shape: str  # faust: agent, take, discard; confluent: plain, txn
    best: bool = False  # faust: FAUST_BEST instead of the defaults
    eos: bool = False  # faust: processing_guarantee="exactly_once"
    driver: str = "kafka"  # faust's transport: "kafka" (aiokafka) or "confluent"


SCENARIOS = {
    "a": Scenario("faust-agent", "faust", "agent"),
    "b": Scenario("faust-take", "faust", "take"),
    "c": Scenario("faust-discard", "faust", "discard"),
    "d": Scenario("faust-eos", "faust", "take", eos=True),
    "g": Scenario("best-take", "faust", "take", best=True),
    "h": Scenario("best-discard", "faust", "discard", best=True),
    "i": Scenario("best-eos", "faust", "take", best=True, eos=True),
    "j": Scenario("best-take-confluent", "faust", "take", best=True, driver="confluent"),
    "e": Scenario("ck-plain", "confluent", "plain"),
    "f": Scenario("ck-txn", "confluent", "txn"),
}

# Faust at its best for a raw pass-through, from faust-streaming's settings reference.
FAUST_BEST: dict[str, Any] = {
    # Prefetch: the docs' own figure for "over 30,000 events a second" (default 4096).
    "stream_buffer_maxsize": 131_072,
    # The repaired Cython fast paths (StreamIterator takes queued values without awaiting); needs the
    # compiled extensions, which the wheels ship.
    "cython_optimizations": True,
    # Nothing waits for a half-processed event on rebalance or shutdown: a copy is idempotent enough.
    "stream_wait_empty": False,
    "consumer_max_fetch_size": 4 * 1024 * 1024,  # per partition (default 1 MiB)
    # Producer batching like the confluent producers (linger 2 ms, 1 MB batches; Faust: 0 ms, 16 KiB).
    "producer_linger": 0.002,
    "producer_max_batch_size": 1_000_000,
    "producer_max_request_size": 2_000_000,
}
FAUST_BEST_TAKE = 20_000  # take() batch at its best (5,000 with the defaults)
PARTITIONS = 3
REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# helpers shared by parent and child
# ---------------------------------------------------------------------------------------------


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float | None:
    """user+sys seconds of a live process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class Events:
    """Child -> parent events, one JSON object a line in a file (Faust redirects stdout)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, ev: str, **kw: object) -> None:
        line = json.dumps({"ev": ev, "t": time.time(), "cpu": self_cpu(), **kw}) + "\n"
        os.write(self.fd, line.encode())


def make_payloads(n: int, seed: int = 7) -> list[bytes]:
    """~120-byte values shaped like an Avro alert: ids, timestamp, type/severity, some text."""
    rnd = random.Random(seed)
    kinds = [b"POWER_LOSS", b"POWER_RESTORE", b"LOW_VOLTAGE", b"TAMPER", b"COMMS_LOST"]
    base_ts = 1_735_689_600_000
    out = []
    for i in range(n):
        dev = b"dev-%07d" % rnd.randrange(2_000_000)
        alert = uuid.UUID(int=rnd.getrandbits(128)).hex.encode()
        body = b"%s|%s|%d|%s|%d|site-%05d|fw-%d.%d.%d|seq=%d" % (
            alert, dev, base_ts + i * 37, rnd.choice(kinds), rnd.randrange(5),
            rnd.randrange(50_000), rnd.randrange(4), rnd.randrange(20), rnd.randrange(50), i,
        )
        out.append(body.ljust(120, b"\0")[:120])
    return out


# ---------------------------------------------------------------------------------------------
# child: Faust scenarios
# ---------------------------------------------------------------------------------------------


def child_faust(a: argparse.Namespace, ev: Events, scen: Scenario) -> None:
    import asyncio

    if scen.best:
        import mode.loop

        mode.loop.use("uvloop")  # before faust makes its event loop

    import faust
    from faust.sensors import Monitor

    class QuietMonitor(Monitor):
        """The Monitor with its per-message and per-send bookkeeping off (the app calls some of it directly)."""

        def on_message_in(self, *args: Any, **kwargs: Any) -> None: ...
        def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None: ...
        def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None: ...
        def on_message_out(self, *args: Any, **kwargs: Any) -> None: ...
        def on_send_initiated(self, *args: Any, **kwargs: Any) -> None: ...
        def on_send_completed(self, *args: Any, **kwargs: Any) -> None: ...
        def on_tp_commit(self, *args: Any, **kwargs: Any) -> None: ...
        def track_tp_end_offset(self, *args: Any, **kwargs: Any) -> None: ...

    conf: dict[str, Any] = dict(
        broker=f"{scen.driver}://{a.bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        datadir=os.path.join(a.workdir, "{conf.name}-data"),
    )
    if scen.best:
        conf.update(FAUST_BEST)
        conf["monitor"] = QuietMonitor()
    if scen.eos:
        conf["processing_guarantee"] = "exactly_once"
    app = faust.App(a.group, **conf)
    src = app.topic(a.in_topic, value_type=bytes, value_serializer="raw", partitions=PARTITIONS)
    dst = app.topic(a.out_topic, value_type=bytes, value_serializer="raw", partitions=PARTITIONS)
    n_target = a.messages
    take = FAUST_BEST_TAKE if scen.best else 5000
    st = {"n": 0, "done": False}

    async def finish() -> None:
        if not st["done"]:
            st["done"] = True
            if scen.shape != "discard":
                await app.producer.flush()
            ev.emit("done", count=st["n"])

    def seen(k: int) -> None:
        if st["n"] == 0 and k:
            ev.emit("first")
        before = st["n"]
        st["n"] += k
        if st["n"] // 1000 != before // 1000:
            ev.emit("progress", count=st["n"])

    if scen.shape == "agent":

        @app.agent(src)
        async def copy_each(stream):  # noqa: ANN001
            async for value in stream:
                seen(1)
                await dst.send(value=value)
                if st["n"] >= n_target:
                    await finish()

    elif scen.shape == "take":

        @app.agent(src)
        async def copy_batches(stream):  # noqa: ANN001
            async for values in stream.take(take, within=0.1):
                seen(len(values))
                for value in values:
                    dst.send_soon(value=value)
                if st["n"] >= n_target:
                    await finish()

    else:

        @app.agent(src)
        async def discard(stream):  # noqa: ANN001
            async for _value in stream:
                seen(1)
                if st["n"] >= n_target:
                    await finish()

    @app.task
    async def started() -> None:
        ev.emit("app_started")
        await asyncio.sleep(0)

    worker = faust.Worker(app, loglevel="warning", redirect_stdouts=False, quiet=True)
    worker.execute_from_commandline()


# ---------------------------------------------------------------------------------------------
# child: the confluent-kafka pass-through
# ---------------------------------------------------------------------------------------------


def child_confluent(a: argparse.Namespace, ev: Events, scen: Scenario) -> None:
    """The benchmark's pass-through, the worker's loop without the work, reporting to the parent."""
    from bench import passthrough

    def on_read(copied: int, _batch: int) -> None:
        if copied == 0:
            ev.emit("first")

    ev.emit("app_started")
    params = {"bootstrap": a.bootstrap, "group": a.group, "mode": scen.shape, "source": a.in_topic,
              "target": a.out_topic, "expect": a.messages, "timeout": a.timeout}
    result = passthrough.run(params, on_read)
    ev.emit("done", count=result["records"])
    while True:  # the parent stops the child once it has counted the output, as it stops a Faust worker
        time.sleep(1)


def run_child(a: argparse.Namespace) -> None:
    ev = Events(a.events)
    scen = SCENARIOS[a.child]
    try:
        if scen.engine == "faust":
            child_faust(a, ev, scen)
        else:
            child_confluent(a, ev, scen)
    except SystemExit as exc:  # the parent's SIGTERM ends a Faust worker this way
        if exc.code not in (None, 0):
            ev.emit("error", msg=f"SystemExit: {exc.code}")
        raise
    except BaseException as exc:  # report, then die: the parent records it
        ev.emit("error", msg=f"{type(exc).__name__}: {exc}")
        raise


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    scen: str
    status: str = "?"
    startup_s: float | None = None  # child start -> first message consumed
    elapsed_s: float | None = None  # first consumed -> N visible (or consumed, for c)
    rate: float | None = None
    inproc_rate: float | None = None
    child_cpu_s: float | None = None
    broker_cpu_s: float | None = None
    counter_cpu_s: float | None = None
    child_cpu_total_s: float | None = None
    final_count: int | None = None  # on the output topic after --settle s
    processed: int | None = None
    loadavg: str | None = None  # 1-min load average at start and end (other work on the machine)
    notes: list[str] = field(default_factory=list)


def preproduce(a: argparse.Namespace, topic: str) -> None:
    from bench.kafka_ops import settings_for
    from pipeline.tools.bulk_producer import BulkProducer

    payloads = make_payloads(a.messages)
    producer = BulkProducer(settings_for(a.bootstrap), client_id="faust-baseline")
    t0 = time.time()
    for i, value in enumerate(payloads):
        producer.produce(topic, b"%d" % i, value)
    producer.flush()
    print(f"pre-produced {a.messages} x {len(payloads[0])} B to {topic} in {time.time() - t0:.1f}s",
          flush=True)


def read_events(path: Path, pos: int, events: dict[str, dict]) -> int:
    try:
        with open(path) as f:
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return pos
    end = data.rfind("\n")
    if end < 0:
        return pos
    for line in data[: end + 1].splitlines():
        e = json.loads(line)
        if e["ev"] == "progress":
            events["progress"] = e  # keep the latest
        else:
            events.setdefault(e["ev"], e)
    return pos + len(data[: end + 1].encode())


def loadavg1() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def stop_child(proc: subprocess.Popen, grace: float) -> str:
    """SIGTERM, then SIGKILL after `grace` s; returns how it ended."""
    if proc.poll() is not None:
        return "exited"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
        return "stopped"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"killed (no exit {grace:.0f}s after SIGTERM)"


def run_scenario(a: argparse.Namespace, scen: str, in_topic: str, admin: Any, run_id: str) -> Result:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from bench.kafka_ops import settings_for
    from pipeline.kafka import clients
    from pipeline.kafka.topics import create_topics

    res = Result(scen)
    name = SCENARIOS[scen].name
    discard = SCENARIOS[scen].shape == "discard"  # the end is the child's count, not the output's
    out_topic = f"fb-{run_id}-out-{scen}"
    group = f"fb-{run_id}-{name}"
    create_topics(admin, {out_topic: PARTITIONS})
    workdir = Path(a.workdir)
    ev_path = workdir / f"{run_id}-{scen}.events"
    log_path = workdir / f"{run_id}-{scen}.log"
    cmd = [sys.executable, "-m", "bench.faust_baseline", "--child", scen, "--bootstrap", a.bootstrap,
           "--in-topic", in_topic, "--out-topic", out_topic, "--group", group, "--messages", str(a.messages),
           "--events", str(ev_path), "--workdir", a.workdir, "--timeout", str(a.timeout)]
    counter = clients.consumer(settings_for(a.bootstrap), f"{group}-counter", clients.ASSIGNED_READER_TUNING,
                               **{"enable.partition.eof": False, "fetch.wait.max.ms": 50})
    counter.assign([TopicPartition(out_topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    events: dict[str, dict] = {}
    pos = 0
    count = 0
    t_end = None  # end of the measured window: target met, or the timeout / a failure
    processed = 0  # messages the window covers (visible on output; consumed, for c)
    cpu_child_end = cpu_broker_end = cpu_broker_first = None
    cpu_counter_first = None
    met = False
    with open(log_path, "w") as log:
        load_start = loadavg1()
        t_start = time.time()
        cpu_children_before = children_cpu()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        deadline = t_start + a.timeout
        while True:
            msgs = counter.consume(10000, 0.05)
            count += sum(1 for m in msgs if m.error() is None)
            now = time.time()
            pos = read_events(ev_path, pos, events)
            if "first" in events and cpu_counter_first is None:
                cpu_counter_first = self_cpu()
                cpu_broker_first = proc_cpu(a.broker_pid) if a.broker_pid else None
            met = ("done" in events) if discard else count >= a.messages
            failed = "error" in events or proc.poll() is not None
            if met or failed or now >= deadline:
                if discard:
                    last = events.get("done") or events.get("progress")
                    t_end, processed = (last["t"], last["count"]) if last else (now, 0)
                else:
                    t_end, processed = now, min(count, a.messages)
                cpu_child_end = proc_cpu(proc.pid)
                cpu_broker_end = proc_cpu(a.broker_pid) if a.broker_pid else None
                break
        if cpu_counter_first is not None:
            res.counter_cpu_s = self_cpu() - cpu_counter_first
        if met and not discard:
            settle_end = time.time() + a.settle  # duplicates would show up here
            while time.time() < settle_end:
                count += sum(1 for m in counter.consume(10000, 0.1) if m.error() is None)
        res.loadavg = f"{load_start}->{loadavg1()}"
        how = stop_child(proc, a.grace)
        res.child_cpu_total_s = children_cpu() - cpu_children_before
        pos = read_events(ev_path, pos, events)
    counter.close()
    res.final_count = count
    res.processed = processed
    first = events.get("first")
    if first:
        res.startup_s = first["t"] - t_start
        res.elapsed_s = t_end - first["t"]
        if processed and res.elapsed_s > 0:
            res.rate = processed / res.elapsed_s
        if cpu_child_end is not None:
            res.child_cpu_s = cpu_child_end - first["cpu"]
        if cpu_broker_end is not None and cpu_broker_first is not None:
            res.broker_cpu_s = cpu_broker_end - cpu_broker_first
    if met:
        res.status = "ok"
        if not discard and count != a.messages:
            res.notes.append(f"output holds {count} != {a.messages} messages after {a.settle:.0f}s")
    elif "error" in events:
        res.status = "error"
    elif proc.returncode is not None and how == "exited":
        res.status = f"crashed rc={proc.returncode}"
    else:
        res.status = f"timeout {a.timeout:.0f}s"
    if not met:
        what = "consumed" if discard else "visible on output"
        res.notes.append(f"{processed}/{a.messages} {what} (partial rate)")
    if "error" in events:
        res.notes.append(events["error"]["msg"][:300])
    if "done" in events and first:
        res.inproc_rate = events["done"]["count"] / (events["done"]["t"] - first["t"])
    if how not in ("stopped", "exited"):
        res.notes.append(f"shutdown: {how}")
    if res.status != "ok" or res.notes:
        res.notes.append(f"log: {log_path}")
    return res


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(results: list[Result]) -> None:
    hdr = (f"{'scenario':<22} {'status':<12} {'msg/s':>9} {'inproc':>9} {'secs':>6} {'startup':>7} "
           f"{'cpu_s':>6} {'cores':>5} {'us/msg':>6} {'msg/cpu-s':>9} {'brk_cpu':>7} {'ctr_cpu':>7} "
           f"{'load':>11}  notes")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        cpu, n = r.child_cpu_s, r.processed
        cores = cpu / r.elapsed_s if cpu is not None and r.elapsed_s else None
        us = cpu / n * 1e6 if cpu is not None and n else None
        per_cpu = n / cpu if cpu and n else None
        print(f"{r.scen + ' ' + SCENARIOS[r.scen].name:<22} {r.status:<12} {fmt(r.rate, ',.0f'):>9} "
              f"{fmt(r.inproc_rate, ',.0f'):>9} {fmt(r.elapsed_s, '.2f'):>6} "
              f"{fmt(r.startup_s, '.1f'):>7} {fmt(cpu, '.2f'):>6} {fmt(cores, '.2f'):>5} "
              f"{fmt(us, '.0f'):>6} {fmt(per_cpu, ',.0f'):>9} {fmt(r.broker_cpu_s, '.2f'):>7} "
              f"{fmt(r.counter_cpu_s, '.2f'):>7} {r.loadavg or '-':>11}  {'; '.join(r.notes)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="127.0.0.1:49092")
    p.add_argument("--messages", type=int, default=300_000)
    p.add_argument("--scenarios", default="efabcdghi", help="letters, in the order to run")
    p.add_argument("--timeout", type=float, default=120.0, help="per scenario, from child start")
    p.add_argument("--settle", type=float, default=3.0, help="s to keep counting after the end")
    p.add_argument("--grace", type=float, default=15.0, help="s between SIGTERM and SIGKILL")
    p.add_argument("--broker-pid", type=int, default=None, help="also report this pid's CPU")
    p.add_argument("--workdir", default="bench-results/faust-baseline", help="child logs and event files")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--keep-topics", action="store_true")
    # internal: child mode
    p.add_argument("--child", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    p.add_argument("--in-topic", help=argparse.SUPPRESS)
    p.add_argument("--out-topic", help=argparse.SUPPRESS)
    p.add_argument("--group", help=argparse.SUPPRESS)
    p.add_argument("--events", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.child:
        run_child(a)
        return
    from bench import kafka_ops
    from pipeline.kafka.topics import create_topics

    bad = set(a.scenarios) - set(SCENARIOS)
    if bad:
        raise SystemExit(f"unknown scenarios: {''.join(sorted(bad))}")
    try:
        import faust

        faust_version = faust.__version__
    except ImportError:
        if any(SCENARIOS[s].engine == "faust" for s in a.scenarios):
            raise SystemExit("faust-streaming is not installed in this interpreter (see docstring)") from None
        faust_version = None
    import confluent_kafka

    versions = {"python": sys.version.split()[0], "faust": faust_version,
                "confluent_kafka": confluent_kafka.version()[0],
                "librdkafka": confluent_kafka.libversion()[0], "cpus": os.cpu_count()}
    for module in ("aiokafka", "uvloop"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    print("versions:", json.dumps(versions), flush=True)
    os.makedirs(a.workdir, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    admin = kafka_ops.admin(a.bootstrap)
    in_topic = f"fb-{run_id}-in"
    create_topics(admin, {in_topic: PARTITIONS})
    preproduce(a, in_topic)
    results = []
    for scen in a.scenarios:
        print(f"running {scen} {SCENARIOS[scen].name} ...", flush=True)
        r = run_scenario(a, scen, in_topic, admin, run_id)
        print(f"  -> {r.status} rate={fmt(r.rate, ',.0f')} msg/s {'; '.join(r.notes)}", flush=True)
        results.append(r)
    print()
    print(f"N={a.messages} messages of 120 B, {PARTITIONS} partitions, {os.cpu_count()} CPUs; "
          "msg/s = first consumed -> N visible (read_committed) on output")
    print_table(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"versions": versions, "messages": a.messages,
                       "results": [r.__dict__ for r in results]}, f, indent=2)
    if not a.keep_topics:
        kafka_ops.delete_topics(admin, f"fb-{run_id}-")


if __name__ == "__main__":
    main()
