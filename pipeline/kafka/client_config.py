"""The client-configuration file (`KAFKA_CLIENT_CONFIG`): how every client reaches a secured cluster.

A librdkafka properties file as `kcat -F` reads it: `key=value` lines, `#` comments, blank lines. It may
say how to connect (TLS, SASL, certificates, time-outs), never how the filter reads and writes: the
properties behind its exactly-once guarantee are fixed in `clients.py`, and a file that sets one is
refused with the line that does. The brokers come from `KAFKA_BOOTSTRAP_SERVERS` only, so that no file
can quietly send the worker to another cluster than the one its operator named.

Secret values (passwords, keys, tokens) never leave this module in a message: errors name the file, the
line and the key; a configuration is printed only through `pipeline.log_format.redacted`, and a message
from elsewhere that may quote a value through `redact_text`.
"""

import re
from collections.abc import Mapping

from pipeline.log_format import REDACTED, redacted
from pipeline.settings import SettingsError

CLIENT_CONFIG_ENV = "KAFKA_CLIENT_CONFIG"

# Properties whose value decides the filter's guarantees (exactly once, read_committed, its group and
# transactional IDs, offsets kept with the outputs), and where the brokers are: never from the file.
REFUSED: dict[str, str] = {
    "bootstrap.servers": "the brokers come from KAFKA_BOOTSTRAP_SERVERS",
    "metadata.broker.list": "the brokers come from KAFKA_BOOTSTRAP_SERVERS",
    "group.id": "the consumer group is POA_APP_ID",
    "group.instance.id": "static membership is decided by the filter",
    "group.protocol": "the group protocol is decided by the filter",
    "partition.assignment.strategy": "the assignment strategy is decided by the filter",
    "transactional.id": "transactional IDs are derived from POA_APP_ID",
    "transaction.timeout.ms": "the transaction timeout is decided by the filter",
    "isolation.level": "the filter reads read_committed",
    "enable.auto.commit": "offsets are committed in the filter's transactions",
    "enable.auto.offset.store": "offsets are committed in the filter's transactions",
    "auto.offset.reset": "where a new group starts reading is decided by the filter",
    "enable.partition.eof": "the filter relies on its own end-of-partition setting",
    "enable.idempotence": "the filter's producers are idempotent",
    "acks": "the filter's producers wait for all in-sync replicas",
    "request.required.acks": "the filter's producers wait for all in-sync replicas",
}

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ClientConfigError(SettingsError):
    """A client-configuration file that cannot be used; the message names the file and line, never a value.
    A setting's error like the others: a command stops at start with the message alone."""


def redact_text(text: str, properties: Mapping[str, object]) -> str:
    """`text` with every secret value of `properties` replaced, for messages that come from elsewhere
    (a client library's error may quote the value it rejected)."""
    shown = redacted(properties)
    for key, value in properties.items():
        if shown[key] == REDACTED and isinstance(value, str) and value:
            text = text.replace(value, REDACTED)
    return text


def parse_client_config(text: str, source: str) -> dict[str, str]:
    """The properties of a client-configuration file's text; `source` names it in errors."""
    properties: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        where = f"{source}:{number}"
        if not sep:
            raise ClientConfigError(f"{where}: expected key=value, found no '='")
        if not _KEY.match(key):
            raise ClientConfigError(f"{where}: {key!r} is not a property name" if key else f"{where}: empty key")
        if key.lower() in REFUSED:
            raise ClientConfigError(
                f"{where}: {key} may not be set in the client configuration ({REFUSED[key.lower()]})"
            )
        properties[key] = value
    return properties


def load_client_config(path: str) -> dict[str, str]:
    """The properties of the file at `path`; a clear error when it cannot be read or used."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ClientConfigError(f"{path}:{line}: not UTF-8 text") from None
    except OSError as exc:
        raise ClientConfigError(f"{path}: cannot read the client configuration ({exc.strerror})") from None
    return parse_client_config(text, path)
