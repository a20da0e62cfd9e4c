"""The one decoder of the event topics (contract 9): DUIS documents and Avro records alike, a DUIS record's
received_at from its Kafka timestamp, ignored DUIS documents as None, bad input as BadInput naming the path."""

import pytest

from pipeline.core.bad_input import BadInput
from pipeline.core.records import ActivationOutcome, DeviceAlert, Outcome, ServiceRequest
from pipeline.settings import DEFAULT_COMMAND_VARIANTS
from pipeline.wire import input_records
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents, gbcs

CODEC = AvroCodec()
R = 1_772_323_200_000  # the Kafka timestamp of the DUIS records (received_at)
USER, ESME, CHF = "90-B3-D5-1F-30-01-00-00", "00-1B-C5-0C-00-00-00-02", "00-1B-C5-0C-00-00-00-01"
REQUEST_ID = f"{USER}:{ESME}:1660751141087"
HASH = bytes(range(32))


def request(variant: int, execution_ms: int | None = None) -> bytes:
    return documents.activate_firmware_request(
        REQUEST_ID, command_variant=variant, execution_ms=execution_ms, firmware_hash=HASH
    )


def ad1() -> bytes:
    return documents.power_outage_alert(
        f"{documents.DCC_EUI}:{USER}:9", chf_id=CHF.lower(), started_ms=R - 60_000, mpxn="1000000000001",
        responded_ms=R - 1_000,
    )  # fmt: skip


def test_a_signed_duis_request_is_read_with_the_kafka_timestamp_as_received_at() -> None:
    for variant in (5, 7):
        got = input_records.service_request(CODEC, request(variant, R + 3_600_000), R, DEFAULT_COMMAND_VARIANTS)
        assert got == ServiceRequest(REQUEST_ID, "11.3", ESME, R + 3_600_000, HASH.hex(), R)


def test_a_cancellation_keeps_its_year_9999_execution_time() -> None:
    got = input_records.service_request(CODEC, request(5, gbcs.CANCELLATION_TIME_MS), R, DEFAULT_COMMAND_VARIANTS)
    assert got is not None and got.execution_datetime == gbcs.CANCELLATION_TIME_MS


def test_a_variant_not_counted_is_ignored_and_counts_once_listed() -> None:
    assert input_records.service_request(CODEC, request(4), R, DEFAULT_COMMAND_VARIANTS) is None
    assert input_records.service_request(CODEC, request(6), R, DEFAULT_COMMAND_VARIANTS) is None
    got = input_records.service_request(CODEC, request(4), R, frozenset({4}))
    assert got == ServiceRequest(REQUEST_ID, "11.3", ESME, None, HASH.hex(), R)
    assert input_records.service_request(CODEC, request(5), R, frozenset({4})) is None


def test_duis_outcomes_immediate_accepted_and_future_dated() -> None:
    response_id = f"{ESME}:{USER}:5"
    immediate = documents.activation_outcome_response(REQUEST_ID, response_id, response_code=1, responded_ms=R - 10)
    assert input_records.activation_outcome(CODEC, immediate, R) == ActivationOutcome(
        REQUEST_ID, ESME, Outcome.NO_IMAGE_HELD, R
    )
    accepted = documents.activation_outcome_response(REQUEST_ID, response_id, response_code=None, responded_ms=R)
    assert input_records.activation_outcome(CODEC, accepted, R) is None
    done = documents.future_dated_activation_alert(
        None, f"{ESME}:{USER}:77", alert_code=0x8F66, execution_ms=R - 60_000, counter=1660751141087,
        response_code=0, responded_ms=R,
    )  # fmt: skip
    assert input_records.activation_outcome(CODEC, done, R) == ActivationOutcome(REQUEST_ID, ESME, Outcome.SUCCESS, R)


def test_a_duis_alert_gives_its_datum_with_the_document_as_payload() -> None:
    value = b"\n  " + ad1()  # whitespace before the first '<' is still DUIS
    datum, alert = input_records.device_alert(CODEC, value, R)
    assert alert == DeviceAlert(f"{documents.DCC_EUI}:{USER}:9", "AD1", CHF, "1000000000001", R - 60_000, R, value)
    assert datum["payload"] == value and datum["received_at"] == R
    audit = {"alert": datum, "esme_id": ESME, "activation_request_id": REQUEST_ID, "window_start": R,
             "window_end": R + 1, "reason": "r", "decided_at": R, "filter_version": "t"}  # fmt: skip
    assert CODEC.decode("SuppressedAlert", CODEC.encode("SuppressedAlert", audit))["alert"]["payload"] == value


def test_avro_records_go_to_the_codec_whatever_the_timestamp() -> None:
    datum = {"alert_id": "a1", "alert_code": "AD1", "device_id": CHF, "mpxn": None, "raised_at": None,
             "received_at": R, "payload": None}  # fmt: skip
    for timestamp in (None, 0, R + 1):
        assert input_records.device_alert(CODEC, CODEC.encode("DeviceAlert", datum), timestamp) == (
            datum, DeviceAlert("a1", "AD1", CHF, None, None, R, None)
        )  # fmt: skip
    sr = {"request_id": REQUEST_ID, "service_reference_variant": "1.1", "target_device_id": ESME,
          "execution_datetime": None, "firmware_hash": None, "received_at": R}  # fmt: skip
    got = input_records.service_request(CODEC, CODEC.encode("ServiceRequest", sr), None, DEFAULT_COMMAND_VARIANTS)
    assert got is not None and got.service_reference_variant == "1.1"  # ignored later, by the rules, as before
    with pytest.raises(BadInput, match="ServiceRequest record where a poafilter.ActivationOutcome is due"):
        input_records.activation_outcome(CODEC, CODEC.encode("ServiceRequest", sr), R)


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (None, "received_at (the Kafka record timestamp of a DUIS record) is missing: the record has no timestamp"),
        (946_684_799_999, "received_at (the Kafka record timestamp of a DUIS record) 1999-12-31T23:59:59.999+00:00 "
                          "is before 2000-01-01T00:00:00Z"),
        (32_503_680_000_000, "is on or after 3000-01-01T00:00:00Z"),
    ],
)  # fmt: skip
def test_a_duis_record_without_a_usable_timestamp_is_bad_input(timestamp: int | None, message: str) -> None:
    accepted = documents.activation_outcome_response(REQUEST_ID, f"{ESME}:{USER}:5", response_code=None, responded_ms=R)
    for read in (
        lambda: input_records.service_request(CODEC, request(4), timestamp, DEFAULT_COMMAND_VARIANTS),  # ignored
        lambda: input_records.activation_outcome(CODEC, accepted, timestamp),  # ignored
        lambda: input_records.device_alert(CODEC, ad1(), timestamp),
    ):
        with pytest.raises(BadInput) as error:
            read()
        assert message in str(error.value)


def test_a_bad_duis_document_is_bad_input_naming_the_element_path() -> None:
    short = request(4).replace(HASH.hex().upper().encode(), HASH[:31].hex().upper().encode())
    with pytest.raises(BadInput, match=r"^/Request/Body/ActivateFirmware/FirmwareHash: 31 bytes, expected 32"):
        input_records.service_request(CODEC, short, R, DEFAULT_COMMAND_VARIANTS)
    with pytest.raises(BadInput, match="CommsHubDeviceID"):
        input_records.device_alert(CODEC, ad1().replace(CHF.lower().encode(), b"00-1B-C5-0C-00-00-00"), R)
    with pytest.raises(BadInput):
        input_records.device_alert(CODEC, b"<sr:Response", R)
