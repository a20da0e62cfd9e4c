"""`poa-filter publish-duis PATH...`: DUIS documents from files onto the input topic each belongs on (contract 9).

For a DSP engineer feeding the filter the DSP's own messages: each file holds one document, read with the
worker's own DUIS readers, so a file this refuses is one the worker would dead-letter, with the same element
path in the message. A request goes to the service-request topic keyed by its target device; any other
response (an 11.3's outcome, an 8F66/8F67, or one the filter ignores) to the outcome topic keyed by the device;
a DCC alert or a device alert to the alert topic keyed by the originating device. The Kafka timestamp is the
record's received_at: `--received-at`, else the document's ResponseDateTime, else (a request has none) now.
"""

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.core.bad_input import BadInput
from pipeline.settings import Settings
from pipeline.tools.bulk_producer import BulkProducer, require_topics
from pipeline.tools.csv_loaders import parse_time
from pipeline.tools.progress import Progress
from pipeline.wire import validation
from pipeline.wire.duis import is_duis, read_activation_outcome, read_device_alert, read_service_request
from pipeline.wire.duis.xml_document import MAX_DOCUMENT_BYTES, Element, parse

DESCRIPTION = (
    "Publishes DUIS documents (one a file; a folder's files in name order; - for standard input) to the "
    "service-request, activation-outcome or alert topic, as each document's kind says, keyed by its device and "
    "stamped with its received_at (--received-at, else its ResponseDateTime, else now). A file the filter "
    "would dead-letter is not published: one line on stderr names it, the element path and what is wrong."
)
STDIN = "-"
ALL_COMMAND_VARIANTS = frozenset(range(1, 10))  # every request is read in full, whichever variants count
_ALERT_MESSAGES = ("DCCAlertMessage", "DeviceAlertMessage")


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a document goes: the topic (a Topics attribute), its key, and its Kafka timestamp."""

    topic: str
    key: str
    timestamp_ms: int


def place(value: bytes, received_at: int | None, now_ms: int) -> Placed:
    """The topic, key and timestamp of one DUIS document; BadInput naming the element path when the worker
    would dead-letter it."""
    if not is_duis(value):
        raise BadInput("not a DUIS document: the first character other than white space is not '<'")
    root = parse(value)
    if root.is_sr("Request"):
        at = now_ms if received_at is None else received_at
        request = read_service_request(value, at, ALL_COMMAND_VARIANTS)
        if request is not None:
            validation.service_request(request)
            return Placed("service_requests", request["target_device_id"], at)
        validation.timestamp({"received_at": at}, "received_at")  # a request of another service
        return Placed("service_requests", _header_id(root, "RequestID", "target"), at)
    message = _response_message(root)
    if message in _ALERT_MESSAGES:
        alert = read_device_alert(value, 0)  # checks the whole document, the header included
        at = _responded_at(root) if received_at is None else received_at
        return Placed("alerts", validation.device_alert({**alert, "received_at": at}).device_id, at)
    outcome = read_activation_outcome(value, 0)  # refuses a root that is neither Request nor Response
    at = _responded_at(root) if received_at is None else received_at
    if outcome is not None:
        device = validation.activation_outcome({**outcome, "received_at": at}).device_id
        return Placed("activation_outcomes", device, at)
    validation.timestamp({"received_at": at}, "received_at")
    # A response the filter ignores ("command accepted", another service): keyed by the device it answers for.
    return Placed("activation_outcomes", _response_device(root), at)


def _response_message(root: Element) -> str | None:
    """The local name of the Response's message (ResponseMessage, DCCAlertMessage, ...), for its topic; a
    document that is not a Response is refused by the outcome reader, which names what it is."""
    if not root.is_sr("Response"):
        return None
    for child in root.element_nodes():
        if child.is_sr("Body"):
            return next((message.local for message in child.element_nodes()), None)
    return None


def _header(root: Element) -> dict[str, Element]:
    """The Header's elements by local name (the readers have checked their order and content)."""
    header = next(child for child in root.element_nodes() if child.is_sr("Header"))
    return {element.local: element for element in header.element_nodes()}


def _header_id(root: Element, name: str, part: str) -> str:
    return str(getattr(_header(root)[name].duis_id(), part))


def _responded_at(root: Element) -> int:
    return _header(root)["ResponseDateTime"].date_time()


def _response_device(root: Element) -> str:
    header = _header(root)
    if "RequestID" in header:
        return header["RequestID"].duis_id().target
    if "ResponseID" in header:
        return header["ResponseID"].duis_id().originator
    raise BadInput(f"{root.path}/Header: neither RequestID nor ResponseID, so no device to key the response by")


@dataclass(frozen=True, slots=True)
class Source:
    """One document to publish: a file, or standard input."""

    name: str
    path: Path | None  # None: standard input

    def read(self, stdin: BinaryIO) -> bytes:
        """The document, refused unread past the DUIS size limit (1 MiB) so a huge file is never loaded."""
        if self.path is None:
            value = stdin.read(MAX_DOCUMENT_BYTES + 1)
        else:
            with open(self.path, "rb") as handle:
                value = handle.read(MAX_DOCUMENT_BYTES + 1)
        if len(value) > MAX_DOCUMENT_BYTES:
            raise BadInput(f"over the {MAX_DOCUMENT_BYTES} bytes (1 MiB) a DUIS document may have")
        return value


def sources(paths: list[str]) -> Iterator[Source]:
    """The files named, in the order given; a folder's files (hidden ones left out) in name order, its
    subfolders' too; `-` standard input."""
    for text in paths:
        path = Path(text)
        if text == STDIN:
            yield Source("<stdin>", None)
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path).parts
                if found.is_file() and not any(part.startswith(".") for part in relative):
                    yield Source(str(found), found)
        else:
            yield Source(text, path)


@dataclass
class Report:
    published: Counter[str]  # by topic name
    rejected: list[str]  # one line a rejected file

    def summary(self) -> str:
        total = sum(self.published.values())
        where = ", ".join(f"{n} on {topic}" for topic, n in self.published.items())
        rejected = f"; {len(self.rejected)} rejected" if self.rejected else ""
        return f"published {total} DUIS documents{': ' + where if where else ''}{rejected}"


def publish(settings: Settings, paths: list[str], received_at: int | None, stdin: BinaryIO | None = None) -> Report:
    """Publish every document that reads as the worker reads it; the others are listed, not published."""
    topics = settings.topics
    require_topics(settings, topics.service_requests, topics.activation_outcomes, topics.alerts)
    report = Report(Counter(), [])
    found = list(sources(paths))
    producer = BulkProducer(settings, client_id="poa-filter-publish-duis")
    with Progress("publish-duis", total=len(found)) as progress:
        for done, source in enumerate(found, 1):
            try:
                value = source.read(stdin or sys.stdin.buffer)
                placed = place(value, received_at, int(time.time() * 1000))
            except BadInput as exc:
                report.rejected.append(f"{source.name}: {exc}")
            except OSError as exc:
                report.rejected.append(f"{source.name}: cannot read it: {exc.strerror}")
            else:
                topic = getattr(topics, placed.topic)
                producer.produce(topic, placed.key, value, placed.timestamp_ms)
                report.published[topic] += 1
            progress.update(done)
        producer.flush()
        progress.finish(len(found))
    return report


def _time(text: str) -> int:
    try:
        return parse_time(text.strip(), "TIME")
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a DUIS file, a folder of them, or - for stdin")
    parser.add_argument(
        "--received-at",
        type=_time,
        default=None,
        metavar="TIME",
        help="received_at of every document, the Kafka timestamp (ISO-8601 or epoch ms; default: the document's "
        "ResponseDateTime, else now)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """1 when a file was rejected (each named on stderr), else 0; the counts on stdout."""
    report = publish(settings, args.paths, args.received_at)
    for line in report.rejected:
        print(line, file=sys.stderr)
    print(report.summary())
    return 1 if report.rejected else 0
