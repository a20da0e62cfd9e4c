"""Run-time configuration from environment variables (contract section 7); flags override them in `cli.py`."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from pipeline.core.event_time import DAY_MS, MINUTE_MS


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


T = TypeVar("T", int, float)

_TOPIC_ENV = {f.name: f"POA_TOPIC_{f.name.upper()}" for f in fields(Topics)}


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "poa-filter"
    data_dir: str = ".state/poa-filter"
    metrics_port: int = 9108
    schema_registry_url: str | None = None
    topics: Topics = field(default_factory=Topics)
    window_minutes: int = 30
    lead_in_minutes: int = 0
    max_future_days: int = 30
    # 30 s: long enough for a worker to read a backlog of service requests past a held alert
    # (it reads them at >100k records/s), short against the DNO's 3-minute outage event windows.
    max_hold_seconds: float = 30.0
    # How often the worker looks for partitions the DSP added to an input topic.
    partition_check_seconds: float = 30.0

    @property
    def window_ms(self) -> int:
        return self.window_minutes * MINUTE_MS

    @property
    def lead_in_ms(self) -> int:
        return self.lead_in_minutes * MINUTE_MS

    @property
    def max_future_ms(self) -> int:
        return self.max_future_days * DAY_MS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        topics = Topics(**{name: env[var] for name, var in _TOPIC_ENV.items() if env.get(var)})
        base = cls(topics=topics)
        return replace(
            base,
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", base.bootstrap_servers),
            app_id=env.get("POA_APP_ID", base.app_id),
            data_dir=env.get("POA_DATA_DIR", base.data_dir),
            metrics_port=_number(env, "POA_METRICS_PORT", base.metrics_port, int),
            schema_registry_url=env.get("POA_SCHEMA_REGISTRY_URL") or None,
            window_minutes=_number(env, "POA_WINDOW_MINUTES", base.window_minutes, int),
            lead_in_minutes=_number(env, "POA_LEAD_IN_MINUTES", base.lead_in_minutes, int),
            max_future_days=_number(env, "POA_MAX_FUTURE_DAYS", base.max_future_days, int),
            max_hold_seconds=_number(env, "POA_MAX_HOLD_SECONDS", base.max_hold_seconds, float),
            partition_check_seconds=_number(
                env, "POA_PARTITION_CHECK_SECONDS", base.partition_check_seconds, float
            ),
        )


def _number(env: Mapping[str, str], name: str, default: T, kind: type[T]) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < 0:
        raise SystemExit(f"{name}={raw!r} must not be negative")
    return value
