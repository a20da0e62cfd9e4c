"""The `poa-filter` command line on the real broker: errors, simulate and demo-summary (settings: tests/unit)."""

import json
import os
import pty
import re
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.kafka import clients
from pipeline.kafka.admin import ensure_output_topics
from pipeline.kafka.clients import admin_client
from pipeline.settings import Settings
from pipeline.tools.csv_loaders import keys_on_topic
from pipeline.tools.estate_simulator import (
    DEAD_LETTER,
    FORWARD,
    RECORD_NAMES,
    build_estate,
    build_scenario,
    parse_base_time,
)
from pipeline.wire.avro_codec import AvroCodec
from tests.integration.worker_harness import WorkerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
BASE_TIME = "2025-01-15T08:00:00Z"


def all_flags(settings: Settings) -> list[str]:
    args = ["--bootstrap-servers", settings.bootstrap_servers, "--app-id", settings.app_id]
    for name, topic in vars(settings.topics).items():
        args += [f"--topic-{name.replace('_', '-')}", topic]
    return args


def test_a_missing_csv_file_is_a_readable_error(settings, tmp_path, capsys):
    missing = str(tmp_path / "nope.csv")
    assert cli.main(["load-tracked", missing, *all_flags(settings)]) == 2
    err = capsys.readouterr().err
    assert missing in err and "No such file" in err and "Traceback" not in err


def simulate(settings: Settings, out: Path, homes: int = 60, seed: int = 5) -> list[str]:
    args = ["--homes", str(homes), "--seed", str(seed), "--out", str(out), "--base-time", BASE_TIME]
    return ["simulate", *args, *all_flags(settings)]


@pytest.mark.broker
def test_simulate_loads_the_estate_and_plays_the_scenario_onto_the_input_topics(settings, tmp_path):
    assert cli.main(simulate(settings, tmp_path)) == 0
    estate = build_estate(60, 5, 0.3, parse_base_time(BASE_TIME))
    scenario = build_scenario(estate, 5, parse_base_time(BASE_TIME), settings)
    topics = settings.topics
    assert keys_on_topic(settings, topics.tracked_devices) == {h.esme.encode() for h in estate.tracked}
    inventory = {row[0].encode() for h in estate.homes for row in h.inventory_rows(0)}
    assert keys_on_topic(settings, topics.inventory) == inventory
    assert keys_on_topic(settings, topics.alerts) == {e.key.encode() for e in scenario.events if e.topic == "alerts"}


@pytest.mark.broker
def test_demo_summary_without_a_worker_says_the_outputs_are_missing(settings, tmp_path, capsys):
    assert cli.main([*simulate(settings, tmp_path), "--no-load"]) == 0
    args = [
        "demo-summary",
        "--expected",
        str(tmp_path / "expected.json"),
        "--timeout",
        "2",
        *all_flags(settings),
    ]
    assert cli.main(args) == 2
    assert "is the worker running?" in capsys.readouterr().err


def fake_filter(settings: Settings, seed: int, wrong: int = 0) -> None:
    """Write the outputs a perfect filter would, except that the first `wrong` suppressions are forwarded."""
    base = parse_base_time(BASE_TIME)
    scenario = build_scenario(build_estate(60, seed, 0.3, base), seed, base, settings)
    codec, topics = AvroCodec(), settings.topics
    ensure_output_topics(admin_client(settings), topics.outputs, 1, [topics.alerts])
    producer = clients.producer(settings, {})
    alerts = [e for e in scenario.events if e.topic == "alerts"]
    for event, alert in zip(alerts, scenario.alerts, strict=True):
        value = event.raw or codec.encode(RECORD_NAMES["alerts"], event.datum or {})
        if alert.expected == FORWARD or (alert.expected != DEAD_LETTER and wrong > 0):
            wrong -= alert.expected != FORWARD
            producer.produce(topics.dno_alerts, value, event.key)
        elif alert.expected == DEAD_LETTER:
            letter = {"source_topic": topics.alerts, "partition": 0, "offset": 0, "key": event.key.encode(),
                      "value": value, "error": "bad", "failed_at": base}  # fmt: skip
            producer.produce(topics.dead_letter, codec.encode("DeadLetter", letter), event.key)
        else:
            record = {"alert": event.datum, "esme_id": alert.esme_id, "activation_request_id":
                      alert.activation_request_id, "window_start": base, "window_end": base, "reason": "test",
                      "decided_at": base, "filter_version": "test"}  # fmt: skip
            producer.produce(topics.suppressed, codec.encode("SuppressedAlert", record), event.key)
    for other in scenario.other_dead_letters:
        letter = {"source_topic": getattr(topics, other.topic), "partition": 0, "offset": 0,
                  "key": other.key.encode(), "value": None, "error": "bad", "failed_at": base}  # fmt: skip
        producer.produce(topics.dead_letter, codec.encode("DeadLetter", letter), other.key)
    assert producer.flush(30) == 0


@pytest.mark.broker
@pytest.mark.parametrize(("wrong", "status"), [(0, 0), (2, 1)])
def test_demo_summary_checks_every_alert_against_the_expected_outputs(settings, tmp_path, capsys, wrong, status):
    assert cli.main([*simulate(settings, tmp_path), "--no-load", "--no-play"]) == 0
    fake_filter(settings, 5, wrong)
    args = [
        "demo-summary",
        "--expected",
        str(tmp_path / "expected.json"),
        "--timeout",
        "30",
        "--metrics-port",
        "0",  # no worker: its count and explanations are not asked for
        *all_flags(settings),
    ]
    assert cli.main(args) == status
    out = capsys.readouterr().out
    assert "forwarded to the DNO" in out and "metrics: http://127.0.0.1:" in out
    assert "released on evidence of a genuine outage: 6 of 6 expected (4 on supply evidence, 2 on storm" in out
    if wrong:
        assert "mismatches against expected.json: 2" in out
        assert out.count("expected suppress, got forward") == 2
    else:
        assert "mismatches against expected.json: none" in out


@pytest.mark.broker
def test_the_demo_end_to_end_simulate_worker_summary(settings, tmp_path):
    """The Makefile's demo: simulate an Avro campaign and a DUIS one on the same topics, run the real worker, check
    its outputs; 0 means every alert of both matched, the DUIS ones byte for byte."""
    assert cli.main(simulate(settings, tmp_path, homes=120, seed=11)) == 0
    duis_base = (datetime.now(UTC).date() - timedelta(days=3)).isoformat() + "T08:00:00Z"  # as deploy/demo.sh
    duis = ["--format", "duis", "--homes", "40", "--seed", "2", "--base-time", duis_base,
            "--out", str(tmp_path / "duis")]  # fmt: skip
    assert cli.main(["simulate", *duis, *all_flags(settings)]) == 0
    command = [sys.executable, "-m", "pipeline.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    port = ["--metrics-port", str(free_port())]
    worker_args = [*all_flags(settings), "--data-dir", str(tmp_path / "state"), *port]
    worker = subprocess.Popen([*command, "worker", *worker_args], cwd=REPO, env=env)
    try:
        expected = ["--expected", str(tmp_path / "expected.json"),
                    "--expected", str(tmp_path / "duis" / "expected.json")]  # fmt: skip
        summary = subprocess.run(
            [*command, "demo-summary", *expected, "--timeout", "120", *port, *all_flags(settings)],
            cwd=REPO, capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    assert summary.stdout.count("mismatches against expected.json: none") == 2
    assert "poa-filter demo summary: DUIS documents (seed 2, 40 homes" in summary.stdout
    for where in (f"on {settings.topics.dno_alerts}", "in the audit records"):
        same = re.search(
            rf"DUIS XML {where} byte for byte as published \(SHA-256 checked\): (\d+) of (\d+)", summary.stdout
        )
        assert same and same[1] == same[2] != "0", summary.stdout
    forwarded = re.findall(r"forwarded to the DNO: .*", summary.stdout)
    assert len(forwarded) == 2 and not any("8F6" in line for line in forwarded)  # outcomes, never for the DNO
    # The worker's own count and its explanations name the evidence: an ESME's 8F3x, and a sector's storm.
    assert (
        "6 of 6 expected (4 on supply evidence, 2 on storm evidence); the worker counted 12 for all 2" in summary.stdout
    )
    assert re.search(r"its ESME \S+ reported 8F3[56] \(supply restored\)", summary.stdout), summary.stdout
    assert re.search(r"a storm in postcode sector \w+ \d: AD1s no window covers from \d+ other", summary.stdout)


def on_a_terminal(argv: list[str]) -> str:
    """What `poa-filter ARGV` writes to stderr when stderr is a terminal (stdout is a pipe)."""
    controller, terminal = pty.openpty()
    try:
        command = [str(Path(sys.executable).parent / "poa-filter"), *argv]
        subprocess.run(command, stdout=subprocess.PIPE, stderr=terminal, cwd=REPO, timeout=180, check=True)
        os.close(terminal)
        screen = b""
        while chunk := _read(controller):
            screen += chunk
    finally:
        os.close(controller)
    return screen.decode().replace("\r\n", "\n").replace("\x1b[K", "")  # a terminal writes \n as \r\n


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO once the writing side is closed
        return b""


@pytest.mark.broker
def test_loads_and_play_show_progress_on_a_terminal_and_nothing_in_a_pipe(settings, tmp_path):
    piped = subprocess.run(
        [str(Path(sys.executable).parent / "poa-filter"), *simulate(settings, tmp_path / "piped")],
        capture_output=True, text=True, cwd=REPO, timeout=180, check=True,
    )  # fmt: skip
    assert piped.stderr == ""
    out = tmp_path / "terminal"
    screen = on_a_terminal(simulate(replace(settings, app_id=settings.app_id + "-2"), out))
    finals = [line.split("\r")[-1] for line in screen.rstrip("\n").split("\n")]  # each line as last redrawn
    assert len(finals) == 3, screen
    tracked, inventory, play = finals
    assert re.fullmatch(rf"load {re.escape(str(out / 'tracked.csv'))}: \d+ rows, [\d,]+ rows/s, \d+s", tracked)
    assert re.fullmatch(rf"load {re.escape(str(out / 'inventory.csv'))}: [\d,]+ rows, [\d,]+ rows/s, \d+s", inventory)
    assert re.fullmatch(r"play scenario: [\d,]+ rows, [\d,]+ rows/s, \d+s", play)


@pytest.mark.broker
def test_a_worker_with_json_logs_writes_only_json_lines_naming_itself(settings, tmp_path):
    worker = WorkerProcess(settings, tmp_path, POA_LOG_FORMAT="json").start()
    try:
        worker.wait_ready()
    finally:
        worker.stop()
    text = worker.log_path.read_text()
    not_json = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert not_json == [], "every line a JSON object, librdkafka's own included"
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all(line["app_id"] == settings.app_id and line["level"] in LEVELS for line in lines)
    assert any(line["logger"].startswith("pipeline.") and line["message"] for line in lines)
