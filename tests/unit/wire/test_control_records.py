"""The mode schedule on the control topic (contract 8): every change survives the round trip through Avro,
and a schedule no one could have meant is a BadInput naming the change and the field."""

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.control_records import LATEST_MS, RECORD, decode_schedule, encode_schedule, schedule_datum

CODEC = AvroCodec()
TOPIC = "poa-filter.control"
T = 1_780_000_000_000
SHADOW_TRIAL = ModeChange(Mode.SHADOW, T, "shadow trial, week 1", "alice", T + 5)
GO_LIVE = ModeChange(Mode.FILTER, T + 86_400_000, "go live", "bob", T + 86_400_000)
KILL_SWITCH = ModeChange(Mode.PASS_THROUGH, T + 90_000_000, "tracked list mis-loaded", "carol", T + 90_000_001)


def test_every_change_comes_back_in_the_order_they_apply() -> None:
    schedule = ModeSchedule.of(Mode.FILTER, [KILL_SWITCH, SHADOW_TRIAL, GO_LIVE])
    value = encode_schedule(CODEC, schedule, TOPIC)
    assert value.startswith(CODEC.single_object_header(RECORD))
    back = decode_schedule(CODEC, value, Mode.FILTER)
    assert back == schedule
    assert back.changes == (SHADOW_TRIAL, GO_LIVE, KILL_SWITCH)
    assert [type(change.mode) for change in back.changes] == [Mode, Mode, Mode]


def test_the_initial_mode_is_each_deployments_own_not_part_of_the_value() -> None:
    value = encode_schedule(CODEC, ModeSchedule.of(Mode.FILTER, [GO_LIVE]), TOPIC)
    assert value == encode_schedule(CODEC, ModeSchedule.of(Mode.SHADOW, [GO_LIVE]), TOPIC)
    schedule = decode_schedule(CODEC, value, Mode.SHADOW)
    assert (schedule.initial, schedule.mode_at(GO_LIVE.effective_from - 1)) == (Mode.SHADOW, Mode.SHADOW)


def test_an_empty_schedule_round_trips() -> None:
    value = encode_schedule(CODEC, ModeSchedule(Mode.PASS_THROUGH), TOPIC)
    assert decode_schedule(CODEC, value, Mode.PASS_THROUGH) == ModeSchedule(Mode.PASS_THROUGH)


CHANGES = st.builds(
    ModeChange,
    st.sampled_from(Mode),
    st.integers(0, LATEST_MS),
    st.text(min_size=1).filter(str.strip),
    st.text(min_size=1).filter(str.strip),
    st.integers(0, LATEST_MS),
)


@given(st.sampled_from(Mode), st.lists(CHANGES, max_size=5))
def test_any_schedule_round_trips(initial: Mode, changes: list[ModeChange]) -> None:
    schedule = ModeSchedule.of(initial, changes)
    assert decode_schedule(CODEC, encode_schedule(CODEC, schedule, TOPIC), initial) == schedule


def written_by_another_tool(**change: Any) -> bytes:
    """A ModeSchedule value whose second change has the fields given, as a writer other than ours might."""
    base = schedule_datum(ModeSchedule.of(Mode.FILTER, [SHADOW_TRIAL, GO_LIVE]))
    base["changes"][1].update(change)
    return CODEC.encode(RECORD, base)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "off"}, "ModeSchedule.changes[1]: unknown mode 'off'; expected one of filter, shadow, pass-through"),
        ({"mode": "Filter"}, "unknown mode 'Filter'"),
        ({"reason": ""}, "ModeSchedule.changes[1]: reason is empty: every mode change records who made it and why"),
        ({"reason": "  \t"}, "reason is empty"),
        ({"changed_by": ""}, "ModeSchedule.changes[1]: changed_by is empty"),
        ({"effective_from": -1}, "ModeSchedule.changes[1]: effective_from -1 is not a time from 1970 to 9999"),
        ({"changed_at": LATEST_MS + 1}, f"changed_at {LATEST_MS + 1} is not a time from 1970 to 9999"),
    ],
)
def test_a_schedule_no_one_could_have_meant_is_bad_input(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        decode_schedule(CODEC, written_by_another_tool(**change), Mode.FILTER)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "null value where a poafilter.ModeSchedule record is due"),
        (b'{"changes": []}', "it is not a poafilter.ModeSchedule record"),
        (
            CODEC.encode(
                "DeadLetter",
                {
                    "source_topic": "t",
                    "partition": 0,
                    "offset": 0,
                    "key": None,
                    "value": None,
                    "error": "",
                    "failed_at": 0,
                },
            ),
            "got a poafilter.DeadLetter record where a poafilter.ModeSchedule is due",
        ),
    ],
)
def test_a_value_that_is_not_a_schedule_is_bad_input(value: bytes | None, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        decode_schedule(CODEC, value, Mode.FILTER)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (replace(GO_LIVE, reason=""), "changes[1]: reason is empty"),
        (replace(GO_LIVE, changed_by=" "), "changes[1]: changed_by is empty"),
        (replace(GO_LIVE, effective_from=LATEST_MS + 1), "effective_from"),
        (replace(GO_LIVE, mode="off"), "unknown mode 'off'"),  # type: ignore[arg-type]
    ],
)
def test_a_change_no_one_could_have_meant_is_never_written(change: ModeChange, message: str) -> None:
    schedule = ModeSchedule(Mode.FILTER, (SHADOW_TRIAL, change))
    with pytest.raises(BadInput) as caught:
        encode_schedule(CODEC, schedule, TOPIC)
    assert message in str(caught.value)
