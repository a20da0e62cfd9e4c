"""`poa-filter mode` without a broker: when a change made "now" takes its time, and what the command says of a
change whose time had passed when it landed (contract 8; issue 18, item 7)."""

import io
from typing import Any

import pytest

from pipeline import cli
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.settings import Settings
from pipeline.tools import mode_control
from pipeline.tools.mode_control import LANDING_MARGIN_MS, Written, said_after, set_mode
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.control_records import decode_schedule

CODEC = AvroCodec()
STARTED = 1_790_000_000_000  # when the operator ran the command
STAMPED = STARTED + 90_000  # after init_transactions and the read took their 90 s


class Recording:
    """A transactional producer that only records its calls, in one list with the clock's readings."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def init_transactions(self, timeout: float) -> None:
        self.events.append("init_transactions")

    def begin_transaction(self) -> None:
        self.events.append("begin_transaction")

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.events.append(("produce", value))

    def commit_transaction(self, timeout: float) -> None:
        self.events.append("commit_transaction")

    def abort_transaction(self, timeout: float) -> None:
        self.events.append("abort_transaction")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The calls `set_mode` makes, in order: no broker, an empty schedule on the control topic."""
    calls: list[Any] = []
    monkeypatch.setattr(mode_control.clients, "admin_client", lambda settings: object())
    monkeypatch.setattr(mode_control, "create_topics", lambda *args: ["created"])
    monkeypatch.setattr(mode_control.clients, "producer", lambda *args, **kwargs: Recording(calls))

    def read(*args: Any) -> ModeSchedule:
        calls.append("read the schedule")
        return ModeSchedule(Mode.FILTER)

    monkeypatch.setattr(mode_control, "read_schedule", read)
    return calls


def clock_reading(events: list[Any], *times: int) -> Any:
    readings = iter(times)

    def clock() -> int:
        events.append("clock")
        return next(readings)

    return clock


def change_at(ms: int, mode: Mode = Mode.SHADOW) -> ModeChange:
    return ModeChange(mode, ms, "trial", "alice", ms)


def test_a_change_from_now_takes_its_time_after_the_read_just_before_the_commit(events: list[Any]) -> None:
    landed = STAMPED + 40
    written = set_mode(Settings(), CODEC, change_at(STARTED), io.StringIO(),
                       from_now=True, clock=clock_reading(events, STAMPED, landed))  # fmt: skip

    produced = [e for e in events if isinstance(e, tuple)]
    assert [e if isinstance(e, str) else e[0] for e in events] == [
        "init_transactions", "read the schedule", "clock", "begin_transaction", "produce", "commit_transaction",
        "clock",
    ]  # fmt: skip
    [(change,)] = [decode_schedule(CODEC, value, Mode.FILTER).changes for _, value in produced]
    assert (change.effective_from, change.changed_at) == (STAMPED + LANDING_MARGIN_MS, STAMPED)
    assert written == Written(ModeSchedule(Mode.FILTER, (change,)), change, landed)
    assert said_after(written) == [
        "set shadow for the alerts received from 2026-09-21T14:14:52.000Z on "
        "(the change was on the control topic at 2026-09-21T14:14:50.040Z)"
    ]


def test_a_change_from_a_given_time_keeps_it_and_records_when_it_was_made(events: list[Any]) -> None:
    written = set_mode(Settings(), CODEC, change_at(STARTED - 3_600_000), io.StringIO(),
                       clock=clock_reading(events, STAMPED, STAMPED + 40))  # fmt: skip
    assert (written.change.effective_from, written.change.changed_at) == (STARTED - 3_600_000, STAMPED)


def test_a_change_from_a_time_already_past_says_decided_alerts_stay_decided_and_how_to_release_them() -> None:
    change = change_at(STARTED, Mode.PASS_THROUGH)
    lines = said_after(Written(ModeSchedule(Mode.FILTER, (change,)), change, STAMPED))
    assert lines[1] == (
        "note: 2026-09-21T14:13:20.000Z had passed when the change landed: it applies to the alerts received "
        "since then that no worker had decided yet; those decided before stay as they were decided"
    )
    assert lines[2] == (
        "  to send the AD1s suppressed meanwhile to the DNOs: poa-filter release --from 2026-09-21T14:13:20.000Z "
        "--to 2026-09-21T14:14:50.000Z --reason TEXT (try --dry-run first)"
    )


def test_a_commit_slower_than_the_margin_is_said_as_well(events: list[Any]) -> None:
    late = STAMPED + LANDING_MARGIN_MS + 1
    written = set_mode(Settings(), CODEC, change_at(STARTED), io.StringIO(),
                       from_now=True, clock=clock_reading(events, STAMPED, late))  # fmt: skip
    assert said_after(written)[1].startswith("note: 2026-09-21T14:14:52.000Z had passed when the change landed")


def test_back_to_filter_from_the_past_has_nothing_to_release() -> None:
    change = change_at(STARTED, Mode.FILTER)
    lines = said_after(Written(ModeSchedule(Mode.FILTER, (change,)), change, STAMPED))
    assert len(lines) == 2 and lines[1].startswith("note: ")


def test_through_the_command_line_the_time_of_a_change_from_now_is_read_after_the_schedule(
    events: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`poa-filter mode shadow --reason ...`: each reading of the wall clock is numbered, and the one the change
    is stamped with comes after init_transactions and the read, before the commit (it came first before)."""
    readings = iter(range(STARTED, STARTED + 1000 * 100, 1000))

    def wall_clock() -> int:
        reading = next(readings)
        events.append(("clock", reading))
        return reading

    monkeypatch.setattr(mode_control, "now_ms", wall_clock)

    assert cli.main(["mode", "shadow", "--reason", "trial", "--operator", "alice"]) == 0

    [(_, value)] = [e for e in events if isinstance(e, tuple) and e[0] == "produce"]
    [change] = decode_schedule(CODEC, value, Mode.FILTER).changes
    order = [e if isinstance(e, str) else e[0] if e[0] == "produce" else e[1] for e in events]
    stamped = order.index(change.changed_at)
    assert order.index("read the schedule") < stamped < order.index("commit_transaction")
    assert change.effective_from == change.changed_at + LANDING_MARGIN_MS
    assert capsys.readouterr().out.startswith(f"set shadow for the alerts received from {iso(change.effective_from)}")


def iso(ms: int) -> str:
    return mode_control._iso(ms)
