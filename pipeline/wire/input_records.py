"""The event topics' values, DUIS documents or our Avro records (contract 9), decoded and validated in one place.

Every reader of the service-request, outcome and alert topics (the state feed, the alert triage and its held
alerts, the evidence reader) decodes through here, so a DUIS document means the same to each. A value whose
first byte other than whitespace is `<` is DUIS: its `received_at` is the Kafka record's timestamp (the DSP
writes each record with the time it received the message; the XML of a request has none), so a DUIS
record without one is bad input. Anything else is read by the Avro codec (contract 4). Either way the
datum is validated as contract 6 says, and a problem is a BadInput (a RegistryUnavailable from the codec
when the schema registry cannot answer).
"""

from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.core.records import ActivationOutcome, DeviceAlert, ServiceRequest
from pipeline.wire import duis, validation
from pipeline.wire.avro_codec import AvroCodec

_RECEIVED_AT = "received_at (the Kafka record timestamp of a DUIS record)"


def received_at(timestamp: int | None) -> int:
    """A DUIS record's `received_at`: its Kafka timestamp (ms, None when the record has none), in range."""
    if timestamp is None:
        raise BadInput(f"{_RECEIVED_AT} is missing: the record has no timestamp")
    return validation.timestamp({_RECEIVED_AT: timestamp}, _RECEIVED_AT)


def service_request(
    codec: AvroCodec, value: bytes | None, timestamp: int | None, command_variants: frozenset[int]
) -> ServiceRequest | None:
    """The request in `value`, written with Kafka `timestamp`; None for a valid DUIS document the filter
    ignores (another service, a CommandVariant not in `command_variants`)."""
    if value is not None and duis.is_duis(value):
        datum = duis.read_service_request(value, received_at(timestamp), command_variants)
        return None if datum is None else validation.service_request(datum)
    return validation.service_request(codec.decode("ServiceRequest", value))


def activation_outcome(codec: AvroCodec, value: bytes | None, timestamp: int | None) -> ActivationOutcome | None:
    """The outcome in `value`, written with Kafka `timestamp`; None for a valid DUIS response that reports
    none ("command accepted", another service)."""
    if value is not None and duis.is_duis(value):
        datum = duis.read_activation_outcome(value, received_at(timestamp))
        return None if datum is None else validation.activation_outcome(datum)
    return validation.activation_outcome(codec.decode("ActivationOutcome", value))


def device_alert(codec: AvroCodec, value: bytes | None, timestamp: int | None) -> tuple[dict[str, Any], DeviceAlert]:
    """The alert in `value`, written with Kafka `timestamp`: its DeviceAlert datum (that of a DUIS alert has
    the document as `payload`: what its audit record holds) and the validated alert."""
    if value is not None and duis.is_duis(value):
        datum = duis.read_device_alert(value, received_at(timestamp))
    else:
        datum = codec.decode("DeviceAlert", value)
    return datum, validation.device_alert(datum)
