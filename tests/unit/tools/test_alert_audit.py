"""`poa-filter audit`: which output records are about an alert, and how the answer reads for a person and a
machine. The reading of real topics is tested on a broker in tests/integration/test_alert_audit.py."""

import json
from typing import Any

import pytest

from pipeline import cli
from pipeline.tools.alert_audit import (
    OUTPUT_TOPICS,
    Audit,
    Finding,
    RecordMatcher,
    TopicScan,
    as_json,
    avro_string,
    describe,
    report,
)
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents

CODEC = AvroCodec()
BY_OUTCOME = {output.outcome: output for output in OUTPUT_TOPICS}
CHF, ESME = "AA-00-00-00-00-00-00-01", "AA-00-00-00-00-00-00-02"
T = 1_772_323_200_000  # 2026-03-01T00:00:00Z


def alert(alert_id: str, device: str = CHF) -> dict[str, Any]:
    return {"alert_id": alert_id, "alert_code": "AD1", "device_id": device, "mpxn": None, "raised_at": None,
            "received_at": T, "payload": None}


def suppressed(alert_id: str) -> bytes:
    return CODEC.encode("SuppressedAlert", {
        "alert": alert(alert_id), "esme_id": ESME, "activation_request_id": "r-1", "window_start": T,
        "window_end": T + 1_800_000, "reason": "activation window of a tracked ESME", "decided_at": T + 5,
        "filter_version": "1.0"})


def dead_letter(key: bytes | None, value: bytes | None) -> bytes:
    return CODEC.encode("DeadLetter", {"source_topic": "dsp.alerts", "partition": 2, "offset": 41, "key": key,
                                       "value": value, "error": "it was bad", "failed_at": T + 9})


def matched(alert_id: str, outcome: str, value: bytes) -> tuple[str, dict[str, Any]] | None:
    """What the matcher says of one output record: the cheap test first, as the audit does."""
    matcher = RecordMatcher(alert_id, CODEC)
    return matcher.match(BY_OUTCOME[outcome], value) if matcher.candidate(value) else None


@pytest.mark.parametrize("length", [0, 1, 63, 64, 127, 8191, 8192, 20_000])
def test_avro_string_is_the_string_as_the_codec_writes_it(length: int) -> None:
    alert_id = "é" * (length // 2) + "x" * (length % 2)  # multi-byte UTF-8: the length counts bytes
    value = CODEC.encode("DeviceAlert", alert(alert_id))
    assert value[len(CODEC.single_object_header("DeviceAlert")):].startswith(avro_string(alert_id))


def test_a_forwarded_alert_matches_by_its_id_and_only_the_whole_id() -> None:
    value = CODEC.encode("DeviceAlert", alert("ota-outage"))

    assert matched("ota-outage", "forwarded", value) == (
        "alert_id", {"alert": {"alert_id": "ota-outage", "alert_code": "AD1", "device_id": CHF, "received_at": T}})
    assert matched("ota", "forwarded", value) is None
    assert matched("outage", "forwarded", value) is None


def test_an_alert_the_fast_reader_declines_is_read_by_the_codec() -> None:
    value = CODEC.encode("DeviceAlert", alert("lower", device=CHF.lower()))  # valid, but not the fast path's
    found = matched("lower", "forwarded", value)
    assert found is not None and found[1]["alert"]["device_id"] == CHF.lower()


def test_a_suppression_gives_its_activation() -> None:
    found = matched("a-1", "suppressed", suppressed("a-1"))

    assert found is not None
    matched_by, details = found
    assert matched_by == "alert_id"
    assert (details["esme_id"], details["activation_request_id"], details["window_end"]) == (ESME, "r-1", T + 1_800_000)
    assert details["alert"]["alert_id"] == "a-1"
    assert matched("a-", "suppressed", suppressed("a-1")) is None


def test_a_dead_letter_matches_by_its_decoded_alert_else_by_key_else_by_the_ids_avro_bytes() -> None:
    good = CODEC.encode("DeviceAlert", alert("bad-device", device="AA:00:00:00:00:00:00:01"))
    found = matched("bad-device", "dead_letter", dead_letter(b"AA:00:00:00:00:00:00:01", good))
    assert found is not None and found[0] == "alert_id"
    assert found[1]["source_partition"] == 2 and found[1]["source_offset"] == 41 and found[1]["error"] == "it was bad"
    assert found[1]["key"] == "AA:00:00:00:00:00:00:01" and "decode_error" not in found[1]

    truncated = CODEC.encode("DeviceAlert", alert("cut"))[:-3]
    by_key = matched("cut", "dead_letter", dead_letter(b"cut", truncated))
    assert by_key is not None and by_key[0] == "key" and "DeviceAlert" in by_key[1]["decode_error"]
    by_bytes = matched("cut", "dead_letter", dead_letter(CHF.encode(), truncated))
    assert by_bytes is not None and by_bytes[0] == "bytes"
    null_value = matched("cut", "dead_letter", dead_letter(b"cut", None))
    assert null_value is not None and null_value[0] == "key"

    # The ID as text inside other text is no match: Avro writes a string with its length in front.
    assert matched("cut", "dead_letter", dead_letter(CHF.encode(), b"JSON {'alert_id': 'cut'}")) is None
    longer = CODEC.encode("DeviceAlert", alert("cut-2"))[:-3]
    assert matched("cut", "dead_letter", dead_letter(b"cut-2", longer)) is None


def test_an_output_record_that_does_not_decode_is_matched_only_by_the_ids_avro_bytes() -> None:
    value = CODEC.encode("DeviceAlert", alert("x-1"))
    framed = b"\x00\x00\x00\x00\x07" + value[10:]  # Confluent framing, and no registry here
    found = matched("x-1", "forwarded", framed)
    assert found is not None and found[0] == "bytes" and "registry" in found[1]["decode_error"]
    assert matched("x-", "forwarded", framed) is None


def finding(outcome: str, details: dict[str, Any], matched_by: str = "alert_id", written: int = T + 7) -> Finding:
    topics = {"forwarded": "dno.alerts", "suppressed": "dsp.alerts.suppressed", "dead_letter": "poa-filter.dead-letter",
              "released": "dsp.alerts.released", "shadow": "dsp.alerts.shadow"}
    return Finding(outcome, topics[outcome], 1, 17, written, matched_by, details)


def scans(**counts: int) -> list[TopicScan]:
    topics = {"forwarded": "dno.alerts", "suppressed": "dsp.alerts.suppressed", "dead_letter": "poa-filter.dead-letter"}
    return [TopicScan(outcome, topic, counts.get(outcome, 0)) for outcome, topic in topics.items()] + [
        TopicScan("released", "dsp.alerts.released", skipped="the topic does not exist"),
        TopicScan("shadow", None, skipped="not a topic setting of this version"),
    ]


SUPPRESSION = {
    "reason": "activation window of a tracked ESME", "esme_id": ESME, "activation_request_id": "r-1",
    "window_start": T, "window_end": T + 1_800_000, "decided_at": T + 5, "filter_version": "1.0",
    "alert": {"alert_id": "a-1", "alert_code": "AD1", "device_id": CHF, "received_at": T + 60_000},
}


def test_a_suppression_reads_as_a_paragraph_with_its_times_reason_and_activation() -> None:
    result = Audit("a-1", None, [finding("suppressed", SUPPRESSION)], scans(forwarded=10, suppressed=3, dead_letter=1))

    assert report(result) == (
        "Alert a-1: suppressed.\n\n"
        "Suppressed: audit record on dsp.alerts.suppressed (partition 1, offset 17), written "
        "2026-03-01T00:00:00.007Z; decided 2026-03-01T00:00:00.005Z by poa-filter 1.0. Why: activation window of a "
        f"tracked ESME. Activation request r-1 on ESME {ESME}, window 2026-03-01T00:00:00.000Z to "
        f"2026-03-01T00:30:00.000Z; the AD1 alert from device {CHF}, received by the DSP 2026-03-01T00:01:00.000Z.\n\n"
        "Read 14 records on dno.alerts (10), dsp.alerts.suppressed (3), poa-filter.dead-letter (1). Not read: "
        "dsp.alerts.released (released): the topic does not exist; the shadow topic: not a topic setting of this "
        "version."
    )


def test_a_dead_letter_matched_by_key_says_the_match_is_uncertain() -> None:
    details = {"error": "corrupt DeviceAlert record", "source_topic": "dsp.alerts", "source_partition": 2,
               "source_offset": 41, "key": "cut", "failed_at": T + 9, "decode_error": "truncated"}

    text = describe(finding("dead_letter", details, matched_by="key"))

    assert text.startswith("Dead-lettered: on poa-filter.dead-letter (partition 1, offset 17), written ")
    assert "Error: corrupt DeviceAlert record. Read from dsp.alerts partition 2, offset 41, key 'cut'." in text
    assert text.endswith("Matched by its key only: the key is the alert ID, but the value cannot be read (truncated).")
    same = describe(finding("dead_letter", {**details, "decode_error": "corrupt DeviceAlert record"}, "bytes"))
    assert same.endswith(
        "Matched by the alert ID found in bytes that cannot be read as a record: possibly another record holding "
        "the same text.")


def test_a_released_alert_reads_suppressed_then_released_and_its_dno_copy_is_explained() -> None:
    release = {"released_by": "ops", "reason": "tracked list was wrong", "released_at": T + 99,
               "source_topic": "dsp.alerts.suppressed", "source_partition": 1, "source_offset": 17,
               "filter_version": "1.0"}
    result = Audit("a-1", None, [
        finding("suppressed", SUPPRESSION, written=T + 7),
        finding("forwarded", {"alert": SUPPRESSION["alert"]}, written=T + 100),
        finding("released", release, written=T + 100),
    ], scans())

    text = report(result)

    assert text.startswith("Alert a-1: suppressed; then released to the DNOs after the fact by `poa-filter release`.")
    assert "this is likely the copy `poa-filter release` sent" in text
    assert "released 2026-03-01T00:00:00.099Z by ops. Why: tracked list was wrong." in text


def test_not_found_says_where_it_looked_and_since_when() -> None:
    result = Audit("nope", T, [], scans(forwarded=5, dead_letter=2))

    assert report(result).startswith(
        "Alert 'nope' was not found. Read 7 records written since 2026-03-01T00:00:00.000Z on dno.alerts (5), "
        "dsp.alerts.suppressed (0), poa-filter.dead-letter (2). Not read: ")
    nothing = Audit("nope", None, [], [TopicScan("forwarded", "dno.alerts", skipped="the topic does not exist")])
    assert report(nothing) == (
        "Alert 'nope' was not found. No output topic could be read. Not read: dno.alerts (forwarded): the topic "
        "does not exist.")


def test_json_gives_iso_times_nested_details_and_every_topic() -> None:
    result = Audit("a-1", None, [finding("suppressed", SUPPRESSION)], scans(suppressed=3))

    answer = json.loads(json.dumps(as_json(result)))

    assert answer["found"] is True and answer["outcomes"] == ["suppressed"] and answer["records_scanned"] == 3
    [found] = answer["findings"]
    assert found["written_at"] == "2026-03-01T00:00:00.007Z"
    assert found["details"]["window_end"] == "2026-03-01T00:30:00.000Z"
    assert found["details"]["alert"]["received_at"] == "2026-03-01T00:01:00.000Z"
    assert found["details"]["activation_request_id"] == "r-1"
    assert answer["topics"][-1] == {"outcome": "shadow", "topic": None, "records_scanned": 0,
                                    "skipped": "not a topic setting of this version"}


@pytest.mark.parametrize("argv", [["audit"], ["audit", "  "], ["audit", "a-1", "--since", "last week"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "poa-filter audit: error:" in capsys.readouterr().err


def test_since_takes_iso_8601_or_epoch_milliseconds() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["audit", "a-1", "--since", "2026-03-01T00:00:00Z"]).since == T
    assert parser.parse_args(["audit", "a-1", "--since", str(T)]).since == T
    assert parser.parse_args(["audit", "a-1"]).since is None


def test_a_shadow_record_reads_as_what_the_rules_would_have_done() -> None:
    shadow = {**SUPPRESSION, "reason": "shadow: activation window of a tracked ESME"}
    result = Audit("a-1", None, [
        finding("forwarded", {"alert": SUPPRESSION["alert"]}, written=T + 7),
        finding("shadow", shadow, written=T + 7),
    ], scans())

    text = report(result)

    assert text.startswith(
        "Alert a-1: forwarded to the DNOs; then recorded by shadow mode as one the rules would suppress.\n\n"
        "Forwarded to the DNOs: on dno.alerts")
    assert "Shadow record (the rules would suppress it): audit record on dsp.alerts.shadow" in text
    assert "Why: shadow: activation window of a tracked ESME." in text
    assert "copy `poa-filter release` sent" not in text


DUIS_ID = f"{documents.DCC_EUI}:00-DB-12-D0-00-00-00-01:77"


def duis_ad1() -> bytes:
    return documents.power_outage_alert(DUIS_ID, chf_id=CHF, started_ms=T, mpxn="1234567890123", responded_ms=T)


def test_a_forwarded_duis_alert_matches_by_its_response_id_and_says_when_it_was_received() -> None:
    found = matched(DUIS_ID, "forwarded", duis_ad1())
    assert found == ("alert_id", {"alert": {"alert_id": DUIS_ID, "alert_code": "AD1", "device_id": CHF,
                                            "received_at": None}})  # fmt: skip
    result = Audit(DUIS_ID, None, [finding("forwarded", found[1])], scans(forwarded=1))
    assert "received by the DSP at the Kafka timestamp of its input record (a DUIS document)" in report(result)


def test_a_dead_lettered_duis_alert_that_cannot_be_read_matches_by_the_id_in_its_text() -> None:
    broken = duis_ad1().replace(CHF.encode(), CHF[:-3].encode())
    found = matched(DUIS_ID, "dead_letter", dead_letter(CHF.encode(), broken))
    assert found is not None and found[0] == "bytes" and "CommsHubDeviceID" in found[1]["decode_error"]
    assert matched("77", "dead_letter", dead_letter(CHF.encode(), b"JSON {'alert_id': '77'}")) is None
