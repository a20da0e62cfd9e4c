"""DUIS documents on the event topics through a real `poa-filter worker` (contract 9), mixed with Avro records
and with default settings, on a backlog whose alerts were written before the requests: every alert in exactly
one output as the rules say, DUIS alerts forwarded byte for byte under their key, audited with the document as
payload, bad documents dead-lettered with their element path."""

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.wire.duis import documents, gbcs
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, Outputs, WorkerProcess, wait_until

pytestmark = pytest.mark.broker

MIN = 60_000
T0 = (int(time.time()) - 2 * 3600) * 1000  # two hours ago, whole seconds: within the topics' retention
USER = "90-B3-D5-1F-30-01-00-00"
HASH = bytes(range(32))
RELEASED_METRIC = 'poa_alerts_total{alert_code="AD1",decision="forwarded",reason="outage_evidence"}'


def chf(home: int) -> str:
    return f"00-1B-C5-0C-00-00-{home:02X}-01"


def esme(home: int) -> str:
    return f"00-1B-C5-0C-00-00-{home:02X}-02"


def request_id(home: int, counter: int = 1) -> str:
    return f"{USER}:{esme(home)}:{1_660_751_141_000 + counter}"


@dataclass
class Feed:
    """What the DSP writes, with the Kafka timestamp of each record (the received_at of a DUIS one)."""

    state: list[tuple[str, str, bytes, int]] = field(default_factory=list)  # topic, key, value, timestamp
    alerts: list[tuple[str, str, bytes, int]] = field(default_factory=list)  # name, key, value, timestamp
    due: dict[str, str] = field(default_factory=dict)  # alert name -> forward, suppress or dead_letter

    def request(self, topics: Any, home: int, variant: int, at: int, execution_ms: int | None = None,
                counter: int = 1) -> None:  # fmt: skip
        value = documents.activate_firmware_request(request_id(home, counter), command_variant=variant,
                                                    execution_ms=execution_ms, firmware_hash=HASH)  # fmt: skip
        self.state.append((topics.service_requests, esme(home), value, at))

    def outcome(self, topics: Any, home: int, value: bytes, at: int) -> None:
        self.state.append((topics.activation_outcomes, esme(home), value, at))

    def ad1(self, name: str, home: int, at: int, due: str) -> bytes:
        value = documents.power_outage_alert(f"{documents.DCC_EUI}:{USER}:{len(self.alerts) + 1}", chf_id=chf(home),
                                             started_ms=at - 30_000, mpxn=f"{1_000_000_000_000 + home}",
                                             responded_ms=at - 1_000)  # fmt: skip
        return self.alert(name, chf(home), value, at, due)

    def alert(self, name: str, key: str, value: bytes, at: int, due: str) -> bytes:
        self.alerts.append((name, key, value, at))
        self.due[name] = due
        return value


def scenario(topics: Any) -> Feed:
    f = Feed()
    # 1: a signed request (variant 5), immediate: the AD1 in its window is suppressed.
    f.request(topics, 1, 5, T0)
    f.ad1("signed", 1, T0 + 5 * MIN, "suppress")
    # 2: a variant 4 alone (not counted by default: it may never be signed): forwarded.
    f.request(topics, 2, 4, T0)
    f.ad1("variant-4-only", 2, T0 + 5 * MIN, "forward")
    # 3: variant 4, then the same request signed as variant 7: suppressed.
    f.request(topics, 3, 4, T0)
    f.request(topics, 3, 7, T0 + MIN)
    f.ad1("variant-7", 3, T0 + 5 * MIN, "suppress")
    # 4: a future-dated request cancelled (GBCS 9999-12-31T23:59:59Z) before it starts: forwarded.
    f.request(topics, 4, 5, T0, execution_ms=T0 + 20 * MIN)
    f.request(topics, 4, 5, T0 + 10 * MIN, execution_ms=gbcs.CANCELLATION_TIME_MS, counter=2)
    f.ad1("cancelled", 4, T0 + 25 * MIN, "forward")
    # 5: an immediate request whose device answers hash mismatch: withdrawn, forwarded.
    f.request(topics, 5, 5, T0)
    f.outcome(topics, 5, documents.activation_outcome_response(request_id(5), f"{esme(5)}:{USER}:1", response_code=2,
                                                               responded_ms=T0 + MIN), T0 + MIN)  # fmt: skip
    f.ad1("hash-mismatch", 5, T0 + 5 * MIN, "forward")
    # 6: future-dated; "command accepted" (no outcome), then 0x8F66 (done): suppressed.
    f.request(topics, 6, 5, T0, execution_ms=T0 + 10 * MIN)
    f.outcome(topics, 6, documents.activation_outcome_response(request_id(6), f"{esme(6)}:{USER}:1",
                                                               response_code=None, responded_ms=T0), T0 + 1_000)
    f.outcome(topics, 6, documents.future_dated_activation_alert(
        request_id(6), f"{esme(6)}:{USER}:2", alert_code=0x8F66, execution_ms=T0 + 10 * MIN,
        counter=1_660_751_141_001, response_code=0, responded_ms=T0 + 11 * MIN), T0 + 11 * MIN)  # fmt: skip
    f.ad1("8F66", 6, T0 + 12 * MIN, "suppress")
    # 7: future-dated; 0x8F67 with no image held, the request ID rebuilt from the GBCS alert: forwarded.
    f.request(topics, 7, 5, T0, execution_ms=T0 + 10 * MIN)
    f.outcome(topics, 7, documents.future_dated_activation_alert(
        None, f"{esme(7)}:{USER}:2", alert_code=0x8F67, execution_ms=T0 + 10 * MIN, counter=1_660_751_141_001,
        response_code=1, responded_ms=T0 + 11 * MIN), T0 + 11 * MIN)  # fmt: skip
    f.ad1("8F67", 7, T0 + 15 * MIN, "forward")
    # 8: an AD1 in a window with the ESME's own DUIS 8F36 a minute later (rule 9): both forwarded.
    f.request(topics, 8, 5, T0)
    f.ad1("released", 8, T0 + 5 * MIN, "forward")
    restored = documents.device_alert(f"{esme(8)}:{USER}:3", alert_code="8f36", alert_ms=T0 + 6 * MIN,
                                      responded_ms=T0 + 6 * MIN, outage_start_ms=T0 + 4 * MIN,
                                      outage_end_ms=T0 + 6 * MIN)  # fmt: skip
    f.alert("8F36", esme(8), restored, T0 + 6 * MIN, "forward")
    # 9: an Avro request; a DUIS AD1 and an Avro AD1 in its window, both suppressed.
    f.state.append((topics.service_requests, esme(9), CODEC.encode("ServiceRequest", {
        "request_id": request_id(9), "service_reference_variant": "11.3", "target_device_id": esme(9),
        "execution_datetime": None, "firmware_hash": HASH.hex(), "received_at": T0}), T0))  # fmt: skip
    f.ad1("duis-ad1-avro-request", 9, T0 + 5 * MIN, "suppress")
    f.alert("avro-ad1", chf(9), CODEC.encode("DeviceAlert", {
        "alert_id": "avro-ad1", "alert_code": "AD1", "device_id": chf(9), "mpxn": None, "raised_at": None,
        "received_at": T0 + 6 * MIN, "payload": None}), T0 + 6 * MIN, "suppress")  # fmt: skip
    # Other alerts, DUIS and Avro: forwarded as read.
    f.alert("duis-8F3E", esme(1), documents.device_alert(f"{esme(1)}:{USER}:4", alert_code="8F3E",
                                                         alert_ms=T0 + 7 * MIN, responded_ms=T0 + 7 * MIN),
            T0 + 7 * MIN, "forward")  # fmt: skip
    f.alert("dcc-N12", chf(2), documents.dcc_alert(f"{documents.DCC_EUI}:{USER}:900", dcc_alert_code="N12",
                                                   responded_ms=T0 + 7 * MIN), T0 + 7 * MIN, "forward")
    f.alert("avro-8F01", esme(3), CODEC.encode("DeviceAlert", {
        "alert_id": "avro-8F01", "alert_code": "8F01", "device_id": esme(3), "mpxn": None, "raised_at": None,
        "received_at": T0 + 7 * MIN, "payload": None}), T0 + 7 * MIN, "forward")  # fmt: skip
    # Bad documents: dead-lettered with the element path.
    good = documents.power_outage_alert(f"{documents.DCC_EUI}:{USER}:901", chf_id=chf(1), started_ms=T0,
                                        mpxn="1", responded_ms=T0)  # fmt: skip
    f.alert("bad-chf", chf(1), good.replace(chf(1).encode(), b"00-1B-C5-0C-00-00-01 01"), T0 + 8 * MIN, "dead_letter")
    f.alert("doctype", chf(1), b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
            + good[good.index(b"<sr:Response"):].replace(b"AD1", b"&e;"), T0 + 8 * MIN, "dead_letter")  # fmt: skip
    short = documents.activate_firmware_request(request_id(10), command_variant=4, execution_ms=None,
                                                firmware_hash=HASH[:31])  # fmt: skip
    f.state.append((topics.service_requests, esme(10), short, T0))
    return f


def test_duis_and_avro_on_a_backlog_each_alert_in_one_output(settings: Settings, tmp_path: Path) -> None:
    topics = settings.topics
    feed = scenario(topics)
    dsp = DspProducer(settings)
    for home in range(1, 11):
        dsp.tracked_esme_on(chf(home), esme(home), T0 - 60 * MIN)
    for _, key, value, at in feed.alerts:  # the alerts first: the worker must wait for the requests
        dsp.producer.produce(topics.alerts, value, key.encode(), timestamp=at)
    dsp.flush()
    for topic, key, value, at in feed.state:
        dsp.producer.produce(topic, value, key.encode(), timestamp=at)
    dsp.flush()
    sent = {value: name for name, _, value, _ in feed.alerts}
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        def decided(o: Outputs) -> bool:
            return o.alert_outputs + len(o.alert_dead_letters(topics.alerts)) >= len(feed.alerts)

        out = reader.wait_for(decided, 120, "every alert decided", worker)
        wait_until(lambda: len(reader.poll(0.3).dead_letters) >= 3, 30, "the bad request dead-lettered", worker)
        forwarded = [sent[value] for _, value in out.forwarded]  # a KeyError: not the bytes sent
        suppressed = [sent.get(s["alert"]["payload"] or b"") or sent[CODEC.encode("DeviceAlert", s["alert"])]
                      for _, s in out.suppressed]  # fmt: skip
        dead = {sent[d["value"]]: d for d in out.alert_dead_letters(topics.alerts)}
        counts = Counter(forwarded + suppressed + list(dead))
        assert [name for name, n in counts.items() if n != 1] == [], "an alert in more than one output"
        got = {name: "forward" for name in forwarded} | {name: "suppress" for name in suppressed}
        got |= {name: "dead_letter" for name in dead}
        assert got == feed.due

        keys = {name: key.encode() for name, key, _, _ in feed.alerts}
        assert all(key == keys[sent[value]] for key, value in out.forwarded), "forwarded under its input key"
        audit = next(s for _, s in out.suppressed if sent.get(s["alert"]["payload"] or b"") == "signed")
        assert (audit["esme_id"], audit["activation_request_id"]) == (esme(1), request_id(1))
        assert audit["alert"]["device_id"] == chf(1) and audit["alert"]["received_at"] == T0 + 5 * MIN
        assert audit["window_start"] == T0 and audit["alert"]["raised_at"] == T0 + 5 * MIN - 30_000

        assert dead["bad-chf"]["error"].startswith(
            "/Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent/CommsHubDeviceID: "
        )
        assert "DOCTYPE" in dead["doctype"]["error"]
        state_letters = [d for _, d in out.dead_letters if d["source_topic"] == topics.service_requests]
        assert [d["error"] for d in state_letters] == [
            "/Request/Body/ActivateFirmware/FirmwareHash: 31 bytes, expected 32"
        ]
        wait_until(lambda: f"{RELEASED_METRIC} 1.0" in worker.metrics(), 10, "the release counted", worker)
    finally:
        worker.stop()
        reader.close()
