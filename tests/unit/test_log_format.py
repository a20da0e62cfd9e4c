"""Log lines: text by default; with POA_LOG_FORMAT=json one JSON object a line with the worker's identity and the
topic, partition and offset a call passes; secrets redacted whatever the format."""

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pipeline import cli
from pipeline.log_format import REDACTED, configure_logging, identify_instance
from pipeline.settings import Settings
from pipeline.tools.bulk_producer import TopicMissing

SECRET = "hunter2-s3cret"
log = logging.getLogger("pipeline.test")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines()]


def test_json_lines_carry_time_level_logger_message_identity_and_coordinates(capsys):
    configure_logging(replace(Settings(), app_id="poa-a", log_format="json"))
    log.info("before the worker knows its instance")
    identify_instance("poa-a-0123abcd")
    log.warning("dead letter %s", "bad id", extra={"topic": "dsp.alerts", "partition": 2, "offset": 41})
    first, second = json_lines(capsys.readouterr().err)
    assert first["app_id"] == "poa-a" and "instance" not in first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", second["time"])
    assert {k: v for k, v in second.items() if k != "time"} == {
        "level": "WARNING",
        "logger": "pipeline.test",
        "message": "dead letter bad id",
        "app_id": "poa-a",
        "instance": "poa-a-0123abcd",
        "topic": "dsp.alerts",
        "partition": 2,
        "offset": 41,
    }


def test_an_exception_stays_on_its_one_line_and_an_extra_cannot_overwrite_the_fields(capsys):
    configure_logging(replace(Settings(), log_format="json"))
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed", extra={"app_id": "forged", "key": b"\x00\xff"})
    (line,) = json_lines(capsys.readouterr().err)
    assert line["app_id"] == "poa-filter" and line["key"] == "b'\\x00\\xff'"
    assert "ValueError: boom\nsecond line" in line["exception"]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_secrets_in_extras_or_in_mapping_arguments_never_reach_a_line(capsys, log_format):
    configure_logging(replace(Settings(), log_format=log_format))
    config = {"bootstrap.servers": "b:9093", "sasl.username": "alice", "sasl.password": SECRET}
    log.info("client config %s", config, extra={"config": config, "token": SECRET, "nested": [{"api_key": SECRET}]})
    log.info("%(ssl.key.password)s", {"ssl.key.password": SECRET})
    err = capsys.readouterr().err
    assert SECRET not in err and REDACTED in err and "alice" in err
    if log_format == "json":
        first, second = json_lines(err)
        assert first["config"]["sasl.password"] == first["token"] == first["nested"][0]["api_key"] == REDACTED
        assert second["message"] == REDACTED


def test_text_is_the_default_format(capsys):
    configure_logging(Settings())
    log.info("hello", extra={"partition": 1})
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO pipeline.test: hello\n", capsys.readouterr().err)


def test_configuring_again_replaces_the_handler_rather_than_doubling_lines(capsys):
    for log_format in ("text", "json", "json"):
        configure_logging(replace(Settings(), log_format=log_format))
    log.info("once")
    assert len(json_lines(capsys.readouterr().err)) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--log-format", "json"],
        ["load-tracked", "missing.csv", "--log-format", "json"],
        ["simulate", "--no-load", "--no-play", "--log-format", "json"],
        ["demo-summary", "--expected", "missing.json", "--log-format", "json"],
    ],
)
def test_every_subcommand_logs_in_the_format_asked_for(monkeypatch, capsys, tmp_path, argv):
    import pipeline.tools.csv_loaders
    import pipeline.worker.filter_worker

    def no_topics(settings, *topics):
        raise TopicMissing("no broker in unit tests")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline.worker.filter_worker, "run_worker", lambda settings: log.info("running"))
    monkeypatch.setattr(pipeline.tools.csv_loaders, "require_topics", no_topics)
    monkeypatch.setenv("POA_APP_ID", "poa-b")
    cli.main([*argv, "--bootstrap-servers", "127.0.0.1:1"])
    capsys.readouterr()
    log.info("after", extra={"partition": 0})
    assert json_lines(capsys.readouterr().err)[-1]["app_id"] == "poa-b"


def test_the_environment_variable_selects_json(monkeypatch, capsys):
    import pipeline.worker.filter_worker

    monkeypatch.setattr(pipeline.worker.filter_worker, "run_worker", lambda settings: log.info("running"))
    monkeypatch.setenv("POA_LOG_FORMAT", "json")
    assert cli.main(["worker"]) == 0
    assert json_lines(capsys.readouterr().err)[-1]["message"] == "running"
