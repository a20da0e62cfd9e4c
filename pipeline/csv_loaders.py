"""Bulk loaders for the DSP's reference data (contract 7): a tracked-list or inventory CSV onto its topic.

Rows are checked by the validators the worker applies when it reads these topics (`input_records`), so a
row the loader accepts is one the worker will use, and a row it rejects would only have been dead-lettered.
A bad row never stops the load: the operator gets every good row loaded and a list of what to fix.
"""

import csv
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from pipeline import input_records
from pipeline.avro_codec import AvroCodec
from pipeline.bad_input import BadInput
from pipeline.bulk_producer import BulkProducer, require_topics
from pipeline.kafka_admin import EndOffsetLookup, admin_client, topic_partitions
from pipeline.settings import Settings

# Enough to see what is wrong with a file without flooding a terminal when every row is bad.
MAX_SHOWN_REJECTIONS = 100
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


TRACKED = CsvKind(
    description="tracked list",
    record_name="TrackedDevice",
    topic_field="tracked_devices",
    required=("device_id",),
    optional=("manufacturer", "model", "firmware_version", "list_version"),
    time_field="added_at",
    id_fields=("device_id",),
    validate=input_records.tracked_device,
)

INVENTORY = CsvKind(
    description="inventory",
    record_name="InventoryRecord",
    topic_field="inventory",
    required=("device_id", "device_type", "chf_id"),
    optional=("mpxn",),
    time_field="updated_at",
    id_fields=("device_id", "chf_id"),
    validate=input_records.inventory_record,
)


@dataclass
class LoadReport:
    """Counts for the operator; `rejections` holds the first MAX_SHOWN_REJECTIONS messages."""

    path: str
    rows_read: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejections: list[str] = field(default_factory=list)
    device_ids: set[str] = field(default_factory=set, repr=False)  # distinct canonical IDs of valid rows
    ignored_columns: tuple[str, ...] = ()
    removed: int | None = None  # tombstones written by --replace; None when nothing was replaced
    replace_skipped: bool = False
    seconds: float = 0.0

    def reject(self, line: int, error: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_SHOWN_REJECTIONS:
            self.rejections.append(f"{self.path}:{line}: {error}")

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


def read_csv(kind: CsvKind, path: str, load_time_ms: int, report: LoadReport) -> Iterator[dict[str, Any]]:
    """Valid rows as Avro datums with canonical device IDs; bad rows are recorded in `report`, not raised."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(rows, [])]
            columns = _columns(kind, path, header, report)
            width = len(header)
            for row in rows:
                if not row:
                    continue  # blank line
                report.rows_read += 1
                if len(row) != width:
                    report.reject(
                        rows.line_num, f"expected {width} fields as in the header, found {len(row)}"
                    )
                    continue
                datum: dict[str, Any] = {
                    name: row[i] if required else row[i] or None for name, i, required in columns
                }
                try:
                    when = datum.get(kind.time_field)
                    datum[kind.time_field] = (
                        load_time_ms if when is None else parse_time(when, kind.time_field)
                    )
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
    kind: CsvKind, path: str, settings: Settings, codec: AvroCodec, replace: bool = False
) -> LoadReport:
    """Produce each valid row keyed by its canonical device ID; `replace` tombstones devices not listed."""
    topic = getattr(settings.topics, kind.topic_field)
    require_topics(settings, topic)
    report = LoadReport(path)
    started = time.monotonic()
    producer = BulkProducer(settings)
    try:
        for datum in read_csv(kind, path, int(time.time() * 1000), report):
            producer.produce(topic, datum["device_id"], codec.encode(kind.record_name, datum, topic))
    finally:
        producer.flush()
    report.loaded = producer.produced
    if replace and report.rejected:
        report.replace_skipped = True
    elif replace:
        stale = [
            key
            for key in keys_on_topic(settings, topic)
            if key.decode(errors="replace").upper() not in report.device_ids
        ]
        for key in stale:
            producer.produce(topic, key, None)
        producer.flush()
        report.removed = len(stale)
    report.seconds = time.monotonic() - started
    return report


def keys_on_topic(settings: Settings, topic: str) -> set[bytes]:
    """Keys whose latest value on a compacted topic is not a tombstone, read from the start to the end.

    Partitions are assigned directly, with no group commit, so the read leaves no trace on the cluster.
    """
    admin = admin_client(settings)
    ends = EndOffsetLookup(admin).wait([(topic, p) for p in range(topic_partitions(admin, [topic])[topic])])
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.app_id}-loader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        pending = {}
        for (_, p), end in ends.items():
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if end > low:
                pending[p] = end
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        live: set[bytes] = set()
        deadline = time.monotonic() + _READ_TO_END_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise KafkaException(f"timed out reading {topic} to its end offsets")
            for message in consumer.consume(10_000, timeout=0.5):
                if message.error():
                    raise KafkaException(message.error())
                key = message.key()
                if key is not None and message.value() is None:
                    live.discard(key)
                elif key is not None:
                    live.add(key)
            for position in consumer.position([TopicPartition(topic, p) for p in pending]):
                if position.offset >= pending[position.partition]:
                    del pending[position.partition]
        return live
    finally:
        consumer.close()
