"""The operator's mode schedule as it travels on the control topic (contract 8): ModeSchedule <-> Avro.

The control topic is compacted, so only the last value of key `mode` survives: each value carries the
whole schedule (every change ever made), from which any worker decides an alert, live or on a backlog, in
the mode in force at the alert's own time. The codec checks the types; this module checks what the
types cannot say (a known mode, a reason, a person, times a person could mean), on the way out and on the
way in, so a schedule no one could have meant is a BadInput naming the change and field at fault.
"""

from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.wire.avro_codec import AvroCodec

RECORD = "ModeSchedule"
CONTROL_KEY = b"mode"  # the one key of the control topic
LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time ISO-8601 writes


def known_mode(text: object, where: str) -> Mode:
    """The Mode a string names; BadInput naming the modes there are."""
    if not isinstance(text, str) or text not in tuple(Mode):
        raise BadInput(f"{where}: unknown mode {text!r}; expected one of {', '.join(Mode)}")
    return Mode(text)


def check_change(change: ModeChange, where: str = "mode change") -> None:
    """BadInput unless the change names a known mode, says why and who, and its times are from 1970 to 9999."""
    known_mode(change.mode, where)
    for name in ("reason", "changed_by"):
        text = getattr(change, name)
        if not isinstance(text, str) or not text.strip():
            raise BadInput(f"{where}: {name} is empty: every mode change records who made it and why")
    for name in ("effective_from", "changed_at"):
        ms = getattr(change, name)
        if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= LATEST_MS:
            raise BadInput(
                f"{where}: {name} {ms!r} is not a time from 1970 to 9999 (epoch milliseconds from 0 to {LATEST_MS})"
            )


def schedule_datum(schedule: ModeSchedule) -> dict[str, Any]:
    """The Avro datum of a schedule: every change, in the order they apply. The initial mode is not part of
    it: each deployment takes its own from POA_INITIAL_MODE."""
    for index, change in enumerate(schedule.changes):
        check_change(change, f"changes[{index}]")
    return {
        "changes": [
            {
                "mode": Mode(change.mode).value,
                "effective_from": change.effective_from,
                "reason": change.reason,
                "changed_by": change.changed_by,
                "changed_at": change.changed_at,
            }
            for change in schedule.changes
        ]
    }


def encode_schedule(codec: AvroCodec, schedule: ModeSchedule, topic: str) -> bytes:
    """The value to write under CONTROL_KEY on `topic` (its subject under a schema registry)."""
    return codec.encode(RECORD, schedule_datum(schedule), topic)


def schedule_from_datum(datum: dict[str, Any], initial: Mode) -> ModeSchedule:
    """The schedule a decoded ModeSchedule record holds, starting from this deployment's initial mode."""
    changes = []
    for index, item in enumerate(datum["changes"]):
        where = f"{RECORD}.changes[{index}]"
        mode = known_mode(item["mode"], where)
        change = ModeChange(mode, item["effective_from"], item["reason"], item["changed_by"], item["changed_at"])
        check_change(change, where)
        changes.append(change)
    return ModeSchedule.of(initial, changes)


def decode_schedule(codec: AvroCodec, value: bytes | None, initial: Mode) -> ModeSchedule:
    """The schedule in a control-topic value; BadInput for anything that is not a schedule someone could mean."""
    return schedule_from_datum(codec.decode(RECORD, value), initial)
