"""Faust vs confluent-kafka pass-through baseline: why the worker's hot path is on confluent-kafka.

NOT part of the project's dependencies: the Faust scenarios need faust-streaming (0.15+, on
aiokafka 0.13+) installed separately, in a virtualenv of its own outside the repo, e.g.

    python3 -m venv ../faustvenv
    ../faustvenv/bin/pip install 'faust-streaming>=0.15' 'aiokafka>=0.13' confluent-kafka
    ../faustvenv/bin/python bench/faust_baseline.py --bootstrap 127.0.0.1:49092 --messages 300000

Use a private broker (transactions and throw-away topics), e.g.
    KAFKA_PORT=49092 KAFKA_CONTROLLER_PORT=49093 KAFKA_DATA_DIR=.kafka-faust \
        bash deploy/kafka/kafka.sh up      # ... and `down` afterwards

What it does: pre-produces N messages of ~120 bytes (the size of an Avro alert) to a fresh
3-partition input topic, then, for each scenario, runs ONE child process (this file with
--child) in a fresh consumer group that copies the input topic to a fresh 3-partition output
topic, bounded by --timeout:

  a  faust-agent      Faust agent, raw bytes, `async for v in stream: await out.send(value=v)`
  b  faust-take       Faust, `stream.take(5000, within=0.1)` + `out.send_soon(value=v)` per message
  c  faust-discard    Faust, consume and discard (ceiling of Faust's consume path)
  d  faust-eos        (b) with processing_guarantee='exactly_once'
  e  ck-plain         confluent-kafka consume(10000) + produce, non-transactional (auto commit)
  f  ck-txn           confluent-kafka, one transaction per consume batch with
                      send_offsets_to_transaction (what pipeline/worker.py does)

Throughput is N / (time the child consumed its first message -> time the Nth message is
visible on the output topic to a read_committed consumer run by the parent). For (c) the end
is the child consuming its Nth message. 'inproc' is the child's own view (last message
produced and flushed / transaction committed). CPU is user+sys of the child process over the
same window (all threads, from /proc), plus the broker's if --broker-pid is given, plus the
parent's counter; 'msg/cpu-s' (messages per CPU-second of the child) is the figure least
disturbed by other load on the machine (the 'load' column). A run that hits --timeout reports
a partial rate over the messages it got through. The parent keeps counting for --settle s after
the end to catch duplicates. Faust runs with linger 2 ms / 1 MB producer batches like the
confluent producers unless --faust-defaults is given.
"""

from __future__ import annotations

import argparse
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

SCENARIOS = {
    "a": "faust-agent",
    "b": "faust-take",
    "c": "faust-discard",
    "d": "faust-eos",
    "e": "ck-plain",
    "f": "ck-txn",
}
PARTITIONS = 3
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


def child_faust(a: argparse.Namespace, ev: Events) -> None:
    import asyncio

    import faust

    scen = a.child
    conf: dict[str, object] = dict(
        broker=f"kafka://{a.bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        datadir=os.path.join(a.workdir, "{conf.name}-data"),
    )
    if not a.faust_defaults:  # same batching as the confluent producers (and pipeline/worker.py)
        conf["producer_linger"] = 0.002
        conf["producer_max_batch_size"] = 1_000_000
        conf["producer_max_request_size"] = 2_000_000
    if scen == "d":
        conf["processing_guarantee"] = "exactly_once"
    app = faust.App(a.group, **conf)
    src = app.topic(a.in_topic, value_type=bytes, value_serializer="raw", partitions=PARTITIONS)
    dst = app.topic(a.out_topic, value_type=bytes, value_serializer="raw", partitions=PARTITIONS)
    n_target = a.messages
    st = {"n": 0, "done": False}

    async def finish() -> None:
        if not st["done"]:
            st["done"] = True
            if scen != "c":
                await app.producer.flush()
            ev.emit("done", count=st["n"])

    def seen(k: int) -> None:
        if st["n"] == 0 and k:
            ev.emit("first")
        before = st["n"]
        st["n"] += k
        if st["n"] // 1000 != before // 1000:
            ev.emit("progress", count=st["n"])

    if scen == "a":

        @app.agent(src)
        async def copy_each(stream):  # noqa: ANN001
            async for value in stream:
                seen(1)
                await dst.send(value=value)
                if st["n"] >= n_target:
                    await finish()

    elif scen in ("b", "d"):

        @app.agent(src)
        async def copy_batches(stream):  # noqa: ANN001
            async for values in stream.take(5000, within=0.1):
                seen(len(values))
                for value in values:
                    dst.send_soon(value=value)
                if st["n"] >= n_target:
                    await finish()

    elif scen == "c":

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
# child: confluent-kafka scenarios
# ---------------------------------------------------------------------------------------------


def child_confluent(a: argparse.Namespace, ev: Events) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    txn = a.child == "f"
    consumer = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "enable.auto.commit": not txn,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "queued.max.messages.kbytes": 65536,
            "fetch.wait.max.ms": 50,
        }
    )
    pconf: dict[str, object] = {
        "bootstrap.servers": a.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.size": 1_000_000,
        "compression.type": a.compression,
        "queue.buffering.max.messages": 1_000_000,
    }
    if txn:
        pconf["transactional.id"] = f"{a.group}-tx"
        pconf["transaction.timeout.ms"] = 60_000
    producer = Producer(pconf)
    if txn:
        producer.init_transactions(30)
    consumer.subscribe([a.in_topic])
    ev.emit("app_started")
    n = 0
    done = False

    def produce(value: bytes | None) -> None:
        while True:
            try:
                producer.produce(a.out_topic, value)  # type: ignore[arg-type]  # None is a null value
                return
            except BufferError:
                producer.poll(0.01)

    while True:
        msgs = consumer.consume(a.batch, 0.1)
        good = [m for m in msgs if m.error() is None]
        if not good:
            if not txn:
                producer.poll(0)
            continue
        if n == 0:
            ev.emit("first")
        n += len(good)
        if txn:
            producer.begin_transaction()
            for m in good:
                produce(m.value())
            last: dict[tuple[str, int], int] = {}
            for m in good:
                last[(m.topic(), m.partition())] = m.offset() + 1  # type: ignore[index,operator]
            producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in last.items()],
                consumer.consumer_group_metadata(),
                30,
            )
            try:
                producer.commit_transaction(30)
            except KafkaException as exc:
                ev.emit("error", msg=f"commit_transaction: {exc}")
                raise
        else:
            for m in good:
                produce(m.value())
            producer.poll(0)
        if n >= a.messages and not done:
            if not txn:
                producer.flush(30)
            done = True
            ev.emit("done", count=n)


def run_child(a: argparse.Namespace) -> None:
    ev = Events(a.events)
    try:
        if a.child in ("a", "b", "c", "d"):
            child_faust(a, ev)
        else:
            child_confluent(a, ev)
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


def create_topics(admin, names: list[str]) -> None:  # noqa: ANN001
    from confluent_kafka.admin import NewTopic

    futs = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names], operation_timeout=30)
    for f in futs.values():
        f.result(60)


def preproduce(a: argparse.Namespace, topic: str) -> None:
    from confluent_kafka import Producer

    payloads = make_payloads(a.messages)
    p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 2_000_000, "acks": "all",
                  "compression.type": a.compression})
    t0 = time.time()
    for v in payloads:
        while True:
            try:
                p.produce(topic, v)
                break
            except BufferError:
                p.poll(0.01)
    left = p.flush(120)
    if left:
        raise SystemExit(f"pre-produce: {left} messages not delivered")
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


def run_scenario(a: argparse.Namespace, scen: str, in_topic: str, admin, run_id: str) -> Result:  # noqa: ANN001
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    res = Result(scen)
    name = SCENARIOS[scen]
    out_topic = f"fb-{run_id}-out-{scen}"
    group = f"fb-{run_id}-{name}"
    create_topics(admin, [out_topic])
    workdir = Path(a.workdir)
    ev_path = workdir / f"{run_id}-{scen}.events"
    log_path = workdir / f"{run_id}-{scen}.log"
    cmd = [sys.executable, os.path.abspath(__file__), "--child", scen, "--bootstrap", a.bootstrap,
           "--in-topic", in_topic, "--out-topic", out_topic, "--group", group,
           "--messages", str(a.messages), "--events", str(ev_path), "--batch", str(a.batch),
           "--compression", a.compression, "--workdir", a.workdir]
    if a.faust_defaults:
        cmd.append("--faust-defaults")
    counter = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"{group}-counter",
                        "enable.auto.commit": False, "isolation.level": "read_committed",
                        "fetch.wait.max.ms": 50})
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
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = t_start + a.timeout
        while True:
            msgs = counter.consume(10000, 0.05)
            count += sum(1 for m in msgs if m.error() is None)
            now = time.time()
            pos = read_events(ev_path, pos, events)
            if "first" in events and cpu_counter_first is None:
                cpu_counter_first = self_cpu()
                cpu_broker_first = proc_cpu(a.broker_pid) if a.broker_pid else None
            met = ("done" in events) if scen == "c" else count >= a.messages
            failed = "error" in events or proc.poll() is not None
            if met or failed or now >= deadline:
                if scen == "c":
                    last = events.get("done") or events.get("progress")
                    t_end, processed = (last["t"], last["count"]) if last else (now, 0)
                else:
                    t_end, processed = now, min(count, a.messages)
                cpu_child_end = proc_cpu(proc.pid)
                cpu_broker_end = proc_cpu(a.broker_pid) if a.broker_pid else None
                break
        if cpu_counter_first is not None:
            res.counter_cpu_s = self_cpu() - cpu_counter_first
        if met and scen != "c":
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
        if scen != "c" and count != a.messages:
            res.notes.append(f"output holds {count} != {a.messages} messages after {a.settle:.0f}s")
    elif "error" in events:
        res.status = "error"
    elif proc.returncode is not None and how == "exited":
        res.status = f"crashed rc={proc.returncode}"
    else:
        res.status = f"timeout {a.timeout:.0f}s"
    if not met:
        what = "consumed" if scen == "c" else "visible on output"
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
    hdr = (f"{'scenario':<16} {'status':<12} {'msg/s':>9} {'inproc':>9} {'secs':>6} {'startup':>7} "
           f"{'cpu_s':>6} {'cores':>5} {'us/msg':>6} {'msg/cpu-s':>9} {'brk_cpu':>7} {'ctr_cpu':>7} "
           f"{'load':>11}  notes")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        cpu, n = r.child_cpu_s, r.processed
        cores = cpu / r.elapsed_s if cpu is not None and r.elapsed_s else None
        us = cpu / n * 1e6 if cpu is not None and n else None
        per_cpu = n / cpu if cpu and n else None
        print(f"{r.scen + ' ' + SCENARIOS[r.scen]:<16} {r.status:<12} {fmt(r.rate, ',.0f'):>9} "
              f"{fmt(r.inproc_rate, ',.0f'):>9} {fmt(r.elapsed_s, '.2f'):>6} "
              f"{fmt(r.startup_s, '.1f'):>7} {fmt(cpu, '.2f'):>6} {fmt(cores, '.2f'):>5} "
              f"{fmt(us, '.0f'):>6} {fmt(per_cpu, ',.0f'):>9} {fmt(r.broker_cpu_s, '.2f'):>7} "
              f"{fmt(r.counter_cpu_s, '.2f'):>7} {r.loadavg or '-':>11}  {'; '.join(r.notes)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="127.0.0.1:49092")
    p.add_argument("--messages", type=int, default=300_000)
    p.add_argument("--scenarios", default="abcdef", help="subset of letters a-f (default all)")
    p.add_argument("--timeout", type=float, default=120.0, help="per scenario, from child start")
    p.add_argument("--batch", type=int, default=10_000, help="consume() batch for e/f")
    p.add_argument("--compression", default="none", help="producer compression for e/f/pre-produce")
    p.add_argument("--settle", type=float, default=3.0, help="s to keep counting after the end")
    p.add_argument("--grace", type=float, default=15.0, help="s between SIGTERM and SIGKILL")
    p.add_argument("--broker-pid", type=int, default=None, help="also report this pid's CPU")
    p.add_argument("--workdir", default="bench-results/faust-baseline", help="child logs and event files")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--keep-topics", action="store_true")
    p.add_argument("--faust-defaults", action="store_true",
                   help="Faust producer defaults (linger 0, 16 KiB batches) instead of linger 2 ms, "
                   "1 MB batches like the confluent producers")
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
    from confluent_kafka.admin import AdminClient

    bad = set(a.scenarios) - set(SCENARIOS)
    if bad:
        raise SystemExit(f"unknown scenarios: {''.join(sorted(bad))}")
    try:
        import faust  # noqa: F401

        faust_version = faust.__version__
    except ImportError:
        if set(a.scenarios) & set("abcd"):
            raise SystemExit("faust-streaming is not installed in this interpreter (see docstring)") from None
        faust_version = None
    import confluent_kafka

    versions = {"python": sys.version.split()[0], "faust": faust_version,
                "confluent_kafka": confluent_kafka.version()[0],
                "librdkafka": confluent_kafka.libversion()[0], "cpus": os.cpu_count()}
    try:
        import aiokafka

        versions["aiokafka"] = aiokafka.__version__
    except ImportError:
        pass
    print("versions:", json.dumps(versions), flush=True)
    os.makedirs(a.workdir, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    in_topic = f"fb-{run_id}-in"
    create_topics(admin, [in_topic])
    preproduce(a, in_topic)
    results = []
    for scen in a.scenarios:
        print(f"running {scen} {SCENARIOS[scen]} ...", flush=True)
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
        topics = [in_topic] + [f"fb-{run_id}-out-{s}" for s in a.scenarios]
        for deletion in admin.delete_topics(topics, operation_timeout=30).values():
            try:
                deletion.result(60)
            except Exception as exc:  # noqa: BLE001
                print(f"delete topic: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
