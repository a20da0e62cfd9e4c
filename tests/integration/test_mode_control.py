"""`poa-filter mode` through its real interface: the command, a real broker, a real control topic (contract 8).

Each change is appended to the whole schedule written under key `mode` on the compacted control topic, so
the topic's last value alone says which mode applies at any time; `show` prints it and changes nothing; a
bad flag is a one-line message with exit code 2 and writes nothing; two runs at once lose no change.
"""

import io
import re
from typing import Any

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from pipeline import cli
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.kafka import clients
from pipeline.kafka.admin import topic_partitions
from pipeline.kafka.topics import TopicsMissing, read_to_end
from pipeline.settings import Settings
from pipeline.tools import mode_control
from pipeline.tools.release import os_user
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.control_records import CONTROL_KEY, decode_schedule

pytestmark = pytest.mark.broker

CODEC = AvroCodec()
TRIAL_START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
GO_LIVE = 1_769_904_000_000  # 2026-02-01T00:00:00Z


def flags(settings: Settings) -> list[str]:
    return [
        "--bootstrap-servers", settings.bootstrap_servers,
        "--app-id", settings.app_id,
        "--topic-control", settings.topics.control,
    ]  # fmt: skip


def mode(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> str:
    """Run `poa-filter mode ARGV` in this process; its standard output, or its error when it should fail."""
    capsys.readouterr()
    code = cli.main(["mode", *argv, *flags(settings)])
    out, err = capsys.readouterr()
    assert code == status, err
    return out if status == 0 else err


def control_values(settings: Settings) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every committed record on the control topic; none when it does not exist."""
    try:
        return [(m.key(), m.value()) for m in read_to_end(settings, settings.topics.control, timeout_s=60)]
    except TopicsMissing:
        return []


def schedule_on_topic(settings: Settings) -> ModeSchedule:
    key, value = control_values(settings)[-1]
    assert key == CONTROL_KEY
    return decode_schedule(CODEC, value, Mode.FILTER)


def test_set_shadow_from_a_time_then_filter_keeps_the_whole_schedule(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = mode(settings, capsys, "shadow", "--reason", "shadow trial", "--from", "2026-01-01T00:00:00Z",
               "--operator", "alice")  # fmt: skip
    assert "2026-01-01T00:00:00.000Z  shadow  by alice" in out and "shadow trial" in out
    out = mode(settings, capsys, "filter", "--reason", "go live", "--from", str(GO_LIVE))
    assert f"2026-02-01T00:00:00.000Z  filter  by {os_user()}" in out
    assert out.strip().endswith("in force now: filter")

    values = control_values(settings)
    assert [key for key, _ in values] == [CONTROL_KEY, CONTROL_KEY]  # each value the whole schedule so far
    schedule = schedule_on_topic(settings)
    assert [(c.mode, c.effective_from, c.reason, c.changed_by) for c in schedule.changes] == [
        (Mode.SHADOW, TRIAL_START, "shadow trial", "alice"),
        (Mode.FILTER, GO_LIVE, "go live", os_user()),  # no --operator: the OS user
    ]
    assert [schedule.mode_at(t) for t in (TRIAL_START - 1, TRIAL_START, GO_LIVE - 1, GO_LIVE)] == [
        Mode.FILTER,
        Mode.SHADOW,
        Mode.SHADOW,
        Mode.FILTER,
    ]
    assert all(c.changed_at > GO_LIVE for c in schedule.changes)  # made now, by the wall clock


def test_a_change_without_from_applies_from_a_time_after_it_landed(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its time is taken just before the commit, and it applies from the margin after that: an alert received
    while the command ran is decided in the old mode live and on a backlog alike (issue 18, item 7)."""
    out = mode(settings, capsys, "pass-through", "--reason", "kill switch: bad campaign feed")
    (change,) = schedule_on_topic(settings).changes
    assert change.mode is Mode.PASS_THROUGH
    assert change.effective_from == change.changed_at + mode_control.LANDING_MARGIN_MS
    first = out.splitlines()[0]
    assert first.startswith(f"set pass-through for the alerts received from {iso(change.effective_from)} on ")
    landed = re.fullmatch(r".*\(the change was on the control topic at (.*)\)", first)
    assert landed is not None and landed.group(1) < iso(change.effective_from), "it landed before it applies"
    assert "note:" not in out


def test_a_change_from_a_time_past_says_decided_alerts_stay_decided_and_points_to_release(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = mode(settings, capsys, "shadow", "--reason", "trial", "--from", str(TRIAL_START))
    lines = out.splitlines()
    assert lines[1].startswith("note: 2026-01-01T00:00:00.000Z had passed when the change landed: it applies to")
    assert "those decided before stay as they were decided" in lines[1]
    assert lines[2].startswith("  to send the AD1s suppressed meanwhile to the DNOs: poa-filter release --from "
                               "2026-01-01T00:00:00.000Z --to ")  # fmt: skip


def iso(ms: int) -> str:
    return mode_control._iso(ms)


def test_show_prints_the_schedule_and_changes_nothing(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    out = mode(settings, capsys, "show", "--initial-mode", "shadow")
    assert out.splitlines() == [
        f"no mode changes on {settings.topics.control}: the initial mode (POA_INITIAL_MODE) applies",
        "in force now: shadow",
    ]
    admin = clients.admin_client(settings)
    assert settings.topics.control not in topic_partitions(admin, [settings.topics.control]), "show created it"

    mode(settings, capsys, "shadow", "--reason", "trial", "--from", str(TRIAL_START), "--operator", "bob")
    before = control_values(settings)
    for show in (["show"], ["--show"]):
        out = mode(settings, capsys, *show)
        assert out.splitlines() == [
            f"mode schedule on {settings.topics.control} (before the first change: filter):",
            out.splitlines()[1],
            "in force now: shadow",
        ]
        assert out.splitlines()[1].startswith("  from      2026-01-01T00:00:00.000Z  shadow  by bob (at ")
        assert out.splitlines()[1].endswith("): trial")
    assert control_values(settings) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["filter", "--reason", "x", "--from", "yesterday"], "--from 'yesterday' is neither an ISO-8601 UTC time"),
        (["filter", "--reason", "x", "--from", "1969-12-31T00:00:00Z"], "is not a time from 1970 to 9999"),
        (["filter", "--reason", "  "], "--reason is required: say why the mode changes"),
        (["filter"], "--reason is required"),
        (["filter", "--reason", "x", "--operator", ""], "--operator is blank"),
        ([], "name a mode (filter, shadow, pass-through) to set, or show"),
        (["show", "--reason", "x"], "show changes nothing: it takes no --reason"),
        (["--show", "filter"], "show changes nothing: it takes no a mode"),
    ],
)
def test_a_bad_flag_is_a_clear_message_with_exit_code_2_and_writes_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = mode(settings, capsys, *argv, status=2)
    assert err.startswith("poa-filter mode: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert control_values(settings) == []


def test_a_bad_initial_mode_is_refused(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POA_INITIAL_MODE", "off")
    err = mode(settings, capsys, "show", status=2)
    assert "POA_INITIAL_MODE='off' is not one of filter, shadow, pass-through" in err


def test_the_control_topic_is_created_compacted_with_one_partition(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    mode(settings, capsys, "shadow", "--reason", "trial")
    topic = settings.topics.control
    admin = clients.admin_client(settings)
    assert topic_partitions(admin, [topic]) == {topic: 1}
    resource = ConfigResource(ResourceType.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["cleanup.policy"].value == "compact"


def test_an_unreadable_value_is_named_and_the_last_readable_schedule_kept(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    mode(settings, capsys, "shadow", "--reason", "trial", "--from", str(TRIAL_START))
    producer = clients.producer(settings, {})
    producer.produce(settings.topics.control, b"not a schedule", CONTROL_KEY)
    assert producer.flush(10) == 0
    capsys.readouterr()
    assert cli.main(["mode", "pass-through", "--reason", "kill switch", *flags(settings)]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"warning: {re.escape(settings.topics.control)} 0/[0-9]+ is not a mode schedule \(value", err)
    assert [c.mode for c in schedule_on_topic(settings).changes] == [Mode.SHADOW, Mode.PASS_THROUGH]


def test_two_runs_at_once_lose_no_change(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that read the schedule before another run wrote its change must not write over that change."""
    mode(settings, capsys, "shadow", "--reason", "trial", "--from", str(TRIAL_START))
    read_schedule = mode_control.read_schedule
    another_run: list[int] = []

    def read_then_let_another_run_finish(*args: Any) -> ModeSchedule:
        schedule = read_schedule(*args)
        if not another_run:  # only for the first run: the second reads as usual
            another_run.append(-1)
            another_run[0] = cli.main(["mode", "filter", "--reason", "go live", *flags(settings)])
        return schedule

    monkeypatch.setattr(mode_control, "read_schedule", read_then_let_another_run_finish)
    change = ModeChange(Mode.PASS_THROUGH, GO_LIVE, "kill switch", "carol", GO_LIVE)
    with pytest.raises(mode_control.ModeControlError, match="another `poa-filter mode` with the same app ID ran"):
        mode_control.set_mode(settings, CODEC, change, io.StringIO())
    assert another_run == [0]
    assert [c.mode for c in schedule_on_topic(settings).changes] == [Mode.SHADOW, Mode.FILTER]


def test_a_change_from_a_later_time_is_shown_as_scheduled_and_not_yet_in_force(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = mode(settings, capsys, "filter", "--reason", "go live after the trial", "--from", "2099-01-01T00:00:00+01:00")
    assert "  scheduled 2098-12-31T23:00:00.000Z  filter  by " in out
    assert out.strip().endswith("in force now: filter")
    out = mode(settings, capsys, "show", "--initial-mode", "shadow")
    assert out.strip().endswith("in force now: shadow")  # before the first change: this deployment's initial mode
