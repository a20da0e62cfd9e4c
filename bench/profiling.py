"""Where the worker's time goes at full throughput: py-spy attached to the running worker, summarised.

py-spy samples from outside the process (no instrumentation in the worker, --nonblocking so the
worker is never paused), including idle samples, so the summary shows both CPU hot spots and time
spent waiting in the Kafka client. Only the worker's main thread is counted (the metrics HTTP thread
idles in select() all the time and would drown the figures).
"""

import linecache
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = str(Path(sys.executable).parent / "py-spy")

# Work done by the loop but not per alert: matched anywhere in the stack, before the rules below.
OUTER_CATEGORIES: list[tuple[str, str]] = [
    ("housekeeping: FilterState.sweep (runs in the decision loop)", "FilterState.sweep"),
    ("housekeeping: gauges (positions, watermarks)", "_update_gauges"),
    ("state commit (RocksDB write batch)", "_commit_state"),
]

# Rules tried from the innermost frame outwards; the first that matches names a sample's category.
# A frame is matched on "function (file:line)" and on the text of that source line, because without
# native frames the time spent inside a C call (librdkafka, fastavro, RocksDB) shows as the Python line
# that made the call.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("sleeping (time.sleep in the loop)", ("time.sleep(",)),
    ("Kafka consume() calls", (".consume(",)),
    (
        "transaction round trips (begin/send_offsets/commit)",
        ("commit_transaction(", "send_offsets_to_transaction(", "begin_transaction("),
    ),
    ("Kafka produce() calls", (".produce(",)),
    (
        "Kafka admin/positions (end offsets, lag gauges)",
        ("list_offsets", "position(", "get_watermark_offsets", "kafka_admin.py"),
    ),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("Avro decode", ("schemaless_reader", "fastavro/_read", "fastavro/read")),
    ("Avro encode", ("schemaless_writer", "fastavro/_write", "fastavro/write", "avro_codec.py:")),
    ("validation (input_records, device IDs)", ("input_records.py", "device_ids.py")),
    ("JSON (state values)", ("json/",)),
    ("RocksDB get/write", ("state_backends.py",)),
    ("decision logic (FilterState, windows)", ("filter_state.py", "activation_windows.py")),
    ("read frontier / hold checks", ("read_frontier.py", "_first_held", "_request_end_offsets")),
    ("per-alert objects and queues", ("alert_intake.py", "__create_fn__", "output_records.py")),
]
_NO_LINE = re.compile(r":\d+\)$")
_REPO_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
_LINENO = re.compile(r"\((?P<file>.*):(?P<line>\d+)\)$")


def start(pid: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """py-spy record in raw (collapsed stacks) format; stop it with `stop` to have the file written."""
    args = [
        PY_SPY,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        "--idle",
        "--threads",
        "--full-filenames",
    ]
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


def _describe(frame: str) -> tuple[str, str]:
    """(function (file:line) with the file shortened, the source line's text)."""
    frame = frame.strip()
    match = _LINENO.search(frame)
    if match is None:
        return frame, ""
    path, line = match["file"], int(match["line"])
    text = linecache.getline(path, line).strip()
    short = path.split("/site-packages/")[-1].split(_REPO_ROOT)[-1].split("/lib/python3.11/")[-1]
    return f"{frame[: match.start()].strip()} ({short}:{line})", text


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    """Shares of the main thread's samples: per category, per innermost line (self), per function
    (inclusive)."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    described: dict[str, tuple[str, str]] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        raw_frames = stack.split(";")
        if "MainThread" not in raw_frames[0]:
            continue  # the metrics HTTP thread, or a thread of a library
        frames = [described.setdefault(f, _describe(f)) for f in raw_frames if not f.startswith(("thread", "process"))]
        if not frames:
            continue
        count = int(count_text)
        total += count
        leaf, text = frames[-1]
        self_counts[f"{leaf}  | {text[:70]}" if text else leaf] += count
        for name in {_NO_LINE.sub(")", f) for f, _ in frames}:
            incl_counts[name] += count
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


def _category(frames: list[tuple[str, str]]) -> str:
    for name, needle in OUTER_CATEGORIES:
        if any(needle in frame for frame, _ in frames):
            return name
    for frame, text in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame or n in text for n in needles):
                return name
    return "loop code in worker.py (bookkeeping between calls)" if "worker.py" in frames[-1][0] else "other"
