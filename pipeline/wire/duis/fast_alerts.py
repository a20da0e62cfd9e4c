"""A fast reader for DUIS alerts in the shape DCC writes them, held to the strict reader (`messages`).

The strict reader costs libxml2's parse and a walk of the tree, some 60-80 us an alert; a worker has about
40 us for everything. This one matches the whole document against one regular expression of a narrow
grammar: the `sr:` prefix bound on the root, the Header, one DCCAlertMessage (AD1's PowerOutageEvent) or
DeviceAlertMessage, an optional xmldsig signature of at most one attribute an element, ASCII only, no
comments, CDATA, entity references or markup declarations. Inside that grammar the document is well-formed
and its tree is the one the strict reader walks, so the values are read by the strict reader's own
functions. Anything outside it, any value the strict reader would refuse, and any document over
MAX_FAST_BYTES is declined (None), and the strict reader gives the verdict and the error: hostile input
(a DOCTYPE, entities, over 1 MiB, non-UTF-8) always reaches its refusal. The differential property tests
(tests/unit/wire/duis/test_fast_alerts.py) hold the two to the same record.
"""

import re
from functools import lru_cache
from typing import Any

from pipeline.core.bad_input import BadInput
from pipeline.core.records import OUTAGE_ALERT_CODE
from pipeline.wire.duis import messages
from pipeline.wire.duis.der import GbcsError
from pipeline.wire.duis.xml_document import DS, MAX_COUNTER, SR, date_time, duis_id, eui64, integer, token

MAX_FAST_BYTES = 16 * 1024  # DCC alerts are about 2 KB; bigger ones go to the strict reader (bounds the match)

_WS = rb"[ \t\r\n]*"
# Simple content the strict reader would see exactly as written: ASCII without markup, references or CR
# (which XML rewrites to LF).
_TEXT = rb"[\t\n\x20-\x25\x27-\x3b\x3d\x3f-\x7e]*"
# Signature text is not read, so CR and the white-space character references DCC wraps signatures with are
# allowed; `&` only in those.
_SIGNATURE_CHARS = rb"[\t\n\r\x20-\x25\x27-\x3b\x3d\x3f-\x7e]*"
_SIGNATURE_TEXT = _SIGNATURE_CHARS + rb"(?:&#(?:13|10|9|32|x[dDaA9]|x20);" + _SIGNATURE_CHARS + rb")*"
_ATTRIBUTE_VALUE = rb'"[\t\n\r\x20\x21\x23-\x25\x27-\x3b\x3d-\x7e]*"'  # no `"`, `&` or `<`
_SIGNATURE_DEPTH = 6  # Signature/KeyInfo/X509Data/X509IssuerSerial/X509IssuerName and one more


def _ds_element(depth: int) -> bytes:
    """An element of the signature, `depth` levels of children at most: `ds:` names, at most one attribute
    (so none repeated) whose name is no namespace declaration, the end tag matching the start tag."""
    name = b"n%d" % depth
    content = _SIGNATURE_TEXT
    if depth > 1:
        content += rb"(?:" + _ds_element(depth - 1) + _SIGNATURE_TEXT + rb")*"
    return (
        rb"<(?P<" + name + rb">ds:[A-Za-z][A-Za-z0-9]*)(?:[ \t\r\n]+(?!xml)[A-Za-z][A-Za-z0-9]*=" + _ATTRIBUTE_VALUE
        + rb")?[ \t\r\n]*(?:/>|>" + content + rb"</(?P=" + name + rb")[ \t\r\n]*>)"
    )  # fmt: skip


def _dcc_ds_element(local: bytes, content: bytes | None = None, attribute: bytes | None = None) -> bytes:
    """An element of the signature layout DCC writes, spelled out: sre matches literals several times faster
    than the generic element's repetitions. `content` None: empty (`<ds:X/>` or `<ds:X></ds:X>`)."""
    start = b"<ds:" + local + (b"" if attribute is None else rb"[ \t\r\n]+" + attribute + b"=" + _ATTRIBUTE_VALUE) + _WS
    end = b"</ds:" + local + _WS + b">"
    return start + (rb"(?:/>|>" + end + b")" if content is None else b">" + content + end)


def _in_order(*elements: bytes) -> bytes:
    return _WS + _WS.join(elements) + _WS


_DCC_SIGNATURE_CONTENT = _in_order(
    _dcc_ds_element(b"SignedInfo", _in_order(
        _dcc_ds_element(b"CanonicalizationMethod", attribute=b"Algorithm"),
        _dcc_ds_element(b"SignatureMethod", attribute=b"Algorithm"),
        rb"(?:" + _dcc_ds_element(b"Reference", _in_order(
            rb"(?:" + _dcc_ds_element(b"Transforms", _in_order(
                rb"(?:" + _dcc_ds_element(b"Transform", attribute=b"Algorithm") + _WS + rb")+"
            )) + rb")?",
            _dcc_ds_element(b"DigestMethod", attribute=b"Algorithm"),
            _dcc_ds_element(b"DigestValue", _SIGNATURE_TEXT),
        ), attribute=b"URI") + _WS + rb")+",
    )),
    _dcc_ds_element(b"SignatureValue", _SIGNATURE_TEXT),
    rb"(?:" + _dcc_ds_element(b"KeyInfo", _in_order(_dcc_ds_element(b"X509Data", _in_order(
        _dcc_ds_element(b"X509IssuerSerial", _in_order(
            _dcc_ds_element(b"X509IssuerName", _SIGNATURE_TEXT), _dcc_ds_element(b"X509SerialNumber", _SIGNATURE_TEXT)
        ))
    )))) + rb")?",
)  # fmt: skip
_ANY_SIGNATURE_CONTENT = _SIGNATURE_TEXT + rb"(?:" + _ds_element(_SIGNATURE_DEPTH - 1) + _SIGNATURE_TEXT + rb")*"


def _simple(local: bytes, group: str) -> bytes:
    return rb"<sr:" + local + rb">(?P<" + group.encode() + rb">" + _TEXT + rb")</sr:" + local + rb">" + _WS


def _optional(local: bytes, group: str) -> bytes:
    return rb"(?:" + _simple(local, group) + rb")?"


def _throttling_pattern(message: str) -> bytes:
    return _optional(b"ThrottledAlertSequenceId", message + "_sequence") + _optional(
        b"ThrottledAlertCount", message + "_count"
    )


_DCC_ALERT = (
    rb"<sr:DCCAlertMessage>" + _WS + _simple(b"DCCAlertCode", "dcc_code") + _throttling_pattern("dcc")
    + rb"(?:<sr:DCCAlert/>|<sr:DCCAlert>" + _WS + rb"(?:<sr:PowerOutageEvent>" + _WS
    + _simple(b"CommsHubDeviceID", "chf") + _simple(b"StartDateTime", "started") + _simple(b"MPxN", "mpxn")
    + rb"</sr:PowerOutageEvent>" + _WS + rb")?</sr:DCCAlert>)" + _WS + rb"</sr:DCCAlertMessage>"
)  # fmt: skip
_DEVICE_ALERT = (
    rb"<sr:DeviceAlertMessage>" + _WS + _simple(b"AlertCode", "code") + _throttling_pattern("device")
    + _simple(b"GBCSPayload", "payload") + rb"</sr:DeviceAlertMessage>"
)  # fmt: skip
_DOCUMENT = re.compile(
    _WS
    + rb'(?:<\?xml[ \t\r\n]+version="1\.0"(?:[ \t\r\n]+encoding="(?:UTF|utf)-8")?'
    + rb'(?:[ \t\r\n]+standalone="(?:yes|no)")?[ \t\r\n]*\?>' + _WS + rb")?"
    + rb'<sr:Response(?P<attributes>(?:[ \t\r\n]+[A-Za-z][A-Za-z0-9:]*="[^"<&]*")*)[ \t\r\n]*>' + _WS
    + rb"<sr:Header>" + _WS + _optional(b"RequestID", "request_id") + _simple(b"ResponseID", "response_id")
    + _simple(b"ResponseCode", "response_code") + _simple(b"ResponseDateTime", "responded") + rb"</sr:Header>" + _WS
    + rb"<sr:Body>" + _WS + rb"(?:" + _DCC_ALERT + rb"|" + _DEVICE_ALERT + rb")" + _WS + rb"</sr:Body>" + _WS
    + rb'(?:<ds:Signature xmlns:ds="' + DS.encode() + rb'">'
    + rb"(?:" + _DCC_SIGNATURE_CONTENT + rb"|" + _ANY_SIGNATURE_CONTENT + rb")</ds:Signature>" + _WS + rb")?"
    + rb"</sr:Response>" + _WS
)  # fmt: skip
_ATTRIBUTE = re.compile(rb'[ \t\r\n]+([A-Za-z][A-Za-z0-9:]*)="([^"<&]*)"')
_SCHEMA_VERSION = re.compile(rb"5(?:\.[0-9]+)?")
_NAMESPACES = {b"xmlns:sr": SR.encode(), b"xmlns:ds": DS.encode(), b"xmlns:ns3": DS.encode()}

_HEADER = "/Response/Header/"
_DCC_MESSAGE = "/Response/Body/DCCAlertMessage/"
_EVENT = _DCC_MESSAGE + "DCCAlert/PowerOutageEvent/"
_DEVICE_MESSAGE = "/Response/Body/DeviceAlertMessage/"


def read_device_alert(value: bytes, received_at: int) -> dict[str, Any]:
    """A DCC alert or a device alert as a DeviceAlert datum whose payload is the document as received (the
    strict reader's, by the fast reader when the document is in its shape); BadInput naming the element path."""
    datum = fast_device_alert(value, received_at)
    return messages.read_device_alert(value, received_at) if datum is None else datum


def fast_device_alert(value: bytes, received_at: int) -> dict[str, Any] | None:
    """The strict reader's datum for an alert in DCC's usual shape; None for any other document, valid or not."""
    if len(value) > MAX_FAST_BYTES:
        return None
    m = _DOCUMENT.fullmatch(value)
    if m is None or not _root_attributes(m["attributes"]):
        return None
    try:
        return _datum(m, value, received_at)
    except (BadInput, GbcsError):
        return None  # the strict reader names the fault


@lru_cache(maxsize=64)  # a DSP writes the same few root tags
def _root_attributes(attributes: bytes) -> bool:
    """The namespace declarations the grammar assumes, a DUIS 5.x schemaVersion, nothing else, none twice."""
    found = _ATTRIBUTE.findall(attributes)
    names = {name for name, _ in found}
    if len(names) != len(found) or b"xmlns:sr" not in names or b"schemaVersion" not in names:
        return False
    for name, text in found:
        if name == b"schemaVersion":
            if _SCHEMA_VERSION.fullmatch(text) is None:
                return False
        elif _NAMESPACES.get(name) != text:
            return False
    return True


def _datum(m: "re.Match[bytes]", value: bytes, received_at: int) -> dict[str, Any] | None:
    """The strict reader's checks and values, in its order, by its own functions (None: left to it)."""
    if (request_id := m["request_id"]) is not None:
        duis_id(request_id.decode(), _HEADER + "RequestID")
    response_id = duis_id(m["response_id"].decode(), _HEADER + "ResponseID")
    token(m["response_code"].decode(), _HEADER + "ResponseCode")
    date_time(m["responded"].decode(), _HEADER + "ResponseDateTime")
    fields: messages.AlertFields
    if (dcc_code := m["dcc_code"]) is not None:
        alert_code = token(dcc_code.decode(), _DCC_MESSAGE + "DCCAlertCode")
        _throttling(m, "dcc", _DCC_MESSAGE)
        if alert_code != OUTAGE_ALERT_CODE:
            fields = alert_code, response_id.originator, None, None
        elif m["chf"] is None:
            return None  # an AD1 without its PowerOutageEvent
        else:
            device_id = eui64(m["chf"].decode(), _EVENT + "CommsHubDeviceID")
            started_ms = date_time(m["started"].decode(), _EVENT + "StartDateTime")
            fields = alert_code, device_id, messages.read_mpxn(m["mpxn"].decode(), _EVENT + "MPxN"), started_ms
    else:
        code = messages.read_alert_code(m["code"].decode(), _DEVICE_MESSAGE + "AlertCode")
        _throttling(m, "device", _DEVICE_MESSAGE)
        fields = messages.device_alert_fields(code, response_id, m["payload"].decode(), _DEVICE_MESSAGE + "GBCSPayload")
    return messages.alert_datum(response_id, fields, value, received_at)


def _throttling(m: "re.Match[bytes]", group: str, message: str) -> None:
    if (sequence := m[group + "_sequence"]) is not None:
        integer(sequence.decode(), message + "ThrottledAlertSequenceId", 0, MAX_COUNTER)
    if (count := m[group + "_count"]) is not None:
        integer(count.decode(), message + "ThrottledAlertCount", 0, MAX_COUNTER)
