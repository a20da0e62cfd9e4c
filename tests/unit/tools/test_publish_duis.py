"""`poa-filter publish-duis`: each document to the topic its kind says, keyed by its device, stamped with its
received_at; every file the worker would dead-letter refused with the element path, and nothing else on stderr."""

import io
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.core.bad_input import BadInput
from pipeline.settings import Settings
from pipeline.tools import publish_duis
from pipeline.tools.publish_duis import Placed, Source, place, sources
from pipeline.wire.duis import documents, read_activation_outcome, read_device_alert, read_service_request
from pipeline.wire.duis.gbcs import CANCELLATION_TIME_MS

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
AT = NOW - 3_600_000
SUPPLIER, ESME, CHF = "90-B3-D5-1F-30-01-00-00", "00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-C0"
REQUEST_ID = f"{SUPPLIER}:{ESME}:1660751141087"
HASH = bytes(range(32))
DNO = "00-DB-12-D0-00-00-00-01"


def request(variant: int = 5, execution_ms: int | None = AT + 86_400_000) -> bytes:
    return documents.activate_firmware_request(
        REQUEST_ID, command_variant=variant, execution_ms=execution_ms, firmware_hash=HASH
    )


def immediate_outcome(code: int | None = 0) -> bytes:
    return documents.activation_outcome_response(
        REQUEST_ID, f"{ESME}:{SUPPLIER}:5", response_code=code, responded_ms=AT
    )


def future_dated(alert_code: int = 0x8F66) -> bytes:
    return documents.future_dated_activation_alert(
        REQUEST_ID, f"{ESME}:{SUPPLIER}:6", alert_code=alert_code, execution_ms=AT - 60_000,
        counter=1660751141087, response_code=0 if alert_code == 0x8F66 else 1, responded_ms=AT,
    )  # fmt: skip


def ad1(chf: str = CHF) -> bytes:
    return documents.power_outage_alert(
        f"{documents.DCC_EUI}:{DNO}:9", chf_id=chf, started_ms=AT - 200_000, mpxn="1234567890123", responded_ms=AT
    )


def supply_restored() -> bytes:
    return documents.device_alert(f"{ESME}:{DNO}:10", alert_code="8f36", alert_ms=AT - 10_000, responded_ms=AT)


@pytest.mark.parametrize(
    ("document", "placed"),
    [
        (request(), Placed("service_requests", ESME, NOW)),
        (request(4), Placed("service_requests", ESME, NOW)),  # counted or not, the DSP's request goes on its topic
        (request(7, CANCELLATION_TIME_MS), Placed("service_requests", ESME, NOW)),
        (immediate_outcome(), Placed("activation_outcomes", ESME, AT)),
        (immediate_outcome(None), Placed("activation_outcomes", ESME, AT)),  # "command accepted": the filter skips it
        (future_dated(), Placed("activation_outcomes", ESME, AT)),
        (future_dated(0x8F67), Placed("activation_outcomes", ESME, AT)),
        (ad1(), Placed("alerts", CHF, AT)),
        (ad1(CHF.lower()), Placed("alerts", CHF, AT)),  # keys in canonical form
        (supply_restored(), Placed("alerts", ESME, AT)),
    ],
    ids=["variant-5", "variant-4", "cancellation", "outcome", "command-accepted", "8F66", "8F67", "AD1",
         "AD1-lower-case", "8F36"],
)  # fmt: skip
def test_each_message_goes_to_its_topic_keyed_by_its_device_at_its_response_time_else_now(document, placed):
    assert place(document, None, NOW) == placed


def test_received_at_given_stamps_every_kind():
    for document in (request(), immediate_outcome(), future_dated(), ad1(), supply_restored()):
        assert place(document, AT - 5, NOW).timestamp_ms == AT - 5


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', "DOCTYPE"),
        (b"\xc3\x01not xml", "not a DUIS document"),
        (request(4).replace(HASH.hex().upper().encode(), HASH[:31].hex().upper().encode()),
         "/Request/Body/ActivateFirmware/FirmwareHash: 31 bytes, expected 32"),
        (ad1("00-DB-12-34-56-78-90"), "/Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent/CommsHubDeviceID: "),
        (supply_restored().replace(f"<sr:ResponseID>{ESME}".encode(), f"<sr:ResponseID>{CHF}".encode()),
         "/Response/Body/DeviceAlertMessage/GBCSPayload: the GBCS alert is from"),
        (ad1()[:-40], "truncated"),
    ],
    ids=["doctype", "avro", "31-byte-hash", "short-chf", "frame-disagrees", "truncated"],
)  # fmt: skip
def test_what_the_worker_would_dead_letter_is_refused_naming_where(document, error):
    with pytest.raises(BadInput, match=error.replace("(", r"\(")):
        place(document, None, NOW)


def test_a_received_at_outside_the_valid_range_is_refused():
    with pytest.raises(BadInput, match="before 2000-01-01"):
        place(ad1(), 5, NOW)


def test_a_document_over_one_mebibyte_is_refused_unread(tmp_path):
    big = tmp_path / "big.xml"
    big.write_bytes(b"<" + b" " * (1 << 21))
    with pytest.raises(BadInput, match=r"over the 1048576 bytes \(1 MiB\)"):
        Source(str(big), big).read(io.BytesIO())


def test_folders_are_read_in_name_order_without_hidden_files_and_dash_is_stdin(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.xml", "a.xml", ".hidden.xml", "sub/c.xml"):
        (folder / name).write_bytes(b"<x/>")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_bytes(b"")
    names = [s.name for s in sources([str(folder), "-", str(tmp_path / "single.xml")])]
    assert names == [str(folder / "a.xml"), str(folder / "b.xml"), str(folder / "sub" / "c.xml"), "<stdin>",
                     str(tmp_path / "single.xml")]  # fmt: skip


class Recorder:
    """The bulk producer's interface, recording what would be written."""

    written: list[tuple[str, str | bytes, bytes | None, int | None]] = []

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        Recorder.written = []

    def produce(self, topic: str, key: str | bytes, value: bytes | None, timestamp_ms: int | None = None) -> None:
        Recorder.written.append((topic, key, value, timestamp_ms))

    def flush(self) -> None:
        pass


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    monkeypatch.setattr(publish_duis, "BulkProducer", Recorder)
    monkeypatch.setattr(publish_duis, "require_topics", lambda *_args, **_kwargs: None)
    return Recorder


def test_the_command_publishes_the_good_files_byte_for_byte_and_names_each_rejected_one(tmp_path, recorder, capsys):
    (tmp_path / "1-request.xml").write_bytes(request())
    (tmp_path / "2-outcome.xml").write_bytes(future_dated())
    (tmp_path / "3-ad1.xml").write_bytes(ad1())
    (tmp_path / "4-bad.xml").write_bytes(ad1("00-DB-12-34-56-78-90"))
    (tmp_path / "5-empty.xml").write_bytes(b"")
    assert cli.main(["publish-duis", str(tmp_path), "--topic-alerts", "my.alerts"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{tmp_path / '4-bad.xml'}: /Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent/CommsHubDeviceID: "
        "'00-DB-12-34-56-78-90' is not an EUI-64 device ID (expected 8 hyphen-separated hex octets, e.g. "
        "00-DB-12-34-56-78-90-A0)",
        f"{tmp_path / '5-empty.xml'}: not a DUIS document: the first character other than white space is not '<'",
    ]
    assert out == (
        "published 3 DUIS documents: 1 on dsp.service-requests, 1 on dsp.activation-outcomes, 1 on my.alerts; "
        "2 rejected\n"
    )
    assert [(topic, key, value) for topic, key, value, _ in recorder.written] == [
        ("dsp.service-requests", ESME, request()),
        ("dsp.activation-outcomes", ESME, future_dated()),
        ("my.alerts", CHF, ad1()),
    ]
    assert [stamp for *_, stamp in recorder.written][1:] == [AT, AT]


def test_stdin_and_received_at_and_exit_zero_when_all_are_published(recorder, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n  " + ad1())))
    assert cli.main(["publish-duis", "-", "--received-at", "2026-01-01T00:00:00Z"]) == 0
    assert recorder.written == [("dsp.alerts", CHF, b"\n  " + ad1(), NOW)]
    assert capsys.readouterr().err == ""


def test_only_the_settings_it_needs_are_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["publish-duis", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--bootstrap-servers", "--topic-service-requests", "--topic-activation-outcomes", "--topic-alerts",
                 "--received-at"):  # fmt: skip
        assert flag in help_text
    for flag in ("--window-minutes", "--topic-dno-alerts", "--app-id", "--metrics-port"):
        assert flag not in help_text


def test_a_file_that_cannot_be_read_is_named(recorder, tmp_path, capsys):
    missing = tmp_path / "missing.xml"
    assert cli.main(["publish-duis", str(missing)]) == 1
    assert capsys.readouterr().err == f"{missing}: cannot read it: No such file or directory\n"


def test_source_reads_stdin_bytes():
    assert Source("<stdin>", None).read(io.BytesIO(b"<a/>")) == b"<a/>"


def readme_examples() -> list[bytes]:
    """The DUIS examples of README's section for DSP engineers, in order."""
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = text.split("## Feeding DUIS to the filter", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].encode() for block in section.split("```xml\n")[1:]]


def test_the_readme_examples_are_read_as_the_readme_says():
    variant_4, variant_5, outcome, success, ad1_alert, restored = readme_examples()
    counted = Settings().command_variants
    assert read_service_request(variant_4, NOW, counted) is None  # not counted by default
    signed = read_service_request(variant_5, NOW, counted)
    assert signed is not None and signed["execution_datetime"] == 1_894_698_000_000  # 2030-01-15T09:00:00Z
    for document in (outcome, success):
        datum = read_activation_outcome(document, NOW)
        assert datum is not None and datum["outcome"] == "SUCCESS"
    assert read_device_alert(ad1_alert, NOW)["alert_code"] == "AD1"
    assert read_device_alert(restored, NOW)["alert_code"] == "8F36"
    topics = [place(document, NOW, NOW).topic for document in readme_examples()]
    assert topics == ["service_requests"] * 2 + ["activation_outcomes"] * 2 + ["alerts"] * 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal(tmp_path, recorder, monkeypatch, capsys):
    for n in range(3):
        (tmp_path / f"{n}.xml").write_bytes(ad1())
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert cli.main(["publish-duis", str(tmp_path)]) == 0
    assert re.fullmatch(r"\rpublish-duis: 3 rows, [\d,]+ rows/s, \d+s\x1b\[K\n", terminal.getvalue())


def test_a_request_of_another_service_goes_to_the_request_topic_with_a_valid_time():
    other = request().replace(b"<sr:ServiceReferenceVariant>11.3<", b"<sr:ServiceReferenceVariant>11.1<")
    assert place(other, AT, NOW) == Placed("service_requests", ESME, AT)
    with pytest.raises(BadInput, match="before 2000-01-01"):
        place(other, 5, NOW)
