"""The client-configuration file (KAFKA_CLIENT_CONFIG): parsed as kcat reads it, guarantees refused by line,
secrets never in a message."""

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from pipeline.kafka import clients
from pipeline.kafka.client_config import (
    REFUSED,
    ClientConfigError,
    load_client_config,
    parse_client_config,
    redact_text,
)
from pipeline.log_format import REDACTED, redacted
from pipeline.settings import Settings, SettingsError

SECRET = "s3cr3t-Pa55word"

SCRAM_FILE = f"""# SCRAM over TLS
security.protocol=SASL_SSL

sasl.mechanism = SCRAM-SHA-512
  sasl.username=worker
sasl.password={SECRET}
ssl.ca.location=/etc/kafka/ca.pem
# trailing comment
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return str(path)


def test_parses_key_value_lines_skipping_comments_and_blank_lines() -> None:
    assert parse_client_config(SCRAM_FILE, "f") == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "worker",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }


def test_value_keeps_everything_after_the_first_equals_sign() -> None:
    assert parse_client_config("sasl.password=a=b==c\n", "f") == {"sasl.password": "a=b==c"}


def test_a_later_line_wins_as_in_kcat() -> None:
    assert parse_client_config("client.id=a\nclient.id=b\n", "f") == {"client.id": "b"}


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_properties_behind_the_guarantees_are_refused_naming_file_and_line(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f"security.protocol=SSL\n# {key}=commented out is fine\n{key}=x\n")
    with pytest.raises(ClientConfigError) as caught:
        load_client_config(path)
    assert str(caught.value).startswith(f"{path}:3: {key} may not be set")


def test_refusal_ignores_the_case_of_the_key() -> None:
    with pytest.raises(ClientConfigError, match=r"^f:1: Group.Id may not be set"):
        parse_client_config("Group.Id=other\n", "f")


def test_a_line_without_equals_sign_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"security.protocol=SASL_SSL\n\n{SECRET}\n")
    with pytest.raises(ClientConfigError) as caught:
        load_client_config(path)
    assert str(caught.value) == f"{path}:3: expected key=value, found no '='"


@pytest.mark.parametrize("line", ["=value", "sasl password=x", "ssl.key.location\t x=y"])
def test_a_malformed_key_names_the_line_and_not_the_value(line: str) -> None:
    with pytest.raises(ClientConfigError, match=r"^f:2: ") as caught:
        parse_client_config(f"client.id=a\n{line}\n", "f")
    assert "value" not in str(caught.value).replace("key=value", "") and "=y" not in str(caught.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.properties")
    with pytest.raises(ClientConfigError, match=r"nope.properties: cannot read the client configuration \(No such"):
        load_client_config(missing)


def test_a_binary_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bin.properties"
    path.write_bytes(b"client.id=a\nsasl.password=\xff\xfe\n")
    with pytest.raises(ClientConfigError, match=r"bin.properties:2: not UTF-8 text"):
        load_client_config(str(path))


def test_the_error_is_a_settings_error_with_its_message() -> None:
    """Like any bad setting, the command stops at start with the message alone."""
    with pytest.raises(SettingsError) as caught:
        parse_client_config("isolation.level=read_uncommitted\n", "f")
    assert str(caught.value) == "f:1: isolation.level may not be set in the client configuration " \
                                "(the filter reads read_committed)"


@pytest.mark.parametrize(
    "key",
    ["sasl.password", "ssl.key.password", "ssl.keystore.password", "SASL.PASSWORD",
     "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config", "some.token", "ssl.key.pem"],
)
def test_secret_keys(key: str) -> None:
    """The project's one rule for secrets (pipeline.log_format) covers librdkafka's secret properties."""
    assert redacted({key: "v"}) == {key: REDACTED}
    assert redact_text("quoted v1x", {key: "v1x"}) == f"quoted {REDACTED}"


@pytest.mark.parametrize("key", ["sasl.username", "ssl.ca.location", "ssl.key.location", "security.protocol"])
def test_keys_that_are_not_secret(key: str) -> None:
    assert redacted({key: "v"}) == {key: "v"}
    assert redact_text("quoted v", {key: "v"}) == "quoted v"


def test_redacted_replaces_only_secret_values() -> None:
    shown = redacted(parse_client_config(SCRAM_FILE, "f"))
    assert shown["sasl.password"] == REDACTED and shown["sasl.username"] == "worker"
    assert SECRET not in repr(shown)


def test_redact_text_removes_every_secret_value() -> None:
    text = redact_text(f"bad value {SECRET} for x, again {SECRET}", {"sasl.password": SECRET, "client.id": "x"})
    assert text == f"bad value {REDACTED} for x, again {REDACTED}"


def test_connection_merges_the_file_and_takes_brokers_from_settings(tmp_path: Path) -> None:
    settings = replace(Settings(), bootstrap_servers="broker-1:9094", client_config_file=write(tmp_path, SCRAM_FILE))
    config = clients.connection(settings)
    assert config["bootstrap.servers"] == "broker-1:9094"
    assert config["sasl.username"] == "worker" and config["security.protocol"] == "SASL_SSL"


def test_connection_logs_the_file_once_without_its_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(Settings(), client_config_file=write(tmp_path, SCRAM_FILE))
    with caplog.at_level("INFO", logger="pipeline.kafka.clients"):
        clients.connection(settings)
        clients.connection(settings)
    assert len(caplog.records) == 1
    assert "sasl.username=worker" in caplog.text and f"sasl.password={REDACTED}" in caplog.text
    assert SECRET not in caplog.text


def test_connection_without_a_file_is_the_brokers_alone_with_librdkafkas_log_lines_through_python() -> None:
    assert clients.connection(replace(Settings(), bootstrap_servers="b:1")) == {
        "bootstrap.servers": "b:1", "logger": clients.LIBRDKAFKA_LOG
    }


def test_settings_take_the_file_from_the_environment() -> None:
    assert Settings.from_env({"KAFKA_CLIENT_CONFIG": "/etc/poa/client.properties"}).client_config_file \
        == "/etc/poa/client.properties"
    assert Settings.from_env({}).client_config_file is None


def test_a_value_librdkafka_rejects_is_reported_without_the_secret(tmp_path: Path) -> None:
    """librdkafka quotes a rejected value in its error; a password pasted in the wrong line must not leak."""
    path = write(tmp_path, f"sasl.password={SECRET}\nsecurity.protocol={SECRET}\n")
    settings = replace(Settings(), client_config_file=path)
    with pytest.raises(KafkaException) as caught:
        clients.producer(settings, clients.BULK_PRODUCER_TUNING)
    assert "security.protocol" in str(caught.value) and SECRET not in str(caught.value)
    assert REDACTED in str(caught.value)


def test_every_client_factory_applies_the_file(tmp_path: Path) -> None:
    """A real librdkafka client is made with the file's properties: an unknown one is rejected by name."""
    settings = replace(Settings(), client_config_file=write(tmp_path, "no.such.property=1\n"))
    for make in (
        lambda: clients.admin_client(settings),
        lambda: clients.consumer(settings, "g", clients.ASSIGNED_READER_TUNING),
        lambda: clients.producer(settings, clients.BULK_PRODUCER_TUNING),
    ):
        with pytest.raises(KafkaException, match="no.such.property"):
            make()


def test_librdkafkas_own_log_lines_reach_python_logging(caplog: pytest.LogCaptureFixture) -> None:
    """Not stderr: a JSON log must stay one object a line (POA_LOG_FORMAT=json)."""
    producer = clients.producer(replace(Settings(), bootstrap_servers="127.0.0.1:1"), {})  # nothing listens there
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        for _ in range(20):
            producer.poll(0.1)
            if any(r.name == "librdkafka" for r in caplog.records):
                break
    assert any(r.name == "librdkafka" and "127.0.0.1:1" in r.getMessage() for r in caplog.records)
