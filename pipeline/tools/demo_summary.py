"""`poa-filter demo-summary`: reads the filter's three outputs and explains them to a DSP operator,
checking every simulated alert against the decision it was built to get (expected.json from `simulate`; several
scenarios played on the same topics, an Avro campaign and a DUIS one say, are read once and told apart).
For a DUIS scenario it also checks that every alert reached the DNO topic, or the audit record, as the very
document the DSP published (its SHA-256 in expected.json).

For the AD1s in windows that the scenario built to be released on evidence of a genuine outage (rule 9),
it also reads the worker's own count (`/metrics`) and asks the worker (`/explain`) which evidence released
a few of them: the outputs cannot say, a released AD1 is forwarded byte for byte.
"""

import hashlib
import json
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from pipeline.core.bad_input import BadInput
from pipeline.core.explanation import MAX_LISTED_EVIDENCE, Json
from pipeline.kafka import clients
from pipeline.kafka.clients import admin_client
from pipeline.kafka.topics import TopicsMissing, wait_for_topics
from pipeline.settings import Settings
from pipeline.tools import explain_client
from pipeline.tools.estate_simulator import AVRO, DEAD_LETTER, DUIS, FORWARD, OUTAGE_EVIDENCE, STORM, SUPPLY, SUPPRESS
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import is_duis, read_device_alert

EXAMPLES = 3
LISTED_HANS = 3  # a storm's other CH Functions named in an example
_RELEASED_SERIES = re.compile(r"^poa_alerts_total\{([^}]*)\} (\S+)$", re.MULTILINE)
_DEVICE_ID = re.compile(r"\b[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}\b")
_REQUEST_ID = re.compile(r"\S+:\S+:\d+")
_NUMBER = re.compile(r"\d{6,}")


class ExpectedFileError(Exception):
    """expected.json is missing or not what `simulate` writes."""


@dataclass(frozen=True)
class Seen:
    """One output record for an alert: where it went and what the filter said about it."""

    output: str  # FORWARD, SUPPRESS or DEAD_LETTER
    where: str  # topic partition/offset
    alert: dict[str, Any] | None  # the decoded alert, when it decodes
    suppressed: dict[str, Any] | None = None  # the SuppressedAlert record
    error: str | None = None  # the DeadLetter error
    document_sha256: str | None = None  # a DUIS alert: of the value forwarded, or of the audit record's payload


@dataclass
class Observed:
    seen: dict[str, list[Seen]] = field(default_factory=dict)
    other_dead_letters: list[tuple[str, str, str]] = field(default_factory=list)  # topic, key, error
    unreadable: list[str] = field(default_factory=list)  # output records that are not what the topic holds
    foreign: int = 0  # records of alerts not in this scenario (earlier runs on the same topics)
    seconds: float = 0.0

    def part(self, expected: dict[str, Any], settings: Settings, first: bool) -> "Observed":
        """What was seen of one scenario's alerts and dead letters; the records no scenario explains go with
        the first."""
        ids = {a["alert_id"] for a in expected["alerts"]}
        others = {(getattr(settings.topics, d["topic"]), d["key"]) for d in expected.get("other_dead_letters", ())}
        return Observed(
            {alert_id: seen for alert_id, seen in self.seen.items() if alert_id in ids},
            [letter for letter in self.other_dead_letters if letter[:2] in others],
            self.unreadable if first else [],
            self.foreign if first else 0,
            self.seconds,
        )


def load_expected(path: Path) -> dict[str, Any]:
    try:
        expected = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExpectedFileError(f"cannot read {path}: {exc}") from None
    if not isinstance(expected, dict) or not isinstance(expected.get("alerts"), list):
        raise ExpectedFileError(f"{path} is not an expected.json written by `poa-filter simulate`")
    return expected


def _document_sha256(value: bytes | None) -> str | None:
    return hashlib.sha256(value).hexdigest() if value is not None and is_duis(value) else None


class _Reader:
    """Sorts output records into what happened to each alert."""

    def __init__(self, settings: Settings, codec: AvroCodec, expected: list[dict[str, Any]]) -> None:
        self.topics = settings.topics
        self.codec = codec
        alerts = [a for one in expected for a in one["alerts"]]
        self.known = {a["alert_id"] for a in alerts}
        by_key = Counter(a["key"] for a in alerts)
        # An alert whose value cannot be decoded is recognised by its key, when no other alert shares it.
        self.by_key = {a["key"]: a["alert_id"] for a in alerts if by_key[a["key"]] == 1}
        self.observed = Observed()

    def alert(self, value: bytes | None, received_at: int) -> dict[str, Any]:
        """An alert as the worker reads it: a DUIS document (received at its Kafka timestamp) or an Avro record."""
        if value is not None and is_duis(value):
            return read_device_alert(value, received_at)
        return self.codec.decode("DeviceAlert", value)

    def add(self, message: Message) -> None:
        topic, where = message.topic(), f"{message.topic()} {message.partition()}/{message.offset()}"
        value = message.value()
        try:
            if topic == self.topics.dno_alerts:
                alert = self.alert(value, message.timestamp()[1])
                self._note(alert["alert_id"], Seen(FORWARD, where, alert, document_sha256=_document_sha256(value)))
            elif topic == self.topics.suppressed:
                record = self.codec.decode("SuppressedAlert", value)
                alert = record["alert"]
                digest = _document_sha256(alert["payload"])
                self._note(alert["alert_id"], Seen(SUPPRESS, where, alert, suppressed=record, document_sha256=digest))
            else:
                self._dead_letter(self.codec.decode("DeadLetter", value), where)
        except BadInput as exc:
            self.observed.unreadable.append(f"{where}: {exc}")

    def _dead_letter(self, record: dict[str, Any], where: str) -> None:
        key = (record["key"] or b"").decode(errors="replace")
        if record["source_topic"] != self.topics.alerts:
            self.observed.other_dead_letters.append((record["source_topic"], key, record["error"]))
            return
        try:
            alert: dict[str, Any] | None = self.alert(record["value"], record["failed_at"])
            alert_id = alert["alert_id"] if alert else ""
        except BadInput:
            alert, alert_id = None, self.by_key.get(key, "")
        self._note(alert_id, Seen(DEAD_LETTER, where, alert, error=record["error"]))

    def _note(self, alert_id: str, seen: Seen) -> None:
        if alert_id in self.known:
            self.observed.seen.setdefault(alert_id, []).append(seen)
        else:
            self.observed.foreign += 1


def collect(settings: Settings, codec: AvroCodec, expected: list[dict[str, Any]], timeout_s: float) -> Observed:
    """Read the outputs from the beginning (read_committed, no group) until every alert and dead letter the
    scenarios expect has shown up and the partitions are read to their end, or until the timeout."""
    started = time.monotonic()
    deadline = started + timeout_s
    reader = _Reader(settings, codec, expected)
    outputs = settings.topics.outputs
    partitions = _wait_for_topics(settings, outputs, deadline)
    consumer = clients.consumer(settings, f"{settings.app_id}-demo-summary", clients.ASSIGNED_READER_TUNING)
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
        at_end: set[tuple[str | None, int | None]] = set()
        while time.monotonic() < deadline:
            if at_end == partitions and _all_seen(reader.observed, expected):
                break
            for message in consumer.consume(1000, timeout=0.5):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    at_end.add((message.topic(), message.partition()))
                elif error is not None:
                    raise KafkaException(error)
                else:
                    at_end.discard((message.topic(), message.partition()))
                    reader.add(message)
    finally:
        consumer.close()
    reader.observed.seconds = time.monotonic() - started
    return reader.observed


def _wait_for_topics(settings: Settings, topics: tuple[str, ...], deadline: float) -> set[tuple[str, int]]:
    """The output topics' partitions; the worker creates the topics, so they may not exist yet."""
    try:
        counts = wait_for_topics(admin_client(settings), topics, timeout_s=max(0.0, deadline - time.monotonic()))
    except TopicsMissing as exc:
        if exc.unreachable is not None:
            raise exc.unreachable from None
        raise KafkaException(f"output topics {', '.join(exc.missing)} do not exist: is the worker running?") from None
    return {(t, p) for t, n in counts.items() for p in range(n)}


def _all_seen(observed: Observed, expected: list[dict[str, Any]]) -> bool:
    alerts = sum(len(one["alerts"]) for one in expected)
    others = sum(len(one.get("other_dead_letters", ())) for one in expected)
    return len(observed.seen) == alerts and len(observed.other_dead_letters) >= others


def mismatches(expected: dict[str, Any], observed: Observed, settings: Settings) -> list[str]:
    """Every way the outputs differ from what the scenario was built to get."""
    problems = []
    for alert in expected["alerts"]:
        label = f"{alert['alert_id']} ({alert['case']})"
        seen = observed.seen.get(alert["alert_id"], [])
        if not seen:
            problems.append(f"{label}: expected {alert['expected']}, but it reached no output")
        elif len(seen) > 1:
            problems.append(f"{label}: in {len(seen)} outputs ({', '.join(s.where for s in seen)}), not one")
        elif seen[0].output != alert["expected"]:
            problems.append(f"{label}: expected {alert['expected']}, got {seen[0].output} ({seen[0].where})")
        elif seen[0].suppressed is not None:
            got = (seen[0].suppressed["esme_id"], seen[0].suppressed["activation_request_id"])
            want = (alert["esme_id"], alert["activation_request_id"])
            if got != want:
                problems.append(f"{label}: suppressed for ESME {got[0]} request {got[1]}, expected {want[0]} {want[1]}")
        published = alert.get("value_sha256")
        if len(seen) == 1 and published and seen[0].output != DEAD_LETTER and seen[0].document_sha256 != published:
            what = "the value forwarded" if seen[0].output == FORWARD else "the audit record's payload"
            problems.append(f"{label}: {what} ({seen[0].where}) is not the DUIS document published, byte for byte")
    seen_other = Counter((topic, key) for topic, key, _ in observed.other_dead_letters)
    for dead in expected.get("other_dead_letters", ()):
        topic = getattr(settings.topics, dead["topic"])
        if not seen_other[(topic, dead["key"])]:
            problems.append(f"expected a dead letter from {topic} with key {dead['key']} ({dead['case']}), saw none")
    problems.extend(f"unreadable output record {where}" for where in observed.unreadable)
    return problems


@dataclass
class Released:
    """The AD1s in windows the scenario built to be forwarded on evidence of a genuine outage, and what the
    worker says of them: its count and, for a few, the evidence it names."""

    expected: int
    reached: int  # of those, on the DNO topic
    kinds: Counter[str]  # of those reached, by the kind of evidence built
    counted: float | None  # the worker's poa_alerts_total{decision="forwarded",reason="outage_evidence"}
    scenarios: int = 1  # how many scenarios played on the same topics that count covers
    named: list[str] = field(default_factory=list)  # lines naming the evidence, or why the worker was not asked
    problems: list[str] = field(default_factory=list)  # the worker's explanation disagreeing with the scenario


def released_on_evidence(settings: Settings, expected: dict[str, Any], observed: Observed) -> Released:
    """Counts from the outputs; the worker's count and, for up to EXAMPLES alerts (each kind of evidence in
    turn), its explanation, when the worker answers on POA_METRICS_PORT."""
    built = [a for a in expected["alerts"] if a.get("reason") == OUTAGE_EVIDENCE]
    reached = []
    for alert in built:
        seen = observed.seen.get(alert["alert_id"], [])
        if len(seen) == 1 and seen[0].output == FORWARD and seen[0].alert is not None:
            reached.append((alert, seen[0].alert))
    kinds = Counter(alert["evidence"]["kind"] for alert, _ in reached)
    counted, unanswered = _released_count(settings)
    released = Released(len(built), len(reached), kinds, counted)
    if unanswered:
        released.named.append(f"(the worker did not answer: {unanswered})")
        return released
    by_kind = [[r for r in reached if r[0]["evidence"]["kind"] == kind] for kind in (SUPPLY, STORM)]
    examples = [r for turn in zip_longest(*by_kind) for r in turn if r is not None][:EXAMPLES]
    for alert, decoded in examples:
        # Asked at the time the alert was received: a DUIS alert's is its input's Kafka timestamp, which the
        # forwarded record does not keep, so expected.json has it.
        at = alert.get("received_at") or decoded["received_at"]
        try:
            answer = explain_client.ask(settings, alert["key"], at)
        except explain_client.ExplainError as exc:
            released.named.append(f"(the worker's explanation is not available: {exc})")
            break
        line, problem = _named_evidence(alert, at, answer)
        released.named.append(line)
        released.problems += [problem] if problem else []
    return released


def _released_count(settings: Settings) -> tuple[float | None, str | None]:
    """The worker's count of AD1s forwarded on evidence (all alert codes), or why it could not be read."""
    if settings.metrics_port == 0:
        return None, "POA_METRICS_PORT is 0 (a free port), so the worker's port is not known here"
    tls = settings.http_tls_cert_file is not None
    url = f"{'https' if tls else 'http'}://127.0.0.1:{settings.metrics_port}/metrics"
    context = None
    if tls:  # the worker's own certificate, asked by its loopback address
        context = ssl.create_default_context(cafile=settings.http_tls_cert_file)
        context.check_hostname = False
    try:
        with urllib.request.urlopen(url, timeout=explain_client.TIMEOUT_S, context=context) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return None, f"{url}: {getattr(exc, 'reason', exc)}"
    total = 0.0
    for labels, value in _RELEASED_SERIES.findall(text):
        if 'decision="forwarded"' in labels and f'reason="{OUTAGE_EVIDENCE}"' in labels:
            total += float(value)
    return total, None


def _named_evidence(alert: dict[str, Any], at: int, answer: Json) -> tuple[str, str | None]:
    """One line naming the evidence the worker gives for a released alert (received at `at`), and a problem when
    the worker's explanation is not a release on the kind of evidence the scenario built."""
    head = f"      e.g. alert {alert['alert_id']} from CHF {alert['key']} at {_time(at)}: "
    decision, evidence = answer["decision"], answer["evidence"]
    if decision.get("reason") != OUTAGE_EVIDENCE:
        text = f"the worker's explanation says {decision['outcome']}: {decision['text']}"
        return head + text, f"{alert['alert_id']} ({alert['case']}): expected released on evidence, {text}"
    kind = SUPPLY if evidence["supply"] else STORM  # rule 9: supply evidence first, then a storm
    if kind == SUPPLY:
        first = evidence["supply"][0]
        line = (
            f"its ESME {first['esme_id']} reported {first['alert_code']} (supply restored) "
            f"at {_time(first['received_at']['epoch_ms'])}, alert {first['alert_id']}"
        )
    else:
        storm = evidence["storm"]
        hans = [h["chf_id"] for h in storm["hans"]]
        more = f" and {len(hans) - LISTED_HANS} more" if len(hans) > LISTED_HANS else ""
        line = (
            f"a storm in postcode sector {storm['sector']}: AD1s no window covers from {len(hans)} other homes "
            f"(K = {storm['min_other_hans']}; CHF {', '.join(hans[:LISTED_HANS])}{more})"
        )
    return head + line, _evidence_differs(alert, kind, evidence)


def _evidence_differs(alert: dict[str, Any], kind: str, evidence: Json) -> str | None:
    """How the evidence the worker names differs from the evidence the scenario built, if it does."""
    built, label = alert["evidence"], f"{alert['alert_id']} ({alert['case']})"
    if kind != built["kind"]:
        return f"{label}: built with {built['kind']} evidence, the worker names {kind}"
    if kind == SUPPLY:
        supply = evidence["supply"][0]["alert_id"]
        return (
            None
            if supply == built["alert_id"]
            else f"{label}: built with supply alert {built['alert_id']}, the worker names {supply}"
        )
    named = sorted(h["chf_id"] for h in evidence["storm"]["hans"])
    listed = sorted(built["chf_ids"])[:MAX_LISTED_EVIDENCE]  # the worker lists the first ones, in device-ID order
    if (evidence["storm"]["sector"], named) != (built["sector"], listed):
        return (
            f"{label}: built with a storm of {len(built['chf_ids'])} other homes in sector {built['sector']}, the "
            f"worker names {len(named)} in sector {evidence['storm']['sector']}"
        )
    return None


def _reason_kind(reason: str) -> str:
    """The reason with its particulars (request and device IDs, times) masked, so that reasons can be counted."""
    reason = _REQUEST_ID.sub("<request>", reason)
    return _NUMBER.sub("<time>", _DEVICE_ID.sub("<device>", reason))


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def render(
    expected: dict[str, Any], observed: Observed, settings: Settings, problems: list[str], released: Released
) -> list[str]:
    """The operator's view: what came in, what the DNO got, what was held back and why, what was bad."""
    outcomes: dict[str, list[Seen]] = {FORWARD: [], SUPPRESS: [], DEAD_LETTER: []}
    dead_ids = []
    for alert_id, seen in observed.seen.items():
        for one in seen:
            outcomes[one.output].append(one)
            dead_ids += [alert_id] if one.output == DEAD_LETTER else []
    forwarded = Counter(s.alert["alert_code"] for s in outcomes[FORWARD] if s.alert)
    records = [s.suppressed for s in outcomes[SUPPRESS] if s.suppressed]
    activations = Counter(r["activation_request_id"] for r in records)
    written = "DUIS documents" if expected.get("format") == DUIS else "Avro records"
    lines = [
        f"poa-filter demo summary: {written} (seed {expected.get('seed')}, {expected.get('homes')} homes, "
        f"outputs read in {observed.seconds:.1f} s)",
        f"  alerts in:            {len(expected['alerts'])}",
        f"  forwarded to the DNO: {len(outcomes[FORWARD])}  ("
        + ", ".join(f"{code} {n}" for code, n in sorted(forwarded.items()))
        + f") on {settings.topics.dno_alerts}",
        *_released_lines(released),
        f"  suppressed:           {len(records)}  from {len(activations)} firmware activations "
        f"of {len({r['esme_id'] for r in records})} tracked ESMEs, on {settings.topics.suppressed}",
    ]
    kinds = Counter(_reason_kind(r["reason"]) for r in records)
    lines += [f"      {n} x {reason}" for reason, n in kinds.most_common()]
    if activations:
        request, n = activations.most_common(1)[0]
        lines.append(f"      most for one activation: {n} alerts, request {request}")
    for r in sorted(records, key=lambda r: r["alert"]["received_at"])[:EXAMPLES]:
        lines.append(
            f"      e.g. alert {r['alert']['alert_id']} at {_time(r['alert']['received_at'])}: "
            f"CHF {r['alert']['device_id']}, ESME {r['esme_id']}, request {r['activation_request_id']}, "
            f"window {_time(r['window_start'])} .. {_time(r['window_end'])}"
        )
    lines += _documents_lines(expected, outcomes, settings)
    lines.append(f"  dead-lettered:        {len(outcomes[DEAD_LETTER])}  on {settings.topics.dead_letter}")
    for alert_id, s in zip(dead_ids, outcomes[DEAD_LETTER], strict=True):
        lines.append(f"      {alert_id} ({s.where}): {s.error}")
    if observed.other_dead_letters:
        lines.append(f"  dead letters from other input topics: {len(observed.other_dead_letters)}")
        lines += [f"      {topic} key {key}: {error}" for topic, key, error in observed.other_dead_letters]
    if observed.foreign:
        lines.append(f"  ({observed.foreign} output records belong to no alert of this scenario: earlier runs?)")
    lines.append(f"  mismatches against expected.json: {len(problems) or 'none'}")
    lines += [f"      {problem}" for problem in problems]
    lines.append(f"  metrics: http://127.0.0.1:{settings.metrics_port}/metrics")
    return lines


def _documents_lines(expected: dict[str, Any], outcomes: dict[str, list[Seen]], settings: Settings) -> list[str]:
    """For DUIS: how many alerts reached the DNO topic, and the audit, as the very document published."""
    if expected.get("format", AVRO) != DUIS:
        return []
    published = {a["alert_id"]: a.get("value_sha256") for a in expected["alerts"]}
    lines = []
    for output, where in ((FORWARD, f"on {settings.topics.dno_alerts}"), (SUPPRESS, "in the audit records")):
        seen = [(s.document_sha256, s.alert["alert_id"]) for s in outcomes[output] if s.alert is not None]
        same = sum(1 for digest, alert_id in seen if digest == published.get(alert_id))
        lines.append(f"  DUIS XML {where} byte for byte as published (SHA-256 checked): {same} of {len(seen)}")
    return lines


def _released_lines(released: Released) -> list[str]:
    kinds = ", ".join(f"{released.kinds[kind]} on {kind} evidence" for kind in (SUPPLY, STORM) if released.kinds[kind])
    counted = "not read" if released.counted is None else f"{released.counted:g}"
    if released.counted is not None and released.scenarios > 1:
        counted += f" for all {released.scenarios} scenarios"
    return [
        f"      of which AD1s inside activation windows released on evidence of a genuine outage: "
        f"{released.reached} of {released.expected} expected ({kinds or 'none'}); the worker counted {counted} "
        f"(poa_alerts_total, reason {OUTAGE_EVIDENCE})",
        *released.named,
    ]


def summarise(
    settings: Settings, codec: AvroCodec, expected_paths: list[Path], timeout_s: float, out: TextIO | None = None
) -> int:
    """Print a summary of each scenario (to stdout by default); 0 when every alert ended where its scenario
    says, else 1."""
    expected = [load_expected(path) for path in expected_paths]
    observed = collect(settings, codec, expected, timeout_s)
    status = 0
    for n, one in enumerate(expected):
        part = observed.part(one, settings, first=n == 0)
        released = released_on_evidence(settings, one, part)
        released.scenarios = len(expected)
        problems = mismatches(one, part, settings) + released.problems
        if n:
            print(file=out or sys.stdout)
        for line in render(one, part, settings, problems, released):
            print(line, file=out or sys.stdout)
        status = max(status, 1 if problems else 0)
    return status
