"""The `poa-filter` console script (contract 7): worker, bulk loaders, simulator and demo summary.

A flag overrides its environment variable, which overrides the default, so one environment can drive the
worker, the loaders and the demo alike. Each subcommand shows, in its help and usage, only the settings and
topics it reads (`COMMAND_OPTIONS`); the other settings flags are still accepted, unlisted, so that a script
passing one environment's flags to every command keeps working. Each subcommand logs in the format the
settings ask for (`--log-format`), and a bad setting is a one-line message with exit code 2.
"""

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from pipeline.log_format import configure_logging
from pipeline.settings import TOPIC_ENV, Bounds, Settings, SettingsError, Topics, bounds_of, choices_of, env_var
from pipeline.tools import alert_audit, explain_client, mode_control, publish_duis
from pipeline.tools import estate_simulator as sim
from pipeline.tools import release as release_tool
from pipeline.tools.bulk_producer import DeliveryFailed, TopicMissing
from pipeline.tools.csv_loaders import INVENTORY, TRACKED, CsvFileError, CsvKind, LoadReport, load_csv
from pipeline.tools.demo_summary import ExpectedFileError, summarise
from pipeline.wire.avro_codec import AvroCodec, codec_for_registry
from pipeline.wire.schema_registry import RegistryAuthFileError


def bounded(bounds: Bounds, flag: str) -> Callable[[str], Any]:
    """An argparse type checking a flag by `bounds`, as settings.py checks the variables (finite, in range)."""

    def parse(text: str) -> int | float:
        try:
            return bounds.parse(text, flag)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = bounds.kind.__name__
    return parse


# Every setting read from an environment variable is also a flag: --metrics-port for metrics_port.
_SETTING_FIELDS = [setting for setting in fields(Settings) if env_var(setting)]
_TOPIC_PREFIX = "topic_"


class CliError(Exception):
    """An expected failure with a message for the operator: exit code 2, no traceback."""


_EXPECTED_ERRORS = (
    CliError,
    SettingsError,
    CsvFileError,
    TopicMissing,
    DeliveryFailed,
    sim.SimulationError,
    ExpectedFileError,
    release_tool.ReleaseError,
    mode_control.ModeControlError,
    alert_audit.AuditError,
    explain_client.ExplainError,
    RegistryAuthFileError,
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class CommandOptions:
    """The settings and topics a subcommand reads, by field name: the flags its help lists (None: all)."""

    settings: frozenset[str] | None
    topics: frozenset[str] | None = frozenset()


# What every command that talks to Kafka reads: the connection, the codec's registry, the log format.
_KAFKA = frozenset({"bootstrap_servers", "client_config_file", "schema_registry_url", "schema_registry_auth_file",
                    "log_format"})  # fmt: skip
_RULE_TIMES = frozenset({"window_minutes", "lead_in_minutes", "max_future_days", "evidence_before_minutes",
                         "evidence_after_minutes", "storm_min_hans"})  # fmt: skip
_HOLD_BOUND = frozenset({"evidence_after_minutes", "evidence_grace_seconds", "max_hold_seconds"})
_INPUT_TOPICS = frozenset({"service_requests", "activation_outcomes", "alerts", "inventory", "tracked_devices"})
_HTTP_CLIENT = frozenset({"metrics_port", "explain_port", "http_token_file", "http_tls_cert_file"})

COMMAND_OPTIONS: dict[str, CommandOptions] = {
    "worker": CommandOptions(None, None),
    "load-tracked": CommandOptions(_KAFKA, frozenset({"tracked_devices"})),
    "load-inventory": CommandOptions(_KAFKA, frozenset({"inventory"})),
    "simulate": CommandOptions(_KAFKA | _RULE_TIMES | {"duis_command_variants"}, _INPUT_TOPICS),
    "demo-summary": CommandOptions(
        _KAFKA | _HTTP_CLIENT | {"app_id"}, frozenset({"alerts", "dno_alerts", "suppressed", "dead_letter"})
    ),
    "release": CommandOptions(_KAFKA | _HOLD_BOUND | {"app_id"}, frozenset({"suppressed", "dno_alerts", "released"})),
    "mode": CommandOptions(_KAFKA | {"app_id", "initial_mode"}, frozenset({"control"})),
    "audit": CommandOptions(_KAFKA, frozenset({"dno_alerts", "suppressed", "dead_letter", "released", "shadow"})),
    "explain": CommandOptions(_HTTP_CLIENT | {"log_format"}),
    "publish-duis": CommandOptions(
        frozenset({"bootstrap_servers", "client_config_file", "log_format"}),
        frozenset({"service_requests", "activation_outcomes", "alerts"}),
    ),
}


def _settings_parser(shown: CommandOptions) -> argparse.ArgumentParser:
    """The settings flags of a subcommand: those it reads listed, the others accepted but not shown."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("settings (each overrides its environment variable, see contract 7)")
    for setting in _SETTING_FIELDS:
        flag, bounds, choices = _flag(setting.name), bounds_of(setting), choices_of(setting)
        allowed = f"; {bounds.describe()}" if bounds else f"; one of {', '.join(choices)}" if choices else ""
        listed = shown.settings is None or setting.name in shown.settings
        group.add_argument(
            flag,
            dest=setting.name,
            type=bounded(bounds, flag) if bounds else str,
            choices=choices or None,
            default=argparse.SUPPRESS,
            metavar=setting.name.upper(),
            help=f"${env_var(setting)}, default {setting.default}{allowed}" if listed else argparse.SUPPRESS,
        )
    for topic in fields(Topics):
        listed = shown.topics is None or topic.name in shown.topics
        group.add_argument(
            _flag(_TOPIC_PREFIX + topic.name),
            dest=_TOPIC_PREFIX + topic.name,
            default=argparse.SUPPRESS,
            metavar="TOPIC",
            help=f"${TOPIC_ENV[topic.name]}, default {topic.default}" if listed else argparse.SUPPRESS,
        )
    return parser


def _subcommand(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose help shows the settings it reads (COMMAND_OPTIONS) and no others."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[_settings_parser(COMMAND_OPTIONS[name])], **kwargs
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings.from_env() with every flag given on the command line applied on top (SettingsError if bad)."""
    settings = Settings.from_env()
    given = vars(args)
    topics = {t.name: given[_TOPIC_PREFIX + t.name] for t in fields(Topics) if _TOPIC_PREFIX + t.name in given}
    scalars = {s.name: given[s.name] for s in _SETTING_FIELDS if s.name in given}
    return replace(settings, topics=replace(settings.topics, **topics), **scalars)


def codec_for(settings: Settings) -> AvroCodec:
    """The Avro codec, with Confluent framing when a schema registry is configured (contract 4)."""
    return codec_for_registry(settings.schema_registry_url, settings.schema_registry_auth_file)


def _worker(args: argparse.Namespace) -> int:
    from pipeline.worker.filter_worker import run_worker
    from pipeline.worker.local_state import LocalStateUnavailable

    try:
        run_worker(settings_from_args(args))
    except LocalStateUnavailable as exc:
        raise CliError(str(exc)) from None
    return 0


def _print_load(report: LoadReport) -> int:
    """Rejections to stderr, counts to stdout; 1 when any row was rejected."""
    for _line, message in report.rejected_rows:
        print(message, file=sys.stderr)
    if report.rejected > len(report.rejected_rows):
        print(
            f"{report.path}: ... and {report.rejected - len(report.rejected_rows)} more rejected rows",
            file=sys.stderr,
        )
    for line in report.summary():
        print(line)
    return 1 if report.rejected else 0


def _load(kind: CsvKind) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        replace_list, allow_empty = getattr(args, "replace", False), getattr(args, "allow_empty", False)
        settings = settings_from_args(args)
        return _print_load(load_csv(kind, args.csv, settings, codec_for, replace_list, args.jobs, allow_empty))

    return run


def _simulate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    out = Path(args.out)
    base_time = sim.parse_base_time(args.base_time)
    estate = sim.build_estate(args.homes, args.seed, args.tracked_fraction, base_time)
    scenario = sim.build_scenario(estate, args.seed, base_time, settings, args.format)
    tracked_csv, inventory_csv = estate.write_csvs(out)
    expected = out / "expected.json"
    sim.write_expected(
        scenario,
        expected,
        seed=args.seed,
        homes=args.homes,
        base_time=args.base_time,
        window_minutes=settings.window_minutes,
        lead_in_minutes=settings.lead_in_minutes,
        evidence_before_minutes=settings.evidence_before_minutes,
        evidence_after_minutes=settings.evidence_after_minutes,
        storm_min_hans=settings.storm_min_hans,
    )
    labels = [a.expected for a in scenario.alerts]
    print(
        f"wrote {tracked_csv}, {inventory_csv} and {expected}: {len(estate.homes)} homes in "
        f"{len(estate.sectors())} postcode sectors, {len(estate.tracked)} tracked ESMEs, {len(labels)} alerts "
        f"({labels.count(sim.FORWARD)} to forward, {len(scenario.released_on_evidence())} of them AD1s in windows "
        f"on evidence of a genuine outage, {labels.count(sim.SUPPRESS)} to suppress, "
        f"{labels.count(sim.DEAD_LETTER)} to dead-letter), written as {args.format}"
    )
    if args.no_load and args.no_play:
        return 0
    if not args.no_play:
        sim.check_stamps(scenario, int(time.time() * 1000))
    created = sim.ensure_input_topics(settings, args.partitions)
    if created:
        print(f"created input topics: {', '.join(created)}")
    status = 0
    if not args.no_load:
        for kind, path in ((TRACKED, tracked_csv), (INVENTORY, inventory_csv)):
            status = max(status, _print_load(load_csv(kind, str(path), settings, codec_for)))
    if not args.no_play:
        counts = sim.play(scenario, settings, codec_for(settings))
        print("played " + ", ".join(f"{n} records on {getattr(settings.topics, t)}" for t, n in counts.items()))
    return status


def _with_codec(tool: Any) -> Callable[[argparse.Namespace], int]:
    """A tool's `run(args, settings, codec)` as a subcommand."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_from_args(args)
        return int(tool.run(args, settings, codec_for(settings)))

    return run


def _publish_duis(args: argparse.Namespace) -> int:
    return publish_duis.run(args, settings_from_args(args))


# What publish-duis needs: the connection, the log format and the three topics DUIS documents go on.
def _explain(args: argparse.Namespace) -> int:
    return explain_client.run(args, settings_from_args(args))


# The operators' tools: (subcommand, module with DESCRIPTION and add_arguments, run, one-line help).
_TOOLS: tuple[tuple[str, Any, Callable[[argparse.Namespace], int], str], ...] = (
    ("release", release_tool, _with_codec(release_tool),
     "send wrongly suppressed alerts to the DNOs after all, each at most once"),
    ("mode", mode_control, _with_codec(mode_control),
     "set the operator mode (filter, shadow, pass-through) from a time on, or show it"),
    ("audit", alert_audit, _with_codec(alert_audit),
     "what happened to one alert: where it ended, when and why (reads the output topics)"),
    ("explain", explain_client, _explain,
     "ask a running worker why an AD1 from a device's HAN would be suppressed or forwarded"),
)  # fmt: skip


def _demo_summary(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    return summarise(settings, codec_for(settings), [Path(path) for path in args.expected], args.timeout)


def _jobs_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=bounded(Bounds(int, 1, 64, "processes"), "--jobs"),
        default=None,
        help="processes to load with (default: 1 for files under 8 MB, else one per CPU up to 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poa-filter",
        description="Suppresses AD1 power-outage alerts caused by firmware activations (SEC MP102B).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = _subcommand(commands, "worker", help="run the filter")
    worker.set_defaults(run=_worker)

    tracked = _subcommand(commands, "load-tracked", help="load a tracked-list CSV (device_id[,manufacturer,model,...])")
    tracked.add_argument("csv", metavar="CSV")
    tracked.add_argument(
        "--replace",
        action="store_true",
        help="also remove every listed device that is not in the file (skipped if any row is rejected)",
    )
    tracked.add_argument(
        "--allow-empty",
        action="store_true",
        help="with --replace, accept a file with no rows: it removes every device from the list",
    )
    tracked.set_defaults(run=_load(TRACKED))
    _jobs_flag(tracked)

    inventory = _subcommand(
        commands,
        "load-inventory",
        help="load an inventory CSV (device_id,device_type,chf_id[,mpxn,postcode,updated_at])",
    )
    inventory.add_argument("csv", metavar="CSV")
    inventory.set_defaults(run=_load(INVENTORY))
    _jobs_flag(inventory)

    simulate = _subcommand(
        commands,
        "simulate",
        help="write a simulated estate and scenario, load the estate and play the scenario",
        description="Writes OUT/tracked.csv, OUT/inventory.csv and OUT/expected.json, creates missing input "
        "topics, loads the CSVs with the load-tracked/load-inventory code, then produces the scenario.",
    )
    simulate.add_argument(
        "--homes",
        type=bounded(Bounds(int, sim.MIN_HOMES, 10_000_000, "premises"), "--homes"),
        default=200,
        help="number of premises (default 200)",
    )
    simulate.add_argument(
        "--seed",
        type=bounded(Bounds(int, 0, 2**63 - 1, "a random seed"), "--seed"),
        default=1,
        help="random seed: same seed, same output (default 1)",
    )
    simulate.add_argument("--out", default="demo-output", help="folder for the CSVs and expected.json")
    simulate.add_argument("--base-time", default=sim.DEFAULT_BASE_TIME, help="ISO-8601 start of the scenario")
    simulate.add_argument(
        "--tracked-fraction",
        type=bounded(Bounds(float, 0, 1, "a share of the homes"), "--tracked-fraction"),
        default=0.3,
        help="share of homes whose ESME is tracked (default 0.3)",
    )
    simulate.add_argument(
        "--partitions",
        type=bounded(Bounds(int, 1, 10_000, "partitions"), "--partitions"),
        default=3,
        help="partitions of input topics it creates",
    )
    simulate.add_argument(
        "--format",
        choices=sim.FORMATS,
        default=sim.AVRO,
        help="write the records as the project's Avro records (default) or as DUIS documents, the DSP's own, "
        "stamped with their received_at (so give a --base-time within the last 30 days)",
    )
    simulate.add_argument("--no-load", action="store_true", help="do not load the CSVs onto the reference topics")
    simulate.add_argument("--no-play", action="store_true", help="do not produce the scenario records")
    simulate.set_defaults(run=_simulate)

    publish = _subcommand(
        commands,
        "publish-duis",
        help="publish DUIS documents (files, folders, - for stdin) to the input topic each belongs on",
        description=publish_duis.DESCRIPTION,
    )
    publish_duis.add_arguments(publish)
    publish.set_defaults(run=_publish_duis)

    summary = _subcommand(commands, "demo-summary", help="check the filter's outputs against a simulated scenario")
    summary.add_argument(
        "--expected",
        required=True,
        action="append",
        metavar="FILE",
        help="expected.json written by simulate; repeat it for scenarios played on the same topics",
    )
    summary.add_argument(
        "--timeout",
        type=bounded(Bounds(float, 0, 86_400, "seconds"), "--timeout"),
        default=120.0,
        help="seconds to wait (default 120)",
    )
    summary.set_defaults(run=_demo_summary)

    for name, tool, run, help_text in _TOOLS:
        sub = _subcommand(commands, name, help=help_text, description=tool.DESCRIPTION)
        tool.add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(settings_from_args(args))
        return int(args.run(args))
    except _EXPECTED_ERRORS as exc:
        message = str(exc)
    except OSError as exc:
        message = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    except KafkaException as exc:
        message = f"Kafka error: {exc}"
    except KeyboardInterrupt:
        return 130
    print(f"poa-filter {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
