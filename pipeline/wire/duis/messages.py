"""DUIS documents read into the datums the Avro codec gives for the same records (contract 9).

Each reader returns a dict shaped as `AvroCodec.decode` returns it (timestamps int epoch ms), for
`pipeline.wire.validation` to validate as it does Avro records; None for a valid document the filter ignores.
Bad input raises BadInput naming the element path.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.core.bad_input import BadInput
from pipeline.core.event_time import EARLIEST_MS, LATEST_MS
from pipeline.core.records import FIRMWARE_ACTIVATION_VARIANT, OUTAGE_ALERT_CODE, Outcome
from pipeline.wire import validation
from pipeline.wire.duis import gbcs
from pipeline.wire.duis.xml_document import (
    MAX_COUNTER,
    Children,
    DuisId,
    Element,
    Where,
    base64_binary,
    hex_binary,
    parse,
    path_of,
    token,
)

SERVICE_REQUEST_TOPIC = "service-request topic"
ACTIVATION_OUTCOME_TOPIC = "activation-outcome topic"
ALERT_TOPIC = "alert topic"

# SR 11.3 is a critical command: variant 4 asks DCC to transform it, 5 to 7 carry the User's signed pre-command.
_TRANSFORM_VARIANT = 4
_SIGNED_VARIANTS = frozenset({5, 6, 7})
_OUTCOMES = {0: Outcome.SUCCESS, 1: Outcome.NO_IMAGE_HELD, 2: Outcome.HASH_MISMATCH, 3: Outcome.ACTIVATION_FAILURE}
_FUTURE_DATED_ALERT_CODES = frozenset({0x8F66, 0x8F67})
_SUPPLY_RESTORED_ALERT_CODES = frozenset({0x8F35, 0x8F36})
_ALL_VARIANTS = frozenset(range(1, 10))
_HASH_BYTES = 32
_MPXN_MAX = 13
_ALERT_MESSAGES = ("DeviceAlertMessage", "DCCAlertMessage")
_RESPONSE_MESSAGES = ("ResponseMessage", *_ALERT_MESSAGES, "SMETS1ResponseMessage")
_T = TypeVar("_T")
AlertFields = tuple[str, str, str | None, int | None]  # alert_code, device_id, mpxn, raised_at


@dataclass(slots=True)  # not frozen: one is made for every document, and frozen ones cost more to make
class _Request:
    request_id: DuisId
    command_variant: int
    service_reference_variant: str
    body: Element


@dataclass(slots=True)
class _Response:
    request_id: DuisId | None
    response_id: DuisId | None
    responded_ms: int  # ResponseDateTime: checked, though the records take received_at from Kafka
    message: Element  # the one child of Body: ResponseMessage, DeviceAlertMessage, ...


@dataclass(frozen=True, slots=True)
class Classification:
    """Where a DUIS document belongs, for the tools that publish DUIS files (contract 2's topics and keys)."""

    topic: str  # SERVICE_REQUEST_TOPIC, ACTIVATION_OUTCOME_TOPIC or ALERT_TOPIC
    key: str  # the target device of a request, the device of a response, the originating device of an alert
    responded_ms: int | None  # a Response's ResponseDateTime; None for a Request


def read_service_request(value: bytes, received_at: int, command_variants: frozenset[int]) -> dict[str, Any] | None:
    """An SR 11.3 of a counted variant as a ServiceRequest datum; None for other requests (decoded first)."""
    return _service_request(_request(_root(value, "Request", SERVICE_REQUEST_TOPIC)), received_at, command_variants)


def read_activation_outcome(value: bytes, received_at: int) -> dict[str, Any] | None:
    """An 11.3 response's execution outcome, or an 8F66/8F67's, as an ActivationOutcome datum; None for
    "command accepted" and for every other response."""
    return _activation_outcome(_response(_root(value, "Response", ACTIVATION_OUTCOME_TOPIC)), received_at)


def read_device_alert(value: bytes, received_at: int) -> dict[str, Any]:
    """A DCC alert or a device alert as a DeviceAlert datum whose payload is the document as received: the
    strict reader, which `fast_alerts` is held to (`pipeline.wire.duis.read_device_alert` tries that first)."""
    return _device_alert(_response(_root(value, "Response", ALERT_TOPIC)), value, received_at)


def classify(value: bytes) -> Classification:
    """The topic and key of a DUIS document, read and validated in full as the worker will (BadInput otherwise);
    the receipt time is the publisher's to choose and check."""
    root = _root(value, None, "")
    if root.local == "Request":
        request = _request(root)
        if (datum := _service_request(request, EARLIEST_MS, _ALL_VARIANTS)) is not None:
            validation.service_request(datum)
        return Classification(SERVICE_REQUEST_TOPIC, request.request_id.target, None)
    response = _response(root)
    responded_ms = response.responded_ms
    if response.message.local in _ALERT_MESSAGES:
        alert = validation.device_alert(_device_alert(response, value, EARLIEST_MS))
        return Classification(ALERT_TOPIC, alert.device_id, responded_ms)
    if (datum := _activation_outcome(response, EARLIEST_MS)) is not None:
        key = validation.activation_outcome(datum).device_id
    elif response.request_id is not None:
        key = response.request_id.target
    elif response.response_id is not None:
        key = response.response_id.originator
    else:
        raise BadInput(f"{_header_path(response.message)}: neither RequestID nor ResponseID names the device")
    return Classification(ACTIVATION_OUTCOME_TOPIC, key, responded_ms)


def _service_request(request: _Request, received_at: int, command_variants: frozenset[int]) -> dict[str, Any] | None:
    if request.service_reference_variant != FIRMWARE_ACTIVATION_VARIANT:
        return None
    firmware_hash, execution_ms = _activation(request)
    if request.command_variant not in command_variants:
        return None
    return {
        "request_id": str(request.request_id),
        "service_reference_variant": FIRMWARE_ACTIVATION_VARIANT,
        "target_device_id": request.request_id.target,
        "execution_datetime": execution_ms,
        "firmware_hash": firmware_hash.hex(),
        "received_at": received_at,
    }


def _activation_outcome(response: _Response, received_at: int) -> dict[str, Any] | None:
    message = response.message
    if message.local == "SMETS1ResponseMessage":
        return None
    if message.local != "ResponseMessage":
        raise _wrong_topic(message, ACTIVATION_OUTCOME_TOPIC)
    children = message.children()
    children.required("ServiceReference").token()
    if children.required("ServiceReferenceVariant").token() != FIRMWARE_ACTIVATION_VARIANT:
        return None
    if (payload := children.optional("GBCSPayload")) is not None:
        children.end()
        return _immediate_outcome(response, payload, received_at)
    if (alert := children.optional("FutureDatedDeviceAlertMessage")) is not None:
        children.end()
        return _future_dated_outcome(response, alert, received_at)
    children.skip_rest()  # an acknowledgement, an error, a PreCommand to sign: no outcome
    return None


def _device_alert(response: _Response, value: bytes, received_at: int) -> dict[str, Any]:
    message = response.message
    if message.local not in _ALERT_MESSAGES:
        raise _wrong_topic(message, ALERT_TOPIC)
    if response.response_id is None:
        raise BadInput(f"{_header_path(message)}/ResponseID: missing (an alert's ResponseID is its ID)")
    if message.local == "DCCAlertMessage":
        fields = _dcc_alert_fields(message, response.response_id)
    else:
        fields = _device_alert_fields(message, response.response_id)
    return alert_datum(response.response_id, fields, value, received_at)


def alert_datum(response_id: DuisId, fields: AlertFields, value: bytes, received_at: int) -> dict[str, Any]:
    alert_code, device_id, mpxn, raised_at = fields
    return {
        "alert_id": str(response_id),
        "alert_code": alert_code,
        "device_id": device_id,
        "mpxn": mpxn,
        "raised_at": raised_at,
        "received_at": received_at,
        "payload": value,
    }


def _root(value: bytes, expected: str | None, topic: str) -> Element:
    """The document's root, a DUIS 5.x Request or Response: the `expected` one, else bad input on `topic`."""
    root = parse(value)
    if not (root.is_sr("Request") or root.is_sr("Response")):
        raise BadInput(f"{root.path}: the root element {root.describe()} is not a DUIS Request or Response")
    if expected is not None and root.local != expected:
        if root.local == "Response":
            raise _wrong_topic(_body_message(root), topic)
        raise BadInput(f"{root.path}: a Request on the {topic}")
    version = root.attribute("schemaVersion")
    if version is None:
        raise BadInput(f"{root.path}/@schemaVersion: missing")
    if not _is_schema_5(version):
        raise BadInput(f"{root.path}/@schemaVersion: {version[:60]!r} is not a DUIS 5.x schema version")
    return root


def _is_schema_5(version: str) -> bool:
    major, dot, minor = version.strip(" \t\r\n").partition(".")
    return major == "5" and (not dot or (minor.isascii() and minor.isdigit()))


def _body_message(root: Element) -> Element:
    """The Response's message element, for naming what it is when it is on the wrong topic."""
    for child in root.element_nodes():
        if child.is_sr("Body"):
            for message in child.element_nodes():
                return message
    return root


def _wrong_topic(message: Element, topic: str) -> BadInput:
    return BadInput(f"{message.path}: a {message.local} on the {topic}")


def _request(root: Element) -> _Request:
    children = root.children()
    header = children.required("Header").children()
    body = children.required("Body")
    children.end(signature=True)
    request_id = header.required("RequestID").duis_id()
    if (first := header.optional("FirstInSequence")) is not None:
        _boolean(first)
    if (preceding := header.optional("PrecedingServiceRequestID")) is not None:
        preceding.duis_id()
    command_variant = header.required("CommandVariant").integer(1, 9)
    header.required("ServiceReference").token()
    service_reference_variant = header.required("ServiceReferenceVariant").token()
    header.end()
    return _Request(request_id, command_variant, service_reference_variant, body)


def _boolean(element: Element) -> bool:
    text = element.token()
    if text not in ("true", "false", "1", "0"):
        raise BadInput(f"{element.path}: {text[:60]!r} is not a boolean (true, false, 1 or 0)")
    return text in ("true", "1")


def _activation(request: _Request) -> tuple[bytes, int | None]:
    """The firmware hash and the execution time of an 11.3, from the body its CommandVariant carries."""
    children = request.body.children()
    if request.command_variant == _TRANSFORM_VARIANT:
        command = children.required("ActivateFirmware")
        children.end()
        fields = command.children()
        execution = fields.optional("ExecutionDateTime")
        execution_ms = None if execution is None else execution.date_time()
        hash_element = fields.required("FirmwareHash")
        fields.end()
        firmware_hash = hash_element.hex_binary()
        if len(firmware_hash) != _HASH_BYTES:
            raise BadInput(f"{hash_element.path}: {len(firmware_hash)} bytes, expected {_HASH_BYTES}")
        return firmware_hash, execution_ms
    if request.command_variant in _SIGNED_VARIANTS:
        command = children.required("SignedPreCommand")
        children.end()
        fields = command.children()
        if (execution := fields.optional("ExecutionDateTime")) is not None:
            execution.date_time()  # checked, but the signed GBCS time is the one the meter acts on
        payload = fields.required("GBCSPayload")
        fields.end()
        return _signed_pre_command(request.request_id, payload)
    raise BadInput(
        f"{request.body.path.rsplit('/', 1)[0]}/Header/CommandVariant: {request.command_variant} is not a "
        "CommandVariant of SR 11.3 (4: for DCC to transform, 5 to 7: signed by the User)"
    )


def _signed_pre_command(request_id: DuisId, payload: Element) -> tuple[bytes, int | None]:
    frame = _frame(payload.text(), payload, gbcs.CRA_COMMAND, gbcs.ACTIVATE_FIRMWARE)
    command = _content(payload, gbcs.read_activate_firmware_command, frame.content)
    signed = DuisId(frame.originator, frame.recipient, frame.originator_counter)
    if signed != request_id or command.counter != request_id.counter:
        raise BadInput(
            f"{payload.path}: the signed command is {signed} (counter {command.counter} in the command), "
            f"but the RequestID is {request_id}"
        )
    return command.firmware_hash, command.execution_ms


def _frame(text: str, payload: Where, cra_flag: int, message_code: int | None) -> gbcs.GbcsFrame:
    """The GBCS frame of a GBCSPayload's `text`, of the kind the element's place in the document says it is."""
    frame = _content(payload, gbcs.read_frame, base64_binary(text, payload))
    if frame.cra_flag != cra_flag:
        raise BadInput(f"{path_of(payload)}: GBCS CRA flag {frame.cra_flag}, expected {cra_flag} ({_CRA[cra_flag]})")
    if message_code is not None and frame.message_code != message_code:
        raise BadInput(
            f"{path_of(payload)}: GBCS message code 0x{frame.message_code:04X}, expected 0x{message_code:04X}"
        )
    return frame


def _content(payload: Where, read: Callable[[bytes], _T], content: bytes) -> _T:
    """A GBCS frame's content read by `read`, its faults named by the GBCSPayload's path."""
    try:
        return read(content)
    except gbcs.GbcsError as e:
        raise BadInput(f"{path_of(payload)}: {e}") from None


_CRA = {gbcs.CRA_COMMAND: "a command", gbcs.CRA_RESPONSE: "a response", gbcs.CRA_ALERT: "an alert"}


def _response(root: Element) -> _Response:
    children = root.children()
    header = children.required("Header").children()
    body = children.required("Body").children()
    children.end(signature=True)
    request_id = None if (element := header.optional("RequestID")) is None else element.duis_id()
    response_id = None if (element := header.optional("ResponseID")) is None else element.duis_id()
    header.required("ResponseCode").token()
    responded_ms = header.required("ResponseDateTime").date_time()
    header.end()
    message = body.one_of(*_RESPONSE_MESSAGES)
    body.end()
    return _Response(request_id, response_id, responded_ms, message)


def _outcome(response_code: int) -> str:
    return _OUTCOMES.get(response_code, Outcome.UNKNOWN).value


def _immediate_outcome(response: _Response, payload: Element, received_at: int) -> dict[str, Any] | None:
    frame = _frame(payload.text(), payload, gbcs.CRA_RESPONSE, gbcs.ACTIVATE_FIRMWARE)
    outcome = _content(payload, gbcs.read_activate_firmware_response, frame.content)
    if outcome is None:
        return None  # "command accepted": a future-dated request or a cancellation, reported later
    if response.request_id is None:
        raise BadInput(f"{_header_path(payload)}/RequestID: missing (an 11.3 response names the request it answers)")
    return {
        "request_id": str(response.request_id),
        "device_id": response.request_id.target,
        "outcome": _outcome(outcome.response_code),
        "received_at": received_at,
    }


def _future_dated_outcome(response: _Response, message: Element, received_at: int) -> dict[str, Any]:
    children = message.children()
    code_element = children.required("FutureDatedAlertCode")
    alert_code = read_alert_code(code_element.text(), code_element)
    if alert_code not in _FUTURE_DATED_ALERT_CODES:
        raise BadInput(f"{code_element.path}: {alert_code:04X} is not a future-dated activation alert (8F66 or 8F67)")
    payload = children.required("GBCSPayload")
    for count in ("InstructionNumber", "TotalCommandInstructions"):  # checked where given; the filter needs neither
        if (element := children.optional(count)) is not None:
            element.integer(0, MAX_COUNTER)
    children.end()
    frame = _frame(payload.text(), payload, gbcs.CRA_ALERT, gbcs.FUTURE_DATED_ACTIVATION_ALERT)
    alert = _content(payload, gbcs.read_future_dated_activation_alert, frame.content)
    if alert.alert_code != alert_code:
        raise BadInput(
            f"{payload.path}: the GBCS alert is {alert.alert_code:04X}, but FutureDatedAlertCode {alert_code:04X}"
        )
    if not 1 <= alert.counter <= MAX_COUNTER:
        raise BadInput(f"{payload.path}: the request counter {alert.counter} is not from 1 to {MAX_COUNTER}")
    request_id = DuisId(frame.recipient, frame.originator, alert.counter)
    if response.request_id is not None and response.request_id != request_id:
        raise BadInput(
            f"{payload.path}: the alert reports on request {request_id}, but the Header's RequestID is "
            f"{response.request_id}"
        )
    return {
        "request_id": str(request_id),
        "device_id": frame.originator,
        "outcome": _outcome(alert.outcome.response_code),
        "received_at": received_at,
    }


def _header_path(element: Element) -> str:
    """/Response/Header, from any element under /Response/Body."""
    return element.path.split("/Body/", 1)[0] + "/Header"


def read_alert_code(text: str, at: Where) -> int:
    code = hex_binary(text, at)
    if len(code) != 2:
        raise BadInput(f"{path_of(at)}: {len(code)} bytes, expected 2 (an alert code such as 8F36)")
    return int.from_bytes(code, "big")


def _throttling(children: Children) -> None:
    """Throttled alerts are alerts like any other; the counts stay in the bytes."""
    if (sequence := children.optional("ThrottledAlertSequenceId")) is not None:
        sequence.integer(0, MAX_COUNTER)
    if (count := children.optional("ThrottledAlertCount")) is not None:
        count.integer(0, MAX_COUNTER)


def _dcc_alert_fields(message: Element, response_id: DuisId) -> AlertFields:
    children = message.children()
    alert_code = children.required("DCCAlertCode").token()
    _throttling(children)
    alert = children.required("DCCAlert")
    children.end()
    if alert_code != OUTAGE_ALERT_CODE:
        return alert_code, response_id.originator, None, None
    alert_children = alert.children()
    event = alert_children.required("PowerOutageEvent").children()
    alert_children.end()
    device_id = event.required("CommsHubDeviceID").eui64()
    started_ms = event.required("StartDateTime").date_time()
    mpxn_element = event.required("MPxN")
    event.end()
    return alert_code, device_id, read_mpxn(mpxn_element.text(), mpxn_element), started_ms


def read_mpxn(text: str, at: Where) -> str:
    mpxn = token(text, at)
    if len(mpxn) > _MPXN_MAX:
        raise BadInput(f"{path_of(at)}: {len(mpxn)} characters, expected 1 to {_MPXN_MAX}")
    return mpxn


def _device_alert_fields(message: Element, response_id: DuisId) -> AlertFields:
    children = message.children()
    code_element = children.required("AlertCode")
    alert_code = read_alert_code(code_element.text(), code_element)
    _throttling(children)
    payload = children.required("GBCSPayload")
    children.end()
    return device_alert_fields(alert_code, response_id, payload.text(), payload)


def device_alert_fields(alert_code: int, response_id: DuisId, payload_text: str, payload: Where) -> AlertFields:
    """A device alert's fields from its AlertCode and the text of its GBCSPayload (at `payload`). A device
    time outside the valid range is a broken clock: no time given (raised_at null), not a bad alert, so that
    a genuine Supply Outage Restored still reaches the DNO and counts as evidence."""
    frame = _frame(payload_text, payload, gbcs.CRA_ALERT, None)
    if frame.originator != response_id.originator:
        raise BadInput(
            f"{path_of(payload)}: the GBCS alert is from {frame.originator}, but the ResponseID's originator is "
            f"{response_id.originator}"
        )
    raised_at = frame.date_time_ms
    if frame.message_code == gbcs.SUPPLY_OUTAGE_RESTORED_ALERT:
        alert = _content(payload, gbcs.read_supply_outage_restored_alert, frame.content)
        if alert.alert_code != alert_code:
            raise BadInput(
                f"{path_of(payload)}: the GBCS alert is {alert.alert_code:04X}, but AlertCode {alert_code:04X}"
            )
        if alert.alert_ms is not None:
            raised_at = alert.alert_ms
    elif alert_code in _SUPPLY_RESTORED_ALERT_CODES:
        raise BadInput(
            f"{path_of(payload)}: AlertCode {alert_code:04X} comes in a GBCS message 0x"
            f"{gbcs.SUPPLY_OUTAGE_RESTORED_ALERT:04X} (ECS80), not 0x{frame.message_code:04X}"
        )
    if raised_at is not None and not EARLIEST_MS <= raised_at < LATEST_MS:
        raised_at = None
    return f"{alert_code:04X}", frame.originator, None, raised_at
