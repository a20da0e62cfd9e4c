"""The records the filter writes: DNO pass-through, audit (SuppressedAlert) and dead letters."""

import time
from typing import Any, NamedTuple

from pipeline import __version__
from pipeline.core.alert_decisions import Suppress

Outgoing = tuple[str, bytes | None, bytes]  # topic, key, value: what the hot path builds, by the million


class Output(NamedTuple):
    """A record to write; an Outgoing with names."""

    topic: str
    key: bytes | None
    value: bytes


def now_ms() -> int:
    """Wall clock, for the `decided_at`/`failed_at` audit stamps only; never for decisions."""
    return time.time_ns() // 1_000_000


def audit_fields(decision: Suppress) -> dict[str, Any]:
    """The SuppressedAlert fields after `alert`: which activation justified the suppression, and when."""
    version = decision.activation.version
    return {
        "esme_id": version.esme_id,
        "activation_request_id": version.request_id,
        "window_start": decision.activation.window.start,
        "window_end": decision.activation.window.end,
        "reason": decision.reason,
        "decided_at": now_ms(),
        "filter_version": __version__,
    }


def suppressed_alert(alert_datum: dict[str, Any], decision: Suppress) -> dict[str, Any]:
    return {"alert": alert_datum, **audit_fields(decision)}


def dead_letter(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, error: str
) -> dict[str, Any]:
    return {
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "value": value,
        "error": error,
        "failed_at": now_ms(),
    }
