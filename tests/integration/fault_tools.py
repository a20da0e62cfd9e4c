"""Helpers for the fault tests: a DSP that keeps writing while faults happen, and the exactly-once check.

The decision check itself is `check_decisions` of the decision tests; this module adds what faults need
on top: bad alerts and bad state records mixed into the stream (each must reach the dead-letter topic
exactly once too, whatever the number of workers and however often state is rebuilt), reference-data
deletions (tombstones a rebuilt state must apply), and a writer thread.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from pipeline.kafka import clients
from pipeline.kafka.batches import produce_when_room
from pipeline.settings import Settings, Topics
from tests.integration.scenario import BASE, Scenario
from tests.integration.scenario_play import check_decisions
from tests.integration.worker_harness import CODEC, DSP_PRODUCER_TUNING, OutputReader, Outputs, WorkerProcess

Record = tuple[str, bytes | None, bytes | None]  # topic, key, value


@dataclass
class Stream:
    """What the DSP writes after the reference data, in its write order, and what each alert must become."""

    scenario: Scenario
    alerts_topic: str
    records: list[Record] = field(default_factory=list)
    sent: dict[str, bytes] = field(default_factory=dict)  # alert_id -> value bytes as written
    bad: list[bytes] = field(default_factory=list)  # values of alerts that must be dead-lettered
    bad_state: list[bytes] = field(default_factory=list)  # values of state records that must be dead-lettered

    @property
    def alert_count(self) -> int:
        return len(self.sent) + len(self.bad)


def build_stream(topics: Topics, sc: Scenario, bad_every: int = 0, bad_state_every: int = 0) -> Stream:
    """Activation inputs and alerts in received_at order (requests and outcomes first at a tie), with an
    undecodable alert after every `bad_every`-th alert when `bad_every` > 0, and an undecodable record on
    each state topic in turn after every `bad_state_every`-th event when `bad_state_every` > 0."""
    stream = Stream(sc, topics.alerts)
    alerts = 0
    state_topics = [topics.service_requests, topics.activation_outcomes, topics.inventory, topics.tracked_devices]
    for n, (_, _, kind, d) in enumerate(sc.events(), 1):
        if bad_state_every and n % bad_state_every == 0:
            topic = state_topics[len(stream.bad_state) % len(state_topics)]
            bad = f"not a record of {topic} #{len(stream.bad_state)}".encode()
            stream.bad_state.append(bad)
            stream.records.append((topic, f"bad-{len(stream.bad_state)}".encode(), bad))
        if kind == "request":
            stream.records.append((topics.service_requests, d["target_device_id"].encode(),
                                   CODEC.encode("ServiceRequest", d)))
        elif kind == "outcome":
            stream.records.append((topics.activation_outcomes, d["device_id"].encode(),
                                   CODEC.encode("ActivationOutcome", d)))
        else:
            value = CODEC.encode("DeviceAlert", d)
            stream.sent[d["alert_id"]] = value
            stream.records.append((topics.alerts, d["device_id"].encode(), value))
            alerts += 1
            if bad_every and alerts % bad_every == 0:
                bad = f"not an alert #{len(stream.bad)}".encode()
                stream.bad.append(bad)
                stream.records.append((topics.alerts, d["device_id"].encode(), bad))
    return stream


def tracked_list(topics: Topics, count: int) -> list[Record]:
    """A long valid tracked list (ESMEs that are on no HAN): reading it takes the worker a while."""
    records: list[Record] = []
    for n in range(count):
        device = "-".join(f"{b:02X}" for b in (0xEE).to_bytes(1, "big") + n.to_bytes(7, "big"))
        value = CODEC.encode("TrackedDevice", {"device_id": device, "manufacturer": None, "model": None,
                                               "firmware_version": None, "list_version": None, "added_at": BASE})
        records.append((topics.tracked_devices, device.encode(), value))
    return records


def split_after_alerts(stream: Stream, alerts: int) -> tuple[list[Record], list[Record]]:
    """Every activation input and the first `alerts` alerts (each topic keeps its order), then the other alerts."""
    first: list[Record] = []
    later: list[Record] = []
    for record in stream.records:
        is_alert = record[0] == stream.alerts_topic
        (later if is_alert and alerts <= 0 else first).append(record)
        alerts -= is_alert
    return first, later


def drop_from_reference(sc: Scenario, every: int) -> int:
    """Take every `every`-th tracked ESME off the tracked list or out of the inventory, alternately, with a
    tombstone written after its record (compacted topics). Its home's AD1s are then forwarded; a state
    rebuilt from Kafka must apply the deletions too. Returns how many ESMEs were dropped."""
    chf_of = {key.upper(): d["chf_id"] for key, d in sc.inventory if d is not None and d["chf_id"]}
    alerts_of: dict[str, list[str]] = {}
    for a in sc.alerts:
        alerts_of.setdefault(a["device_id"], []).append(a["alert_id"])
    dropped = [key for key, d in sc.tracked if d is not None][::every]
    for i, esme in enumerate(dropped):
        (sc.tracked if i % 2 else sc.inventory).append((esme, None))
        for alert_id in alerts_of.get(chf_of[esme.upper()], []):
            sc.intent[alert_id] = "forward"
    return len(dropped)


class StreamWriter:
    """Writes records from a thread, spread evenly over `seconds`, like a DSP that keeps going whatever the
    filter does.

    Each slice's activation inputs are acknowledged before its alerts are written: records on different
    topics have no order in Kafka, and a live DSP accepts a firmware request long before the outage it
    causes. (Unacknowledged, an alert can land before the request it depends on; then forwarding it is
    right, and the reference decision is not.) Idempotent: a broker restart must not reorder or duplicate
    the DSP's input.
    """

    def __init__(self, settings: Settings, records: Sequence[Record], seconds: float, slices: int = 200) -> None:
        self.alerts_topic = settings.topics.alerts
        self.records = list(records)
        self.seconds = seconds
        self.slices = max(1, min(slices, len(self.records)))
        self.producer = clients.producer(settings, DSP_PRODUCER_TUNING)
        self.thread = threading.Thread(target=self._write, name="dsp-writer", daemon=True)
        self.error: BaseException | None = None
        self.written = 0

    def start(self) -> "StreamWriter":
        self.thread.start()
        return self

    def _write(self) -> None:
        try:
            start = time.monotonic()
            per_slice = -(-len(self.records) // self.slices)
            for s in range(self.slices):
                chunk = self.records[s * per_slice:(s + 1) * per_slice]
                self._write_acknowledged([r for r in chunk if r[0] != self.alerts_topic])
                self._write_acknowledged([r for r in chunk if r[0] == self.alerts_topic])
                pause = start + (s + 1) * self.seconds / self.slices - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread in `finish`
            self.error = exc

    def _write_acknowledged(self, records: list[Record]) -> None:
        for topic, key, value in records:
            produce_when_room(self.producer, topic, value, key)
        while self.producer.flush(1) > 0:
            pass
        self.written += len(records)

    @property
    def writing(self) -> bool:
        return self.thread.is_alive()

    def finish(self, timeout: float = 120) -> None:
        """Wait until every record is written and acknowledged."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the DSP writer did not finish"
        if self.error is not None:
            raise self.error
        assert self.producer.flush(timeout) == 0, "input records were not delivered"


class _Settled:
    """Stands in for an OutputReader in `check_decisions`: outputs already read to the end."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs

    def wait_for(self, predicate: Callable[[Outputs], bool], timeout: float, what: str,
                 worker: WorkerProcess | None = None) -> Outputs:
        assert predicate(self.outputs), what
        return self.outputs


def check_exactly_once(reader: OutputReader, stream: Stream, worker: WorkerProcess, timeout: float = 180) -> Outputs:
    """Every alert written ends in exactly one output topic exactly once (read_committed), with the decision
    of an undisturbed run and, when forwarded, its bytes; every bad record, alert or state, is dead-lettered
    exactly once (no two dead letters name the same topic, partition and offset)."""
    alerts_topic = reader.topics.alerts
    outputs = reader.wait_for(
        lambda o: o.alert_outputs + len(o.alert_dead_letters(alerts_topic)) >= stream.alert_count
        and len(o.dead_letters) >= len(stream.bad) + len(stream.bad_state),
        timeout, f"all {stream.alert_count} alerts decided and every bad record dead-lettered", worker,
    )
    sources = Counter((d["source_topic"], d["partition"], d["offset"]) for _, d in outputs.dead_letters)
    repeated = {c: n for c, n in sources.items() if n != 1}
    assert repeated == {}, f"{len(repeated)} of {len(sources)} records dead-lettered more than once"
    letters = Counter(d["value"] for d in outputs.alert_dead_letters(alerts_topic))
    assert {v: n for v, n in letters.items() if n != 1} == {}, "an alert was dead-lettered more than once"
    assert set(letters) == set(stream.bad), "bad alerts missing from, or valid ones in, the dead-letter topic"
    state_letters = Counter(d["value"] for _, d in outputs.dead_letters if d["source_topic"] != alerts_topic)
    assert state_letters == Counter(stream.bad_state), "bad state records not dead-lettered exactly once"
    check_decisions(cast(OutputReader, _Settled(replace(outputs, dead_letters=[]))), stream.scenario, stream.sent,
                    worker)
    return outputs


def metric(worker: WorkerProcess, sample: str) -> float:
    """Sum of the samples of a metric, given by name (all labels) or by name and labels; 0 when none."""
    try:
        text = worker.metrics()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(sample) and line[len(sample)] in "{ ")
