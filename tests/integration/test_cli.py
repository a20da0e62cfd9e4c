"""The `poa-filter` command line: settings from flags and environment, errors, simulate and demo-summary."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline import cli
from pipeline.kafka.admin import ensure_output_topics
from pipeline.kafka.clients import admin_client
from pipeline.settings import Settings, Topics
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

REPO = Path(__file__).resolve().parents[2]
BASE_TIME = "2025-01-15T08:00:00Z"


def all_flags(settings: Settings) -> list[str]:
    args = ["--bootstrap-servers", settings.bootstrap_servers, "--app-id", settings.app_id]
    for name, topic in vars(settings.topics).items():
        args += [f"--topic-{name.replace('_', '-')}", topic]
    return args


def parsed(argv: list[str]) -> Settings:
    return cli.settings_from_args(cli.build_parser().parse_args(argv))


def test_flags_override_environment_which_overrides_defaults(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:1")
    monkeypatch.setenv("POA_TOPIC_ALERTS", "env.alerts")
    monkeypatch.setenv("POA_TOPIC_INVENTORY", "env.inventory")
    monkeypatch.setenv("POA_WINDOW_MINUTES", "40")
    settings = parsed(
        ["worker", "--topic-alerts", "flag.alerts", "--lead-in-minutes", "2", "--max-hold-seconds", "1.5"]
    )
    assert settings.bootstrap_servers == "env:1"
    assert settings.topics == replace(Topics(), alerts="flag.alerts", inventory="env.inventory")
    assert (settings.window_minutes, settings.lead_in_minutes, settings.max_hold_seconds) == (40, 2, 1.5)
    assert settings.app_id == Settings().app_id


def test_every_settings_flag_is_taken_by_every_subcommand():
    every = [
        "--bootstrap-servers", "b:1", "--app-id", "app", "--data-dir", "/d", "--metrics-port", "9",
        "--schema-registry-url", "http://r", "--window-minutes", "31", "--lead-in-minutes", "1",
        "--max-future-days", "5", "--max-hold-seconds", "7", "--partition-check-seconds", "2.5",
    ]  # fmt: skip
    topics = {name: f"x.{name}" for name in vars(Topics())}
    for name, topic in topics.items():
        every += [f"--topic-{name.replace('_', '-')}", topic]
    want = Settings("b:1", "app", "/d", 9, "http://r", Topics(**topics), 31, 1, 5, 7.0, 2.5)
    for command in (["worker"], ["load-tracked", "x.csv"], ["load-inventory", "x.csv"], ["simulate"],
                    ["demo-summary", "--expected", "e.json"]):  # fmt: skip
        assert parsed([*command, *every]) == want, command


def test_worker_runs_the_worker_with_those_settings(monkeypatch):
    import pipeline.worker.filter_worker

    calls: list[Settings] = []
    monkeypatch.setattr(pipeline.worker.filter_worker, "run_worker", calls.append)
    assert cli.main(["worker", "--app-id", "w1", "--metrics-port", "0"]) == 0
    assert [(s.app_id, s.metrics_port) for s in calls] == [("w1", 0)]


def test_a_malformed_environment_variable_is_a_readable_error(monkeypatch, capsys):
    monkeypatch.setenv("POA_WINDOW_MINUTES", "half an hour")
    assert cli.main(["load-tracked", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert "POA_WINDOW_MINUTES='half an hour' is not a valid int" in err and "Traceback" not in err


def test_a_negative_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["worker", "--window-minutes", "-5"])
    assert exit_.value.code == 2
    assert "must not be negative" in capsys.readouterr().err


def test_a_missing_csv_file_is_a_readable_error(settings, tmp_path, capsys):
    missing = str(tmp_path / "nope.csv")
    assert cli.main(["load-tracked", missing, *all_flags(settings)]) == 2
    err = capsys.readouterr().err
    assert missing in err and "No such file" in err and "Traceback" not in err


def test_simulate_without_kafka_writes_the_csvs_and_expected_alerts(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["simulate", "--homes", "60", "--seed", "3", "--out", str(out), "--base-time", BASE_TIME]
    assert cli.main([*args, "--no-load", "--no-play", "--bootstrap-servers", "127.0.0.1:1"]) == 0
    assert {p.name for p in out.iterdir()} == {"tracked.csv", "inventory.csv", "expected.json"}
    expected = json.loads((out / "expected.json").read_text())
    assert expected["seed"] == 3 and expected["homes"] == 60 and len(expected["alerts"]) > 20
    assert "to suppress" in capsys.readouterr().out


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
    ensure_output_topics(admin_client(settings), topics.outputs, 1)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
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
        *all_flags(settings),
    ]
    assert cli.main(args) == status
    out = capsys.readouterr().out
    assert "forwarded to the DNO" in out and "metrics: http://127.0.0.1:" in out
    if wrong:
        assert "mismatches against expected.json: 2" in out
        assert out.count("expected suppress, got forward") == 2
    else:
        assert "mismatches against expected.json: none" in out


@pytest.mark.broker
def test_the_demo_end_to_end_simulate_worker_summary(settings, tmp_path):
    """The Makefile's demo: simulate, run the real worker, check its outputs; 0 means every alert matched."""
    assert cli.main(simulate(settings, tmp_path, homes=120, seed=11)) == 0
    command = [sys.executable, "-m", "pipeline.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker_args = [*all_flags(settings), "--data-dir", str(tmp_path / "state"), "--metrics-port", "0"]
    worker = subprocess.Popen([*command, "worker", *worker_args], cwd=REPO, env=env)
    try:
        expected = str(tmp_path / "expected.json")
        summary = subprocess.run(
            [*command, "demo-summary", "--expected", expected, "--timeout", "120", *all_flags(settings)],
            cwd=REPO, capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    assert "mismatches against expected.json: none" in summary.stdout
