"""Run-time configuration from environment variables (contract section 7); flags override them in `cli.py`.

Each setting names its environment variable here, and each numeric one its bounds, so the variable and the
flag of the same name are checked by the same rule, and a bad value is refused before anything starts.
"""

import math
import os
import re
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, TypeVar

from pipeline.core.event_time import DAY_MS, MINUTE_MS
from pipeline.core.operating_mode import Mode
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.read_frontier import DEFAULT_MAX_AHEAD_MS


class SettingsError(ValueError):
    """A setting the filter cannot run with; the message names the variable or flag, the value and what is allowed."""


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: finite, of `kind`, from `low` to `high` inclusive."""

    kind: type[int] | type[float]
    low: float
    high: float
    unit: str  # what the number counts, for messages and help

    def describe(self) -> str:
        if self.kind is int:
            return f"a whole number from {int(self.low)} to {int(self.high)} ({self.unit})"
        return f"a number from {self.low:g} to {self.high:g} ({self.unit})"

    def parse(self, raw: str, source: str) -> int | float:
        """The value of `raw` as written in `source` (a variable or a flag); ASCII digits only, no nan or inf."""
        text = raw.strip()
        pattern = _INTEGER if self.kind is int else _DECIMAL
        try:
            value = self.kind(text) if pattern.fullmatch(text) else None
        except ValueError:  # more digits than int() converts
            value = None
        if value is None:
            raise SettingsError(f"{source}={raw!r} is not {self.describe()}")
        self.check(value, source, raw)
        return value

    def check(self, value: object, source: str, raw: object = None) -> None:
        """SettingsError unless `value` (written as `raw` when it was read from text) is of `kind`, finite and
        within the bounds."""
        written = value if raw is None else raw
        kinds = (int,) if self.kind is int else (int, float)
        if not isinstance(value, kinds) or isinstance(value, bool) or not math.isfinite(value):
            raise SettingsError(f"{source}={written!r} is not {self.describe()}")
        if not self.low <= value <= self.high:
            raise SettingsError(f"{source}={written!r} is out of range: expected {self.describe()}")


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
LOG_FORMATS = ("text", "json")
DUIS_COMMAND_VARIANT = Bounds(int, 1, 9, "a DUIS CommandVariant")
DEFAULT_COMMAND_VARIANTS = frozenset({5, 7})
MODES = tuple(mode.value for mode in Mode)

T = TypeVar("T")


def _setting(
    default: T,
    env: str,
    bounds: Bounds | None = None,
    choices: tuple[str, ...] = (),
    readable_file: bool = False,
    each_in: Bounds | None = None,
) -> T:
    """A Settings field read from `env`; numeric ones carry their bounds, textual ones may carry choices, a
    `readable_file` names a file that must exist and be readable (its content is never shown), and a list
    of whole numbers written `5,7` has the bounds of each (`each_in`)."""
    metadata = {"env": env, "bounds": bounds, "choices": choices, "readable_file": readable_file, "each_in": each_in}
    return field(default=default, metadata=metadata)


def env_var(setting: Field[Any]) -> str | None:
    """The environment variable of a Settings field; None for fields that are not read from one (topics)."""
    return setting.metadata.get("env")


def bounds_of(setting: Field[Any]) -> Bounds | None:
    return setting.metadata.get("bounds")


def choices_of(setting: Field[Any]) -> tuple[str, ...]:
    return setting.metadata.get("choices", ())


def is_readable_file(setting: Field[Any]) -> bool:
    return bool(setting.metadata.get("readable_file"))


def each_in(setting: Field[Any]) -> Bounds | None:
    """The bounds of each number of a comma-separated list setting; None for other settings."""
    return setting.metadata.get("each_in")


def parse_number_list(raw: str, bounds: Bounds, source: str) -> frozenset[int | float]:
    """The comma-separated numbers of `raw` (at least one), each within `bounds`; SettingsError naming
    `source`, the value, the item at fault and what is allowed otherwise."""
    if not isinstance(raw, str):
        raise SettingsError(f"{source}={raw!r} is not text: expected a comma-separated list, e.g. 5,7")
    numbers: set[int | float] = set()
    for item in raw.split(","):
        try:
            numbers.add(bounds.parse(item, source))
        except SettingsError:
            raise SettingsError(
                f"{source}={raw!r}: {item.strip()!r} is not {bounds.describe()}; expected a comma-separated list "
                "of them, e.g. 5,7"
            ) from None
    return frozenset(numbers)


def _check_readable(path: str, source: str) -> None:
    """SettingsError unless `path` is a file this process can open for reading; the message names the
    variable and the file, never what the file holds."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SettingsError(f"{source}={path!r}: cannot read the file ({exc.strerror})") from None


@dataclass(frozen=True)
class Topics:
    service_requests: str = "dsp.service-requests"
    activation_outcomes: str = "dsp.activation-outcomes"
    alerts: str = "dsp.alerts"
    inventory: str = "dsp.inventory"
    tracked_devices: str = "dsp.tracked-devices"
    dno_alerts: str = "dno.alerts"
    suppressed: str = "dsp.alerts.suppressed"
    dead_letter: str = "poa-filter.dead-letter"
    released: str = "dsp.alerts.released"  # written by `poa-filter release` only, not a worker output
    control: str = "poa-filter.control"  # the operator's mode schedule (contract 8), written by `poa-filter mode`
    shadow: str = "dsp.alerts.shadow"  # shadow mode's would-be suppressions (contract 8), written by the worker

    @property
    def activation_inputs(self) -> tuple[str, str]:
        """Topics whose read position gates AD1 decisions (contract 5.7)."""
        return (self.service_requests, self.activation_outcomes)

    @property
    def reference_inputs(self) -> tuple[str, str]:
        """Compacted reference topics, read to the end before the first decision (contract 5.5)."""
        return (self.inventory, self.tracked_devices)

    @property
    def outputs(self) -> tuple[str, str, str]:
        return (self.dno_alerts, self.suppressed, self.dead_letter)


TOPIC_ENV = {f.name: f"POA_TOPIC_{f.name.upper()}" for f in fields(Topics)}


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = _setting("127.0.0.1:9092", "KAFKA_BOOTSTRAP_SERVERS")
    app_id: str = _setting("poa-filter", "POA_APP_ID")
    data_dir: str = _setting(".state/poa-filter", "POA_DATA_DIR")
    metrics_port: int = _setting(9108, "POA_METRICS_PORT", Bounds(int, 0, 65535, "a TCP port; 0 picks a free one"))
    # GET /explain without a token only here, on 127.0.0.1 apart from the probe and scrape port, which a proxy in
    # the pod can reach (contract 7; pipeline/worker/http_access.py). Unset: the metrics port + 1.
    explain_port: int | None = _setting(
        None, "POA_EXPLAIN_PORT",
        Bounds(int, 0, 65535, "a TCP port on 127.0.0.1 for /explain; unset: POA_METRICS_PORT + 1; 0 turns it off"),
    )  # fmt: skip
    schema_registry_url: str | None = _setting(None, "POA_SCHEMA_REGISTRY_URL")
    # A file holding `user:password` for the registry's HTTP basic authentication (a Kubernetes Secret).
    schema_registry_auth_file: str | None = _setting(None, "POA_SCHEMA_REGISTRY_AUTH_FILE", readable_file=True)
    # pipeline/kafka/client_config.py reads it
    client_config_file: str | None = _setting(None, "KAFKA_CLIENT_CONFIG")
    topics: Topics = field(default_factory=Topics)
    window_minutes: int = _setting(30, "POA_WINDOW_MINUTES", Bounds(int, 1, 1440, "minutes, at most a day"))
    lead_in_minutes: int = _setting(0, "POA_LEAD_IN_MINUTES", Bounds(int, 0, 1440, "minutes, at most a day"))
    max_future_days: int = _setting(30, "POA_MAX_FUTURE_DAYS", Bounds(int, 1, 366, "days, at most a year"))
    # 30 s: long enough for a worker to read a backlog of service requests past a held alert
    # (it reads them at >100k records/s), short against the DNO's 3-minute outage event windows.
    # At most an hour: an alert held longer is as good as lost to the DNO.
    max_hold_seconds: float = _setting(
        30.0, "POA_MAX_HOLD_SECONDS", Bounds(float, 0, 3600, "seconds; 0 forwards at once, at most an hour")
    )
    # Contract rule 9: evidence of a genuine outage is looked for in [t - B, t + A] around an AD1 at t that
    # rule 5 would suppress; K other HANs of its postcode sector make a storm (0: no storm evidence); the
    # grace is the DSP's promise of the longest it takes to write a record after receiving it (rule 7).
    evidence_before_minutes: int = _setting(
        10, "POA_EVIDENCE_BEFORE_MINUTES", Bounds(int, 0, 1440, "minutes, at most a day")
    )
    evidence_after_minutes: int = _setting(
        3, "POA_EVIDENCE_AFTER_MINUTES", Bounds(int, 0, 60, "minutes, at most an hour: AD1s in windows wait this long")
    )
    storm_min_hans: int = _setting(
        3, "POA_STORM_MIN_HANS", Bounds(int, 0, 10_000, "CH Functions; 0 turns storm evidence off")
    )
    evidence_grace_seconds: float = _setting(
        30.0, "POA_EVIDENCE_GRACE_SECONDS", Bounds(float, 0, 3600, "seconds, at most an hour")
    )
    # A record whose received_at is further ahead of the wall clock when it is read moves no read clock
    # (contract 6): only a broken clock puts the DSP's receipt time that far ahead. A replay or test of
    # synthetic data dated in the future raises it; nothing else about the decisions changes.
    max_clock_ahead_seconds: int = _setting(
        DEFAULT_MAX_AHEAD_MS // 1000, "POA_MAX_CLOCK_AHEAD_SECONDS",
        Bounds(int, 1, 10_000_000_000, "seconds a record's time may be ahead of the wall clock and move a clock"),
    )  # fmt: skip
    # How often the worker looks for partitions the DSP added to an input topic: each look is a blocking
    # metadata request, so not more often than twice a second.
    partition_check_seconds: float = _setting(
        30.0, "POA_PARTITION_CHECK_SECONDS", Bounds(float, 0.5, 3600, "seconds, at least 0.5, at most an hour")
    )
    log_format: str = _setting("text", "POA_LOG_FORMAT", choices=LOG_FORMATS)
    # The CommandVariants of a DUIS SR 11.3 that count (contract 9): 5 and 7 are sent to the device over the
    # WAN; 4 (before the User signs it) and 6 (local delivery, run at a time nobody knows) are ignored.
    duis_command_variants: str = _setting(
        ",".join(map(str, sorted(DEFAULT_COMMAND_VARIANTS))), "POA_DUIS_COMMAND_VARIANTS", each_in=DUIS_COMMAND_VARIANT
    )
    # The mode of a deployment whose control topic holds no schedule yet (contract 8).
    initial_mode: str = _setting(Mode.FILTER.value, "POA_INITIAL_MODE", choices=MODES)
    # Protection of GET /explain (contract 7; pipeline/worker/http_access.py): a file holding a bearer token,
    # and the PEM certificate and private key the metrics port serves TLS with (both or neither).
    http_token_file: str | None = _setting(None, "POA_HTTP_TOKEN_FILE", readable_file=True)
    http_tls_cert_file: str | None = _setting(None, "POA_HTTP_TLS_CERT_FILE", readable_file=True)
    http_tls_key_file: str | None = _setting(None, "POA_HTTP_TLS_KEY_FILE", readable_file=True)

    def __post_init__(self) -> None:
        """Settings built in code are held to the same bounds as those read from the environment."""
        for setting in fields(self):
            value, env = getattr(self, setting.name), env_var(setting)
            bounds, choices = bounds_of(setting), choices_of(setting)
            if bounds is not None and value is not None:  # None: a default that follows another setting
                bounds.check(value, f"{setting.name} (${env})")
            if choices and value not in choices:
                raise SettingsError(f"{setting.name} (${env})={value!r} is not one of {', '.join(choices)}")
            if is_readable_file(setting) and value is not None:
                _check_readable(value, f"{setting.name} (${env})")
            if (each := each_in(setting)) is not None:
                parse_number_list(value, each, f"{setting.name} (${env})")
        if (self.http_tls_cert_file is None) != (self.http_tls_key_file is None):
            raise SettingsError("$POA_HTTP_TLS_CERT_FILE and $POA_HTTP_TLS_KEY_FILE are set together or not at all")

    @property
    def window_ms(self) -> int:
        return self.window_minutes * MINUTE_MS

    @property
    def lead_in_ms(self) -> int:
        return self.lead_in_minutes * MINUTE_MS

    @property
    def max_future_ms(self) -> int:
        return self.max_future_days * DAY_MS

    @property
    def command_variants(self) -> frozenset[int]:
        """The DUIS CommandVariants whose SR 11.3 requests count (`POA_DUIS_COMMAND_VARIANTS`)."""
        variants = parse_number_list(self.duis_command_variants, DUIS_COMMAND_VARIANT, "$POA_DUIS_COMMAND_VARIANTS")
        return frozenset(int(n) for n in variants)

    @property
    def max_clock_ahead_ms(self) -> int:
        return self.max_clock_ahead_seconds * 1000

    @property
    def evidence_policy(self) -> EvidencePolicy:
        return EvidencePolicy(
            self.evidence_before_minutes * MINUTE_MS, self.evidence_after_minutes * MINUTE_MS, self.storm_min_hans
        )

    @property
    def local_explain_port(self) -> int | None:
        """The port of the 127.0.0.1 listener for /explain: POA_EXPLAIN_PORT, by default the metrics port + 1 (a
        free port when that is 0); None when turned off."""
        if self.explain_port is not None:
            return self.explain_port or None
        if self.metrics_port == 0:
            return 0
        return self.metrics_port + 1 if self.metrics_port < 65535 else None

    @property
    def held_topic(self) -> str:
        """The topic of AD1s waiting for evidence (rule 7): the worker's own, named after the app ID, like every
        topic and group the filter owns (ACLs by prefix)."""
        return f"{self.app_id}.held-ad1s"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """The defaults with every non-empty variable applied; SettingsError for a value out of bounds."""
        env = os.environ if env is None else env
        topics = Topics(**{name: env[var] for name, var in TOPIC_ENV.items() if env.get(var)})
        given = {s.name: _parse(s, env[var], var) for s in fields(cls) if (var := env_var(s)) and env.get(var)}
        return replace(cls(topics=topics), **given)


def _parse(setting: Field[Any], raw: str, variable: str) -> Any:
    """The value of one setting as written in its environment variable."""
    bounds, choices = bounds_of(setting), choices_of(setting)
    if bounds is not None:
        return bounds.parse(raw, variable)
    if choices and raw not in choices:
        raise SettingsError(f"{variable}={raw!r} is not one of {', '.join(choices)}")
    if (each := each_in(setting)) is not None:
        parse_number_list(raw, each, variable)
    return raw
