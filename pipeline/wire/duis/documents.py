"""DUIS documents shaped as DCC writes them (the `sr:` prefix, two-digit fractions, an xmldsig signature), for
the simulator, the tests and the bench. Each reads back through `pipeline.wire.duis` to the fields it was given.

Times are epoch ms; the GBCS (DLMS) times of device alerts hold hundredths of a second, so give those in
multiples of 10 ms.
"""

import base64
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from pipeline.wire.duis import gbcs
from pipeline.wire.duis.xml_document import DS, SR, DuisId, duis_id

DCC_EUI = "90-B3-D5-1F-30-00-00-02"  # DCC's own originator ID on its alerts
DEFAULT_SCHEMA_VERSION = "5.4"
DEFAULT_FIRMWARE_VERSION = b"\x00\x01\x02\x03"
_SIGNATURE_BYTES = bytes(range(64))  # a stand-in: the filter never verifies signatures (the DSP has)
# The message code written for device alerts other than ECS80's: the filter reads only their frame's
# originator and date-time, so any code but the ones it decodes will do.
_OTHER_ALERT_MESSAGE_CODE = 0x0002
_SUPPLY_RESTORED_CODES = ("8F35", "8F36")
_XMLDSIG = (
    f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
    '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
    '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>'
    '<ds:Reference URI=""><ds:Transforms>'
    '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms>'
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
    "<ds:DigestValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ds:DigestValue></ds:Reference>"
    "</ds:SignedInfo><ds:SignatureValue>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4"
    "&#13;\nOTo7PD0+Pw==</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509IssuerSerial>"
    "<ds:X509IssuerName>CN=Z1,OU=01</ds:X509IssuerName>"
    "<ds:X509SerialNumber>1234567890123456789</ds:X509SerialNumber>"
    "</ds:X509IssuerSerial></ds:X509Data></ds:KeyInfo></ds:Signature>"
)


def date_time_text(ms: int) -> str:
    """xs:dateTime as DCC writes it (`2030-01-15T09:00:00.00Z`); three fraction digits when hundredths lose ms."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    fraction = f"{ms % 1000:03d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + (fraction[:2] if fraction[2] == "0" else fraction) + "Z"


def activate_firmware_request(
    request_id: str,
    *,
    command_variant: int = 5,
    execution_ms: int | None,
    firmware_hash: bytes,
    gbcs_counter: int | None = None,
    ciphered: bool = False,
    signed: bool = True,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> bytes:
    """An SR 11.3 Activate Firmware request. Variant 4 carries `ActivateFirmware`; 5, 6 and 7 a
    `SignedPreCommand` whose GBCS CS06 pre-command holds the hash, the execution time (None: immediate; the
    GBCS cancellation time is `gbcs.CANCELLATION_TIME_MS`) and `gbcs_counter` (default: the RequestID's)."""
    ids = duis_id(request_id, "request_id")
    execution = (
        "" if execution_ms is None else f"<sr:ExecutionDateTime>{date_time_text(execution_ms)}</sr:ExecutionDateTime>"
    )
    if command_variant == 4:
        body = (
            f"<sr:ActivateFirmware>{execution}<sr:FirmwareHash>{firmware_hash.hex().upper()}</sr:FirmwareHash>"
            "</sr:ActivateFirmware>"
        )
    else:
        counter = ids.counter if gbcs_counter is None else gbcs_counter
        command = gbcs.ActivateFirmwareCommand(firmware_hash=firmware_hash, counter=counter, execution_ms=execution_ms)
        payload = _payload(
            gbcs.CRA_COMMAND,
            DuisId(ids.originator, ids.target, counter),
            gbcs.ACTIVATE_FIRMWARE,
            gbcs.write_activate_firmware_command(command),
            ciphered,
        )
        body = f"<sr:SignedPreCommand>{execution}{payload}</sr:SignedPreCommand>"
    header = (
        f"<sr:RequestID>{escape(request_id)}</sr:RequestID><sr:CommandVariant>{command_variant}</sr:CommandVariant>"
        "<sr:ServiceReference>11.3</sr:ServiceReference><sr:ServiceReferenceVariant>11.3</sr:ServiceReferenceVariant>"
    )
    return _document("Request", header, body, signed, schema_version)


def activation_outcome_response(
    request_id: str,
    response_id: str,
    *,
    response_code: int | None,
    responded_ms: int,
    firmware_version: bytes = DEFAULT_FIRMWARE_VERSION,
    ciphered: bool = False,
    signed: bool = True,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> bytes:
    """The device's response to an 11.3: its execution outcome (`response_code` 0 to 3 or any other), or
    "command accepted" when `response_code` is None (the answer to a future-dated request or a cancellation)."""
    ids = duis_id(request_id, "request_id")
    outcome = None if response_code is None else gbcs.ExecutionOutcome(response_code, firmware_version)
    payload = _payload(
        gbcs.CRA_RESPONSE,
        DuisId(ids.target, ids.originator, ids.counter),
        gbcs.ACTIVATE_FIRMWARE,
        gbcs.write_activate_firmware_response(outcome),
        ciphered,
        date_time_ms=responded_ms // 1000 * 1000,
    )
    body = _response_message(payload)
    return _response(request_id, response_id, body, responded_ms, signed, schema_version)


def future_dated_activation_alert(
    request_id: str | None,
    response_id: str,
    *,
    alert_code: int,
    execution_ms: int,
    counter: int,
    response_code: int,
    responded_ms: int,
    firmware_version: bytes = DEFAULT_FIRMWARE_VERSION,
    ciphered: bool = False,
    signed: bool = True,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> bytes:
    """A 0x8F66 / 0x8F67 (future-dated activation done / not done) as DCC delivers it: an 11.3 ResponseMessage
    whose GBCS alert (from the ResponseID's originator, the device, to its recipient, the User) carries the
    request's `counter` and the outcome. The Header's RequestID is written when `request_id` is given."""
    response = duis_id(response_id, "response_id")
    alert = gbcs.FutureDatedActivationAlert(
        alert_code=alert_code,
        execution_ms=execution_ms,
        counter=counter,
        outcome=gbcs.ExecutionOutcome(response_code, firmware_version),
    )
    payload = _payload(
        gbcs.CRA_ALERT,
        response,
        gbcs.FUTURE_DATED_ACTIVATION_ALERT,
        gbcs.write_future_dated_activation_alert(alert),
        ciphered,
    )
    body = _response_message(
        f"<sr:FutureDatedDeviceAlertMessage><sr:FutureDatedAlertCode>{alert_code:04X}</sr:FutureDatedAlertCode>"
        f"{payload}<sr:InstructionNumber>1</sr:InstructionNumber>"
        "<sr:TotalCommandInstructions>1</sr:TotalCommandInstructions></sr:FutureDatedDeviceAlertMessage>"
    )
    return _response(request_id, response_id, body, responded_ms, signed, schema_version)


def power_outage_alert(
    response_id: str,
    *,
    chf_id: str,
    started_ms: int,
    mpxn: str,
    responded_ms: int,
    throttled: tuple[int, int] | None = None,
    signed: bool = True,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> bytes:
    """A DCC alert AD1 (Power Outage): the CH Function `chf_id` lost power at `started_ms`.
    `throttled` is (ThrottledAlertSequenceId, ThrottledAlertCount)."""
    event = (
        f"<sr:PowerOutageEvent><sr:CommsHubDeviceID>{escape(chf_id)}</sr:CommsHubDeviceID>"
        f"<sr:StartDateTime>{date_time_text(started_ms)}</sr:StartDateTime>"
        f"<sr:MPxN>{escape(mpxn)}</sr:MPxN></sr:PowerOutageEvent>"
    )
    return dcc_alert(
        response_id,
        dcc_alert_code="AD1",
        alert_content=event,
        responded_ms=responded_ms,
        throttled=throttled,
        signed=signed,
        schema_version=schema_version,
    )


def dcc_alert(
    response_id: str,
    *,
    dcc_alert_code: str,
    responded_ms: int,
    alert_content: str = "",
    throttled: tuple[int, int] | None = None,
    signed: bool = True,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> bytes:
    """A DCC alert of any code; `alert_content` is the XML inside `sr:DCCAlert`, written as given."""
    body = (
        f"<sr:DCCAlertMessage><sr:DCCAlertCode>{escape(dcc_alert_code)}</sr:DCCAlertCode>{_throttled(throttled)}"
        f"<sr:DCCAlert>{alert_content}</sr:DCCAlert></sr:DCCAlertMessage>"
    )
    return _response(None, response_id, body, responded_ms, signed, schema_version)


def device_alert(
    response_id: str,
    *,
    alert_code: str,
    alert_ms: int | None,
    responded_ms: int,
    outage_start_ms: int | None = None,
    outage_end_ms: int | None = None,
    throttled: tuple[int, int] | None = None,
    ciphered: bool = False,
    signed: bool = True,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> bytes:
    """A device alert (`alert_code` 4 hex digits, written as given) from the ResponseID's originator. 8F35 and
    8F36 carry the ESME's ECS80 Supply Outage Restored notification (0x0067) with the alert time and the
    outage's start and end; other codes a frame whose date-time is `alert_ms`."""
    response = duis_id(response_id, "response_id")
    if alert_code.upper() in _SUPPLY_RESTORED_CODES:
        notification = gbcs.SupplyOutageRestoredAlert(
            alert_code=int(alert_code, 16),
            alert_ms=alert_ms,
            outage_start_ms=outage_start_ms,
            outage_end_ms=outage_end_ms,
        )
        message_code, date_time_ms = gbcs.SUPPLY_OUTAGE_RESTORED_ALERT, None
        content = gbcs.write_supply_outage_restored_alert(notification)
    else:
        message_code, date_time_ms, content = _OTHER_ALERT_MESSAGE_CODE, alert_ms, bytes.fromhex(alert_code)
    payload = _payload(gbcs.CRA_ALERT, response, message_code, content, ciphered, date_time_ms=date_time_ms)
    body = (
        f"<sr:DeviceAlertMessage><sr:AlertCode>{escape(alert_code)}</sr:AlertCode>{_throttled(throttled)}"
        f"{payload}</sr:DeviceAlertMessage>"
    )
    return _response(None, response_id, body, responded_ms, signed, schema_version)


def _payload(
    cra_flag: int, ids: DuisId, message_code: int, content: bytes, ciphered: bool, date_time_ms: int | None = None
) -> str:
    """A GBCSPayload element: a signed GBCS frame from `ids.originator` to `ids.target` with counter `ids.counter`."""
    frame = gbcs.GbcsFrame(
        cra_flag=cra_flag,
        originator_counter=ids.counter,
        originator=ids.originator,
        recipient=ids.target,
        date_time_ms=date_time_ms,
        message_code=message_code,
        content=content,
        signature=_SIGNATURE_BYTES,
    )
    return f"<sr:GBCSPayload>{base64.b64encode(gbcs.write_frame(frame, ciphered=ciphered)).decode()}</sr:GBCSPayload>"


def _response_message(content: str) -> str:
    return (
        "<sr:ResponseMessage><sr:ServiceReference>11.3</sr:ServiceReference>"
        f"<sr:ServiceReferenceVariant>11.3</sr:ServiceReferenceVariant>{content}</sr:ResponseMessage>"
    )


def _throttled(throttled: tuple[int, int] | None) -> str:
    if throttled is None:
        return ""
    sequence_id, count = throttled
    return (
        f"<sr:ThrottledAlertSequenceId>{sequence_id}</sr:ThrottledAlertSequenceId>"
        f"<sr:ThrottledAlertCount>{count}</sr:ThrottledAlertCount>"
    )


def _response(
    request_id: str | None, response_id: str, body: str, responded_ms: int, signed: bool, schema_version: str
) -> bytes:
    request = "" if request_id is None else f"<sr:RequestID>{escape(request_id)}</sr:RequestID>"
    header = (
        f"{request}<sr:ResponseID>{escape(response_id)}</sr:ResponseID><sr:ResponseCode>I0</sr:ResponseCode>"
        f"<sr:ResponseDateTime>{date_time_text(responded_ms)}</sr:ResponseDateTime>"
    )
    return _document("Response", header, body, signed, schema_version)


def _document(root: str, header: str, body: str, signed: bool, schema_version: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>'
        f'<sr:{root} xmlns:sr="{SR}" xmlns:ns3="{DS}" schemaVersion={quoteattr(schema_version)}>'
        f"<sr:Header>{header}</sr:Header><sr:Body>{body}</sr:Body>{_XMLDSIG if signed else ''}</sr:{root}>"
    ).encode()
