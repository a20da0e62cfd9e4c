"""`poa-filter publish-duis` as a process on the real broker: each document on its topic, keyed by its device,
its bytes untouched, its Kafka timestamp its received_at; a rejected file is one line on stderr, nothing else."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.kafka.topics import read_to_end
from pipeline.settings import Settings
from pipeline.wire.duis import documents

pytestmark = pytest.mark.broker

AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SUPPLIER, ESME, CHF = "90-B3-D5-1F-30-01-00-00", "00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-C0"
REQUEST_ID = f"{SUPPLIER}:{ESME}:1660751141087"
DNO = "00-DB-12-D0-00-00-00-01"
REQUEST = documents.activate_firmware_request(
    REQUEST_ID, command_variant=5, execution_ms=AT + 3_600_000, firmware_hash=bytes(32)
)
OUTCOME = documents.future_dated_activation_alert(
    REQUEST_ID, f"{ESME}:{SUPPLIER}:2", alert_code=0x8F66, execution_ms=AT + 3_600_000, counter=1660751141087,
    response_code=0, responded_ms=AT + 3_700_000,
)  # fmt: skip
AD1 = documents.power_outage_alert(
    f"{documents.DCC_EUI}:{DNO}:3", chf_id=CHF.lower(), started_ms=AT + 3_650_000, mpxn="1234567890123",
    responded_ms=AT + 3_800_000,
)  # fmt: skip
RESTORED = documents.device_alert(f"{ESME}:{DNO}:4", alert_code="8F36", alert_ms=AT, responded_ms=AT + 3_900_000)


def publish(settings: Settings, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    t = settings.topics
    flags = ["--bootstrap-servers", settings.bootstrap_servers, "--topic-service-requests", t.service_requests,
             "--topic-activation-outcomes", t.activation_outcomes, "--topic-alerts", t.alerts]  # fmt: skip
    command = [sys.executable, "-m", "pipeline.cli", "publish-duis", *flags, *args]  # the last of a flag wins
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, env=dict(os.environ))


def on(settings: Settings, topic: str) -> list[tuple[str, bytes | None, int]]:
    return [((m.key() or b"").decode(), m.value(), m.timestamp()[1]) for m in read_to_end(settings, topic, 60)]


def test_documents_land_on_their_topics_keyed_stamped_and_byte_for_byte_and_a_bad_one_is_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "duis"
    folder.mkdir()
    for name, value in (("1-request.xml", REQUEST), ("2-8f66.xml", OUTCOME), ("3-ad1.xml", AD1),
                        ("4-8f36.xml", RESTORED), ("5-bad.xml", AD1.replace(b"MPxN>", b"MPAN>"))):  # fmt: skip
        (folder / name).write_bytes(value)
    result = publish(settings, str(folder))
    assert result.returncode == 1, result
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith(f"{folder / '5-bad.xml'}: /Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent")
    t = settings.topics
    assert result.stdout.decode() == (
        f"published 4 DUIS documents: 1 on {t.service_requests}, 1 on {t.activation_outcomes}, 2 on {t.alerts}; "
        "1 rejected\n"
    )
    ((key, published, stamp),) = on(settings, t.service_requests)
    assert (key, published) == (ESME, REQUEST) and stamp > AT  # a request has no time of its own: now
    assert on(settings, t.activation_outcomes) == [(ESME, OUTCOME, AT + 3_700_000)]
    assert sorted(on(settings, t.alerts)) == sorted([(CHF, AD1, AT + 3_800_000), (ESME, RESTORED, AT + 3_900_000)])


def test_stdin_with_a_received_at(settings: Settings) -> None:
    result = publish(settings, "-", "--received-at", str(AT + 5), stdin=AD1)
    assert (result.returncode, result.stderr) == (0, b""), result
    assert on(settings, settings.topics.alerts) == [(CHF, AD1, AT + 5)]


def test_a_missing_topic_is_exit_2_naming_it(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(AD1)
    result = publish(settings, str(tmp_path / "a.xml"), "--topic-alerts", f"{settings.topics.alerts}.missing")
    assert result.returncode == 2
    assert f"{settings.topics.alerts}.missing" in result.stderr.decode() and "do not exist" in result.stderr.decode()
