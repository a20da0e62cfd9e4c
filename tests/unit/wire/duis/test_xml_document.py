"""Contract 9's safety and value rules for DUIS XML: hostile documents refused unread, strict xs:dateTime,
base64, hexBinary, EUI-64 and IDs, each fault named by its element path."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from pipeline.core.bad_input import BadInput
from pipeline.wire.duis import documents, is_duis, read_device_alert, xml_document
from pipeline.wire.duis.xml_document import (
    MAX_DOCUMENT_BYTES,
    base64_binary,
    date_time,
    duis_id,
    eui64,
    hex_binary,
    parse,
)

SR = "http://www.dccinterface.co.uk/ServiceUserGateway"
ALERT_ID = "90-B3-D5-1F-30-00-00-02:90-B3-D5-1F-30-01-00-00:5"
T = 1_894_698_000_000  # 2030-01-15T09:00:00Z
POE = "/Response/Body/DCCAlertMessage/DCCAlert/PowerOutageEvent"


def ad1(mpxn: str = "1234567890123") -> bytes:
    return documents.power_outage_alert(
        ALERT_ID, chf_id="00-DB-12-34-56-78-90-A1", started_ms=T, mpxn=mpxn, responded_ms=T + 1000, signed=False
    )


def with_doctype(document: bytes, doctype: str, mpxn: str = "&mpxn;") -> bytes:
    """The AD1 with a DOCTYPE before its root and its MPxN replaced by `mpxn`."""
    head, root = document.split(b"?>", 1)
    root = root.replace(b"<sr:MPxN>1234567890123</sr:MPxN>", f"<sr:MPxN>{mpxn}</sr:MPxN>".encode())
    return head + b"?>" + doctype.encode() + root


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# Hostile documents.


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    """The file's content would make a valid MPxN (and the document a valid AD1): it is refused unread."""
    secret = tmp_path / "mpxn.txt"
    secret.write_text("9999999999")
    document = with_doctype(ad1(), f'<!DOCTYPE sr:Response [<!ENTITY mpxn SYSTEM "{secret.as_uri()}">]>', mpxn="&mpxn;")
    with pytest.raises(BadInput, match="DOCTYPE") as raised:
        read_device_alert(document, T)
    assert "9999999999" not in str(raised.value)


def test_an_external_entity_in_an_attribute_or_parameter_entity_is_not_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "dtd.txt"
    secret.write_text('<!ENTITY mpxn "9999999999">')
    document = with_doctype(ad1(), f'<!DOCTYPE sr:Response [<!ENTITY % p SYSTEM "{secret.as_uri()}"> %p;]>')
    with pytest.raises(BadInput, match="DOCTYPE|not well-formed"):
        read_device_alert(document, T)


def test_a_billion_laughs_bomb_is_refused_unexpanded() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    document = with_doctype(ad1(), f"<!DOCTYPE sr:Response [{''.join(entities)}]>", mpxn="&lol9;")
    with pytest.raises(BadInput, match="has a DOCTYPE .* refuses it, with any entity it declares, unread"):
        read_device_alert(document, T)


def test_a_doctype_without_entities_is_refused() -> None:
    with pytest.raises(BadInput, match="DOCTYPE"):
        read_device_alert(with_doctype(ad1(), "<!DOCTYPE sr:Response>", mpxn="1234567890123"), T)


def test_an_undeclared_entity_reference_is_refused() -> None:
    with pytest.raises(BadInput, match=r"line 1, column \d+: Entity 'mpxn' not defined"):
        read_device_alert(with_doctype(ad1(), "", mpxn="&mpxn;"), T)


def test_character_references_and_predefined_entities_are_plain_text() -> None:
    assert read_device_alert(with_doctype(ad1(), "", mpxn="12&#51;4&amp;"), T)["mpxn"] == "1234&"


def test_the_size_cap_is_checked_before_parsing() -> None:
    padding = MAX_DOCUMENT_BYTES - len(ad1())
    at_cap = ad1().replace(b"</sr:Response>", b" " * padding + b"</sr:Response>")
    assert len(at_cap) == MAX_DOCUMENT_BYTES
    assert read_device_alert(at_cap, T)["mpxn"] == "1234567890123"
    over = b"<" + b"x" * MAX_DOCUMENT_BYTES  # not even XML: refused for its size alone
    with pytest.raises(BadInput, match=r"of 1048577 bytes is over the 1048576 bytes \(1 MiB\) limit"):
        read_device_alert(over, T)


@pytest.mark.parametrize(
    ("cut_after", "expected"),
    [
        (
            b"<sr:DCCAlertCode>AD1</sr:DCCAlertCode>",
            r"ends at line 1, column \d+ before <DCCAlertMessage> .*truncated",
        ),
        (b"<sr:PowerOutageEvent><sr:Comm", r"ends at line 1, column \d+ in the middle of markup \(.*\): truncated"),
        (b'<sr:Response xmlns:sr="http://www.dcc', r"ends at line 1, column \d+ in the middle of markup .*: truncated"),
        (b"", "no root element .*empty"),
    ],
)
def test_a_truncated_document_names_where_it_ends(cut_after: bytes, expected: str) -> None:
    document = ad1()
    cut = document[: document.index(cut_after) + len(cut_after)] if cut_after else b"   "
    with pytest.raises(BadInput, match=expected):
        read_device_alert(cut, T)


def test_a_truncated_document_over_lines_names_the_line() -> None:
    document = ad1().replace(b"><", b">\n<")
    cut = document[: document.index(b"<sr:DCCAlert>")]
    line = cut.count(b"\n") + 1
    with pytest.raises(BadInput, match=rf"ends at line {line}, column \d+ before <DCCAlertMessage> \(opened on"):
        read_device_alert(cut, T)


def test_two_documents_in_one_value_are_refused() -> None:
    with pytest.raises(BadInput, match="content after its root element ends.*two documents"):
        read_device_alert(ad1() + ad1().split(b"?>", 1)[1], T)


def test_is_duis_looks_at_the_first_byte_other_than_whitespace() -> None:
    assert is_duis(b" \r\n\t<sr:Response/>")
    assert not is_duis(b"\xc3\x01\x02")
    assert not is_duis(b"")
    assert not is_duis(None)


def test_leading_whitespace_before_the_declaration_is_read() -> None:
    assert read_device_alert(b"\n  " + ad1(), T)["alert_code"] == "AD1"


# Namespaces by URI, never prefix.


def test_prefixes_do_not_matter_only_namespace_uris() -> None:
    default = ad1().replace(b"sr:", b"").replace(b"xmlns:sr=", b"xmlns=")
    other = ad1().replace(b"sr:", b"duis:").replace(b"xmlns:sr=", b"xmlns:duis=")
    for document in (default, other):
        assert read_device_alert(document, T)["device_id"] == "00-DB-12-34-56-78-90-A1"


def test_the_right_local_name_in_another_namespace_is_not_a_duis_element() -> None:
    document = ad1().replace(b"<sr:MPxN>1234567890123</sr:MPxN>", b'<x:MPxN xmlns:x="urn:other">1234567890123</x:MPxN>')
    with pytest.raises(
        BadInput,
        match=rf"^{POE}: expected MPxN, found MPxN \(namespace urn:other\)$",
    ):
        read_device_alert(document, T)


def test_a_root_in_no_namespace_is_not_duis() -> None:
    with pytest.raises(BadInput, match=r"/Response: the root element Response \(no namespace\) is not a DUIS"):
        read_device_alert(b"<Response schemaVersion='5.4'/>", T)


# Schema order.


def test_elements_out_of_order_name_the_element() -> None:
    document = ad1().replace(
        b"<sr:CommsHubDeviceID>00-DB-12-34-56-78-90-A1</sr:CommsHubDeviceID><sr:StartDateTime>2030-01-15T09:00:00.00Z</sr:StartDateTime>",
        b"<sr:StartDateTime>2030-01-15T09:00:00.00Z</sr:StartDateTime><sr:CommsHubDeviceID>00-DB-12-34-56-78-90-A1</sr:CommsHubDeviceID>",
    )
    with pytest.raises(
        BadInput,
        match=rf"^{POE}/CommsHubDeviceID: out of order \(the schema has it before StartDateTime\)$",
    ):
        read_device_alert(document, T)


def test_a_repeated_element_is_refused() -> None:
    document = ad1().replace(b"<sr:MPxN>1234567890123</sr:MPxN>", b"<sr:MPxN>1</sr:MPxN><sr:MPxN>2</sr:MPxN>")
    with pytest.raises(BadInput, match=r"PowerOutageEvent/MPxN: repeated, or out of order"):
        read_device_alert(document, T)


def test_a_missing_element_is_named() -> None:
    document = ad1().replace(b"<sr:MPxN>1234567890123</sr:MPxN>", b"")
    with pytest.raises(
        BadInput,
        match=rf"^{POE}: MPxN is missing \(after StartDateTime\)$",
    ):
        read_device_alert(document, T)


def test_text_between_elements_and_children_of_values_are_refused() -> None:
    with pytest.raises(BadInput, match=r"PowerOutageEvent: unexpected text 'stray'"):
        read_device_alert(ad1().replace(b"<sr:MPxN>", b"stray<sr:MPxN>"), T)
    with pytest.raises(BadInput, match=r"PowerOutageEvent/MPxN: unexpected child element b"):
        read_device_alert(ad1().replace(b"</sr:MPxN>", b"<b/></sr:MPxN>"), T)


def test_comments_and_processing_instructions_are_not_content() -> None:
    document = ad1().replace(
        b"<sr:MPxN>1234567890123</sr:MPxN>", b"<!--a--><sr:MPxN>1234<!--b-->567<?x y?>890123</sr:MPxN>"
    )
    assert read_device_alert(document, T)["mpxn"] == "1234567890123"


def test_a_signature_is_allowed_only_last_under_the_root() -> None:
    signed = documents.power_outage_alert(
        ALERT_ID, chf_id="00-DB-12-34-56-78-90-A1", started_ms=T, mpxn="1", responded_ms=T, signed=True
    )
    assert read_device_alert(signed, T)["mpxn"] == "1"
    signature = signed[signed.index(b"<ds:Signature") : signed.index(b"</sr:Response>")]
    moved = signed.replace(signature, b"").replace(b"<sr:Body>", signature + b"<sr:Body>")
    with pytest.raises(
        BadInput,
        match=r"^/Response/Body: out of order \(the schema has it before Signature \(namespace http://www.w3.org/2000/09/xmldsig#\)\)$",
    ):
        read_device_alert(moved, T)


@pytest.mark.parametrize("version", ["5.1", "5.4", "5.10", " 5.4 ", "5"])
def test_schema_versions_5_are_read(version: str) -> None:
    assert read_device_alert(ad1().replace(b'schemaVersion="5.4"', f'schemaVersion="{version}"'.encode()), T)


@pytest.mark.parametrize("version", ["4.0", "6.0", "5.x", "", "5.4.1"])
def test_other_schema_versions_are_refused(version: str) -> None:
    with pytest.raises(BadInput, match=rf"^/Response/@schemaVersion: '{re.escape(version)}' is not a DUIS 5.x"):
        read_device_alert(ad1().replace(b'schemaVersion="5.4"', f'schemaVersion="{version}"'.encode()), T)


# Values.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-15T09:00:00.00Z", ms("2030-01-15T09:00:00")),
        ("2030-01-15T09:00:00", ms("2030-01-15T09:00:00")),  # no zone: UTC
        ("2030-01-15T10:00:00+01:00", ms("2030-01-15T09:00:00")),
        ("2030-01-14T23:30:00-09:30", ms("2030-01-15T09:00:00")),
        ("2030-01-15T09:00:00.123999999Z", ms("2030-01-15T09:00:00") + 123),  # cut, not rounded
        ("2030-01-15T09:00:00.9", ms("2030-01-15T09:00:00") + 900),
        ("2030-01-15T24:00:00Z", ms("2030-01-16T00:00:00")),
        ("2030-12-31T24:00:00.000Z", ms("2031-01-01T00:00:00")),
        ("2028-02-29T00:00:00Z", ms("2028-02-29T00:00:00")),
        ("3000-12-31T00:00:00.00Z", ms("3000-12-31T00:00:00")),
        ("9999-12-31T23:59:59Z", ms("9999-12-31T23:59:59")),
        ("10000-01-01T00:00:00Z", ms("9999-12-31T23:59:59") + 1000),
        ("\n  2030-01-15T09:00:00Z\t", ms("2030-01-15T09:00:00")),
        ("1969-12-31T23:59:59.999Z", -1),
        ("292278994-08-17T07:12:55.807Z", 2**63 - 1),
    ],
)
def test_xs_date_time(text: str, expected: int) -> None:
    assert date_time(text, "/x") == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2030-01-15 09:00:00Z", "is not an xs:dateTime"),
        ("2030-01-15T09:00Z", "is not an xs:dateTime"),
        ("2030-1-15T09:00:00Z", "is not an xs:dateTime"),
        ("2030-01-15T09:00:00.Z", "is not an xs:dateTime"),
        ("2030-01-15T09:00:00z", "is not an xs:dateTime"),
        ("2030-01-15T09:00:00+0100", "is not an xs:dateTime"),
        ("2030-01-15T09:00:00\u00a0", "is not an xs:dateTime"),  # not XML whitespace
        ("２０３０-01-15T09:00:00Z", "is not an xs:dateTime"),  # Unicode digits
        ("02030-01-15T09:00:00Z", "no leading zero"),
        ("-2030-01-15T09:00:00Z", "outside the valid range"),
        ("0000-01-01T00:00:00Z", "outside the valid range"),
        ("2030-02-29T00:00:00Z", "no day 29 in month 02"),
        ("2030-13-01T00:00:00Z", "not a date"),
        ("2030-01-15T24:00:01Z", "not a time of day"),
        ("2030-01-15T09:60:00Z", "not a time of day"),
        ("2030-01-15T09:00:60Z", "not a time of day"),
        ("2030-01-15T09:00:00+14:30", "outside -14:00 to \\+14:00"),
        ("2030-01-15T09:00:00+01:60", "outside -14:00 to \\+14:00"),
        ("99999999999999-01-01T00:00:00Z", "outside the valid range"),
        ("292278994-08-17T07:12:55.808Z", "outside the valid range"),  # one ms past the largest long
        ("9" * 5000 + "-01-01T00:00:00Z", "outside the valid range"),  # longer than int() reads
    ],
)
def test_xs_date_time_refused(text: str, problem: str) -> None:
    with pytest.raises(BadInput, match=rf"^/a/B: .*{problem}"):
        date_time(text, "/a/B")


def test_base64_may_be_wrapped_over_lines() -> None:
    assert base64_binary("AAEC\r\n  AwQF\n", "/x") == bytes(range(6))


@pytest.mark.parametrize("text", ["AAEC*AwQF", "AAECAwQ", "AAECAwQF=", "AAE=CAwQ", "QR==", "AAEC\u00a0AwQF", "ÀAEC"])
def test_base64_is_strict(text: str) -> None:
    with pytest.raises(BadInput, match=r"^/p: .* is not base64"):
        base64_binary(text, "/p")


def test_hex_binary_either_case() -> None:
    assert hex_binary(" 8f36\n", "/x") == b"\x8f\x36"
    assert hex_binary("8F36", "/x") == b"\x8f\x36"
    for bad in ("8F3", "8F 36", "8G36", "0x8F36"):
        with pytest.raises(BadInput, match="is not hexBinary"):
            hex_binary(bad, "/x")


def test_eui64_collapses_surrounding_whitespace_and_canonicalises_case() -> None:
    assert eui64("\n   00-db-12-34-56-78-90-a0 \n", "/x") == "00-DB-12-34-56-78-90-A0"
    for bad in (
        "00-DB-12-34-56-78-90 A0",
        "00 DB 12 34 56 78 90 A0",
        "00-DB-12-34-56-78-90",
        "00:DB:12:34:56:78:90:A0",
    ):
        with pytest.raises(BadInput, match=r"^/x: .* is not an EUI-64 device ID"):
            eui64(bad, "/x")


def test_request_ids() -> None:
    parsed = duis_id("\n 90-b3-d5-1f-30-01-00-00:00-db-12-34-56-78-90-a0:18446744073709551615 \n", "/x")
    assert str(parsed) == "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551615"
    assert (parsed.originator, parsed.target, parsed.counter) == (
        "90-B3-D5-1F-30-01-00-00",
        "00-DB-12-34-56-78-90-A0",
        2**64 - 1,
    )


@pytest.mark.parametrize("counter", ["18446744073709551616", "0", "007", "-1", "1e3", "+5", "", "1 2"])
def test_request_id_counters_are_refused(counter: str) -> None:
    with pytest.raises(
        BadInput, match=rf"^/x: counter '{re.escape(counter)}' is not a decimal from 1 to 18446744073709551615 "
    ):
        duis_id(f"90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:{counter}", "/x")


def test_a_request_id_of_the_wrong_shape_is_refused() -> None:
    for bad in ("90-B3-D5-1F-30-01-00-00:1", "a:b:c:d", "90-B3-D5-1F-30-01-00-00 :00-DB-12-34-56-78-90-A0:1"):
        with pytest.raises(BadInput, match=r"^/x: "):
            duis_id(bad, "/x")


def test_parse_gives_the_root_path() -> None:
    assert parse(ad1()).path == "/Response"
    assert parse(ad1()).namespace == SR


def test_the_parser_itself_never_resolves_an_external_entity(tmp_path: Path) -> None:
    """Beneath the DOCTYPE refusal: the parser the readers use leaves the entity unread."""
    secret = tmp_path / "mpxn.txt"
    secret.write_text("9999999999")
    root = etree.fromstring(
        f'<!DOCTYPE a [<!ENTITY e SYSTEM "{secret.as_uri()}">]><a>&e;</a>'.encode(), xml_document._parser()
    )
    assert "9999999999" not in etree.tostring(root).decode()


def test_a_doctype_in_another_encoding_is_refused_after_parsing(tmp_path: Path) -> None:
    secret = tmp_path / "mpxn.txt"
    secret.write_text("9999999999")
    document = with_doctype(ad1(), f'<!DOCTYPE sr:Response [<!ENTITY mpxn SYSTEM "{secret.as_uri()}">]>')
    utf16 = document.replace(b'encoding="UTF-8"', b'encoding="UTF-16"').decode().encode("utf-16-le")
    assert b"<!DOCTYPE" not in utf16
    with pytest.raises(BadInput, match="DOCTYPE") as raised:
        read_device_alert(utf16, T)
    assert "9999999999" not in str(raised.value)


def test_xinclude_and_stylesheets_are_never_processed(tmp_path: Path) -> None:
    secret = tmp_path / "mpxn.txt"
    secret.write_text("9999999999")
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret.as_uri()}" parse="text"/>'
    document = ad1().replace(b"1234567890123</sr:MPxN>", include.encode() + b"</sr:MPxN>")
    with pytest.raises(BadInput, match=r"PowerOutageEvent/MPxN: unexpected child element include \(namespace"):
        read_device_alert(document, T)
    styled = ad1().replace(b"?>", f'?><?xml-stylesheet href="{secret.as_uri()}"?>'.encode(), 1)
    assert read_device_alert(styled, T)["mpxn"] == "1234567890123"
