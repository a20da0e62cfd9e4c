"""Bulk loaders for the DSP's reference data (contract 7): a tracked-list or inventory CSV onto its topic.

Rows are checked by the validators the worker applies when it reads these topics (`pipeline.wire.validation`), so a
row the loader accepts is one the worker will use, and a row it rejects would only have been dead-lettered.
A bad row never stops the load: the operator gets every good row loaded and a list of what to fix.
"""

import csv
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from pipeline.core.bad_input import BadInput
from pipeline.kafka import clients
from pipeline.kafka.admin import EndOffsetLookup, topic_partitions
from pipeline.kafka.clients import admin_client
from pipeline.settings import Settings
from pipeline.tools.bulk_producer import BulkProducer, require_topics
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
_READ_TO_END_TIMEOUT_S = 300.0


class CsvFileError(Exception):
    """The file as a whole cannot be loaded (unreadable, no header, a required column missing)."""


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
    optional=("mpxn",),
    time_field="updated_at",
    id_fields=("device_id", "chf_id"),
    validate=validation.inventory_record,
    encode=inventory_record_bytes,
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
    """Epoch millis from a CSV cell: digits are epoch millis, anything else ISO-8601 (UTC if no offset)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{name} {text!r} is neither an ISO-8601 UTC time nor epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def read_csv(
    kind: CsvKind, path: str, load_time_ms: int, report: LoadReport, shard: Shard = WHOLE_FILE
) -> Iterator[dict[str, Any]]:
    """Valid rows (of the shard) as Avro datums with canonical device IDs; bad rows go to `report`."""
    index, count = shard
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(rows, [])]
            columns = _columns(kind, path, header, report)
            width, key = len(header), header.index("device_id")
            for row in rows:
                if not row or (count > 1 and _shard_of(row, key, count) != index):
                    continue  # a blank line, or another shard's row
                report.rows_read += 1
                if len(row) != width:
                    report.reject(rows.line_num, f"expected {width} fields as in the header, found {len(row)}")
                    continue
                datum: dict[str, Any] = {name: row[i] if required else row[i] or None for name, i, required in columns}
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
    if not any(header):
        raise CsvFileError(f"{path}: no header line; expected columns {', '.join(kind.required)}")
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
) -> LoadReport:
    """Produce each valid row keyed by its canonical device ID; `replace` tombstones devices not listed.

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
    try:
        for datum in read_csv(kind, path, load_time_ms, report, shard):
            producer.produce(topic, datum["device_id"], kind.encode(header, datum))
    finally:
        producer.flush()
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


def read_to_end(settings: Settings, topic: str, timeout_s: float = _READ_TO_END_TIMEOUT_S) -> Iterator[Message]:
    """Every record of the topic, from the beginning to the end offsets it had when called (read_committed).

    Partitions are assigned directly, with no group commit, so the read leaves no trace on the cluster.
    """
    admin = admin_client(settings)
    partitions = [(topic, p) for p in range(topic_partitions(admin, [topic])[topic])]
    ends = EndOffsetLookup(lambda: admin).wait(partitions)
    pending = {p: end for (_, p), end in ends.items() if end > 0}
    consumer = clients.consumer(settings, f"{settings.app_id}-loader", clients.ASSIGNED_READER_TUNING)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise KafkaException(f"timed out reading {topic} to its end offsets")
            for message in consumer.consume(10_000, timeout=0.5):
                error, partition = message.error(), message.partition() or 0
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                if error is None:
                    yield message
                if error is not None or (message.offset() or 0) + 1 >= pending.get(partition, 0):
                    pending.pop(partition, None)  # at the end (EOF), or at the offset that was the end
    finally:
        consumer.close()
