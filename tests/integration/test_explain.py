"""Explanations from a real worker: for every AD1 of a campaign the worker decided, `GET /explain` at the alert's
received_at reports the decision the worker wrote (suppressed by the same ESME and request, or forwarded), and
`poa-filter explain` prints it for a person."""

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from tests.integration.scenario import Scenario, campaign
from tests.integration.scenario_play import write_live, write_reference
from tests.integration.worker_harness import CODEC, POA_FILTER, DspProducer, OutputReader, Outputs, WorkerProcess

pytestmark = pytest.mark.broker

LONE_CHF = "00-DB-12-34-56-78-90-EE"  # a CH Function with no ESME on its HAN


def with_lone_chf(sc: Scenario) -> Scenario:
    """The campaign plus an AD1 from a CH Function the inventory associates no ESME with."""
    t = sc.alerts[0]["received_at"] + 90_000
    sc.alerts.append(
        {"alert_id": "alert-lone", "alert_code": "AD1", "device_id": LONE_CHF.lower(), "mpxn": None,
         "raised_at": None, "received_at": t, "payload": None}
    )  # fmt: skip
    sc.intent["alert-lone"] = "forward"
    return sc


def explain(worker: WorkerProcess, device: str, at_ms: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{worker.explain_port}/explain?device={device}&at={at_ms}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        answer: dict[str, Any] = json.load(response)
        return answer


def run_campaign(settings: Settings, tmp_path: Path, sc: Scenario) -> tuple[WorkerProcess, Outputs]:
    """A worker that has decided every alert of the scenario, played live; the caller stops it."""
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        write_live(dsp, sc)
        outputs = reader.wait_for(lambda o: o.alert_outputs >= len(sc.alerts), 120, "every alert decided", worker)
    except BaseException:
        worker.stop()
        raise
    finally:
        reader.close()
    return worker, outputs


def test_explain_reports_the_decision_the_worker_wrote_for_every_ad1(settings: Settings, tmp_path: Path) -> None:
    sc = with_lone_chf(campaign(homes=24, seed=5))
    worker, outputs = run_campaign(settings, tmp_path, sc)
    try:
        written: dict[str, tuple[str, str | None, str | None]] = {
            CODEC.decode("DeviceAlert", v)["alert_id"]: ("forwarded", None, None) for _, v in outputs.forwarded
        }
        windows = {}
        for _, s in outputs.suppressed:
            written[s["alert"]["alert_id"]] = ("suppressed", s["esme_id"], s["activation_request_id"])
            windows[s["alert"]["alert_id"]] = (s["window_start"], s["window_end"])
        ad1s = [a for a in sc.alerts if a["alert_code"] == "AD1"]
        assert {a["alert_id"] for a in ad1s} <= set(written)
        seen = {"suppressed": 0, "forwarded": 0}
        reasons = set()
        for alert in ad1s:
            answer = explain(worker, alert["device_id"], alert["received_at"])
            decision = answer["decision"]
            assert decision["alert"]["device_id"] == alert["device_id"].upper()
            assert decision["alert"]["received_at"]["epoch_ms"] == alert["received_at"]
            explained = (decision["outcome"], decision.get("esme_id"), decision.get("request_id"))
            assert explained == written[alert["alert_id"]], alert
            if decision["outcome"] == "suppressed":
                window = decision["window"]
                assert (window["start"]["epoch_ms"], window["end"]["epoch_ms"]) == windows[alert["alert_id"]]
                # the ESME's side gives the same decision, through its CH Function
                from_esme = explain(worker, decision["esme_id"].lower(), alert["received_at"])
                assert (from_esme["role"], from_esme["han"]["chf_id"]) == ("esme", alert["device_id"].upper())
                assert from_esme["decision"] == decision
            seen[decision["outcome"]] += 1
            reasons.add(decision["reason"])
            assert decision["rule"] == "5.5"
            assert answer["evidence"]["evaluated"] is True and answer["evidence"]["releases"] is None
        assert seen["suppressed"] > 0 and seen["forwarded"] > 0
        assert reasons == {"activation_window", "no_esme_on_han", "no_tracked_esme", "no_activation_window"}
    finally:
        worker.stop()


def test_poa_filter_explain_prints_the_workers_answer_for_a_person(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=6, seed=3)
    worker, outputs = run_campaign(settings, tmp_path, sc)
    try:
        suppressed = outputs.suppressed[0][1]
        chf, t = suppressed["alert"]["device_id"], suppressed["alert"]["received_at"]
        done = subprocess.run(
            [POA_FILTER, "explain", chf, "--at", str(t)],
            env={**worker.env, "POA_METRICS_PORT": str(worker.port)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == f"{chf}: CH Function with 1 ESME(s) on its HAN"
        assert f"  ESME {suppressed['esme_id']}: tracked yes" in lines
        assert any(line.startswith(f"    activation {suppressed['activation_request_id']}: ") for line in lines)
        assert any(line.endswith(": SUPPRESSED") for line in lines)
        assert (
            f"  suppressed by activation {suppressed['activation_request_id']} of ESME {suppressed['esme_id']}"
            in done.stdout
        )
        # The probe and scrape port may be reached through a proxy in the pod: without a token, no device state.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/explain?device={chf}&at={t}", timeout=10)
        assert refused.value.code == 403 and b"POA_EXPLAIN_PORT" in refused.value.read()
    finally:
        worker.stop()
