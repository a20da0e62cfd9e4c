"""The demo summary's report of AD1s released on evidence of a genuine outage: counted from the outputs matched
with expected.json, the worker's own count read from /metrics, and the evidence named by the worker's /explain,
asked over real HTTP of a stand-in worker that answers with the real explanation code on a small state."""

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from confluent_kafka import Message

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.explanation import explain
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest
from pipeline.settings import Settings
from pipeline.tools.demo_summary import Observed, Seen, _Reader, mismatches, released_on_evidence, render
from pipeline.tools.duis_campaign import DCC_ID, DNO_ID
from pipeline.tools.estate_simulator import DUIS, FORWARD, SUPPRESS
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents

BASE = 1_736_928_000_000  # 2025-01-15T08:00:00Z
MIN = 60_000
CHF, ESME = "00-DB-12-34-56-78-90-C0", "00-DB-12-34-56-78-90-A0"
STORM_CHF, STORM_ESME = "00-DB-12-34-56-78-91-C0", "00-DB-12-34-56-78-91-A0"
OTHERS = [f"00-DB-12-34-56-78-9{n}-C1" for n in range(4)]
METRICS = (
    "# TYPE poa_alerts_total counter\n"
    'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="outage_evidence"} 2.0\n'
    'poa_alerts_total{alert_code="AD1",decision="suppressed",reason="activation_window"} 7.0\n'
    'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="no_window"} 5.0\n'
)


def worker_state() -> FilterState:
    """Two tracked HANs activated at BASE: one whose ESME reported its supply restored, one in sector LS6 2
    where four other homes, no window covering them, reported AD1s."""
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    for chf, esme in ((CHF, ESME), (STORM_CHF, STORM_ESME)):
        state.put_esme_han(esme, chf)
        state.put_tracked(esme, True)
        state.apply_service_request(ServiceRequest(f"90-B3-D5-1F-30-01-00-00:{esme}:1", "11.3", esme, None, None, BASE))
    state.put_evidence_alert(DeviceAlert("SIM-1-restored", "8F36", ESME, None, None, BASE + 10 * MIN, None))
    state.put_inventory(STORM_CHF, InventoryRecord(STORM_CHF, "CHF", None, None, BASE - MIN, "LS6 2AB"))
    for n, other in enumerate(OTHERS):
        state.put_inventory(other, InventoryRecord(other, "CHF", None, None, BASE - MIN, "ls62ad"))
        state.put_evidence_alert(DeviceAlert(f"SIM-1-storm-{n}", "AD1", other, None, None, BASE + 9 * MIN, None))
    return state


class StandIn(BaseHTTPRequestHandler):
    """A worker's HTTP port: /metrics as given, /explain from `worker_state` by the worker's explanation code."""

    state = worker_state()
    metrics = METRICS

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._send(self.metrics.encode(), "text/plain")
        else:
            query = parse_qs(url.query)
            answer = explain(self.state, query["device"][0], int(query["at"][0]))
            self._send(json.dumps(answer).encode(), "application/json")

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def worker_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


SUPPLY_BUILT = {"kind": "supply", "esme_id": ESME, "alert_id": "SIM-1-restored", "alert_code": "8F36"}
STORM_BUILT = {"kind": "storm", "sector": "LS6 2", "chf_ids": OTHERS}


def expected_alert(alert_id: str, key: str, evidence: dict[str, Any] | None) -> dict[str, Any]:
    reason = None if evidence is None else "outage_evidence"
    return {"alert_id": alert_id, "key": key, "alert_code": "AD1", "case": f"case-{alert_id}", "expected": FORWARD,
            "esme_id": None, "activation_request_id": None, "reason": reason, "evidence": evidence}  # fmt: skip


def forwarded(alert_id: str, key: str, t: int) -> Seen:
    alert = {"alert_id": alert_id, "alert_code": "AD1", "device_id": key, "received_at": t}
    return Seen(FORWARD, "dno.alerts 0/1", alert)


def scenario(
    supply: dict[str, Any] = SUPPLY_BUILT, storm: dict[str, Any] = STORM_BUILT
) -> tuple[dict[str, Any], Observed]:
    expected = {
        "seed": 1,
        "homes": 2,
        "alerts": [
            expected_alert("SIM-1-a", CHF, supply),
            expected_alert("SIM-1-b", STORM_CHF, storm),
            expected_alert("SIM-1-c", OTHERS[0], None),
        ],
    }
    observed = Observed()
    observed.seen = {
        "SIM-1-a": [forwarded("SIM-1-a", CHF, BASE + 9 * MIN)],
        "SIM-1-b": [forwarded("SIM-1-b", STORM_CHF, BASE + 10 * MIN)],
        "SIM-1-c": [forwarded("SIM-1-c", OTHERS[0], BASE + 9 * MIN)],
    }
    return expected, observed


def test_released_alerts_are_counted_and_the_worker_names_their_evidence(worker_port: int) -> None:
    settings = replace(Settings(), metrics_port=worker_port, explain_port=worker_port)  # one fake for both
    expected, observed = scenario()
    released = released_on_evidence(settings, expected, observed)
    assert (released.expected, released.reached, released.counted) == (2, 2, 2.0)
    assert released.problems == []
    supply, storm = released.named
    assert f"alert SIM-1-a from CHF {CHF} at 2025-01-15 08:09:00.000Z" in supply
    assert (
        f"its ESME {ESME} reported 8F36 (supply restored) at 2025-01-15 08:10:00.000Z, alert SIM-1-restored" in supply
    )
    assert "a storm in postcode sector LS6 2: AD1s no window covers from 4 other homes (K = 3; CHF " in storm
    assert storm.endswith(f"{', '.join(OTHERS[:3])} and 1 more)")
    lines = render(expected, observed, settings, [], released)
    assert any(
        "released on evidence of a genuine outage: 2 of 2 expected (1 on supply evidence, 1 on storm evidence); "
        "the worker counted 2 (poa_alerts_total, reason outage_evidence)" in line
        for line in lines
    )


@pytest.mark.parametrize(
    ("supply", "storm", "problem"),
    [
        (STORM_BUILT, STORM_BUILT, "SIM-1-a (case-SIM-1-a): built with storm evidence, the worker names supply"),
        ({**SUPPLY_BUILT, "alert_id": "SIM-1-other"}, STORM_BUILT,
         "SIM-1-a (case-SIM-1-a): built with supply alert SIM-1-other, the worker names SIM-1-restored"),
        (SUPPLY_BUILT, {**STORM_BUILT, "chf_ids": OTHERS[:3]},
         "SIM-1-b (case-SIM-1-b): built with a storm of 3 other homes in sector LS6 2, the worker names 4 in sector "
         "LS6 2"),
    ],
    ids=["kind", "supply-alert", "storm-homes"],
)  # fmt: skip
def test_evidence_the_worker_names_otherwise_than_built_is_a_mismatch(
    worker_port: int, supply: dict[str, Any], storm: dict[str, Any], problem: str
) -> None:
    settings = replace(Settings(), metrics_port=worker_port, explain_port=worker_port)  # one fake for both
    expected, observed = scenario(supply, storm)
    assert released_on_evidence(settings, expected, observed).problems == [problem]


def test_a_release_the_worker_does_not_explain_is_a_mismatch(worker_port: int) -> None:
    settings = replace(Settings(), metrics_port=worker_port, explain_port=worker_port)  # one fake for both
    expected, observed = scenario()
    observed.seen["SIM-1-a"] = [forwarded("SIM-1-a", CHF, BASE + 25 * MIN)]  # its 8F36 is 15 minutes before
    released = released_on_evidence(settings, expected, observed)
    (problem,) = released.problems
    assert problem.startswith("SIM-1-a (case-SIM-1-a): expected released on evidence, the worker's explanation says ")
    assert "suppressed" in problem


def test_an_alert_built_for_release_but_suppressed_is_counted_as_not_reached_and_a_mismatch() -> None:
    settings = replace(Settings(), metrics_port=0)
    expected, observed = scenario()
    suppressed = {"esme_id": ESME, "activation_request_id": "r"}
    observed.seen["SIM-1-a"] = [Seen(SUPPRESS, "dsp.alerts.suppressed 0/3", None, suppressed=suppressed)]
    released = released_on_evidence(settings, expected, observed)
    assert (released.expected, released.reached, released.counted) == (2, 1, None)
    assert released.named == ["(the worker did not answer: POA_METRICS_PORT is 0 (a free port), so the worker's port "
                               "is not known here)"]  # fmt: skip
    assert mismatches(expected, observed, settings) == [
        "SIM-1-a (case-SIM-1-a): expected forward, got suppress (dsp.alerts.suppressed 0/3)"
    ]


def test_a_worker_that_does_not_answer_is_said_and_is_no_mismatch() -> None:
    expected, observed = scenario()
    port = unused_port()
    released = released_on_evidence(replace(Settings(), metrics_port=port, explain_port=port), expected, observed)
    assert released.counted is None and released.problems == []
    assert released.named[0].startswith(f"(the worker did not answer: http://127.0.0.1:{port}/metrics: ")


def unused_port() -> int:
    """A port on this machine nobody listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- DUIS scenarios: the documents read as the worker reads them, their bytes checked --------------------------

AD1_ID = f"{DCC_ID}:{DNO_ID}:7"


def ad1_document(mpxn: str = "1234567890123") -> bytes:
    return documents.power_outage_alert(AD1_ID, chf_id=CHF, started_ms=BASE, mpxn=mpxn, responded_ms=BASE + MIN)


def duis_expected(alert_id: str = AD1_ID, document: bytes | None = None) -> dict[str, Any]:
    alert = expected_alert(alert_id, CHF, None)
    alert["value_sha256"] = hashlib.sha256(document or ad1_document()).hexdigest()
    return {"format": DUIS, "seed": 2, "homes": 1, "alerts": [alert]}


def read_output(settings: Settings, expected: list[dict[str, Any]], topic: str, value: bytes) -> Observed:
    reader = _Reader(settings, AvroCodec(), expected)
    reader.add(Message(topic=topic, partition=0, offset=5, value=value, timestamp=(1, BASE + 2 * MIN)))
    return reader.observed


def test_a_duis_alert_on_the_dno_topic_is_read_as_the_worker_reads_it_and_its_bytes_checked() -> None:
    settings = replace(Settings(), metrics_port=0)
    expected = duis_expected()
    observed = read_output(settings, [expected], settings.topics.dno_alerts, ad1_document())
    (seen,) = observed.seen[AD1_ID]
    assert seen.alert is not None and (seen.alert["device_id"], seen.alert["received_at"]) == (CHF, BASE + 2 * MIN)
    assert mismatches(expected, observed, settings) == []
    lines = render(expected, observed, settings, [], released_on_evidence(settings, expected, observed))
    assert lines[0].startswith("poa-filter demo summary: DUIS documents (seed 2, 1 homes")
    assert "  DUIS XML on dno.alerts byte for byte as published (SHA-256 checked): 1 of 1" in lines


def test_a_duis_alert_forwarded_with_other_bytes_is_a_mismatch() -> None:
    settings = replace(Settings(), metrics_port=0)
    expected = duis_expected()
    observed = read_output(settings, [expected], settings.topics.dno_alerts, ad1_document(mpxn="999"))
    assert mismatches(expected, observed, settings) == [
        f"{AD1_ID} (case-{AD1_ID}): the value forwarded (dno.alerts 0/5) is not the DUIS document published, "
        "byte for byte"
    ]
    lines = render(expected, observed, settings, [], released_on_evidence(settings, expected, observed))
    assert "  DUIS XML on dno.alerts byte for byte as published (SHA-256 checked): 0 of 1" in lines


def test_two_scenarios_on_the_same_topics_are_told_apart() -> None:
    settings = replace(Settings(), metrics_port=0)
    avro, _ = scenario()
    duis = duis_expected()
    reader = _Reader(settings, AvroCodec(), [avro, duis])
    reader.add(Message(topic=settings.topics.dno_alerts, partition=0, offset=1, value=ad1_document(),
                       timestamp=(1, BASE)))  # fmt: skip
    reader.observed.seen.update(scenario()[1].seen)
    first, second = reader.observed.part(avro, settings, first=True), reader.observed.part(duis, settings, first=False)
    assert set(first.seen) == {"SIM-1-a", "SIM-1-b", "SIM-1-c"} and set(second.seen) == {AD1_ID}
    assert reader.observed.foreign == 0


def test_a_released_duis_alert_is_explained_at_its_input_timestamp_not_its_outputs(worker_port: int) -> None:
    """The forwarded record of a DUIS alert is stamped when the worker wrote it; expected.json has when it came."""
    settings = replace(Settings(), metrics_port=worker_port, explain_port=worker_port)  # one fake for both
    expected, observed = scenario()
    expected["alerts"][0]["received_at"] = BASE + 9 * MIN
    observed.seen["SIM-1-a"] = [forwarded("SIM-1-a", CHF, BASE + 25 * MIN)]  # the output's timestamp
    released = released_on_evidence(settings, expected, observed)
    assert released.problems == []
    assert f"alert SIM-1-a from CHF {CHF} at 2025-01-15 08:09:00.000Z: its ESME" in released.named[0]
