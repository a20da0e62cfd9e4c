"""Contract 9: each DUIS message read into the datum of its record (then validated as Avro records are), None
for what the filter ignores, and every fault a BadInput naming the element path and what is wrong."""

import base64
import re
from typing import Any

import pytest

from pipeline.core.bad_input import BadInput
from pipeline.core.records import Outcome
from pipeline.wire import validation
from pipeline.wire.duis import (
    ACTIVATION_OUTCOME_TOPIC,
    ALERT_TOPIC,
    SERVICE_REQUEST_TOPIC,
    Classification,
    classify,
    documents,
    gbcs,
    read_activation_outcome,
    read_device_alert,
    read_service_request,
)

USER = "90-B3-D5-1F-30-01-00-00"
ESME = "00-DB-12-34-56-78-90-A0"
CHF = "00-DB-12-34-56-78-90-A1"
COUNTER = 1_660_751_141_087
REQUEST_ID = f"{USER}:{ESME}:{COUNTER}"
RESPONSE_ID = f"{ESME}:{USER}:{COUNTER}"
ALERT_ID = f"{ESME}:{USER}:77"
DCC_ALERT_ID = f"{documents.DCC_EUI}:{USER}:5"
HASH = bytes(range(32))
T = 1_894_698_000_000  # 2030-01-15T09:00:00Z
R = T - 86_400_000  # received a day before
DEFAULT_VARIANTS = frozenset({5, 7})
ALL_VARIANTS = frozenset({4, 5, 6, 7})


def request(**changes: Any) -> bytes:
    fields: dict[str, Any] = {"command_variant": 5, "execution_ms": T, "firmware_hash": HASH, "signed": False}
    return documents.activate_firmware_request(REQUEST_ID, **(fields | changes))


def service_request(document: bytes, variants: frozenset[int] = ALL_VARIANTS) -> dict[str, Any] | None:
    datum = read_service_request(document, R, variants)
    if datum is not None:
        validation.service_request(datum)
    return datum


def outcome(document: bytes) -> dict[str, Any] | None:
    datum = read_activation_outcome(document, R)
    if datum is not None:
        validation.activation_outcome(datum)
    return datum


def alert(document: bytes) -> dict[str, Any]:
    datum = read_device_alert(document, R)
    validation.device_alert(datum)
    return datum


def refused(match: str) -> Any:
    return pytest.raises(BadInput, match=match)


# SR 11.3 requests.


@pytest.mark.parametrize("variant", [4, 5, 6, 7])
def test_an_activation_of_each_variant(variant: int) -> None:
    assert service_request(request(command_variant=variant)) == {
        "request_id": REQUEST_ID,
        "service_reference_variant": "11.3",
        "target_device_id": ESME,
        "execution_datetime": T,
        "firmware_hash": HASH.hex(),
        "received_at": R,
    }


def test_only_the_listed_variants_count_and_the_others_are_decoded_first() -> None:
    assert service_request(request(command_variant=4), DEFAULT_VARIANTS) is None
    assert service_request(request(command_variant=6), DEFAULT_VARIANTS) is None
    assert service_request(request(command_variant=7), DEFAULT_VARIANTS) is not None
    with refused(r"^/Request/Body/ActivateFirmware/FirmwareHash: 31 bytes, expected 32$"):
        service_request(request(command_variant=4, firmware_hash=HASH[:31]), DEFAULT_VARIANTS)


def test_the_signed_gbcs_time_and_hash_are_authoritative() -> None:
    document = request(execution_ms=T)
    xml_time = b"<sr:ExecutionDateTime>2030-01-15T09:00:00.00Z</sr:ExecutionDateTime>"
    assert xml_time in document
    other_time = document.replace(xml_time, b"<sr:ExecutionDateTime>2031-06-01T00:00:00Z</sr:ExecutionDateTime>")
    assert service_request(other_time) == service_request(document)
    assert service_request(document.replace(xml_time, b""))["execution_datetime"] == T  # type: ignore[index]


def test_an_immediate_signed_activation_has_no_execution_time() -> None:
    assert service_request(request(execution_ms=None))["execution_datetime"] is None  # type: ignore[index]


def test_cancellations() -> None:
    signed = service_request(request(execution_ms=gbcs.CANCELLATION_TIME_MS))
    assert signed is not None and signed["execution_datetime"] == gbcs.CANCELLATION_TIME_MS
    transform = request(command_variant=4, execution_ms=None).replace(
        b"<sr:ActivateFirmware>",
        b"<sr:ActivateFirmware><sr:ExecutionDateTime>3000-12-31T00:00:00.00Z</sr:ExecutionDateTime>",
    )
    assert service_request(transform)["execution_datetime"] == 32_535_129_600_000  # type: ignore[index]


def test_ciphered_pre_commands_are_unwrapped() -> None:
    assert service_request(request(ciphered=True)) == service_request(request())


def test_lower_case_ids_and_hex_and_new_lines_are_read() -> None:
    document = (
        request(command_variant=4)
        .replace(REQUEST_ID.encode(), f"\n    {REQUEST_ID.lower()}\n  ".encode())
        .replace(HASH.hex().upper().encode(), b"\n" + HASH.hex().encode() + b"\n")
    )
    assert service_request(document) == service_request(request(command_variant=4))


@pytest.mark.parametrize(
    ("time", "expected"),
    [("2030-01-15T09:00:00", T), ("2030-01-15T10:00:00+01:00", T), ("2030-01-15T09:00:00.123456789Z", T + 123)],
)
def test_execution_times_without_zone_with_offsets_and_nine_fraction_digits(time: str, expected: int) -> None:
    document = request(command_variant=4).replace(b"2030-01-15T09:00:00.00Z", time.encode())
    assert service_request(document)["execution_datetime"] == expected  # type: ignore[index]


def test_a_frame_that_disagrees_with_its_request_id_names_both() -> None:
    path = "/Request/Body/SignedPreCommand/GBCSPayload"
    with refused(
        rf"^{path}: the signed command is {USER}:{ESME}:{COUNTER + 1} \(counter {COUNTER + 1} in the "
        rf"command\), but the RequestID is {REQUEST_ID}$"
    ):
        service_request(request(gbcs_counter=COUNTER + 1))
    other_esme = "00-DB-12-34-56-78-90-FF"
    moved = request().replace(REQUEST_ID.encode(), f"{USER}:{other_esme}:{COUNTER}".encode())
    with refused(rf"^{path}: the signed command is {REQUEST_ID} .* but the RequestID is {USER}:{other_esme}:"):
        service_request(moved)
    other_user = request().replace(REQUEST_ID.encode(), f"90-B3-D5-1F-30-01-00-01:{ESME}:{COUNTER}".encode())
    with refused(rf"^{path}: the signed command is {REQUEST_ID} .* but the RequestID is 90-B3-D5-1F-30-01-00-01:"):
        service_request(other_user)


def test_a_frame_of_another_kind_is_refused() -> None:
    response = documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=0, responded_ms=T)
    payload = re.search(rb"<sr:GBCSPayload>([^<]*)</sr:GBCSPayload>", response)[1]  # type: ignore[index]
    document = re.sub(
        rb"<sr:GBCSPayload>[^<]*</sr:GBCSPayload>", b"<sr:GBCSPayload>" + payload + b"</sr:GBCSPayload>", request()
    )
    with refused(r"^/Request/Body/SignedPreCommand/GBCSPayload: GBCS CRA flag 2, expected 1 \(a command\)$"):
        service_request(document)


def test_a_broken_gbcs_payload_is_refused_with_its_path() -> None:
    frame = base64.b64encode(b"\xdf\x09\x01\x00").decode()
    document = re.sub(
        rb"<sr:GBCSPayload>[^<]*</sr:GBCSPayload>", f"<sr:GBCSPayload>{frame}</sr:GBCSPayload>".encode(), request()
    )
    with refused(r"^/Request/Body/SignedPreCommand/GBCSPayload: \S"):
        service_request(document)
    stray = document.replace(frame.encode(), frame[:4].encode() + b"!" + frame[4:].encode())
    with refused(r"^/Request/Body/SignedPreCommand/GBCSPayload: '.*' is not base64"):
        service_request(stray)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (f":{COUNTER}<", ":18446744073709551616<", r"^/Request/Header/RequestID: counter '18446744073709551616'"),
        (ESME, "00-DB-12-34-56-78 90-A0", r"^/Request/Header/RequestID: '00-DB-12-34-56-78 90-A0' is not an EUI-64"),
        (
            "<sr:CommandVariant>5<",
            "<sr:CommandVariant>2<",
            r"^/Request/Header/CommandVariant: 2 is not a CommandVariant of SR 11.3",
        ),
        (
            "<sr:CommandVariant>5<",
            "<sr:CommandVariant>4<",
            r"^/Request/Body: expected ActivateFirmware, found SignedPreCommand$",
        ),
        (
            "<sr:CommandVariant>5<",
            "<sr:CommandVariant>10<",
            r"^/Request/Header/CommandVariant: '10' is not an integer from 1 to 9$",
        ),
        ("<sr:ServiceReference>11.3<", "<sr:ServiceReference> <", r"^/Request/Header/ServiceReference: empty$"),
        ("</sr:Body>", "</sr:Body><sr:Extra/>", r"^/Request: unexpected element Extra after Body$"),
    ],
)
def test_bad_requests(old: str, new: str, match: str) -> None:
    document = request()
    assert old.encode() in document
    with refused(match):
        service_request(document.replace(old.encode(), new.encode(), 1))


def test_sequenced_request_headers_are_read() -> None:
    document = request().replace(
        b"</sr:RequestID>",
        f"</sr:RequestID><sr:FirstInSequence>true</sr:FirstInSequence>"
        f"<sr:PrecedingServiceRequestID>{USER}:{ESME}:1</sr:PrecedingServiceRequestID>".encode(),
    )
    assert service_request(document) == service_request(request())


def test_other_service_references_are_ignored_unread() -> None:
    document = (
        request()
        .replace(b">11.3<", b">4.1.1<")
        .replace(b"<sr:SignedPreCommand>", b"<sr:ReadInstantaneousImportRegisters/><x>")
    )
    assert service_request(document.replace(b"</sr:SignedPreCommand>", b"</x>")) is None


@pytest.mark.parametrize(
    ("document", "match"),
    [
        (
            documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn="1", responded_ms=T),
            r"^/Response/Body/DCCAlertMessage: a DCCAlertMessage on the service-request topic$",
        ),
        (
            documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=0, responded_ms=T),
            r"^/Response/Body/ResponseMessage: a ResponseMessage on the service-request topic$",
        ),
    ],
)
def test_a_response_on_the_service_request_topic_is_bad_input(document: bytes, match: str) -> None:
    with refused(match):
        service_request(document)


# Outcomes.


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, Outcome.SUCCESS),
        (1, Outcome.NO_IMAGE_HELD),
        (2, Outcome.HASH_MISMATCH),
        (3, Outcome.ACTIVATION_FAILURE),
        (4, Outcome.UNKNOWN),
        (255, Outcome.UNKNOWN),
    ],
)
def test_an_immediate_outcome(code: int, expected: Outcome) -> None:
    document = documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=code, responded_ms=T)
    assert outcome(document) == {
        "request_id": REQUEST_ID,
        "device_id": ESME,
        "outcome": expected.value,
        "received_at": R,
    }


def test_command_accepted_is_no_outcome() -> None:
    assert (
        outcome(documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=None, responded_ms=T))
        is None
    )


def test_an_outcome_without_a_request_id_is_refused() -> None:
    document = documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=0, responded_ms=T)
    with refused(r"^/Response/Header/RequestID: missing \(an 11.3 response names the request it answers\)$"):
        outcome(document.replace(f"<sr:RequestID>{REQUEST_ID}</sr:RequestID>".encode(), b""))


def future_dated(request_id: str | None = REQUEST_ID, **changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "alert_code": 0x8F66,
        "execution_ms": T,
        "counter": COUNTER,
        "response_code": 0,
        "responded_ms": T + 60_000,
    }
    return documents.future_dated_activation_alert(request_id, ALERT_ID, **(fields | changes))


@pytest.mark.parametrize("request_id", [REQUEST_ID, None, REQUEST_ID.lower()])
@pytest.mark.parametrize(
    ("code", "response_code", "expected"), [(0x8F66, 0, "SUCCESS"), (0x8F67, 3, "ACTIVATION_FAILURE")]
)
def test_future_dated_activation_alerts(request_id: str | None, code: int, response_code: int, expected: str) -> None:
    document = future_dated(request_id, alert_code=code, response_code=response_code)
    assert outcome(document) == {"request_id": REQUEST_ID, "device_id": ESME, "outcome": expected, "received_at": R}


def test_a_future_dated_alert_for_another_request_than_its_header_names_both() -> None:
    other = f"{USER}:{ESME}:{COUNTER + 1}"
    with refused(
        rf"^/Response/Body/ResponseMessage/FutureDatedDeviceAlertMessage/GBCSPayload: the alert reports on "
        rf"request {REQUEST_ID}, but the Header's RequestID is {other}$"
    ):
        outcome(future_dated(other))


def test_a_future_dated_alert_code_must_agree_with_its_gbcs_alert() -> None:
    document = future_dated().replace(b"<sr:FutureDatedAlertCode>8F66<", b"<sr:FutureDatedAlertCode>8F67<")
    with refused(r"FutureDatedDeviceAlertMessage/GBCSPayload: the GBCS alert is 8F66, but FutureDatedAlertCode 8F67$"):
        outcome(document)
    with refused(r"FutureDatedAlertCode: 8F35 is not a future-dated activation alert \(8F66 or 8F67\)$"):
        outcome(future_dated().replace(b"<sr:FutureDatedAlertCode>8F66<", b"<sr:FutureDatedAlertCode>8F35<"))


def test_other_responses_are_ignored() -> None:
    acknowledgement = future_dated().split(b"<sr:Body>")[0] + (
        b"<sr:Body><sr:ResponseMessage><sr:ServiceReference>11.3</sr:ServiceReference>"
        b"<sr:ServiceReferenceVariant>11.3</sr:ServiceReferenceVariant></sr:ResponseMessage></sr:Body></sr:Response>"
    )
    assert outcome(acknowledgement) is None
    pre_command = acknowledgement.replace(
        b"</sr:ServiceReferenceVariant>",
        b"</sr:ServiceReferenceVariant><sr:PreCommand><sr:GBCSVersion>4.0</sr:GBCSVersion><sr:GBCSPayload>AA==</sr:GBCSPayload></sr:PreCommand>",
    )
    assert outcome(pre_command) is None
    other = documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=2, responded_ms=T)
    assert outcome(other.replace(b">11.3<", b">11.2<")) is None


@pytest.mark.parametrize(
    ("document", "match"),
    [
        (
            documents.device_alert(ALERT_ID, alert_code="8F36", alert_ms=T, responded_ms=T),
            r"^/Response/Body/DeviceAlertMessage: a DeviceAlertMessage on the activation-outcome topic$",
        ),
        (
            documents.activate_firmware_request(REQUEST_ID, execution_ms=T, firmware_hash=HASH),
            r"^/Request: a Request on the activation-outcome topic$",
        ),
    ],
)
def test_another_kind_on_the_outcome_topic_is_bad_input(document: bytes, match: str) -> None:
    with refused(match):
        outcome(document)


# Alerts.


def test_an_ad1() -> None:
    document = documents.power_outage_alert(
        DCC_ALERT_ID, chf_id=CHF.lower(), started_ms=T, mpxn="1234567890123", responded_ms=T + 5000
    )
    assert alert(document) == {
        "alert_id": DCC_ALERT_ID,
        "alert_code": "AD1",
        "device_id": CHF,
        "mpxn": "1234567890123",
        "raised_at": T,
        "received_at": R,
        "payload": document,
    }


def test_throttled_alerts_are_alerts() -> None:
    plain = documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn="1", responded_ms=T)
    throttled = documents.power_outage_alert(
        DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn="1", responded_ms=T, throttled=(3, 12)
    )
    assert {**alert(throttled), "payload": None} == {**alert(plain), "payload": None}


@pytest.mark.parametrize(("mpxn", "match"), [("12345678901234", "14 characters, expected 1 to 13"), (" ", "empty")])
def test_bad_mpxns(mpxn: str, match: str) -> None:
    document = documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn=mpxn, responded_ms=T)
    with refused(rf"^/Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent/MPxN: {match}$"):
        alert(document)


@pytest.mark.parametrize("code", ["N42", "N999", "X77"])
def test_other_dcc_alerts_are_from_the_response_ids_originator(code: str) -> None:
    document = documents.dcc_alert(DCC_ALERT_ID, dcc_alert_code=code, alert_content="<sr:Anything/>", responded_ms=T)
    datum = alert(document)
    assert (datum["alert_code"], datum["device_id"], datum["mpxn"], datum["raised_at"]) == (
        code,
        documents.DCC_EUI,
        None,
        None,
    )


@pytest.mark.parametrize("code", ["8f36", "8F35"])
def test_a_supply_restored_device_alert(code: str) -> None:
    document = documents.device_alert(
        ALERT_ID,
        alert_code=code,
        alert_ms=T + 120,
        outage_start_ms=T - 600_000,
        outage_end_ms=T,
        responded_ms=T + 1000,
        ciphered=True,
    )
    assert alert(document) == {
        "alert_id": ALERT_ID,
        "alert_code": code.upper(),
        "device_id": ESME,
        "mpxn": None,
        "raised_at": T + 120,
        "received_at": R,
        "payload": document,
    }


def test_a_device_alert_without_its_own_time() -> None:
    assert (
        alert(documents.device_alert(ALERT_ID, alert_code="8F36", alert_ms=None, responded_ms=T))["raised_at"] is None
    )
    assert alert(documents.device_alert(ALERT_ID, alert_code="8F01", alert_ms=T, responded_ms=T))["raised_at"] == T


def test_a_device_alert_from_another_device_than_its_response_id_names_both() -> None:
    document = documents.device_alert(ALERT_ID, alert_code="8F36", alert_ms=T, responded_ms=T)
    other = "00-DB-12-34-56-78-90-FF"
    with refused(
        rf"^/Response/Body/DeviceAlertMessage/GBCSPayload: the GBCS alert is from {ESME}, but the "
        rf"ResponseID's originator is {other}$"
    ):
        alert(document.replace(f"<sr:ResponseID>{ESME}".encode(), f"<sr:ResponseID>{other}".encode()))


def test_a_device_alert_code_must_agree_with_its_gbcs_alert() -> None:
    document = documents.device_alert(ALERT_ID, alert_code="8F36", alert_ms=T, responded_ms=T)
    with refused(r"^/Response/Body/DeviceAlertMessage/GBCSPayload: the GBCS alert is 8F36, but AlertCode 8F35$"):
        alert(document.replace(b"<sr:AlertCode>8F36<", b"<sr:AlertCode>8F35<"))
    with refused(r"^/Response/Body/DeviceAlertMessage/AlertCode: 3 bytes, expected 2"):
        alert(document.replace(b"<sr:AlertCode>8F36<", b"<sr:AlertCode>8F3600<"))


def test_an_alert_without_a_response_id_is_refused() -> None:
    document = documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn="1", responded_ms=T)
    with refused(r"^/Response/Header/ResponseID: missing"):
        alert(document.replace(f"<sr:ResponseID>{DCC_ALERT_ID}</sr:ResponseID>".encode(), b""))


@pytest.mark.parametrize(
    ("document", "match"),
    [
        (future_dated(), r"^/Response/Body/ResponseMessage: a ResponseMessage on the alert topic$"),
        (
            documents.activate_firmware_request(REQUEST_ID, execution_ms=T, firmware_hash=HASH),
            r"^/Request: a Request on the alert topic$",
        ),
    ],
)
def test_another_kind_on_the_alert_topic_is_bad_input(document: bytes, match: str) -> None:
    with refused(match):
        alert(document)


# Classification, for the tools that publish DUIS files.


@pytest.mark.parametrize(
    ("document", "topic", "key", "responded_ms"),
    [
        (request(command_variant=4), SERVICE_REQUEST_TOPIC, ESME, None),
        (
            request().replace(b">11.3<", b">4.1.1<").replace(b"SignedPreCommand", b"Other"),
            SERVICE_REQUEST_TOPIC,
            ESME,
            None,
        ),
        (
            documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=0, responded_ms=T + 10),
            ACTIVATION_OUTCOME_TOPIC,
            ESME,
            T + 10,
        ),
        (
            documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=None, responded_ms=T),
            ACTIVATION_OUTCOME_TOPIC,
            ESME,
            T,
        ),
        (future_dated(None), ACTIVATION_OUTCOME_TOPIC, ESME, T + 60_000),
        (
            documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF.lower(), started_ms=T, mpxn="1", responded_ms=T),
            ALERT_TOPIC,
            CHF,
            T,
        ),
        (documents.device_alert(ALERT_ID, alert_code="8F36", alert_ms=None, responded_ms=T), ALERT_TOPIC, ESME, T),
    ],
)
def test_classify_names_the_topic_and_key(document: bytes, topic: str, key: str, responded_ms: int | None) -> None:
    assert classify(document) == Classification(topic, key, responded_ms)


def test_classify_reads_the_whole_document() -> None:
    with refused(r"^/Request/Body/ActivateFirmware/FirmwareHash: 31 bytes, expected 32$"):
        classify(request(command_variant=4, firmware_hash=HASH[:31]))
    ad1 = documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn="1", responded_ms=T)
    with refused(r"^/Response/Header/ResponseDateTime: '2030-01-15 09:00Z' is not an xs:dateTime"):
        classify(
            ad1.replace(b"2030-01-15T09:00:00.00Z</sr:ResponseDateTime>", b"2030-01-15 09:00Z</sr:ResponseDateTime>")
        )
    with refused(r"^raised_at 1999-12-31T00:00:00.000\+00:00 is before 2000-01-01"):
        classify(
            documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=946_598_400_000, mpxn="1", responded_ms=T)
        )


HAND_WRITTEN_AD1 = b"""<?xml version='1.0' encoding='UTF-8'?>
<sr:Response xmlns:ns3="http://www.w3.org/2000/09/xmldsig#"
  xmlns:ra="http://www.dccinterface.co.uk/ResponseAndAlert"
  xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" schemaVersion="5.1">
  <sr:Header>
    <sr:ResponseID>
      90-b3-d5-1f-30-00-00-02:90-b3-d5-1f-30-01-00-00:1658482675800
    </sr:ResponseID>
    <sr:ResponseCode>I0</sr:ResponseCode>
    <sr:ResponseDateTime>2022-07-22T09:37:56.134Z</sr:ResponseDateTime>
  </sr:Header>
  <sr:Body>
    <sr:DCCAlertMessage>
      <!-- throttled: still an alert -->
      <sr:DCCAlertCode>AD1</sr:DCCAlertCode>
      <sr:ThrottledAlertSequenceId>4</sr:ThrottledAlertSequenceId>
      <sr:ThrottledAlertCount>17</sr:ThrottledAlertCount>
      <sr:DCCAlert>
        <sr:PowerOutageEvent>
          <sr:CommsHubDeviceID>
            00-db-12-34-56-78-90-a1
          </sr:CommsHubDeviceID>
          <sr:StartDateTime>2022-07-22T10:30:00.1299+01:00</sr:StartDateTime>
          <sr:MPxN>1234567890123</sr:MPxN>
        </sr:PowerOutageEvent>
      </sr:DCCAlert>
    </sr:DCCAlertMessage>
  </sr:Body>
  <Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><Reference URI=""/></SignedInfo>
    <SignatureValue>AAEC&#13;
AwQF</SignatureValue></Signature>
</sr:Response>
"""


def test_a_hand_written_document_as_dcc_formats_them() -> None:
    """Pretty-printed, IDs in lower case over lines, an offset and four fraction digits, a comment, a signature
    in xmldsig's default namespace: read as the compact document would be."""
    assert alert(HAND_WRITTEN_AD1) == {
        "alert_id": "90-B3-D5-1F-30-00-00-02:90-B3-D5-1F-30-01-00-00:1658482675800",
        "alert_code": "AD1",
        "device_id": CHF,
        "mpxn": "1234567890123",
        "raised_at": 1_658_482_200_129,  # 2022-07-22T09:30:00.129Z
        "received_at": R,
        "payload": HAND_WRITTEN_AD1,
    }


def test_a_bad_response_date_time_is_refused_on_every_topic() -> None:
    """Not a field of any record (received_at is Kafka's), but a DSP engineer expects the broken document back."""
    ad1 = documents.power_outage_alert(DCC_ALERT_ID, chf_id=CHF, started_ms=T, mpxn="1", responded_ms=T)
    response = documents.activation_outcome_response(REQUEST_ID, RESPONSE_ID, response_code=0, responded_ms=T)
    for document, read in ((ad1, alert), (response, outcome)):
        broken = document.replace(
            b"2030-01-15T09:00:00.00Z</sr:ResponseDateTime>", b"2030-01-15T25:00:00Z</sr:ResponseDateTime>"
        )
        with refused(r"^/Response/Header/ResponseDateTime: '2030-01-15T25:00:00Z' is not a time of day"):
            read(broken)


def test_a_future_dated_alert_without_instruction_counts_is_read() -> None:
    document = re.sub(rb"<sr:InstructionNumber>.*</sr:TotalCommandInstructions>", b"", future_dated())
    assert outcome(document) == outcome(future_dated())
    with refused(r"FutureDatedDeviceAlertMessage/InstructionNumber: 'x' is not an integer"):
        outcome(future_dated().replace(b"<sr:InstructionNumber>1<", b"<sr:InstructionNumber>x<"))


@pytest.mark.parametrize("broken_ms", [946_598_400_000, 32_503_680_000_000, 40_000_000_000_000])  # 1999, 3000, 3237
@pytest.mark.parametrize("code", ["8F36", "8F35", "8F01"])
def test_a_device_clock_outside_the_valid_range_is_no_time_given(broken_ms: int, code: str) -> None:
    """Fail open: a meter with a broken clock still restores supply; its alert is read (raised_at null), not
    dead-lettered, so the DNO gets it and it counts as evidence."""
    restored = code in ("8F35", "8F36")
    document = documents.device_alert(
        ALERT_ID, alert_code=code, alert_ms=broken_ms, responded_ms=T,
        outage_start_ms=broken_ms if restored else None, outage_end_ms=broken_ms if restored else None,
    )  # fmt: skip
    datum = alert(document)
    assert (datum["alert_code"], datum["device_id"], datum["raised_at"]) == (code, ESME, None)
