"""Bulk loaders for the DSP's reference data (contract 7): a tracked-list or inventory CSV onto its topic.

Rows are checked by the validators the worker applies when it reads these topics (`pipeline.wire.validation`), so a
row the loader accepts is one the worker will use, and a row it rejects would only have been dead-lettered.
A bad row never stops the load: the operator gets every good row loaded and a list of what to fix.
"""

import csv
import multiprocessing
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.kafka.topics import read_to_end
from pipeline.settings import Settings
from pipeline.tools.bulk_producer import BulkProducer, require_topics
from pipeline.tools.progress import Progress
from pipeline.wire import validation
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.reference_bytes import inventory_record_bytes, tracked_device_bytes

# Enough to see what is wrong with a file without flooding a terminal when every row is bad.
MAX_SHOWN_REJECTIONS = 100
# About 100k rows: below this, starting more processes costs more than it saves.
_PARALLEL_FROM_BYTES = 8_000_000
Shard = tuple[int, int]  # (index, count): the rows whose device ID hashes to index
WHOLE_FILE: Shard = (0, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# Epoch milliseconds as the loaders document them: ASCII digits only (str.isdigit() also takes '²' and '٣').
# Thirty digits is far past any valid time, and short enough for int().
_EPOCH_MILLIS = re.compile(r"[0-9]{1,30}")


class CsvFileError(Exception):
    """The file as a whole cannot be loaded (unreadable, no header, a required column missing)."""


class EmptyReplaceRefused(CsvFileError):
    """`--replace` with a file that lists no device would remove every device: done only when asked for."""


@dataclass(frozen=True)
class CsvKind:
    """What one kind of reference CSV holds and where it goes."""

    description: str
    record_name: str
    topic_field: str  # attribute of Topics
    required: tuple[str, ...]
    optional: tuple[str, ...]
    time_field: str  # optional column; the load time when absent or empty
    id_fields: tuple[str, ...]  # device-ID fields the validator canonicalises
    validate: Callable[[Mapping[str, Any]], Any]
    encode: Callable[[bytes, Mapping[str, Any]], bytes]  # a validated datum after a header (reference_wire)
    trimmed: tuple[str, ...] = ()  # optional free-text columns kept as typed, bar surrounding spaces; blank: None


TRACKED = CsvKind(
    description="tracked list",
    record_name="TrackedDevice",
    topic_field="tracked_devices",
    required=("device_id",),
    optional=("manufacturer", "model", "firmware_version", "list_version"),
    time_field="added_at",
    id_fields=("device_id",),
    validate=validation.tracked_device,
    encode=tracked_device_bytes,
)

INVENTORY = CsvKind(
    description="inventory",
    record_name="InventoryRecord",
    topic_field="inventory",
    required=("device_id", "device_type", "chf_id"),
    optional=("mpxn", "postcode"),
    time_field="updated_at",
    id_fields=("device_id", "chf_id"),
    validate=validation.inventory_record,
    encode=inventory_record_bytes,
    trimmed=("postcode",),  # InventoryRecord version 2; not checked beyond that (issue 12)
)


@dataclass
class LoadReport:
    """Counts for the operator; `rejected_rows` holds (line, message) of the first MAX_SHOWN_REJECTIONS."""

    path: str
    rows_read: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejected_rows: list[tuple[int, str]] = field(default_factory=list)
    device_ids: set[str] = field(default_factory=set, repr=False)  # distinct canonical IDs of valid rows
    ignored_columns: tuple[str, ...] = ()
    removed: int | None = None  # tombstones written by --replace; None when nothing was replaced
    replace_skipped: bool = False
    seconds: float = 0.0

    def reject(self, line: int, error: str) -> None:
        self.rejected += 1
        if len(self.rejected_rows) < MAX_SHOWN_REJECTIONS:
            self.rejected_rows.append((line, f"{self.path}:{line}: {error}"))

    def add(self, shard: "LoadReport") -> None:
        """Fold in the report of one shard of the same file (shards hold disjoint device IDs)."""
        self.rows_read += shard.rows_read
        self.loaded += shard.loaded
        self.rejected += shard.rejected
        self.duplicates += shard.duplicates
        self.device_ids |= shard.device_ids
        self.rejected_rows = sorted(self.rejected_rows + shard.rejected_rows)[:MAX_SHOWN_REJECTIONS]
        self.ignored_columns = shard.ignored_columns

    def summary(self) -> list[str]:
        rate = self.rows_read / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.path}: {self.rows_read} rows read, {self.loaded} loaded, {self.rejected} rejected",
            f"{self.path}: {self.duplicates} rows repeat an earlier device ID (the last row wins)",
            f"{self.path}: {self.seconds:.1f} s, {rate:,.0f} rows/s",
        ]
        if self.ignored_columns:
            lines.append(f"{self.path}: ignored unknown columns: {', '.join(self.ignored_columns)}")
        if self.replace_skipped:
            lines.append(
                f"{self.path}: --replace: removed nothing from the list, because rows were rejected "
                "and a rejected row would wrongly remove its device; fix them and load again"
            )
        elif self.removed is not None:
            lines.append(f"{self.path}: --replace: removed {self.removed} devices that are not in the file")
        return lines


def parse_time(text: str, name: str) -> int:
    """Epoch millis from a CSV cell: ASCII digits are epoch millis, else ISO-8601 in ASCII (UTC if no offset).

    Anything else is BadInput naming the field, whatever characters the cell holds.
    """
    if _EPOCH_MILLIS.fullmatch(text):
        return int(text)
    try:
        if not text.isascii():
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{name} {text!r} is neither an ISO-8601 UTC time nor epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def read_csv(
    kind: CsvKind,
    path: str,
    load_time_ms: int,
    report: LoadReport,
    shard: Shard = WHOLE_FILE,
    progress: Progress | None = None,
) -> Iterator[dict[str, Any]]:
    """Valid rows (of the shard) as Avro datums with canonical device IDs; bad rows go to `report`.

    `progress` is told how many rows of the whole file have been read (a shard reads them all).
    """
    index, count = shard
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(rows, [])]
            columns = _columns(kind, path, header, report)
            width, key = len(header), header.index("device_id")
            for row in rows:
                if progress is not None:
                    progress.update(rows.line_num - 1)
                if not row or (count > 1 and _shard_of(row, key, count) != index):
                    continue  # a blank line, or another shard's row
                report.rows_read += 1
                if len(row) != width:
                    report.reject(rows.line_num, f"expected {width} fields as in the header, found {len(row)}")
                    continue
                datum: dict[str, Any] = {name: row[i] if required else row[i] or None for name, i, required in columns}
                for name in kind.trimmed:
                    if datum.get(name) is not None:
                        datum[name] = datum[name].strip() or None
                try:
                    when = datum.get(kind.time_field)
                    datum[kind.time_field] = load_time_ms if when is None else parse_time(when, kind.time_field)
                    record = kind.validate(datum)
                except BadInput as exc:
                    report.reject(rows.line_num, str(exc))
                    continue
                for name in kind.id_fields:
                    datum[name] = getattr(record, name)
                if record.device_id in report.device_ids:
                    report.duplicates += 1
                else:
                    report.device_ids.add(record.device_id)
                yield datum
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CsvFileError(
                f"{path}:{rows.line_num + 1}: not a readable UTF-8 CSV line ({exc}); "
                f"the valid rows among the {report.rows_read} before it were loaded"
            ) from None


def _shard_of(row: list[str], key: int, count: int) -> int:
    """Rows of one device ID, in any letter case, fall in the same shard, so the last row still wins."""
    return zlib.crc32(row[key].upper().encode()) % count if key < len(row) else 0


def _columns(kind: CsvKind, path: str, header: list[str], report: LoadReport) -> list[tuple[str, int, bool]]:
    """(name, index, required) of the columns the record uses; a missing required column fails the file."""
    if not header:
        raise CsvFileError(f"{path}: no header line; expected columns {', '.join(kind.required)}")
    unnamed = [str(position) for position, name in enumerate(header, 1) if not name]
    if unnamed:
        raise CsvFileError(
            f"{path}:1: empty column name at position {', '.join(unnamed)} of the header "
            f"(the header has {len(header)} columns); name every column or remove the empty ones; nothing was loaded"
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise CsvFileError(f"{path}:1: column(s) named more than once: {', '.join(duplicated)}")
    missing = [name for name in kind.required if name not in header]
    if missing:
        raise CsvFileError(
            f"{path}:1: the {kind.description} needs column(s) {', '.join(missing)}; "
            f"the header has {', '.join(header)}; nothing was loaded"
        )
    known = (*kind.required, *kind.optional, kind.time_field)
    report.ignored_columns = tuple(name for name in header if name not in known)
    return [(name, header.index(name), name in kind.required) for name in known if name in header]


def load_csv(
    kind: CsvKind,
    path: str,
    settings: Settings,
    codec_for: Callable[[Settings], AvroCodec],
    replace: bool = False,
    jobs: int | None = None,
    allow_empty: bool = False,
) -> LoadReport:
    """Produce each valid row keyed by its canonical device ID; `replace` tombstones devices not listed.

    A file with no rows under `replace` would tombstone the whole topic: EmptyReplaceRefused, unless `allow_empty`.

    With several jobs, each process reads the whole file and loads the rows whose device ID hashes to it:
    encoding is the bottleneck, and a device's rows stay in one producer, in file order.
    """
    topic = getattr(settings.topics, kind.topic_field)
    require_topics(settings, topic)
    _columns(kind, path, _header(path), LoadReport(path))  # a file-level error before any work starts
    jobs = jobs or _default_jobs(path)
    started = time.monotonic()
    load_time_ms = int(time.time() * 1000)
    shards = [(kind, path, settings, codec_for, load_time_ms, (i, jobs), replace) for i in range(jobs)]
    report = LoadReport(path)
    if jobs == 1:
        report.add(_load_shard(*shards[0]))
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(_load_shard, *zip(*shards, strict=True)):
                report.add(part)
    if replace and not report.rows_read and not allow_empty:
        raise EmptyReplaceRefused(
            f"{path}: the file has no rows, so --replace would remove every device from {topic}; "
            "nothing was changed (pass --allow-empty to empty the list on purpose)"
        )
    if replace and report.rejected:
        report.replace_skipped = True
    elif replace:
        report.removed = _tombstone_unlisted(settings, topic, report.device_ids)
    report.seconds = time.monotonic() - started
    return report


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        try:
            return [name.strip().lower() for name in next(csv.reader(handle), [])]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CsvFileError(f"{path}:1: not a readable UTF-8 CSV header ({exc}); nothing was loaded") from None


def _data_lines(path: str) -> int:
    """Lines after the header: the row count, bar blank lines and quoted line breaks (for time left)."""
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0)


def _default_jobs(path: str) -> int:
    """One process for small files (starting more costs a second), else one per CPU, at most four."""
    if os.path.getsize(path) < _PARALLEL_FROM_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _load_shard(
    kind: CsvKind,
    path: str,
    settings: Settings,
    codec_for: Callable[[Settings], AvroCodec],
    load_time_ms: int,
    shard: Shard,
    keep_ids: bool,
) -> LoadReport:
    """Load one shard of the file with its own codec and producer (it may run in another process)."""
    codec, topic = codec_for(settings), getattr(settings.topics, kind.topic_field)
    header = codec.header(kind.record_name, topic)
    report = LoadReport(path)
    producer = BulkProducer(settings)
    # Every shard reads the whole file; the first one shows how far it has got.
    with Progress(f"load {path}") as progress:
        shown = progress if progress.active and shard[0] == 0 else None
        if shown is not None:
            shown.total = _data_lines(path)
        try:
            for datum in read_csv(kind, path, load_time_ms, report, shard, shown):
                producer.produce(topic, datum["device_id"], kind.encode(header, datum))
        finally:
            producer.flush()
        if shown is not None:
            shown.finish()
    report.loaded = producer.produced
    if not keep_ids:
        report.device_ids = set()  # not worth sending back to the parent process
    return report


def _tombstone_unlisted(settings: Settings, topic: str, listed: set[str]) -> int:
    stale = [key for key in keys_on_topic(settings, topic) if key.decode(errors="replace").upper() not in listed]
    producer = BulkProducer(settings)
    for key in stale:
        producer.produce(topic, key, None)
    producer.flush()
    return len(stale)


def keys_on_topic(settings: Settings, topic: str) -> set[bytes]:
    """Keys whose latest value on a compacted topic is not a tombstone."""
    live: set[bytes] = set()
    for message in read_to_end(settings, topic):
        key = message.key()
        if key is not None and message.value() is None:
            live.discard(key)
        elif key is not None:
            live.add(key)
    return live
