"""The simulator's records written as the DSP holds them: DUIS documents with their GBCS payloads (contract 9).

Each document stands for one record of the simulated campaign and reads back, through the worker's DUIS readers,
as that record: an SR 11.3 as a signed pre-command (variants 5 and 7) or as the request to sign (variant 4, which
the filter ignores), an immediate outcome as the device's CS06 response, a future-dated one as its 0x8F66 /
0x8F67, an AD1 as DCC's alert, a Supply Outage Restored as the ESME's device alert.
"""

import itertools
from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.wire.duis import documents
from pipeline.wire.duis.xml_document import duis_id

DCC_ID = documents.DCC_EUI  # the originator of DCC alerts (AD1)
DNO_ID = "00-DB-12-D0-00-00-00-01"  # the network operator the alerts are addressed to
COUNTED_VARIANTS = frozenset({5, 7})  # the campaign's labels hold when these CommandVariants count, and not 4
_RESPONSE_CODES = {"SUCCESS": 0, "NO_IMAGE_HELD": 1, "HASH_MISMATCH": 2, "ACTIVATION_FAILURE": 3}
_PLACEHOLDER_TARGET = "00-00-00-00-00-00-00-00"


def whole_second(ms: int) -> int:
    """GBCS times hold whole seconds."""
    return ms - ms % 1000


def hundredths(ms: int) -> int:
    """DLMS date-times (device alerts) hold hundredths of a second."""
    return ms - ms % 10


class DuisWriter:
    """The documents of one simulated campaign; response IDs are numbered in the order written."""

    def __init__(self) -> None:
        self._responses = itertools.count(1)

    def request(self, datum: dict[str, Any], command_variant: int) -> bytes:
        """An SR 11.3 of `command_variant` (the simulator's request of another service reference, which the
        filter ignores, is written as a variant 4 never signed, which it ignores too). A RequestID that is not
        `EUI:EUI:counter` is written in the header of an otherwise good request, as a DSP might pass one on."""
        request_id = datum["request_id"]
        written = request_id if _is_duis_id(request_id) else _with_target(request_id, _PLACEHOLDER_TARGET)
        document = documents.activate_firmware_request(
            written,
            command_variant=command_variant if datum["service_reference_variant"] == "11.3" else 4,
            execution_ms=datum["execution_datetime"],
            firmware_hash=bytes.fromhex(datum["firmware_hash"]),
        )
        return _replace_element(document, "RequestID", written, request_id)

    def outcome(self, datum: dict[str, Any], executed_at: int | None) -> bytes:
        """The device's response to an immediate 11.3, or with `executed_at` its 0x8F66 (success) or 0x8F67."""
        request_id = datum["request_id"]
        supplier, esme, counter = request_id.split(":")
        response_id = f"{esme}:{supplier}:{next(self._responses)}"
        code = _RESPONSE_CODES[datum["outcome"]]
        if executed_at is None:
            return documents.activation_outcome_response(
                request_id, response_id, response_code=code, responded_ms=datum["received_at"]
            )
        return documents.future_dated_activation_alert(
            request_id,
            response_id,
            alert_code=0x8F66 if code == 0 else 0x8F67,
            execution_ms=whole_second(executed_at),
            counter=int(counter),
            response_code=code,
            responded_ms=datum["received_at"],
        )

    @staticmethod
    def alert_id(code: str, device: str, number: int) -> str:
        """The ResponseID: DCC's for an AD1, the device's own for a device alert."""
        return f"{DCC_ID if code == 'AD1' else device}:{DNO_ID}:{number}"

    @staticmethod
    def alert(datum: dict[str, Any]) -> bytes:
        if datum["alert_code"] == "AD1":
            return documents.power_outage_alert(
                datum["alert_id"],
                chf_id=datum["device_id"],
                started_ms=datum["raised_at"],
                mpxn=datum["mpxn"],
                responded_ms=datum["received_at"],
            )
        return documents.device_alert(
            datum["alert_id"], alert_code=datum["alert_code"], alert_ms=datum["raised_at"],
            responded_ms=datum["received_at"],
        )  # fmt: skip


def mismatched_device_alert(alert_id: str, frame_originator: str, received_at: int) -> bytes:
    """An 8F36 whose GBCS frame is from `frame_originator`, not from the ResponseID's originator: the worker
    dead-letters it, naming /Response/Body/DeviceAlertMessage/GBCSPayload."""
    _, recipient, counter = alert_id.split(":")
    written = f"{frame_originator}:{recipient}:{counter}"
    document = documents.device_alert(
        written, alert_code="8F36", alert_ms=hundredths(received_at), responded_ms=received_at
    )
    return _replace_element(document, "ResponseID", written, alert_id)


def _is_duis_id(text: str) -> bool:
    try:
        duis_id(text, "")
    except BadInput:
        return False
    return True


def _with_target(request_id: str, target: str) -> str:
    originator, _, counter = request_id.split(":")
    return f"{originator}:{target}:{counter}"


def _replace_element(document: bytes, name: str, written: str, wanted: str) -> bytes:
    """The document with the text of its one sr:`name` element changed from `written` to `wanted`."""
    if written == wanted:
        return document
    old, new = (f"<sr:{name}>{text}</sr:{name}>".encode() for text in (written, wanted))
    assert document.count(old) == 1, f"{name} {written} is not written once"
    return document.replace(old, new)
