"""The `poa-filter` command line without a broker: settings from flags and environment, and the errors an
operator gets for bad ones (a message naming the flag or variable, exit code 2, never a traceback)."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.settings import Settings, Topics

BASE_TIME = "2025-01-15T08:00:00Z"
POA_FILTER = str(Path(sys.executable).parent / "poa-filter")


def parsed(argv: list[str]) -> Settings:
    return cli.settings_from_args(cli.build_parser().parse_args(argv))


@pytest.fixture
def worker_runs(monkeypatch) -> list[Settings]:
    """The settings `poa-filter worker` hands to the worker, which is not started."""
    import pipeline.worker.filter_worker

    calls: list[Settings] = []
    monkeypatch.setattr(pipeline.worker.filter_worker, "run_worker", calls.append)
    return calls


def test_flags_override_environment_which_overrides_defaults(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:1")
    monkeypatch.setenv("POA_TOPIC_ALERTS", "env.alerts")
    monkeypatch.setenv("POA_TOPIC_INVENTORY", "env.inventory")
    monkeypatch.setenv("POA_WINDOW_MINUTES", "40")
    monkeypatch.setenv("POA_LOG_FORMAT", "json")
    settings = parsed(
        ["worker", "--topic-alerts", "flag.alerts", "--lead-in-minutes", "2", "--max-hold-seconds", "1.5",
         "--log-format", "text"]
    )  # fmt: skip
    assert settings.bootstrap_servers == "env:1"
    assert settings.topics == replace(Topics(), alerts="flag.alerts", inventory="env.inventory")
    assert (settings.window_minutes, settings.lead_in_minutes, settings.max_hold_seconds) == (40, 2, 1.5)
    assert settings.log_format == "text"
    assert settings.app_id == Settings().app_id


def test_every_settings_flag_is_taken_by_every_subcommand():
    every = [
        "--bootstrap-servers", "b:1", "--app-id", "app", "--data-dir", "/d", "--metrics-port", "9",
        "--schema-registry-url", "http://r", "--client-config-file", "c.properties", "--window-minutes", "31",
        "--lead-in-minutes", "1", "--max-future-days", "5", "--max-hold-seconds", "7",
        "--partition-check-seconds", "2.5", "--max-clock-ahead-seconds", "10000000000", "--log-format", "json",
    ]  # fmt: skip
    topics = {name: f"x.{name}" for name in vars(Topics())}
    for name, topic in topics.items():
        every += [f"--topic-{name.replace('_', '-')}", topic]
    want = Settings(
        bootstrap_servers="b:1",
        app_id="app",
        data_dir="/d",
        metrics_port=9,
        schema_registry_url="http://r",
        client_config_file="c.properties",
        topics=Topics(**topics),
        window_minutes=31,
        lead_in_minutes=1,
        max_future_days=5,
        max_hold_seconds=7.0,
        partition_check_seconds=2.5,
        max_clock_ahead_seconds=10_000_000_000,
        log_format="json",
    )
    for command in (["worker"], ["load-tracked", "x.csv"], ["load-inventory", "x.csv"], ["simulate"],
                    ["demo-summary", "--expected", "e.json"]):  # fmt: skip
        assert parsed([*command, *every]) == want, command


def test_worker_runs_the_worker_with_those_settings(worker_runs):
    assert cli.main(["worker", "--app-id", "w1", "--metrics-port", "0"]) == 0
    assert [(s.app_id, s.metrics_port) for s in worker_runs] == [("w1", 0)]


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("POA_WINDOW_MINUTES", "half an hour", "POA_WINDOW_MINUTES='half an hour' is not a whole number from 1"),
        ("POA_MAX_HOLD_SECONDS", "nan", "POA_MAX_HOLD_SECONDS='nan' is not a number from 0 to 3600"),
        ("POA_MAX_HOLD_SECONDS", "inf", "POA_MAX_HOLD_SECONDS='inf' is not a number from 0 to 3600"),
        (
            "POA_METRICS_PORT",
            "70000",
            "POA_METRICS_PORT='70000' is out of range: expected a whole number from 0 to 65535",
        ),
        (
            "POA_PARTITION_CHECK_SECONDS",
            "0",
            "POA_PARTITION_CHECK_SECONDS='0' is out of range: expected a number from 0.5",
        ),
        ("POA_LOG_FORMAT", "xml", "POA_LOG_FORMAT='xml' is not one of text, json"),
    ],
)
def test_a_bad_environment_variable_is_a_message_and_exit_2_and_nothing_starts(
    monkeypatch, capsys, worker_runs, variable, raw, expected
):
    monkeypatch.setenv(variable, raw)
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"poa-filter worker: error: {expected}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert worker_runs == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["worker", "--metrics-port", "70000"], "argument --metrics-port: --metrics-port='70000' is out of range"),
        (["worker", "--max-hold-seconds", "nan"], "--max-hold-seconds='nan' is not a number from 0 to 3600"),
        (["worker", "--max-hold-seconds", "inf"], "--max-hold-seconds='inf' is not a number"),
        (["worker", "--partition-check-seconds", "0"], "--partition-check-seconds='0' is out of range"),
        (["worker", "--window-minutes", "-5"], "--window-minutes='-5' is out of range"),
        (["worker", "--max-clock-ahead-seconds", "0"], "--max-clock-ahead-seconds='0' is out of range"),
        (["worker", "--log-format", "xml"], "argument --log-format: invalid choice: 'xml'"),
        (["load-tracked", "x.csv", "--jobs", "0"], "--jobs='0' is out of range: expected a whole number from 1 to 64"),
        (["load-tracked", "x.csv", "--jobs", "\u0662"], "--jobs='\u0662' is not a whole number"),
        (["demo-summary", "--expected", "e", "--timeout", "nan"], "--timeout='nan' is not a number"),
        (["simulate", "--homes", "3"], "--homes='3' is out of range"),
        (["simulate", "--tracked-fraction", "nan"], "--tracked-fraction='nan' is not a number from 0 to 1"),
        (["simulate", "--partitions", "0"], "--partitions='0' is out of range"),
    ],
)
def test_a_bad_flag_is_a_usage_error_naming_flag_value_and_range(capsys, worker_runs, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert expected in capsys.readouterr().err
    assert worker_runs == []


def test_the_console_script_reports_a_bad_port_in_one_line_without_a_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "POA_METRICS_PORT": "70000", "POA_DATA_DIR": str(tmp_path)}
    done = subprocess.run([POA_FILTER, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        "poa-filter worker: error: POA_METRICS_PORT='70000' is out of range: "
        "expected a whole number from 0 to 65535 (a TCP port; 0 picks a free one)\n"
    )


def test_a_duis_campaign_dated_beyond_the_inputs_retention_is_refused_before_kafka(tmp_path, capsys):
    args = ["simulate", "--format", "duis", "--homes", "60", "--out", str(tmp_path), "--base-time", BASE_TIME]
    assert cli.main([*args, "--no-load", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert "give a --base-time within the last 30 days" in capsys.readouterr().err


def test_simulate_without_kafka_writes_the_csvs_and_expected_alerts(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["simulate", "--homes", "60", "--seed", "3", "--out", str(out), "--base-time", BASE_TIME]
    assert cli.main([*args, "--no-load", "--no-play", "--bootstrap-servers", "127.0.0.1:1"]) == 0
    assert {p.name for p in out.iterdir()} == {"tracked.csv", "inventory.csv", "expected.json"}
    expected = json.loads((out / "expected.json").read_text())
    assert expected["seed"] == 3 and expected["homes"] == 60 and len(expected["alerts"]) > 20
    assert "to suppress" in capsys.readouterr().out


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return capsys.readouterr().out


def test_each_subcommand_lists_only_the_settings_it_reads(capsys):
    mode = help_text("mode", capsys)
    assert "--topic-control" in mode and "--app-id" in mode and "--bootstrap-servers" in mode
    for foreign in ("--window-minutes", "--http-tls-cert-file", "--topic-alerts", "--evidence-after-minutes"):
        assert foreign not in mode, foreign
    explain = help_text("explain", capsys)
    assert "--metrics-port" in explain and "--http-token-file" in explain
    assert "--bootstrap-servers" not in explain and "--topic-dno-alerts" not in explain
    loader = help_text("load-tracked", capsys)
    assert "--topic-tracked-devices" in loader and "--topic-inventory" not in loader
    worker = help_text("worker", capsys)
    assert all(f"--topic-{name.replace('_', '-')} " in worker for name in vars(Topics()))


def test_a_usage_error_shows_only_the_subcommands_own_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["mode", "--initial-mode", "bogus"])
    assert exit_.value.code == 2
    usage = capsys.readouterr().err
    assert "bogus" in usage and "--topic-control" in usage and "--window-minutes" not in usage


def test_settings_a_subcommand_does_not_list_are_still_accepted_from_scripts():
    settings = parsed(["mode", "show", "--window-minutes", "40", "--topic-alerts", "x.alerts"])
    assert settings.window_minutes == 40 and settings.topics.alerts == "x.alerts"


def test_every_listed_option_names_a_setting_or_topic_and_every_subcommand_has_its_list():
    setting_names = {setting.name for setting in cli._SETTING_FIELDS}
    topic_names = set(vars(Topics()))
    for command, options in cli.COMMAND_OPTIONS.items():
        assert options.settings is None or options.settings <= setting_names, command
        assert options.topics is None or options.topics <= topic_names, command
    subcommands = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(subcommands.choices) == set(cli.COMMAND_OPTIONS)  # type: ignore[arg-type]
