"""Operator modes (contract 8): how far the rules are allowed to act, changed from an event time on.

A DSP runs the filter in shadow for weeks before it lets it suppress, and needs a switch that stops all
suppression at once when something looks wrong. A change applies to the alerts received at or after the
time it names, whichever worker decides them and whenever, so a backlog is decided as it was live: the
schedule keeps every change, and an alert is decided under the mode in force at its own event time.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    FILTER = "filter"  # the rules: suppress what they suppress
    SHADOW = "shadow"  # forward everything; record what the rules would have suppressed
    PASS_THROUGH = "pass-through"  # forward everything that can be decoded; nothing is suppressed


@dataclass(frozen=True, slots=True)
class ModeChange:
    mode: Mode
    effective_from: int  # event time (epoch ms) from which alerts are decided in this mode
    reason: str
    changed_by: str
    changed_at: int  # wall clock when the operator made the change; orders changes with the same start


@dataclass(frozen=True, slots=True)
class ModeSchedule:
    """Every change made, and the mode of a deployment whose control topic holds none."""

    initial: Mode
    changes: tuple[ModeChange, ...] = ()

    @classmethod
    def of(cls, initial: Mode, changes: Iterable[ModeChange]) -> "ModeSchedule":
        return cls(initial, tuple(sorted(changes, key=lambda c: (c.effective_from, c.changed_at))))

    def mode_at(self, t: int) -> Mode:
        """The mode in force for an alert received at t: that of `in_force(t)`, else the initial mode."""
        change = self.in_force(t)
        return self.initial if change is None else change.mode

    def in_force(self, t: int) -> ModeChange | None:
        """The change in force at t: the one with the latest start at or before t (of two with the same start,
        the one made last); None while none has started. At the wall clock's now, what `/ready` and the
        metric show: a go-live scheduled for next week leaves shadow mode in force until then."""
        current = None
        for change in self.changes:
            if change.effective_from > t:
                break
            current = change
        return current

    def upcoming(self, t: int) -> tuple[ModeChange, ...]:
        """The changes that start after t, in the order they will apply."""
        return tuple(change for change in self.changes if change.effective_from > t)

    def with_change(self, change: ModeChange) -> "ModeSchedule":
        return ModeSchedule.of(self.initial, [*self.changes, change])
