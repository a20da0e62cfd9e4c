"""`poa-filter audit ALERT_ID` through its real interface: a real worker decides a scenario on a real broker, then
the command says where each alert ended, and that answer is held to the records the worker wrote."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.settings import Settings
from tests.integration.scenario import BASE, MIN
from tests.integration.test_release import flags
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, Outputs, WorkerProcess

pytestmark = pytest.mark.broker

CHF, ESME = "AA-00-00-00-00-00-00-01", "AA-00-00-00-00-00-00-02"
T0 = BASE + 60 * MIN
REQUEST_ID = "90-B3-D5-1F-30-01-00-00:AA-00-00-00-00-00-00-02:7"


def alert(alert_id: str, t: int, device: str = CHF, code: str = "AD1") -> dict[str, Any]:
    return {"alert_id": alert_id, "alert_code": code, "device_id": device, "mpxn": None, "raised_at": None,
            "received_at": t, "payload": b"\x01\x02"}


@dataclass
class Decided:
    """A scenario the worker has decided: the settings it ran with and everything it wrote."""

    settings: Settings
    outputs: Outputs


@pytest.fixture
def decided(settings: Settings, tmp_path: Path) -> Iterator[Decided]:
    """A tracked ESME activating firmware at T0: an AD1 in its window (suppressed), one long after and a
    non-AD1 (forwarded), and alerts that are bad input (dead-lettered): a malformed device ID, and truncated
    values that no longer decode, one keyed by its alert ID, one by its device ID."""
    t = settings.topics
    dsp = DspProducer(settings)
    dsp.tracked_esme_on(CHF, ESME, T0)
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        dsp.record(t.service_requests, ESME, "ServiceRequest",
                   {"request_id": REQUEST_ID, "service_reference_variant": "11.3", "target_device_id": ESME,
                    "execution_datetime": None, "firmware_hash": None, "received_at": T0})
        dsp.flush()
        dsp.record(t.alerts, CHF, "DeviceAlert", alert("ota-outage", T0 + 5 * MIN))
        dsp.record(t.alerts, CHF, "DeviceAlert", alert("real-outage", T0 + 3 * 60 * MIN))
        dsp.record(t.alerts, CHF, "DeviceAlert", alert("tamper", T0 + 6 * MIN, code="8F36"))
        dsp.record(t.alerts, "AA:00:00:00:00:00:00:01", "DeviceAlert",
                   alert("bad-device", T0 + 7 * MIN, device="AA:00:00:00:00:00:00:01"))
        dsp.send(t.alerts, "cut-short", CODEC.encode("DeviceAlert", alert("cut-short", T0 + 8 * MIN))[:-4])
        dsp.send(t.alerts, CHF, CODEC.encode("DeviceAlert", alert("cut-shorter", T0 + 9 * MIN))[:-4])
        dsp.flush()
        outputs = reader.wait_for(lambda o: o.alert_outputs >= 3 and len(o.dead_letters) >= 3, 60,
                                  "every alert decided", worker)
        assert sorted(outputs.forwarded_ids()) == ["real-outage", "tamper"]
        assert outputs.suppressed_ids() == ["ota-outage"]
        yield Decided(settings, outputs)
    finally:
        worker.stop()
        reader.close()


def audit(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `poa-filter audit` in this process: its exit code and standard output. Standard error is a pipe
    here, where no progress line may be drawn (progress is for terminals only)."""
    capsys.readouterr()
    code = cli.main(["audit", *flags(settings), *argv])
    out, err = capsys.readouterr()
    assert "\r" not in err and "rows/s" not in err
    return code, out


def audit_json(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out = audit(settings, capsys, "--json", *argv)
    return code, json.loads(out)


def total_records(outputs: Outputs) -> int:
    return len(outputs.forwarded) + len(outputs.suppressed) + len(outputs.dead_letters)


def test_audit_says_where_each_alert_of_a_decided_scenario_ended(
    decided: Decided, capsys: pytest.CaptureFixture[str]
) -> None:
    """One worker run, audited alert by alert (a worker per case would cost the shared machine too much)."""
    check_suppressed(decided, capsys)
    check_forwarded(decided, capsys)
    check_dead_lettered(decided, capsys)
    check_unknown(decided, capsys)
    check_since(decided, capsys)


def check_suppressed(decided: Decided, capsys: pytest.CaptureFixture[str]) -> None:
    [(_key, written)] = decided.outputs.suppressed

    code, answer = audit_json(decided.settings, capsys, "ota-outage")

    assert code == 0
    assert answer["found"] and answer["outcomes"] == ["suppressed"]
    [finding] = answer["findings"]
    assert finding["topic"] == decided.settings.topics.suppressed
    assert finding["matched_by"] == "alert_id"
    details = finding["details"]
    assert details["esme_id"] == written["esme_id"] == ESME
    assert details["activation_request_id"] == written["activation_request_id"] == REQUEST_ID
    assert details["reason"] == written["reason"]
    assert details["window_start"] == "2026-03-01T01:00:00.000Z"
    assert details["window_end"] == "2026-03-01T01:30:00.000Z"
    assert details["alert"]["received_at"] == "2026-03-01T01:05:00.000Z"
    assert finding["written_at"] is not None and details["decided_at"] is not None
    assert answer["records_scanned"] == total_records(decided.outputs)

    code, text = audit(decided.settings, capsys, "ota-outage")
    assert code == 0
    assert text.startswith("Alert ota-outage: suppressed.")
    assert f"Activation request {REQUEST_ID} on ESME {ESME}" in text
    assert written["reason"] in text


def check_forwarded(decided: Decided, capsys: pytest.CaptureFixture[str]) -> None:
    code, answer = audit_json(decided.settings, capsys, "tamper")

    assert code == 0
    assert answer["outcomes"] == ["forwarded"]
    [finding] = answer["findings"]
    assert finding["topic"] == decided.settings.topics.dno_alerts
    assert finding["details"]["alert"] == {"alert_id": "tamper", "alert_code": "8F36", "device_id": CHF,
                                           "received_at": "2026-03-01T01:06:00.000Z"}


def check_dead_lettered(decided: Decided, capsys: pytest.CaptureFixture[str]) -> None:
    letters = {d["value"]: d for d in decided.outputs.alert_dead_letters(decided.settings.topics.alerts)}

    code, answer = audit_json(decided.settings, capsys, "bad-device")
    assert code == 0
    [finding] = answer["findings"]
    assert (finding["outcome"], finding["topic"], finding["matched_by"]) == (
        "dead_letter", decided.settings.topics.dead_letter, "alert_id")
    [written] = [d for v, d in letters.items() if v and b"bad-device" in v]
    details = finding["details"]
    assert details["error"] == written["error"] and "device_id" in written["error"]
    assert (details["source_topic"], details["source_partition"], details["source_offset"]) == (
        written["source_topic"], written["partition"], written["offset"])
    assert details["key"] == "AA:00:00:00:00:00:00:01"

    code, text = audit(decided.settings, capsys, "bad-device")
    assert code == 0 and text.startswith("Alert bad-device: dead-lettered.")
    assert f"Error: {written['error']}" in text

    # Values that no longer decode: matched by the key, or by the alert ID's bytes, and said to be so.
    code, answer = audit_json(decided.settings, capsys, "cut-short")
    assert code == 0
    [finding] = answer["findings"]
    assert finding["matched_by"] == "key" and "DeviceAlert" in finding["details"]["decode_error"]
    code, answer = audit_json(decided.settings, capsys, "cut-shorter")
    assert code == 0
    [finding] = answer["findings"]
    assert finding["matched_by"] == "bytes" and finding["details"]["key"] == CHF
    code, text = audit(decided.settings, capsys, "cut-shorter")
    assert "Matched by the alert ID found in bytes that cannot be read" in text


def check_unknown(decided: Decided, capsys: pytest.CaptureFixture[str]) -> None:
    t = decided.settings.topics

    # "ota" is inside "ota-outage": only whole alert IDs match.
    code, answer = audit_json(decided.settings, capsys, "ota")

    assert code == 1
    assert answer["found"] is False and answer["findings"] == []
    assert answer["records_scanned"] == total_records(decided.outputs)
    read = {s["topic"]: s["records_scanned"] for s in answer["topics"] if s["skipped"] is None}
    assert read == {t.dno_alerts: 2, t.suppressed: 1, t.dead_letter: 3, t.shadow: 0}  # the worker made shadow
    skipped = {s["outcome"]: s["skipped"] for s in answer["topics"] if s["skipped"]}
    assert skipped["released"] == "the topic does not exist"

    code, text = audit(decided.settings, capsys, "ota")
    assert code == 1
    assert text.startswith("Alert 'ota' was not found. Read 6 records on ")
    assert f"{t.released} (released): the topic does not exist" in text


def check_since(decided: Decided, capsys: pytest.CaptureFixture[str]) -> None:
    later = str(time.time_ns() // 1_000_000 + 1)  # every output record was written before this

    code, answer = audit_json(decided.settings, capsys, "--since", later, "ota-outage")
    assert code == 1 and answer["records_scanned"] == 0

    code, answer = audit_json(decided.settings, capsys, "--since", "2026-01-01T00:00:00Z", "ota-outage")
    assert code == 0 and answer["outcomes"] == ["suppressed"]
    assert answer["since"] == "2026-01-01T00:00:00.000Z"


def test_a_released_alert_shows_its_suppression_then_its_release(
    decided: Decided, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["release", *flags(decided.settings), "--from", str(T0), "--to", str(T0 + 60 * MIN),
                     "--operator", "ops-on-call", "--reason", "tracked list was wrong"])
    assert code == 0, capsys.readouterr().err

    code, answer = audit_json(decided.settings, capsys, "ota-outage")

    assert code == 0
    assert [f["outcome"] for f in answer["findings"]] == ["suppressed", "forwarded", "released"]
    released = answer["findings"][2]["details"]
    assert (released["released_by"], released["reason"]) == ("ops-on-call", "tracked list was wrong")
    assert released["source_topic"] == decided.settings.topics.suppressed
    code, text = audit(decided.settings, capsys, "ota-outage")
    assert "this is likely the copy `poa-filter release` sent" in text
