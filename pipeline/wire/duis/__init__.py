"""DUIS XML on the input topics (contract 9): the DSP's own documents read into the records of contract 3."""

from pipeline.wire.duis.fast_alerts import read_device_alert
from pipeline.wire.duis.messages import (
    ACTIVATION_OUTCOME_TOPIC,
    ALERT_TOPIC,
    SERVICE_REQUEST_TOPIC,
    Classification,
    classify,
    read_activation_outcome,
    read_service_request,
)
from pipeline.wire.duis.xml_document import is_duis

__all__ = [
    "ACTIVATION_OUTCOME_TOPIC",
    "ALERT_TOPIC",
    "SERVICE_REQUEST_TOPIC",
    "Classification",
    "classify",
    "is_duis",
    "read_activation_outcome",
    "read_device_alert",
    "read_service_request",
]
