"""Hypothesis over mutated DUIS documents: the readers raise BadInput or give a datum, never another
exception, and never a wrong record. The oracle is where the mutation fell: inside the text of an element,
only the fields read from that element may differ from the unmutated document's datum; anywhere else (tags,
attributes, the declaration, the signature, whitespace) the datum is the unmutated one or the document is bad.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.wire import validation
from pipeline.wire.duis import documents, read_activation_outcome, read_device_alert, read_service_request

USER = "90-B3-D5-1F-30-01-00-00"
ESME = "00-DB-12-34-56-78-90-A0"
COUNTER = 1_660_751_141_087
REQUEST_ID = f"{USER}:{ESME}:{COUNTER}"
T = 1_894_698_000_000
R = T - 1000
VARIANTS = frozenset({4, 5, 7})
EVERYTHING = frozenset({"*"})


def requests(value: bytes) -> dict[str, Any] | None:
    datum = read_service_request(value, R, VARIANTS)
    return None if datum is None else _validated(validation.service_request, datum)


def outcomes(value: bytes) -> dict[str, Any] | None:
    datum = read_activation_outcome(value, R)
    return None if datum is None else _validated(validation.activation_outcome, datum)


def alerts(value: bytes) -> dict[str, Any] | None:
    datum = read_device_alert(value, R)
    assert datum["payload"] == value
    return _validated(validation.device_alert, datum)


def _validated(validate: Callable[[dict[str, Any]], object], datum: dict[str, Any]) -> dict[str, Any]:
    validate(datum)
    return datum


@dataclass(frozen=True)
class Case:
    document: bytes
    read: Callable[[bytes], dict[str, Any] | None]
    fields: dict[str, frozenset[str]]  # element local name -> the datum fields read from its text
    may_ignore: frozenset[str] = frozenset()  # elements whose text decides whether the document counts at all


CASES = [
    Case(
        documents.activate_firmware_request(REQUEST_ID, command_variant=4, execution_ms=T, firmware_hash=bytes(32)),
        requests,
        {
            "RequestID": frozenset({"request_id", "target_device_id"}),
            "ExecutionDateTime": frozenset({"execution_datetime"}),
            "FirmwareHash": frozenset({"firmware_hash"}),
        },
        frozenset({"CommandVariant", "ServiceReferenceVariant"}),
    ),
    Case(
        documents.activate_firmware_request(REQUEST_ID, command_variant=5, execution_ms=T, firmware_hash=bytes(32)),
        requests,
        {
            "RequestID": frozenset({"request_id", "target_device_id"}),
            "GBCSPayload": frozenset({"firmware_hash", "execution_datetime"}),
        },
        frozenset({"CommandVariant", "ServiceReferenceVariant"}),
    ),
    Case(
        documents.activation_outcome_response(REQUEST_ID, f"{ESME}:{USER}:{COUNTER}", response_code=1, responded_ms=T),
        outcomes,
        {"RequestID": frozenset({"request_id", "device_id"}), "GBCSPayload": frozenset({"outcome"})},
        frozenset({"ServiceReferenceVariant", "GBCSPayload"}),
    ),
    Case(
        documents.future_dated_activation_alert(
            REQUEST_ID,
            f"{ESME}:{USER}:9",
            alert_code=0x8F67,
            execution_ms=T,
            counter=COUNTER,
            response_code=2,
            responded_ms=T,
        ),
        outcomes,
        {"GBCSPayload": frozenset({"request_id", "device_id", "outcome"})},
        frozenset({"ServiceReferenceVariant"}),
    ),
    Case(
        documents.power_outage_alert(
            f"{documents.DCC_EUI}:{USER}:5",
            chf_id="00-DB-12-34-56-78-90-A1",
            started_ms=T,
            mpxn="1234567890",
            responded_ms=T + 5000,
            throttled=(1, 2),
        ),
        alerts,
        {
            "ResponseID": frozenset({"alert_id"}),
            "DCCAlertCode": EVERYTHING,
            "CommsHubDeviceID": frozenset({"device_id"}),
            "StartDateTime": frozenset({"raised_at"}),
            "MPxN": frozenset({"mpxn"}),
        },
    ),
    Case(
        documents.dcc_alert(f"{documents.DCC_EUI}:{USER}:6", dcc_alert_code="N42", responded_ms=T),
        alerts,
        {"ResponseID": frozenset({"alert_id", "device_id"}), "DCCAlertCode": EVERYTHING},
    ),
    Case(
        documents.device_alert(
            f"{ESME}:{USER}:7",
            alert_code="8F36",
            alert_ms=T,
            outage_start_ms=T - 60_000,
            outage_end_ms=T,
            responded_ms=T + 5000,
        ),
        alerts,
        {
            "ResponseID": frozenset({"alert_id"}),
            "AlertCode": frozenset({"alert_code"}),
            "GBCSPayload": frozenset({"raised_at"}),
        },
    ),
]
_LEAF = re.compile(rb"<sr:(\w+)>([^<]*)</sr:\1>")
_ALPHABET = b' \t\n<>/&;:#"=-.+xX0123456789AaFfZzT!?[]sr'
_TEXT_CHARACTERS = [bytes([c]) for c in b"0123456789ABCDEFabcdef :-.+TZ \n"]


def text_spans(document: bytes) -> list[tuple[int, int, str]]:
    return [(m.start(2), m.end(2), m[1].decode()) for m in _LEAF.finditer(document)]


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Case, bytes, int, int]:
    """A case, its mutated document, and the range [start, end) of the original the mutation touched."""
    case = draw(st.sampled_from(CASES))
    document = case.document
    size = len(document)
    kind = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "duplicate", "text"]))
    if kind == "text":  # inside one element's text, where the values are: mostly one character for another
        start, end, _ = draw(st.sampled_from(text_spans(document)))
        i = draw(st.integers(start, end))
        j = draw(st.sampled_from([i, min(i + 1, end)]) | st.integers(i, end))
        new = draw(st.lists(st.sampled_from(_TEXT_CHARACTERS), max_size=2).map(b"".join) | st.binary(max_size=4))
        return case, document[:i] + new + document[j:], i, j
    i = draw(st.integers(0, size - 1))
    if kind == "replace":
        byte = draw(st.sampled_from(_ALPHABET) | st.integers(0, 255))
        return case, document[:i] + bytes([byte]) + document[i + 1 :], i, i + 1
    if kind == "delete":
        j = draw(st.integers(i + 1, min(size, i + 40)))
        return case, document[:i] + document[j:], i, j
    if kind == "insert":
        new = draw(st.lists(st.sampled_from(_ALPHABET), min_size=1, max_size=8).map(bytes))
        return case, document[:i] + new + document[i:], i, i
    if kind == "truncate":
        return case, document[:i], i, size
    j = draw(st.integers(i + 1, min(size, i + 60)))
    return case, document[:j] + document[i:j] + document[j:], j, j


def outcome_of(read: Callable[[bytes], dict[str, Any] | None], value: bytes) -> dict[str, Any] | None | BadInput:
    try:
        return read(value)
    except BadInput as e:
        assert str(e), "a BadInput says what is wrong"
        return e


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_a_mutated_document_is_bad_input_or_a_record_consistent_with_its_text(
    mutation: tuple[Case, bytes, int, int],
) -> None:
    case, mutated, start, end = mutation
    original = case.read(case.document)
    assert original is not None
    for read in (requests, outcomes, alerts):  # on every topic: never another exception
        outcome_of(read, mutated)
    result = outcome_of(case.read, mutated)
    if isinstance(result, BadInput):
        return
    inside = [local for s, e, local in text_spans(case.document) if s <= start and end <= e]
    element = inside[0] if inside else None
    if result is None:
        assert element in case.may_ignore, f"ignored after a mutation in {element or 'the markup'}"
        return
    changed = {k for k in result if k != "payload" and result[k] != original[k]}
    allowed = case.fields.get(element, frozenset()) if element else frozenset()
    assert allowed == EVERYTHING or changed <= allowed, (
        f"{sorted(changed)} changed by a mutation in {element or 'the markup'}: {mutated!r}"
    )


def test_the_cases_read_as_written() -> None:
    """The oracle's premise: each unmutated case is a record, and its leaf elements are found."""
    for case in CASES:
        assert case.read(case.document) is not None
        assert set(case.fields) <= {local for _, _, local in text_spans(case.document)}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200).map(lambda b: b"<" + b) | st.text(max_size=200).map(lambda t: ("<" + t).encode()))
def test_arbitrary_values_that_look_like_xml_are_bad_input(value: bytes) -> None:
    for read in (requests, outcomes, alerts):
        outcome_of(read, value)
