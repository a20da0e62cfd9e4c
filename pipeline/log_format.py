"""Log lines on stderr: text for people (the default) or, with POA_LOG_FORMAT=json, one JSON object a line for
log shippers, carrying the worker's identity and the topic, partition and offset a log call passes in `extra`.

Secrets never reach a line: values under secret-bearing keys in `extra` (at any depth) are replaced, whichever
format is in force.
"""

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
# Keys whose values are credentials: librdkafka's sasl.password, ssl.key.password, a bearer token, basic auth ...
_SECRET_KEY = re.compile(
    r"passw(or)?d|passphrase|secret|token|credential|authori[sz]ation|api[-_.]?key|private[-_.]?key"
    r"|jaas|oauthbearer[-_.]config|key[-_.]pem",  # ssl.key.pem: librdkafka's private key given inline
    re.IGNORECASE,
)
# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redacted(value: Any) -> Any:
    """`value` with the values under secret-bearing keys replaced, in nested mappings and sequences too."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redacted(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(redacted(v) for v in value)
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


class _RedactSecrets(logging.Filter):
    """Redacts mappings among a record's message arguments, e.g. `log.info("config %s", config)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = redacted(record.args)
        return True


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """What a log call passed in `extra`, with secrets redacted."""
    return redacted({k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, app_id, instance (once known), then the extras."""

    def __init__(self, app_id: str) -> None:
        super().__init__()
        self.app_id = app_id
        self.instance: str | None = None

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "app_id": self.app_id,
        }
        if self.instance is not None:
            line["instance"] = self.instance
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        for key, value in extras(record).items():
            line.setdefault(key, value)  # an extra never overwrites the fields above
        return json.dumps(line, default=str, ensure_ascii=False)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time of the call (as pytest and daemons may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Install the one stderr handler of the format in `settings` on the root logger (again: replaces it)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.addFilter(_RedactSecrets())
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter(settings.app_id) if json_lines else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format


def identify_instance(instance_id: str) -> None:
    """Name the worker instance on every JSON line from now on (the worker knows it once it has its state)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _StderrHandler) and isinstance(handler.formatter, JsonFormatter):
            handler.formatter.instance = instance_id
