"""`poa-filter mode`: the operator's switch between filter, shadow and pass-through (contract 8).

The mode lives on the compacted control topic under key `mode`, as the whole schedule of changes (the
topic keeps only a key's last value, and a backlog is decided in the mode in force at each alert's own
time). Setting a mode is therefore read, append, write: the tool reads the schedule (read_committed, to
the end offsets), appends the change and writes the new schedule back.

Two operators changing the mode at once must not lose one change. Every run uses the same transactional
ID, `POA_APP_ID` + `-mode`, and calls `init_transactions` before it reads: that fences any earlier run
still going (its write fails, and it says to run again) and completes any transaction an earlier run left,
so what this run reads is every change committed before it, and no earlier run can commit after it read.

Times are wall clock here, on purpose: a change is an operator's action, made now, from now on unless it
names another time. The workers apply it by event time.

"From now" must mean from a time after the write lands, not from when the command started: init_transactions
and the read can take many seconds, and an alert received in between is decided live in the old mode (the
change is not on the topic yet) but on a backlog in the new one. So the time is taken after the read, just
before the commit, and the change applies from LANDING_MARGIN_MS after it (the commit, its markers and the
clocks of two machines); the command checks after the commit that it landed before that time, and says so
otherwise. A change from a time that has passed by then (`--from` in the past, or a slow commit) applies only
to the alerts not decided yet: the command says which ones were decided before, and how to release those.
"""

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from pipeline.core.bad_input import BadInput
from pipeline.core.operating_mode import Mode, ModeChange, ModeSchedule
from pipeline.kafka import clients
from pipeline.kafka.admin import topic_partitions
from pipeline.kafka.topics import create_topics, read_to_end
from pipeline.settings import Settings
from pipeline.tools.csv_loaders import parse_time
from pipeline.tools.release import os_user
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.control_records import CONTROL_KEY, check_change, decode_schedule, encode_schedule, known_mode
from pipeline.wire.output_records import now_ms

SHOW = "show"
TXN_TIMEOUT_S = 30.0  # for each transactional call
READ_TIMEOUT_S = 60.0  # one small partition
COMPACTED = {"cleanup.policy": "compact"}
LANDING_MARGIN_MS = 2_000  # "from now" starts this long after the time taken just before the commit

DESCRIPTION = (
    "Sets the operator mode of every worker: filter (the rules), shadow (forward every alert, record what the "
    "rules would suppress) or pass-through (forward every alert), for the alerts received at or after --from "
    "(ISO-8601, UTC when it has no offset, or epoch milliseconds; default now), recording who and why. "
    "The schedule of every change is kept on the compacted control topic (POA_TOPIC_CONTROL), which is created "
    "when missing. `mode show` (or --show) prints the schedule and the mode in force now, changing nothing."
)


class ModeControlError(Exception):
    """An expected failure with a message for the operator: a bad flag, a fenced run, a failed write."""


def transactional_id(settings: Settings) -> str:
    """Fixed for the app ID, so every run fences the ones before it; begins with the app ID, for ACLs."""
    return f"{settings.app_id}-mode"


def read_schedule(settings: Settings, codec: AvroCodec, err: TextIO) -> ModeSchedule:
    """The schedule on the control topic (read_committed, to its end offsets), from this deployment's
    initial mode; with no changes when the topic does not exist or holds none.

    A value that cannot be read is named on `err` and passed over for the last readable one before it: the
    switch must work even when someone wrote rubbish on the topic (the new value then repairs it).
    """
    topic, initial = settings.topics.control, Mode(settings.initial_mode)
    schedule = ModeSchedule(initial)
    if topic not in topic_partitions(clients.admin_client(settings), [topic]):
        return schedule
    for message in read_to_end(settings, topic, timeout_s=READ_TIMEOUT_S):
        if message.key() != CONTROL_KEY:
            continue
        try:
            schedule = decode_schedule(codec, message.value(), initial)
        except BadInput as exc:
            print(
                f"warning: {topic} {message.partition()}/{message.offset()} is not a mode schedule ({exc}); "
                "keeping the schedule before it",
                file=err,
            )
    return schedule


@dataclass(frozen=True)
class Written:
    """What `set_mode` wrote: the new schedule, the change as written, and when the write had landed."""

    schedule: ModeSchedule
    change: ModeChange
    landed_at: int


def set_mode(
    settings: Settings,
    codec: AvroCodec,
    change: ModeChange,
    err: TextIO,
    from_now: bool = False,
    clock: Callable[[], int] | None = None,
) -> Written:
    """Append `change` to the schedule on the control topic and write it back. With `from_now`, the change's
    times are taken after the schedule is read, just before the commit (module docstring), by `clock` (the wall
    clock by default)."""
    now = clock or now_ms
    check_change(change)
    topic = settings.topics.control
    admin = clients.admin_client(settings)
    if not create_topics(admin, {topic: 1}, {topic: COMPACTED}):
        _warn_unless_compacted(admin, topic, err)
    producer = clients.producer(
        settings, clients.TRANSACTIONAL_PRODUCER_TUNING, **{"transactional.id": transactional_id(settings)}
    )
    try:
        _call(lambda: producer.init_transactions(TXN_TIMEOUT_S))  # fences earlier runs: module docstring
        schedule = read_schedule(settings, codec, err)
        stamp = now()
        start = stamp + LANDING_MARGIN_MS if from_now else change.effective_from
        change = replace(change, effective_from=start, changed_at=stamp)
        schedule = schedule.with_change(change)
        value = encode_schedule(codec, schedule, topic)
        _call(producer.begin_transaction)
        producer.produce(topic, value, CONTROL_KEY)
        _call(lambda: producer.commit_transaction(TXN_TIMEOUT_S))  # returns once the value is delivered
    except BaseException:
        _abort(producer)
        raise
    return Written(schedule, change, now())


def said_after(written: Written) -> list[str]:
    """What the operator is told of the change just written: from when it applies, and when that time had
    already passed as it landed, that the alerts decided meanwhile stay decided and how to release them."""
    change, landed = written.change, written.landed_at
    lines = [f"set {change.mode} for the alerts received from {_iso(change.effective_from)} on "
             f"(the change was on the control topic at {_iso(landed)})"]  # fmt: skip
    if change.effective_from >= landed:
        return lines
    lines.append(
        f"note: {_iso(change.effective_from)} had passed when the change landed: it applies to the alerts "
        "received since then that no worker had decided yet; those decided before stay as they were decided"
    )
    if change.mode != Mode.FILTER:  # what filter mode suppressed meanwhile can still reach the DNOs
        lines.append(
            f"  to send the AD1s suppressed meanwhile to the DNOs: poa-filter release --from "
            f"{_iso(change.effective_from)} --to {_iso(landed)} --reason TEXT (try --dry-run first)"
        )
    return lines


def _call(action: Callable[[], object]) -> None:
    """A transactional call; fenced or failed, a ModeControlError telling the operator what to do."""
    try:
        action()
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() in (KafkaError.PRODUCER_FENCED, KafkaError._FENCED):
            raise ModeControlError(
                f"the mode was not changed: another `poa-filter mode` with the same app ID ran meanwhile "
                f"({error.str()}); run `poa-filter mode show`, then this command again if still needed"
            ) from None
        raise ModeControlError(f"the mode was not changed: {error.str()}") from None


def _abort(producer: Producer) -> None:
    """Best effort: the next run's init_transactions (or the transaction timeout) aborts it anyway."""
    with contextlib.suppress(KafkaException):
        producer.abort_transaction(TXN_TIMEOUT_S)


def _warn_unless_compacted(admin: AdminClient, topic: str, err: TextIO) -> None:
    """A control topic that deletes by age would lose the schedule, and with it every change made."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    with contextlib.suppress(KafkaException):  # cannot tell (no DescribeConfigs ACL): say nothing
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        policy = config["cleanup.policy"].value or ""
        if "compact" not in policy.split(","):
            print(
                f"warning: {topic} has cleanup.policy={policy}: the mode schedule will be deleted with age and "
                "every worker fall back to POA_INITIAL_MODE; set cleanup.policy=compact",
                file=err,
            )


# --- for a person ----------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(schedule: ModeSchedule, topic: str, now: int) -> list[str]:
    """The schedule as lines for a person: each change (from, mode, by, reason), then the mode in force now."""
    if not schedule.changes:
        return [
            f"no mode changes on {topic}: the initial mode (POA_INITIAL_MODE) applies",
            f"in force now: {schedule.initial}",
        ]
    lines = [f"mode schedule on {topic} (before the first change: {schedule.initial}):"]
    width = max(len(change.mode) for change in schedule.changes)
    for change in schedule.changes:
        when = "scheduled" if change.effective_from > now else "from"
        lines.append(
            f"  {when:<9} {_iso(change.effective_from)}  {change.mode:<{width}}  by {change.changed_by} "
            f"(at {_iso(change.changed_at)}): {change.reason}"
        )
    lines.append(f"in force now: {schedule.mode_at(now)}")
    return lines


# --- the command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `mode` subcommand's own flags (the settings flags come from the CLI's common parser)."""
    parser.add_argument(
        "mode",
        nargs="?",
        choices=[*(mode.value for mode in Mode), SHOW],
        metavar="MODE",
        help=f"{', '.join(Mode)}; or {SHOW} to print the schedule",
    )
    parser.add_argument("--show", action="store_true", help="print the schedule and the mode in force now")
    parser.add_argument("--reason", help="why the mode changes (required to change it; recorded)")
    parser.add_argument(
        "--from",
        dest="effective_from",
        metavar="TIME",
        help="apply to the alerts received at or after TIME (default now)",
    )
    parser.add_argument(
        "--operator", metavar="NAME", help="who changes it (recorded; default: the operating-system user)"
    )


def run(
    args: argparse.Namespace, settings: Settings, codec: AvroCodec, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run `mode` from parsed arguments: show the schedule, or change the mode and show the new schedule."""
    out, err = out or sys.stdout, err or sys.stderr
    show = args.show or args.mode == SHOW
    if show:
        given = [
            flag
            for flag, value in (
                ("a mode", args.mode not in (None, SHOW)),
                ("--reason", args.reason),
                ("--from", args.effective_from),
                ("--operator", args.operator),
            )
            if value
        ]
        if given:
            raise ModeControlError(f"{SHOW} changes nothing: it takes no {', '.join(given)}")
        schedule = read_schedule(settings, codec, err)
    elif args.mode is None:
        raise ModeControlError(f"name a mode ({', '.join(Mode)}) to set, or {SHOW}")
    else:
        written = set_mode(settings, codec, _change(args), err, from_now=args.effective_from is None)
        schedule = written.schedule
        print("\n".join(said_after(written)), file=out)
    print("\n".join(describe(schedule, settings.topics.control, now_ms())), file=out)
    return 0


def _change(args: argparse.Namespace) -> ModeChange:
    """The change the flags ask for, checked before anything is read or written (without --from, its times are
    taken again when it is written: `set_mode`)."""
    reason = (args.reason or "").strip()
    operator = (os_user() if args.operator is None else args.operator).strip()
    if not reason:
        raise ModeControlError("--reason is required: say why the mode changes (it is recorded with the change)")
    if not operator:
        raise ModeControlError("--operator is blank: name who changes the mode, or leave it out for the OS user")
    now = now_ms()
    try:
        effective_from = now if args.effective_from is None else parse_time(args.effective_from.strip(), "--from")
        change = ModeChange(known_mode(args.mode, "MODE"), effective_from, reason, operator, now)
        check_change(change, f"--from {args.effective_from}")
    except BadInput as exc:
        raise ModeControlError(str(exc)) from None
    return change
