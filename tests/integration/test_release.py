"""`poa-filter release` through its real interface: the command, a real broker, real topics (contract 8).

An alert is released at most once: the same range released twice, or interrupted by SIGKILL and run
again, puts each selected alert on the DNO topic exactly once, with its original key and value bytes.
"""

import io
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from pipeline import cli
from pipeline.core.event_time import DAY_MS
from pipeline.kafka.admin import topic_partitions
from pipeline.kafka.clients import admin_client
from pipeline.kafka.topics import TopicsMissing, read_to_end
from pipeline.settings import Settings
from pipeline.tools import release as release_tool
from pipeline.tools.release import Selection
from pipeline.wire.alert_bytes import suppressed_alert_bytes
from tests.conftest import create_topics
from tests.integration.scenario import BASE, MIN, campaign
from tests.integration.scenario_play import ready_worker, write_live
from tests.integration.worker_harness import CODEC, POA_FILTER, DspProducer, wait_until

pytestmark = pytest.mark.broker

OPERATOR = "ops-on-call"
ESMES = ["00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-A1", "00-DB-12-34-56-78-90-A2"]
CHFS = ["00-DB-12-34-56-78-90-C0", "00-DB-12-34-56-78-90-C1", "00-DB-12-34-56-78-90-C2"]


def flags(settings: Settings) -> list[str]:
    args = ["--bootstrap-servers", settings.bootstrap_servers, "--app-id", settings.app_id]
    for name, topic in vars(settings.topics).items():
        args += [f"--topic-{name.replace('_', '-')}", topic]
    return args


def release(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `poa-filter release` in this process; its standard output."""
    capsys.readouterr()
    code = cli.main(["release", *flags(settings), "--operator", OPERATOR, "--reason", "tracked list was wrong", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def records(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes, int, int]]:
    """(key, value, partition, offset) of every committed record on the topic; none if it does not exist."""
    try:
        messages = list(read_to_end(settings, [topic]))
    except TopicsMissing:
        return []
    return [(m.key(), m.value() or b"", m.partition() or 0, m.offset() or 0) for m in messages]


def released(settings: Settings) -> list[dict[str, Any]]:
    return [CODEC.decode("ReleasedAlert", value) for _, value, _, _ in records(settings, settings.topics.released)]


def dno_ids(settings: Settings) -> list[str]:
    return [CODEC.decode("DeviceAlert", v)["alert_id"] for _, v, _, _ in records(settings, settings.topics.dno_alerts)]


# --- with a real worker: the alerts it suppressed go to the DNO byte for byte, once -----------------


def test_release_sends_the_suppressed_alerts_original_bytes_once(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = campaign(homes=18)
    with ready_worker(settings, tmp_path, sc) as (dsp, worker, reader):
        sent = write_live(dsp, sc)
        reader.wait_for(lambda o: o.alert_outputs >= len(sc.alerts), 120, "every alert decided", worker)
    keys = {d["alert_id"]: d["device_id"].encode() for d in sc.alerts}
    suppressed = records(settings, settings.topics.suppressed)
    audits = {CODEC.decode("SuppressedAlert", v)["alert"]["alert_id"]: (p, o) for _, v, p, o in suppressed}
    times = sorted({d["received_at"] for d in sc.alerts if d["alert_id"] in audits})
    assert len(times) >= 6
    start, end = times[1], times[-2]  # some suppressed alerts before the range, some at its (exclusive) end
    chosen = {d["alert_id"] for d in sc.alerts if d["alert_id"] in audits and start <= d["received_at"] < end}
    assert 0 < len(chosen) < len(audits) - 1
    before = records(settings, settings.topics.dno_alerts)

    out = release(settings, capsys, "--from", str(start), "--to", str(end))

    assert f"released {len(chosen)} alerts" in out
    new = _new(settings, before)
    by_id = {CODEC.decode("DeviceAlert", v)["alert_id"]: (k, v) for k, v in new}
    assert len(by_id) == len(new) == len(chosen) and set(by_id) == chosen
    for alert_id, (key, value) in by_id.items():
        assert value == sent[alert_id], "the released value must be the bytes the DSP wrote"
        assert key == keys[alert_id]
    notes = released(settings)
    assert sorted(n["alert_id"] for n in notes) == sorted(chosen)
    for note in notes:
        assert (note["partition"], note["offset"]) == audits[note["alert_id"]]
        assert note["source_topic"] == settings.topics.suppressed
        assert (note["released_by"], note["reason"]) == (OPERATOR, "tracked list was wrong")
        assert abs(note["released_at"] - time.time() * 1000) < 600_000

    again = release(settings, capsys, "--from", str(start), "--to", str(end))
    assert "released 0 alerts" in again and f"{len(chosen)} selected alerts were released before" in again
    assert sorted(_new(settings, before)) == sorted(new)  # read back across partitions in any order
    assert len(released(settings)) == len(chosen)


def _new(settings: Settings, before: list[tuple[bytes | None, bytes, int, int]]) -> list[tuple[bytes | None, bytes]]:
    """Records on the DNO topic that were not there `before`."""
    seen = {(p, o) for _, _, p, o in before}
    return [(k, v) for k, v, p, o in records(settings, settings.topics.dno_alerts) if (p, o) not in seen]


# --- with audit records written as the worker writes them: selection, dry run, kill ---------------


def audit_topics(settings: Settings) -> None:
    """The worker's output topics that the release reads and writes (no worker runs in these tests)."""
    create_topics(settings.bootstrap_servers, {settings.topics.suppressed: 3, settings.topics.dno_alerts: 3})


def write_suppressed(settings: Settings, count: int) -> dict[str, tuple[bytes, bytes, dict[str, Any]]]:
    """`count` SuppressedAlert records, spliced like the worker's, over three ESMEs with one CH Function
    and one request each, a minute apart. alert_id -> (key, alert value bytes, audit fields)."""
    dsp = DspProducer(settings)
    header = CODEC.single_object_header("SuppressedAlert")
    alerts = {}
    for i in range(count):
        home = i % 3
        alert: dict[str, Any] = {
            "alert_id": f"rel-{i:05d}", "alert_code": "AD1", "device_id": CHFS[home].lower(), "mpxn": None,
            "raised_at": None, "received_at": BASE + i * MIN, "payload": bytes([i % 256]),
        }
        audit: dict[str, Any] = {
            "esme_id": ESMES[home], "activation_request_id": f"90-B3-D5-1F-30-01-00-00:{ESMES[home]}:{home}",
            "window_start": BASE, "window_end": BASE + count * MIN, "reason": "test", "decided_at": BASE,
            "filter_version": "0.1.0",
        }
        value = CODEC.encode("DeviceAlert", alert)
        key = alert["device_id"].encode()
        dsp.send(settings.topics.suppressed, key, suppressed_alert_bytes(header, value[10:], audit))
        alerts[alert["alert_id"]] = (key, value, audit)
    dsp.flush()
    return alerts


def test_dry_run_lists_and_writes_nothing(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    audit_topics(settings)
    write_suppressed(settings, 9)
    out = release(settings, capsys, "--from", str(BASE + 2 * MIN), "--to", str(BASE + 5 * MIN), "--dry-run")
    rows = [line.split("\t") for line in out.splitlines()[1:-1]]
    assert sorted(rows) == [
        [f"rel-{i:05d}", CHFS[i % 3].lower(), _iso(BASE + i * MIN), ESMES[i % 3],
         f"90-B3-D5-1F-30-01-00-00:{ESMES[i % 3]}:{i % 3}"]
        for i in (2, 3, 4)
    ]
    assert "would release 3 alerts" in out
    assert records(settings, settings.topics.dno_alerts) == []
    assert settings.topics.released not in topic_partitions(admin_client(settings), [settings.topics.released])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_silence_in_a_pipe(settings: Settings) -> None:
    audit_topics(settings)
    write_suppressed(settings, 5)
    terminal, pipe = Terminal(), io.StringIO()
    for err in (terminal, pipe):
        counts = release_tool.release(
            settings, CODEC, Selection(BASE, BASE + 3 * MIN), operator=OPERATOR, reason="r", err=err
        )
    assert (counts.scanned, counts.released, counts.already_released) == (5, 0, 3)
    assert "released 3, released before 0; audit records scanned: 5 rows" in terminal.getvalue()
    assert pipe.getvalue() == ""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_release_by_esme_chf_and_request_id(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    audit_topics(settings)
    alerts = write_suppressed(settings, 12)
    everything = ["--from", "2000-01-01T00:00:00", "--to", str(BASE + 12 * MIN)]
    by_home = {home: {a for i, a in enumerate(sorted(alerts)) if i % 3 == home} for home in range(3)}

    release(settings, capsys, *everything, "--esme", ESMES[0].lower())
    assert sorted(dno_ids(settings)) == sorted(by_home[0])
    release(settings, capsys, *everything, "--chf", CHFS[1].lower())
    assert sorted(dno_ids(settings)) == sorted(by_home[0] | by_home[1])
    out = release(settings, capsys, *everything, "--request-id", f"90-B3-D5-1F-30-01-00-00:{ESMES[2]}:2")
    assert "released 4 alerts" in out
    assert sorted(dno_ids(settings)) == sorted(alerts)
    for key, value, _, _ in records(settings, settings.topics.dno_alerts):
        assert (key, value) == alerts[CODEC.decode("DeviceAlert", value)["alert_id"]][:2]
    assert "released 0 alerts" in release(settings, capsys, *everything)


class ReleasedWatcher:
    """Counts committed records on the released topic as they come, to kill a run as soon as it released some."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.released
        self.consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "test-release-watch",
                                  "isolation.level": "read_committed", "enable.auto.commit": False})
        self.seen = 0
        self.assigned = False

    def count(self) -> int:
        if not self.assigned:
            topic = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                return 0
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in topic.partitions])
            self.assigned = True
        self.seen += sum(1 for m in self.consumer.consume(1000, 0.05) if m.error() is None)
        return self.seen

    def close(self) -> None:
        self.consumer.close()


def release_command(settings: Settings, count: int) -> list[str]:
    """Every alert of write_suppressed(settings, count), ten per transaction."""
    return [POA_FILTER, "release", *flags(settings), "--from", str(BASE), "--to", str(BASE + count * MIN),
            "--reason", "wrong campaign feed", "--batch-size", "10"]


def check_each_released_once(settings: Settings, alerts: dict[str, tuple[bytes, bytes, dict[str, Any]]]) -> None:
    on_dno = Counter(dno_ids(settings))
    assert set(on_dno) == set(alerts) and set(on_dno.values()) == {1}
    notes = Counter(n["alert_id"] for n in released(settings))
    assert set(notes) == set(alerts) and set(notes.values()) == {1}
    for key, value, _, _ in records(settings, settings.topics.dno_alerts):
        assert (key, value) == alerts[CODEC.decode("DeviceAlert", value)["alert_id"]][:2]


def test_killed_part_way_then_run_again_releases_every_alert_exactly_once(settings: Settings) -> None:
    count = 3000
    audit_topics(settings)
    alerts = write_suppressed(settings, count)
    argv = release_command(settings, count)
    watcher = ReleasedWatcher(settings)
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: watcher.count() >= 20, 120, "a few batches released")
        assert first.poll() is None, "the first run finished before it could be killed: release more alerts"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
        watcher.close()
    assert first.returncode == -signal.SIGKILL
    partial = len(released(settings))
    assert 20 <= partial < count
    assert sorted(dno_ids(settings)) == sorted(n["alert_id"] for n in released(settings))

    second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"released {count - partial} alerts" in second.stdout
    check_each_released_once(settings, alerts)


def test_a_second_run_fences_one_still_going(settings: Settings) -> None:
    """Two runs at once: the later one fences the earlier, which stops; together they release each alert once."""
    count = 6000
    audit_topics(settings)
    alerts = write_suppressed(settings, count)
    watcher = ReleasedWatcher(settings)
    command = release_command(settings, count)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: watcher.count() >= 20, 120, "a few batches released")
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        _, first_err = first.communicate(timeout=120)
    finally:
        first.kill()
        watcher.close()
    assert second.returncode == 0, second.stderr
    assert first.returncode == 2, "the first run finished before the second started: release more alerts"
    assert "fenced" in first_err and "Nothing is released twice" in first_err
    check_each_released_once(settings, alerts)


def test_a_range_reaching_alerts_still_held_says_so_and_how_long_to_wait(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--to` now: an AD1 received in the last A + grace + POA_MAX_HOLD_SECONDS may still be held (contract 8);
    a range that ended long ago says nothing of it. The released topic is made to keep its records as long as
    the audit does."""
    create_topics(settings.bootstrap_servers, {settings.topics.suppressed: 3, settings.topics.dno_alerts: 3},
                  {settings.topics.suppressed: {"retention.ms": str(400 * DAY_MS)}})  # fmt: skip
    week = ConfigResource(ResourceType.TOPIC, settings.topics.alerts, incremental_configs=[
        ConfigEntry("retention.ms", str(7 * DAY_MS), incremental_operation=AlterConfigOpType.SET)])  # fmt: skip
    admin = admin_client(settings)
    admin.incremental_alter_configs([week])[week].result(timeout=30)
    write_suppressed(settings, 3)
    now = int(time.time() * 1000)

    recent = release(settings, capsys, "--from", str(BASE), "--to", str(now))
    past = release(settings, capsys, "--from", str(BASE), "--to", str(BASE + 5 * MIN))

    assert "released 3 alerts" in recent
    note = recent.splitlines()[-1]
    assert note.startswith("note: alerts received from ") and "may still be held for outage evidence" in note
    assert "= 240 s after they are received" in note and "run it again after " in note
    assert "note:" not in past
    kept = ConfigResource(ResourceType.TOPIC, settings.topics.released)
    retention = admin.describe_configs([kept])[kept].result(timeout=30)["retention.ms"].value
    assert retention == str(400 * DAY_MS)  # the audit's, longer than the alert topic's week
