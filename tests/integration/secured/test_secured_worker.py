"""The worker on the project's secured broker (deploy/kafka/secure-kafka.sh): ACLs enforced, nothing allowed
without one. With only the ACLs deploy/README.md documents for a worker, the whole live scenario is decided by
the rules, over SCRAM-SHA-512 and over mutual TLS; a wrong password or an untrusted CA is reported by broker
and cause; no secret reaches a log line, a metric, /ready or an error message."""

import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.scenario import campaign
from tests.integration.scenario_play import check_decisions, write_live, write_reference
from tests.integration.secured.secure_broker import (
    SecureBroker,
    create_topics,
    fresh_topics,
    secure_kafka_fixture,  # noqa: F401 - a fixture
)
from tests.integration.worker_harness import POA_FILTER, DspProducer, OutputReader, WorkerProcess, wait_until

pytestmark = pytest.mark.secured


def worker_acls(principal: str, settings: Settings) -> list[list[str]]:
    """The minimum ACLs of a worker, as deploy/README.md gives them (output topics pre-created by the DSP)."""
    t = settings.topics
    allow = ["--add", "--allow-principal", principal]
    # The control topic (the operator's mode schedule) is read like an input; the shadow topic written like an output.
    inputs = [t.service_requests, t.activation_outcomes, t.alerts, t.inventory, t.tracked_devices, t.control]
    return [
        [*allow, "--operation", "Read", "--operation", "Describe", "--operation", "DescribeConfigs",
         *[a for n in inputs for a in ("--topic", n)]],
        [*allow, "--operation", "Write", "--operation", "Describe", "--operation", "DescribeConfigs",
         *[a for n in (*t.outputs, t.shadow) for a in ("--topic", n)]],
        [*allow, "--operation", "Read", "--group", settings.app_id],
        # The state reader never commits, but librdkafka looks up the coordinator of any consumer's group.
        [*allow, "--operation", "Describe", "--group", f"{settings.app_id}.state-reader"],
        [*allow, "--operation", "Describe", "--group", f"{settings.app_id}.evidence-reader"],
        # The released topic (written by `poa-filter release`), only to check how long it keeps its records.
        [*allow, "--operation", "Describe", "--operation", "DescribeConfigs", "--topic", t.released],
        [*allow, "--operation", "Create", "--operation", "Read", "--operation", "Write", "--operation", "Describe",
         "--operation", "DescribeConfigs", "--topic", f"{settings.app_id}.held-ad1s"],
        [*allow, "--operation", "Write", "--operation", "Describe", "--transactional-id", settings.app_id,
         "--resource-pattern-type", "prefixed"],
    ]


def loader_acls(principal: str, settings: Settings) -> list[list[str]]:
    """The minimum ACLs of the loaders, as deploy/README.md gives them (Read and the group for --replace)."""
    t = settings.topics
    return [
        ["--add", "--allow-principal", principal, "--operation", "Write", "--operation", "Describe",
         "--operation", "Read", "--topic", t.tracked_devices, "--topic", t.inventory],
        ["--add", "--allow-principal", principal, "--operation", "Describe", "--group", settings.app_id,
         "--resource-pattern-type", "prefixed"],
    ]


@pytest.fixture
def app(secure_kafka: SecureBroker, tmp_path: Path) -> Settings:
    """Fresh topics (inputs and outputs, created by the admin as a DSP would) and app id; admin's settings."""
    tag = uuid.uuid4().hex[:10]
    settings = replace(secure_kafka.settings("admin"), topics=fresh_topics(tag), app_id=f"poa-filter-sec-{tag}",
                       data_dir=str(tmp_path / "state"), metrics_port=0)
    t = settings.topics
    create_topics(settings, {t.service_requests: 3, t.activation_outcomes: 2, t.alerts: 3, t.inventory: 3,
                             t.tracked_devices: 2, t.dno_alerts: 3, t.suppressed: 3, t.dead_letter: 3,
                             t.shadow: 3, t.control: 1},
                  compacted=(*t.reference_inputs, t.control))
    return settings


def ready_text(worker: WorkerProcess) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=2) as r:
            return r.read().decode()
    except urllib.error.HTTPError as err:
        return err.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return ""


def secured_worker(app: Settings, kafka: SecureBroker, tmp_path: Path, config: Path, mtls: bool) -> WorkerProcess:
    bootstrap = kafka.mtls_bootstrap if mtls else kafka.bootstrap
    return WorkerProcess(replace(app, bootstrap_servers=bootstrap), tmp_path, KAFKA_CLIENT_CONFIG=str(config))


def assert_no_secret(kafka: SecureBroker, *outputs: str) -> None:
    for user in ("admin", "worker", "loader"):
        secret = kafka.password(user)
        for text in outputs:
            assert secret not in text, f"the password of {user} appeared in an output"


@pytest.mark.parametrize("mtls", [False, True], ids=["scram", "mutual-tls"])
def test_live_scenario_with_only_the_documented_acls(
    secure_kafka: SecureBroker, app: Settings, tmp_path: Path, mtls: bool
) -> None:
    for args in worker_acls("User:worker", app):
        secure_kafka.acls(*args)
    sc = campaign(homes=30, seed=3)
    dsp = DspProducer(app)
    write_reference(dsp, sc)
    dsp.flush()
    worker = secured_worker(app, secure_kafka, tmp_path, secure_kafka.client_config("worker", mtls), mtls).start()
    reader = OutputReader(app)
    try:
        worker.wait_ready(120)
        sent = write_live(dsp, sc)
        check_decisions(reader, sc, sent, worker)
        metrics, ready = worker.metrics(), ready_text(worker)
        assert ready.startswith("ready\n") and "mode: filter" in ready
        assert "cluster check" not in ready, "with only the documented ACLs the cluster check found a problem"
    finally:
        worker.stop()
        reader.close()
    log = worker.log_path.read_text()
    assert "AUTHORIZATION_FAILED" not in log, "the worker was refused something it needs"
    broker_logs = [path.read_text(errors="replace") for path in (secure_kafka.data_dir / "logs").glob("*.log")]
    assert_no_secret(secure_kafka, log, metrics, ready, *broker_logs)


def test_wrong_password_names_the_broker_and_the_cause(
    secure_kafka: SecureBroker, app: Settings, tmp_path: Path
) -> None:
    password = secure_kafka.password("worker")
    wrong = "x" + password[1:]
    config = tmp_path / "wrong-password.properties"
    config.write_text(secure_kafka.client_config("worker").read_text().replace(password, wrong))
    worker = secured_worker(app, secure_kafka, tmp_path, config, mtls=False).start()
    try:
        wait_until(lambda: "Authentication failed" in worker.log_path.read_text(), 60, "the failure logged", worker)
        time.sleep(1)
        assert not worker.ready() and worker.alive()
        log, ready, metrics = worker.log_path.read_text(), ready_text(worker), worker.metrics()
    finally:
        worker.stop()
    failure = next(line for line in log.splitlines() if "Authentication failed" in line)
    assert secure_kafka.bootstrap in failure and "invalid credentials" in failure and "SCRAM-SHA-512" in failure
    assert_no_secret(secure_kafka, log, ready, metrics)
    for text in (log, ready, metrics):
        assert wrong not in text


def test_untrusted_certificate_authority_names_the_broker_and_the_cause(
    secure_kafka: SecureBroker, app: Settings, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)], check=True, capture_output=True)
    config = tmp_path / "untrusted.properties"
    config.write_text(secure_kafka.client_config("worker", mtls=True).read_text()
                      .replace(str(secure_kafka.ca), str(other_ca)))
    worker = secured_worker(app, secure_kafka, tmp_path, config, mtls=True).start()
    try:
        wait_until(lambda: "broker certificate could not be verified" in worker.log_path.read_text(), 60,
                   "the failure logged", worker)
        assert not worker.ready() and worker.alive()
        log = worker.log_path.read_text()
    finally:
        worker.stop()
    failures = [line for line in log.splitlines() if "certificate verify failed" in line]
    assert all(secure_kafka.mtls_bootstrap in line for line in failures)
    assert any("SSL handshake failed" in line and "broker certificate could not be verified" in line
               for line in failures)


def test_a_refused_property_stops_a_command_naming_the_line_and_no_secret(
    secure_kafka: SecureBroker, app: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "with-group.properties"
    config.write_text(secure_kafka.client_config("loader").read_text() + "group.id=elsewhere\n")
    line = len(config.read_text().splitlines())
    csv = tmp_path / "tracked.csv"
    csv.write_text("device_id\n00-11-22-33-44-55-66-77\n")
    result = cli(secure_kafka, app, config, "load-tracked", str(csv))
    assert result.returncode != 0
    assert f"{config}:{line}: group.id may not be set" in result.stderr
    assert_no_secret(secure_kafka, result.stdout, result.stderr)


def cli(secure_kafka: SecureBroker, app: Settings, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=secure_kafka.bootstrap, KAFKA_CLIENT_CONFIG=str(config),
               POA_APP_ID=app.app_id, POA_TOPIC_TRACKED_DEVICES=app.topics.tracked_devices,
               POA_TOPIC_INVENTORY=app.topics.inventory)
    return subprocess.run([POA_FILTER, *args], capture_output=True, text=True, timeout=120, env=env)


def test_loaders_with_only_the_documented_acls(secure_kafka: SecureBroker, app: Settings, tmp_path: Path) -> None:
    for args in loader_acls("User:loader", app):
        secure_kafka.acls(*args)
    tracked, inventory = tmp_path / "tracked.csv", tmp_path / "inventory.csv"
    tracked.write_text("device_id\n00-11-22-33-44-55-66-77\n00-11-22-33-44-55-66-78\n")
    inventory.write_text("device_id,device_type,chf_id\n00-11-22-33-44-55-66-77,ESME,90-B3-D5-1F-30-01-00-00\n")
    outputs = []
    for command in (["load-tracked", str(tracked)], ["load-tracked", "--replace", str(tracked)],
                    ["load-inventory", str(inventory)]):
        result = cli(secure_kafka, app, secure_kafka.client_config("loader", mtls=False), *command)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        outputs += [result.stdout, result.stderr]
    assert_no_secret(secure_kafka, *outputs)
