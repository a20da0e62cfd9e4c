"""`poa-filter release`: send wrongly suppressed alerts to the DNOs after the fact, each at most once (contract 8).

It reads the suppression audit topic from its start to the end offsets it has when the run starts, picks the
SuppressedAlert records whose alert was received in the time range (and, optionally, that name one ESME,
CH Function or activation request), and writes each alert's original key and value bytes to the DNO topic,
with a ReleasedAlert record on the released topic saying which alert, from where, who, why and when.

Why an alert is released at most once, however often the command runs or is killed:
1. Every run uses the same transactional ID, `POA_APP_ID` + `-release`, and calls `init_transactions` before
   it reads anything. The broker then aborts any transaction an earlier run left open (killed in the middle
   of one) and fences that run's producer, so an earlier run still going can never commit again. After
   this call no transaction of an earlier run is open, and none can open.
2. Each alert's DNO record and its ReleasedAlert record are written in the same transaction, so for a
   read_committed reader an alert is on the DNO topic as released exactly when its ReleasedAlert record
   is on the released topic.
3. Only then does the run read the released topic (read_committed, to its end): that is every alert any
   earlier run released, because everything they committed is there and they can commit nothing more. It
   skips those alerts, and each alert ID once within its own scan.
Killed between two transactions, a run has committed whole batches: the next run reads their ReleasedAlert
records and skips them. Killed inside a transaction, the open batch is aborted (by the next run's
`init_transactions`, or by the broker after the transaction timeout) and nothing of it is visible: the next
run releases it. Two runs at once: the later one fences the earlier, whose next commit fails, so it stops.
This holds among runs with the same POA_APP_ID, which is also the prefix its ACLs are granted by.

"Original bytes": `alert` is SuppressedAlert's first field, and the worker splices the input alert's body
into the audit record as received (`alert_bytes.suppressed_alert_bytes`), so the alert's body is the audit
record's body up to the fields after `alert`. The release puts the DeviceAlert header in front of it: the
single-object header, or under a schema registry the Confluent header of the current DeviceAlert schema
(which is the DSP's own header when the DSP wrote that schema). An alert whose audit record the worker
encoded afresh (it read the alert with the generic decoder) is written as encoded there: the same alert,
field by field.
"""

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline import __version__
from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.event_time import MINUTE_MS
from pipeline.kafka import clients
from pipeline.kafka.admin import ensure_output_topics, topic_partitions
from pipeline.kafka.batches import produce_when_room
from pipeline.kafka.topics import read_to_end
from pipeline.settings import Settings, Topics
from pipeline.tools.csv_loaders import parse_time
from pipeline.tools.progress import Progress
from pipeline.wire.avro_codec import SINGLE_OBJECT_MARKER, AvroCodec
from pipeline.wire.duis import is_duis, read_device_alert
from pipeline.wire.output_records import now_ms

BATCH_SIZE = 500  # alerts per transaction
TXN_TIMEOUT_S = 30.0  # for each transactional call
READ_TIMEOUT_S = 3600.0  # to read a topic to its end: an audit topic of millions of records takes minutes
LISTED_ERRORS = 5  # unreadable audit records named on stderr; the rest are counted

DESCRIPTION = (
    "Sends suppressed alerts to the DNO topic after all, with their original key and value bytes, each with "
    "a ReleasedAlert record (who, why, when) on the released topic; an alert is released at most once, "
    "however often this runs or is interrupted. Selects the SuppressedAlert records of the audit topic whose "
    "alert was RECEIVED (the alert's received_at, the time the filter decides by) at or after --from and "
    "before --to, optionally only those of one ESME, CH Function or activation request. "
    "TIME is ISO-8601 (UTC when it has no offset) or epoch milliseconds. Prints the count at the end (and "
    "progress on a terminal); exit code 1 when some audit records could not be read."
)


class ReleaseError(Exception):
    """An expected failure with a message for the operator (missing topic, fenced by another run, ...)."""


@dataclass(frozen=True)
class Selection:
    """Which suppressed alerts to release: received in [start_ms, end_ms), optionally of one ESME, CH Function
    (the alert's device) or activation request. Device IDs are canonical (upper case)."""

    start_ms: int
    end_ms: int
    esme_id: str | None = None
    chf_id: str | None = None
    request_id: str | None = None

    def matches(self, audit: dict[str, Any]) -> bool:
        alert = audit["alert"]
        return (
            self.start_ms <= alert["received_at"] < self.end_ms
            and (self.esme_id is None or audit["esme_id"].upper() == self.esme_id)
            and (self.chf_id is None or alert["device_id"].upper() == self.chf_id)
            and (self.request_id is None or audit["activation_request_id"] == self.request_id)
        )


@dataclass(frozen=True)
class Release:
    """One alert to release: the audit record it comes from, and what goes to the DNO topic."""

    partition: int
    offset: int
    key: bytes | None
    alert_value: bytes  # the DeviceAlert as the DSP wrote it
    audit: dict[str, Any]  # the decoded SuppressedAlert


@dataclass
class Counts:
    scanned: int = 0  # audit records read
    already_released: int = 0  # selected, but released by an earlier run (or twice on the audit topic)
    released: int = 0  # released by this run (listed, in a dry run)
    unreadable: int = 0  # audit records that are not SuppressedAlert records
    errors: list[str] = field(default_factory=list)  # the first few of those, with their coordinates


def original_alert_value(codec: AvroCodec, audit_value: bytes, audit: dict[str, Any], topics: Topics) -> bytes:
    """The alert of a SuppressedAlert record (`audit_value`, decoded as `audit`) as the DSP wrote it.

    A DUIS alert's audit record holds the fields read from the document and the document as `payload`
    (contract 9): when the payload reads as exactly that alert, it is what the DSP wrote, and XML stays XML.
    (An Avro record could carry, as its payload, a DUIS document with exactly its own fields: the same alert,
    then sent as the DSP's document. The audit record does not say which of the two the DSP wrote.)

    Otherwise the embedded body is usually the alert's Avro encoding, which Avro makes unique. The worker's fast reader
    also splices bodies with longer-than-needed varints: then the embedded body is what the audit record holds
    between its header and its fields after `alert`, taken when it decodes to the same alert. Failing that
    (an audit record of another schema version), the alert encoded afresh.
    """
    document = _duis_document(audit["alert"])
    if document is not None:
        return document
    alert_header = codec.header("DeviceAlert", topics.dno_alerts)
    fresh = _body(codec, "DeviceAlert", audit["alert"], topics.dno_alerts)
    if audit_value[:2] == SINGLE_OBJECT_MARKER:
        start = len(codec.single_object_header("SuppressedAlert"))
    else:  # Confluent framing, which only a codec with a registry reads
        start = len(codec.header("SuppressedAlert", topics.suppressed))
    if audit_value.startswith(fresh, start):  # decoding from `start` reads exactly these bytes: they are it
        return alert_header + fresh
    tail = _body(codec, "SuppressedAlert", audit, topics.suppressed)[len(fresh) :]
    embedded = alert_header + audit_value[start : len(audit_value) - len(tail)]
    if audit_value.endswith(tail):
        try:
            if codec.decode("DeviceAlert", embedded) == audit["alert"]:
                return embedded
        except BadInput:
            pass
    return alert_header + fresh


def _duis_document(alert: dict[str, Any]) -> bytes | None:
    """The alert's payload when it is the DUIS document the alert was read from."""
    payload = alert.get("payload")
    if payload is None or not is_duis(payload):
        return None
    try:
        return payload if read_device_alert(payload, alert["received_at"]) == alert else None
    except BadInput:
        return None


def _body(codec: AvroCodec, record_name: str, datum: dict[str, Any], topic: str) -> bytes:
    """The Avro binary body of a record, without its header."""
    return codec.encode(record_name, datum, topic)[len(codec.header(record_name, topic)) :]


def released_record(release: Release, source_topic: str, operator: str, reason: str) -> dict[str, Any]:
    return {
        "alert_id": release.audit["alert"]["alert_id"],
        "source_topic": source_topic,
        "partition": release.partition,
        "offset": release.offset,
        "released_by": operator,
        "reason": reason,
        "released_at": now_ms(),
        "filter_version": __version__,
    }


def transactional_id(settings: Settings) -> str:
    """Fixed for the app ID, so every run fences the ones before it; begins with the app ID, for ACLs."""
    return f"{settings.app_id}-release"


class _Batches:
    """The transactional producer: each batch of releases in one transaction, DNO and released records together."""

    def __init__(self, settings: Settings, codec: AvroCodec, operator: str, reason: str, batch_size: int) -> None:
        self._topics = settings.topics
        self._codec = codec
        self._operator = operator
        self._reason = reason
        self._batch_size = batch_size
        self._pending: list[Release] = []
        self.committed = 0
        self._producer: Producer = clients.producer(
            settings, clients.TRANSACTIONAL_PRODUCER_TUNING, **{"transactional.id": transactional_id(settings)}
        )
        # Fences every earlier run and aborts what it left open: see the module docstring, step 1.
        self._call(lambda: self._producer.init_transactions(TXN_TIMEOUT_S))

    def add(self, release: Release) -> None:
        self._pending.append(release)
        if len(self._pending) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        """Write the pending releases in one transaction; nothing of them is visible unless all of it is."""
        if not self._pending:
            return
        topics, producer = self._topics, self._producer
        committed = False
        try:
            self._call(producer.begin_transaction)
            for release in self._pending:
                produce_when_room(producer, topics.dno_alerts, release.alert_value, release.key)
                record = released_record(release, topics.suppressed, self._operator, self._reason)
                value = self._codec.encode("ReleasedAlert", record, topics.released)
                produce_when_room(producer, topics.released, value, release.key)
            self._call(self._commit)
            committed = True
        finally:
            if not committed:
                self._abort()
        self.committed += len(self._pending)
        self._pending = []

    def _commit(self) -> None:
        while True:
            try:
                self._producer.commit_transaction(TXN_TIMEOUT_S)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise

    def _abort(self) -> None:
        """Best effort: the next run's init_transactions (or the transaction timeout) aborts it anyway."""
        with contextlib.suppress(KafkaException):
            self._producer.abort_transaction(TXN_TIMEOUT_S)

    def _call(self, action: Callable[[], object]) -> None:
        """Run a transactional call; a fenced or otherwise fatal producer is a ReleaseError for the operator."""
        try:
            action()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal() or error.code() in (KafkaError.PRODUCER_FENCED, KafkaError._FENCED):
                raise ReleaseError(
                    f"stopped after releasing {self.committed} alerts: the release producer was fenced or failed "
                    f"({error.str()}); another `poa-filter release` with the same app ID has probably started. "
                    "Nothing is released twice: run it again when the other has finished"
                ) from None
            raise


def release(
    settings: Settings,
    codec: AvroCodec,
    selection: Selection,
    *,
    operator: str,
    reason: str,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> Counts:
    """Release the selected alerts (or, in a dry run, list them on `out`); see the module docstring."""
    out, err = out or sys.stdout, err or sys.stderr
    topics = settings.topics
    existing = topic_partitions(clients.admin_client(settings), [topics.suppressed, topics.dno_alerts])
    if topics.suppressed not in existing:
        raise ReleaseError(f"the suppression audit topic {topics.suppressed} does not exist: nothing to release")
    batches = None
    if not dry_run:
        if topics.dno_alerts not in existing:
            raise ReleaseError(f"the DNO topic {topics.dno_alerts} does not exist; the worker creates it")
        # The record of each release is what makes it happen at most once: kept as long as the audit (contract 6).
        admin = clients.admin_client(settings)
        ensure_output_topics(admin, [topics.released], existing[topics.suppressed], [topics.alerts, topics.suppressed])
        batches = _Batches(settings, codec, operator, reason, batch_size)  # fences earlier runs first
    done = already_released(settings, codec)
    counts = Counts()
    if dry_run:
        print("alert_id\tdevice_id\treceived_at\tesme_id\tactivation_request_id", file=out)
    with Progress("", stream=err) as progress:
        for item in _selected(settings, codec, selection, counts, progress, dry_run):
            alert_id = item.audit["alert"]["alert_id"]
            if alert_id in done:
                counts.already_released += 1
            elif batches is None:
                done.add(alert_id)
                counts.released += 1
                print(_listing(item.audit), file=out)
            else:
                done.add(alert_id)
                batches.add(item)
                counts.released = batches.committed
        if batches is not None:
            batches.flush()
            counts.released = batches.committed
        _show(progress, counts, dry_run)
        progress.finish(counts.scanned)
    return counts


def _show(progress: Progress, counts: Counts, dry_run: bool) -> None:
    """The progress line on a terminal: what is released so far, then audit records scanned and their rate."""
    if progress.active:
        progress.label = (
            f"{'would release' if dry_run else 'released'} {counts.released:,}, released before "
            f"{counts.already_released:,}; audit records scanned"
        )
        progress.update(counts.scanned)


def already_released(settings: Settings, codec: AvroCodec) -> set[str]:
    """Alert IDs on the released topic (read_committed, to its end); none when it does not exist yet."""
    topic = settings.topics.released
    if topic not in topic_partitions(clients.admin_client(settings), [topic]):
        return set()
    ids = set()
    for message in read_to_end(settings, [topic], timeout_s=READ_TIMEOUT_S):
        try:
            ids.add(codec.decode("ReleasedAlert", message.value())["alert_id"])
        except BadInput as exc:  # cannot tell which alert it was: stop rather than risk releasing it twice
            raise ReleaseError(
                f"{topic} {message.partition()}/{message.offset()} is not a ReleasedAlert record ({exc}), so the "
                "alerts already released cannot be known; nothing was released"
            ) from None
    return ids


def _selected(
    settings: Settings, codec: AvroCodec, selection: Selection, counts: Counts, progress: Progress, dry_run: bool
) -> Iterator[Release]:
    """The audit records that match, in each partition's order; unreadable ones counted and skipped."""
    topics = settings.topics
    for message in read_to_end(settings, [topics.suppressed], timeout_s=READ_TIMEOUT_S):
        counts.scanned += 1
        _show(progress, counts, dry_run)
        value = message.value()
        try:
            audit = codec.decode("SuppressedAlert", value)
        except BadInput as exc:
            counts.unreadable += 1
            if len(counts.errors) < LISTED_ERRORS:
                counts.errors.append(f"{_where(message)}: {exc}")
            continue
        if selection.matches(audit):
            assert value is not None  # decoded
            original = original_alert_value(codec, value, audit, topics)
            yield Release(message.partition() or 0, message.offset() or 0, message.key(), original, audit)


def may_still_be_held(settings: Settings, selection: Selection, now: int) -> str | None:
    """What to say when the range reaches alerts that may still be held for evidence or inputs (contract 8):
    an AD1 received less than A + grace + POA_MAX_HOLD_SECONDS ago may be suppressed after this run read the
    audit, and then this run does not release it. None when every alert of the range is decided by now."""
    hold_ms = settings.evidence_after_minutes * MINUTE_MS + round(
        (settings.evidence_grace_seconds + settings.max_hold_seconds) * 1000
    )
    settled = selection.end_ms + hold_ms  # the last alert of the range is decided by then
    if settled <= now:
        return None
    wait_s = -(-(settled - now) // 1000)
    since = max(selection.start_ms, now - hold_ms)
    return (
        f"note: alerts received from {_iso(since)} on may still be held for outage evidence or their inputs "
        f"(POA_EVIDENCE_AFTER_MINUTES + POA_EVIDENCE_GRACE_SECONDS + POA_MAX_HOLD_SECONDS = {hold_ms / 1000:g} s "
        "after they are received), and those suppressed after this run read the audit are "
        f"not released by it: run it again after {_iso(settled)} (in {wait_s} s) to release them too "
        "(later still if the worker is behind: see poa_consumer_lag)"
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _where(message: Message) -> str:
    return f"{message.topic()} {message.partition()}/{message.offset()}"


def _listing(audit: dict[str, Any]) -> str:
    alert = audit["alert"]
    fields = (alert["alert_id"], alert["device_id"], _iso(alert["received_at"]), audit["esme_id"],
              audit["activation_request_id"])
    return "\t".join(fields)


# --- the command line -------------------------------------------------------------------------------


def _time(text: str) -> int:
    try:
        return parse_time(text.strip(), "TIME")
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device(text: str) -> str:
    try:
        return canonical_device_id(text.strip(), "device ID")
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _words(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be blank: say why the alerts are released")
    return text.strip()


def _batch_size(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def os_user() -> str:
    """Who runs the command, for `released_by` when no --operator is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `release` subcommand's own flags (the settings flags come from the CLI's common parser)."""
    parser.add_argument("--from", dest="start", type=_time, required=True, metavar="TIME",
                        help="release alerts received (received_at) at or after TIME")
    parser.add_argument("--to", dest="end", type=_time, required=True, metavar="TIME",
                        help="... and before TIME")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--esme", type=_device, metavar="ID",
                      help="only alerts suppressed for an activation of this ESME (any letter case)")
    only.add_argument("--chf", type=_device, metavar="ID",
                      help="only alerts from this CH Function (the alert's device_id; any letter case)")
    only.add_argument("--request-id", metavar="RID", help="only alerts suppressed for this activation request ID")
    parser.add_argument("--reason", type=_words, required=True, help="why they are released (recorded with each)")
    parser.add_argument("--operator", type=_words, default=None, metavar="NAME",
                        help="who releases them (recorded with each; default: the operating-system user)")
    parser.add_argument("--dry-run", action="store_true", help="list the alerts it would release; write nothing")
    parser.add_argument("--batch-size", type=_batch_size, default=BATCH_SIZE, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """Run `release` from parsed arguments; 1 when some audit records could not be read, else 0."""
    if args.start >= args.end:
        raise ReleaseError("--from must be before --to (the range is from --from, inclusive, to --to, exclusive)")
    selection = Selection(args.start, args.end, args.esme, args.chf, args.request_id)
    counts = release(
        settings,
        codec,
        selection,
        operator=args.operator or os_user(),
        reason=args.reason,
        dry_run=args.dry_run,
        batch_size=args.batch_size,
    )
    for error in counts.errors:
        print(f"unreadable audit record {error}", file=sys.stderr)
    if counts.unreadable > len(counts.errors):
        print(f"... and {counts.unreadable - len(counts.errors)} more unreadable audit records", file=sys.stderr)
    topics = settings.topics
    done = (
        f"would release {counts.released} alerts (dry run: nothing written)"
        if args.dry_run
        else f"released {counts.released} alerts to {topics.dno_alerts}, each with a record on {topics.released}"
    )
    print(
        f"{done}; {counts.already_released} selected alerts were released before and are skipped; "
        f"{counts.scanned} audit records scanned on {topics.suppressed}"
        + (f", {counts.unreadable} unreadable" if counts.unreadable else "")
    )
    note = may_still_be_held(settings, selection, now_ms())
    if note is not None:
        print(note)
    return 1 if counts.unreadable else 0
