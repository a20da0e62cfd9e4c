"""Where the worker's time goes at full throughput: py-spy attached to the running worker, summarised.

py-spy samples from outside the process (no instrumentation in the worker, --nonblocking so the
worker is never paused), including idle samples, so the summary shows both CPU hot spots and time
spent waiting in the Kafka client. Only the worker's main thread is counted (the metrics HTTP thread
idles in select() all the time and would drown the figures).
"""

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = str(Path(sys.executable).parent / "py-spy")

# First match from the innermost frame outwards names the category of a sample.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("sleep (time.sleep in the loop)", ("sleep (",)),
    ("Kafka consume (librdkafka -> Python messages)", ("consume (",)),
    ("transaction commit / offsets (round trips)", ("commit_transaction", "send_offsets_to_transaction",
                                                   "begin_transaction", "_commit_transaction")),
    ("Kafka produce calls", ("_produce (", "produce (")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("Avro decode (fastavro)", ("_read (", "schemaless_reader", "decode (")),
    ("validation (input_records, device IDs)", ("input_records", "device_ids")),
    ("Avro encode (SuppressedAlert)", ("encode (",)),
    ("state lookups (FilterState, RocksDB, JSON)", ("filter_state", "state_backends", "json")),
    ("read frontier / hold checks", ("read_frontier", "_first_held", "_request_end_offsets")),
    ("state commit (RocksDB write batch)", ("_commit_state",)),
    ("alert queues and bookkeeping", ("alert_intake", "_decide", "_read_alerts", "_pause_or_resume")),
]
_LINE = re.compile(r":\d+\)$")


def start(pid: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """py-spy record in raw (collapsed stacks) format; stop it with `stop` to have the file written."""
    args = [PY_SPY, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out),
            "--nonblocking", "--idle", "--threads"]
    log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _frame(frame: str) -> str:
    return _LINE.sub(")", frame.strip())


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function, and shares per category, of the main thread's samples."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if not any("worker.py" in f and f.startswith("run (") for f in frames):
            continue  # not the main loop's thread
        frames = frames[1:] if frames and frames[0].startswith(("thread", "process")) else frames
        count = int(count_text)
        total += count
        self_counts[frames[-1]] += count
        for f in set(frames):
            incl_counts[f] += count
        categories[_category(frames)] += count
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "categories_pct": shares(categories),
        "self_pct": shares(self_counts),
        "inclusive_pct": shares(incl_counts),
    }


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other: " + (frames[-1] if frames else "?")
