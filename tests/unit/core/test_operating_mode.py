"""Contract 8: a mode change applies to the alerts received at or after the time it names."""

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule

T = 1_780_000_000_000


def change(mode: Mode, effective_from: int, changed_at: int = 0) -> ModeChange:
    return ModeChange(mode, effective_from, "test", "ops", changed_at)


def test_without_changes_the_initial_mode_applies() -> None:
    assert ModeSchedule(Mode.SHADOW).mode_at(T) is Mode.SHADOW
    assert ModeSchedule(Mode.SHADOW).in_force(T) is None and ModeSchedule(Mode.SHADOW).upcoming(T) == ()


def test_a_change_applies_from_its_time_on_and_not_before() -> None:
    schedule = ModeSchedule.of(Mode.FILTER, [change(Mode.PASS_THROUGH, T)])
    assert [schedule.mode_at(t) for t in (T - 1, T, T + 1)] == [Mode.FILTER, Mode.PASS_THROUGH, Mode.PASS_THROUGH]


def test_changes_apply_in_event_time_order_whatever_order_they_were_made_in() -> None:
    later_made_first = ModeSchedule.of(
        Mode.FILTER, [change(Mode.FILTER, T + 100, changed_at=1), change(Mode.SHADOW, T, changed_at=2)]
    )
    assert [later_made_first.mode_at(t) for t in (T - 1, T, T + 99, T + 100)] == [
        Mode.FILTER,
        Mode.SHADOW,
        Mode.SHADOW,
        Mode.FILTER,
    ]


def test_of_two_changes_with_the_same_start_the_one_made_last_wins() -> None:
    schedule = ModeSchedule.of(
        Mode.FILTER, [change(Mode.PASS_THROUGH, T, changed_at=5), change(Mode.SHADOW, T, changed_at=3)]
    )
    assert schedule.mode_at(T) is Mode.PASS_THROUGH
    in_force = schedule.in_force(T)
    assert in_force is not None and in_force.mode is Mode.PASS_THROUGH


def test_the_change_in_force_now_is_the_latest_started_and_later_ones_are_upcoming() -> None:
    """Shadow in force, a go-live scheduled next week: shadow stays in force until then (issue 18, item 6)."""
    week = 7 * 24 * 3_600_000
    shadow, go_live = change(Mode.SHADOW, T - week, changed_at=1), change(Mode.FILTER, T + week, changed_at=2)
    schedule = ModeSchedule.of(Mode.FILTER, [go_live, shadow])
    assert (schedule.in_force(T), schedule.upcoming(T)) == (shadow, (go_live,))
    assert (schedule.in_force(T + week - 1), schedule.upcoming(T + week - 1)) == (shadow, (go_live,))
    assert (schedule.in_force(T + week), schedule.upcoming(T + week)) == (go_live, ())
    assert (schedule.in_force(T - week - 1), schedule.upcoming(T - week - 1)) == (None, (shadow, go_live))


def test_with_change_keeps_the_history() -> None:
    schedule = ModeSchedule(Mode.FILTER).with_change(change(Mode.SHADOW, T)).with_change(change(Mode.FILTER, T + 10))
    assert [schedule.mode_at(t) for t in (T - 1, T + 5, T + 10)] == [Mode.FILTER, Mode.SHADOW, Mode.FILTER]


@given(
    st.lists(st.tuples(st.sampled_from(list(Mode)), st.integers(0, 50), st.integers(0, 5)), max_size=8),
    st.integers(-5, 55),
)
def test_mode_at_is_the_last_started_change(raw: list[tuple[Mode, int, int]], offset: int) -> None:
    changes = [change(mode, T + start, made) for mode, start, made in raw]
    schedule = ModeSchedule.of(Mode.FILTER, reversed(changes))
    started = [c for c in changes if c.effective_from <= T + offset]
    expected = max(started, key=lambda c: (c.effective_from, c.changed_at)).mode if started else Mode.FILTER
    if len({(c.effective_from, c.changed_at) for c in started}) == len(started):  # ties broken by the sort only
        assert schedule.mode_at(T + offset) is expected
