"""`poa-filter release` without a broker: original bytes from the audit record, selection, flags."""

import argparse
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import cli
from pipeline.core.activation_windows import Activation, RequestVersion, Window
from pipeline.core.alert_decisions import Suppress
from pipeline.settings import Settings, Topics
from pipeline.tools.release import BATCH_SIZE, Selection, may_still_be_held, original_alert_value
from pipeline.wire.alert_bytes import read_alert_fields, suppressed_alert_bytes
from pipeline.wire.avro_binary import long_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents, read_device_alert
from pipeline.wire.output_records import audit_fields, suppressed_alert

CODEC = AvroCodec()
TOPICS = Topics()
ALERT_HEADER = CODEC.single_object_header("DeviceAlert")
T0 = 1_790_000_000_000
ESME = "00-DB-12-34-56-78-90-A0"
CHF = "00-DB-12-34-56-78-90-B1"
RID = f"90-B3-D5-1F-30-01-00-00:{ESME}:7"


def alert(**fields: Any) -> dict[str, Any]:
    datum = {
        "alert_id": "dsp-000123",
        "alert_code": "AD1",
        "device_id": CHF.lower(),
        "mpxn": "1900001234567",
        "raised_at": T0 - 1000,
        "received_at": T0,
        "payload": b"\x00\x01\xc3\xff",
    }
    return datum | fields


def suppression() -> Suppress:
    version = RequestVersion(RID, ESME, T0 - 60_000, T0 - 60_000)
    return Suppress(Activation(version, Window(T0 - 60_000, T0 + 1_740_000)))


def audit_by_worker(alert_value: bytes) -> bytes:
    """The audit record exactly as the worker writes it (worker/triage.py, _suppressed_value): the input body
    spliced in when its fast reader took the alert, else the decoded alert encoded afresh."""
    if read_alert_fields(alert_value, ALERT_HEADER) is None:
        datum = CODEC.decode("DeviceAlert", alert_value)
        return CODEC.encode("SuppressedAlert", suppressed_alert(datum, suppression()))
    header = CODEC.single_object_header("SuppressedAlert")
    return suppressed_alert_bytes(header, alert_value[len(ALERT_HEADER) :], audit_fields(suppression()))


def released_value(audit_value: bytes) -> bytes:
    return original_alert_value(CODEC, audit_value, CODEC.decode("SuppressedAlert", audit_value), TOPICS)


@given(
    st.fixed_dictionaries(
        {
            "alert_id": st.text(min_size=1, max_size=80).filter(str.strip),
            "mpxn": st.one_of(st.none(), st.text(max_size=80)),
            "raised_at": st.one_of(st.none(), st.integers(T0 - 10**9, T0)),
            "received_at": st.integers(T0 - 10**9, T0 + 10**9),
            "payload": st.one_of(st.none(), st.binary(max_size=300)),
        }
    )
)
@settings(max_examples=200)
def test_released_value_is_the_input_alert_byte_for_byte(fields: dict[str, Any]) -> None:
    sent = CODEC.encode("DeviceAlert", alert(**fields))
    assert released_value(audit_by_worker(sent)) == sent


def test_spliced_bytes_are_kept_even_where_a_fresh_encoding_differs() -> None:
    """A varint written longer than needed (received_at here) is valid Avro and the worker splices it as is:
    only the embedded bytes are the original, a fresh encoding is not."""
    canonical = CODEC.encode("DeviceAlert", alert())
    short = long_bytes(T0)
    padded = bytes([*short[:-1], short[-1] | 0x80, 0x00])  # the same long, one byte longer
    assert canonical.count(short) == 1
    sent = canonical.replace(short, padded)
    assert CODEC.decode("DeviceAlert", sent) == alert() and sent != canonical
    assert read_alert_fields(sent, ALERT_HEADER) is not None, "the worker's fast reader takes it: spliced"
    assert released_value(audit_by_worker(sent)) == sent


def test_audit_record_encoded_afresh_gives_the_alert_encoded_afresh() -> None:
    """The worker's generic path (an alert its fast reader left alone) encodes the SuppressedAlert anew."""
    datum = alert()
    audit_value = CODEC.encode("SuppressedAlert", suppressed_alert(datum, suppression()))
    assert released_value(audit_value) == CODEC.encode("DeviceAlert", datum)


def audit(received_at: int = T0, esme: str = ESME, chf: str = CHF, request_id: str = RID) -> dict[str, Any]:
    datum = alert(received_at=received_at, device_id=chf)
    return {"alert": datum, "esme_id": esme, "activation_request_id": request_id}


def test_selection_is_received_at_from_inclusive_to_exclusive() -> None:
    selection = Selection(T0, T0 + 10)
    assert [selection.matches(audit(received_at=t)) for t in (T0 - 1, T0, T0 + 9, T0 + 10)] == [
        False,
        True,
        True,
        False,
    ]


def test_selection_by_esme_chf_and_request_compares_device_ids_canonically() -> None:
    window = (T0, T0 + 1)
    other = "11-22-33-44-55-66-77-88"
    assert Selection(*window, esme_id=ESME).matches(audit(esme=ESME.lower()))
    assert not Selection(*window, esme_id=ESME).matches(audit(esme=other))
    assert Selection(*window, chf_id=CHF).matches(audit(chf=CHF.lower()))
    assert not Selection(*window, chf_id=CHF).matches(audit(chf=other))
    assert Selection(*window, request_id=RID).matches(audit())
    assert not Selection(*window, request_id=RID).matches(audit(request_id=RID + "0"))


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["release", *argv])


def test_flags_take_iso_or_epoch_times_and_canonical_device_ids() -> None:
    args = parse("--from", "2026-09-21T15:13:20+01:00", "--to", str(T0 + 5), "--chf", CHF.lower(), "--reason", " x ")
    assert (args.start, args.end, args.chf, args.esme, args.request_id) == (T0, T0 + 5, CHF, None, None)
    assert (args.reason, args.operator, args.dry_run, args.batch_size) == ("x", None, False, BATCH_SIZE)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--from", "yesterday", "--to", "1", "--reason", "r"], "neither an ISO-8601"),
        (["--from", "1", "--to", "2", "--reason", "  "], "must not be blank"),
        (["--from", "1", "--to", "2", "--reason", "r", "--esme", "00-DB-12"], "not an EUI-64"),
        (["--from", "1", "--to", "2", "--reason", "r", "--esme", ESME, "--chf", CHF], "not allowed with"),
        (["--from", "1", "--to", "2"], "--reason"),
        (["--from", "1", "--to", "2", "--reason", "r", "--batch-size", "0"], "at least 1"),
    ],
)
def test_bad_flags_are_refused_with_the_reason(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert complaint in capsys.readouterr().err


def test_help_says_which_time_the_range_is_of_and_hides_the_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    help_text = " ".join(capsys.readouterr().out.split())
    assert "received_at" in help_text and "epoch milliseconds" in help_text
    assert "--batch-size" not in help_text


def test_from_not_before_to_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["release", "--from", "5", "--to", "5", "--reason", "r"]) == 2
    assert "--from must be before --to" in capsys.readouterr().err


DNO = "00-DB-12-D0-00-00-00-01"


def duis_ad1(response_counter: int = 5) -> bytes:
    return documents.power_outage_alert(
        f"{documents.DCC_EUI}:{DNO}:{response_counter}", chf_id=CHF.lower(), started_ms=T0 - 1000,
        mpxn="1900001234567", responded_ms=T0,
    )  # fmt: skip


def test_a_released_duis_alert_is_its_document_byte_for_byte() -> None:
    sent = duis_ad1()
    datum = read_device_alert(sent, T0 + 5)  # as the worker reads it, at its Kafka timestamp
    audit_value = CODEC.encode("SuppressedAlert", suppressed_alert(datum, suppression()))
    assert released_value(audit_value) == sent


def test_an_avro_alert_whose_payload_is_another_duis_document_is_released_as_the_avro_record() -> None:
    sent = CODEC.encode("DeviceAlert", alert(payload=duis_ad1()))  # its fields are not the document's
    assert released_value(audit_by_worker(sent)) == sent
    other = read_device_alert(duis_ad1(), T0) | {"payload": duis_ad1(6)}  # a document of another alert
    assert released_value(CODEC.encode("SuppressedAlert", suppressed_alert(other, suppression())))[:2] == b"\xc3\x01"
# --- a range that reaches alerts still held (contract 8) ----------------------------------------------------

HOLD_MS = (3 * 60 + 30 + 30) * 1000  # A + grace + POA_MAX_HOLD_SECONDS with the defaults: 4 minutes


def test_a_range_ending_more_than_the_longest_hold_ago_says_nothing() -> None:
    assert may_still_be_held(Settings(), Selection(T0 - 3_600_000, T0), T0 + HOLD_MS) is None


def test_a_range_ending_within_the_longest_hold_says_from_when_alerts_may_be_held_and_how_long_to_wait() -> None:
    note = may_still_be_held(Settings(), Selection(T0 - 3_600_000, T0), T0 + HOLD_MS - 1)
    assert note is not None
    assert f"from {iso(T0 - 1)} on may still be held for outage evidence or their inputs" in note
    assert "= 240 s after they are received" in note
    assert f"run it again after {iso(T0 + HOLD_MS)} (in 1 s)" in note


def test_a_range_ending_in_the_future_waits_for_its_end_and_the_hold_after_it() -> None:
    note = may_still_be_held(Settings(), Selection(T0, T0 + 600_000), T0)
    assert note is not None
    assert f"from {iso(T0)} on" in note  # none of the range is decided yet
    assert f"(in {(600_000 + HOLD_MS) // 1000} s)" in note


def test_the_wait_follows_the_settings_it_is_made_of() -> None:
    quick = replace(Settings(), evidence_after_minutes=0, evidence_grace_seconds=0, max_hold_seconds=10)
    assert may_still_be_held(quick, Selection(T0 - 60_000, T0), T0 + 10_000) is None
    assert "(in 1 s)" in (may_still_be_held(quick, Selection(T0 - 60_000, T0), T0 + 9_001) or "")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
