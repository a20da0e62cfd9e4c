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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY_SPY = str(Path(sys.executable).parent / "py-spy")


@dataclass(frozen=True, slots=True)
class Bucket:
    """A category of the worker's time. `modules` are the project's files (repo-relative; a folder ends in
    '/'), `functions` are 'file:function' in the project, both checked against the tree by a test so that
    a module moved or renamed cannot silently leave its samples under "other"; `code` are fragments of the
    source line or of a library's path (without native frames, the time spent inside a C call shows as the
    Python line that made it)."""

    name: str
    modules: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    code: tuple[str, ...] = ()

    def matches(self, frame: str, text: str) -> bool:
        return (
            any(f"({module}" in frame for module in self.modules)
            or any(_in_function(frame, where) for where in self.functions)
            or any(fragment in frame or fragment in text for fragment in self.code)
        )


def _in_function(frame: str, where: str) -> bool:
    path, _, function = where.partition(":")
    return frame.startswith(f"{function} ({path}:")


# Work done by the loop but not per alert: matched anywhere in the stack, before the buckets below.
OUTER_BUCKETS: list[Bucket] = [
    Bucket(
        "housekeeping: the state sweep (runs in the decision loop)",
        functions=("pipeline/core/filter_state.py:sweep_some",),
    ),
    Bucket(
        "housekeeping: gauges (positions, watermarks)", functions=("pipeline/worker/housekeeping.py:_update_gauges",)
    ),
    Bucket("state commit (RocksDB write batch)", functions=("pipeline/worker/state_reader.py:commit",)),
]

# Tried from the innermost frame outwards; the first that matches names a sample's bucket.
BUCKETS: list[Bucket] = [
    Bucket("sleeping (time.sleep in the loop)", code=("time.sleep(",)),
    Bucket("Kafka consume() calls (poll: waiting for the next alert)", code=(".consume(", "consumer.poll(")),
    Bucket(
        "transaction round trips (begin/send_offsets/commit)",
        code=("commit_transaction(", "send_offsets_to_transaction(", "begin_transaction("),
    ),
    Bucket("Kafka produce() calls", code=(".produce(",)),
    Bucket(
        "Kafka admin/positions (end offsets, lag gauges)",
        modules=("pipeline/kafka/admin.py", "pipeline/worker/end_offsets.py"),
        code=("list_offsets", "position(", "get_watermark_offsets"),
    ),
    Bucket("metrics (prometheus_client)", code=("prometheus_client",)),
    Bucket(
        "Avro decode",
        modules=("pipeline/wire/avro_scan.py",),
        code=("schemaless_reader", "fastavro/_read", "fastavro/read"),
    ),
    Bucket(
        "Avro encode",
        modules=("pipeline/wire/avro_codec.py",),
        code=("schemaless_writer", "fastavro/_write", "fastavro/write"),
    ),
    Bucket(
        "fast readers and writers of the Avro bytes",
        modules=("pipeline/wire/alert_bytes.py", "pipeline/wire/reference_bytes.py", "pipeline/wire/avro_binary.py"),
    ),
    Bucket(
        "DUIS: GBCS frames (base64, DER, DLMS)",
        modules=("pipeline/wire/duis/gbcs.py", "pipeline/wire/duis/der.py", "pipeline/wire/duis/dlms.py"),
    ),
    Bucket("DUIS: the fast alert reader", modules=("pipeline/wire/duis/fast_alerts.py",)),
    Bucket(
        "DUIS: XML values; the strict reader (lxml parse, tree walk)",
        modules=("pipeline/wire/duis/xml_document.py", "pipeline/wire/duis/messages.py"),
        code=("lxml",),
    ),
    Bucket("DUIS: dispatch and the evidence reader's skip", modules=("pipeline/wire/input_records.py",)),
    Bucket("validation (records, device IDs)", modules=("pipeline/wire/validation.py", "pipeline/core/device_ids.py")),
    Bucket("JSON (state values)", code=("json/",)),
    Bucket(
        "RocksDB get/scan/write",
        modules=("pipeline/worker/rocks_store.py", "pipeline/core/key_value.py"),
        code=("rocksdict",),
    ),
    Bucket(
        "rule 9: outage evidence (storms, supply restored, the evidence reader)",
        modules=(
            "pipeline/core/outage_evidence.py",
            "pipeline/worker/evidence_reader.py",
            "pipeline/worker/evidence_holds.py",
        ),
    ),
    Bucket(
        "decision logic (FilterState, windows, reference data)",
        modules=(
            "pipeline/core/filter_state.py",
            "pipeline/core/activation_windows.py",
            "pipeline/core/alert_decisions.py",
            "pipeline/core/reference_data.py",
        ),
    ),
    Bucket("read frontier", modules=("pipeline/core/read_frontier.py",)),
    Bucket(
        "per-alert objects and queues",
        modules=("pipeline/worker/hold_queues.py", "pipeline/wire/output_records.py"),
        code=("__create_fn__",),
    ),
    Bucket("triage (the fast path and the drains)", modules=("pipeline/worker/triage.py",)),
]
LOOP_MODULE = "pipeline/worker/filter_worker.py"  # what is left in the loop itself: bookkeeping between calls
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
    for bucket in OUTER_BUCKETS:
        if any(bucket.matches(frame, text) for frame, text in frames):
            return bucket.name
    for frame, text in reversed(frames):
        for bucket in BUCKETS:
            if bucket.matches(frame, text):
                return bucket.name
    return "loop code (bookkeeping between calls)" if f"({LOOP_MODULE}:" in frames[-1][0] else "other"
