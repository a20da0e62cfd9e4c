"""The `poa-filter` console script (contract 7): worker, bulk loaders, simulator and demo summary.

Every subcommand takes the same settings flags; a flag overrides its environment variable, which
overrides the default, so one environment can drive the worker, the loaders and the demo alike.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from pipeline.settings import Settings, Topics
from pipeline.tools import estate_simulator as sim
from pipeline.tools.bulk_producer import DeliveryFailed, TopicMissing
from pipeline.tools.csv_loaders import INVENTORY, TRACKED, CsvFileError, CsvKind, LoadReport, load_csv
from pipeline.tools.demo_summary import ExpectedFileError, summarise
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.schema_registry import SchemaRegistryClient


def _non_negative(kind: Callable[[str], int | float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
        return value

    parse.__name__ = kind.__name__
    return parse


# Flag name -> (Settings field, type) for the scalar settings.
_SETTING_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "--bootstrap-servers": ("bootstrap_servers", str),
    "--app-id": ("app_id", str),
    "--data-dir": ("data_dir", str),
    "--schema-registry-url": ("schema_registry_url", str),
    "--metrics-port": ("metrics_port", _non_negative(int)),
    "--window-minutes": ("window_minutes", _non_negative(int)),
    "--lead-in-minutes": ("lead_in_minutes", _non_negative(int)),
    "--max-future-days": ("max_future_days", _non_negative(int)),
    "--max-hold-seconds": ("max_hold_seconds", _non_negative(float)),
    "--partition-check-seconds": ("partition_check_seconds", _non_negative(float)),
}
_TOPIC_PREFIX = "topic_"


class CliError(Exception):
    """An expected failure with a message for the operator: exit code 2, no traceback."""


_EXPECTED_ERRORS = (
    CliError,
    CsvFileError,
    TopicMissing,
    DeliveryFailed,
    sim.SimulationError,
    ExpectedFileError,
)


def _settings_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("settings (each overrides its environment variable, see contract 7)")
    for flag, (name, kind) in _SETTING_FLAGS.items():
        env = "KAFKA_BOOTSTRAP_SERVERS" if name == "bootstrap_servers" else f"POA_{name.upper()}"
        default = getattr(Settings(), name)
        group.add_argument(
            flag,
            dest=name,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=f"${env}, default {default}",
        )
    for topic in fields(Topics):
        group.add_argument(
            f"--topic-{topic.name.replace('_', '-')}",
            dest=_TOPIC_PREFIX + topic.name,
            default=argparse.SUPPRESS,
            metavar="TOPIC",
            help=f"$POA_TOPIC_{topic.name.upper()}, default {topic.default}",
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings.from_env() with every flag given on the command line applied on top."""
    try:
        settings = Settings.from_env()
    except SystemExit as exc:  # from_env's way of saying an environment variable is malformed
        raise CliError(str(exc.code)) from None
    given = vars(args)
    topics = {t.name: given[_TOPIC_PREFIX + t.name] for t in fields(Topics) if _TOPIC_PREFIX + t.name in given}
    scalars = {name: given[name] for name, _ in _SETTING_FLAGS.values() if name in given}
    return replace(settings, topics=replace(settings.topics, **topics), **scalars)


def codec_for(settings: Settings) -> AvroCodec:
    """The Avro codec, with Confluent framing when a schema registry is configured (contract 4)."""
    registry = SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
    return AvroCodec(registry=registry)


def _worker(args: argparse.Namespace) -> int:
    from pipeline.worker.filter_worker import run_worker

    run_worker(settings_from_args(args))
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
        replace_list = getattr(args, "replace", False)
        return _print_load(load_csv(kind, args.csv, settings_from_args(args), codec_for, replace_list, args.jobs))

    return run


def _simulate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    out = Path(args.out)
    base_time = sim.parse_base_time(args.base_time)
    estate = sim.build_estate(args.homes, args.seed, args.tracked_fraction, base_time)
    scenario = sim.build_scenario(estate, args.seed, base_time, settings)
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
    )
    labels = [a.expected for a in scenario.alerts]
    print(
        f"wrote {tracked_csv}, {inventory_csv} and {expected}: {len(estate.homes)} homes, "
        f"{len(estate.tracked)} tracked ESMEs, {len(labels)} alerts "
        f"({labels.count(sim.FORWARD)} to forward, {labels.count(sim.SUPPRESS)} to suppress, "
        f"{labels.count(sim.DEAD_LETTER)} to dead-letter)"
    )
    if args.no_load and args.no_play:
        return 0
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


def _demo_summary(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    return summarise(settings, codec_for(settings), Path(args.expected), args.timeout)


def _jobs_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        help="processes to load with (default: 1 for files under 8 MB, else one per CPU up to 4)",
    )


def _positive_int(text: str) -> int:
    value = _non_negative(int)(text)
    if not value:
        raise argparse.ArgumentTypeError("must be at least 1")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    common = _settings_parser()
    parser = argparse.ArgumentParser(
        prog="poa-filter",
        description="Suppresses AD1 power-outage alerts caused by firmware activations (SEC MP102B).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", parents=[common], help="run the filter")
    worker.set_defaults(run=_worker)

    tracked = commands.add_parser(
        "load-tracked", parents=[common], help="load a tracked-list CSV (device_id[,manufacturer,model,...])"
    )
    tracked.add_argument("csv", metavar="CSV")
    tracked.add_argument(
        "--replace",
        action="store_true",
        help="also remove every listed device that is not in the file (skipped if any row is rejected)",
    )
    tracked.set_defaults(run=_load(TRACKED))
    _jobs_flag(tracked)

    inventory = commands.add_parser(
        "load-inventory",
        parents=[common],
        help="load an inventory CSV (device_id,device_type,chf_id[,mpxn,...])",
    )
    inventory.add_argument("csv", metavar="CSV")
    inventory.set_defaults(run=_load(INVENTORY))
    _jobs_flag(inventory)

    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="write a simulated estate and scenario, load the estate and play the scenario",
        description="Writes OUT/tracked.csv, OUT/inventory.csv and OUT/expected.json, creates missing input "
        "topics, loads the CSVs with the load-tracked/load-inventory code, then produces the scenario.",
    )
    simulate.add_argument("--homes", type=int, default=200, help="number of premises (default 200)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed: same seed, same output (default 1)")
    simulate.add_argument("--out", default="demo-output", help="folder for the CSVs and expected.json")
    simulate.add_argument("--base-time", default=sim.DEFAULT_BASE_TIME, help="ISO-8601 start of the scenario")
    simulate.add_argument(
        "--tracked-fraction",
        type=float,
        default=0.3,
        help="share of homes whose ESME is tracked (default 0.3)",
    )
    simulate.add_argument("--partitions", type=int, default=3, help="partitions of input topics it creates")
    simulate.add_argument("--no-load", action="store_true", help="do not load the CSVs onto the reference topics")
    simulate.add_argument("--no-play", action="store_true", help="do not produce the scenario records")
    simulate.set_defaults(run=_simulate)

    summary = commands.add_parser(
        "demo-summary", parents=[common], help="check the filter's outputs against a simulated scenario"
    )
    summary.add_argument("--expected", required=True, help="expected.json written by simulate")
    summary.add_argument("--timeout", type=_non_negative(float), default=120.0, help="seconds to wait (default 120)")
    summary.set_defaults(run=_demo_summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
