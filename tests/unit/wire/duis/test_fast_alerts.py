"""The fast DUIS alert reader held to the strict one: on generated and mutated documents it gives the strict
reader's record or declines (None), never a record for a document the strict reader refuses, never another
record; it reads DCC's usual shape itself (else it would be no faster); hostile input always reaches the
strict reader's refusal."""

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.bad_input import BadInput
from pipeline.core.event_time import EARLIEST_MS
from pipeline.wire import input_records
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents, messages, read_device_alert
from pipeline.wire.duis.fast_alerts import MAX_FAST_BYTES, fast_device_alert

USER = "90-B3-D5-1F-30-01-00-00"
T = 1_894_698_000_000
R = T + 1000

eui = st.lists(st.integers(0, 255), min_size=8, max_size=8).map(lambda b: "-".join(f"{x:02X}" for x in b))
counter = st.integers(1, 2**64 - 1)
times = st.integers(EARLIEST_MS, 32_503_679_999_990).map(lambda ms: ms // 10 * 10)
throttled = st.none() | st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
signed = st.booleans()
version = st.sampled_from(["5.4", "5.1", "5", "5.10"])


@st.composite
def alert_documents(draw: st.DrawFn) -> bytes:
    """Alerts of every shape the writers make, with some of the formatting a DSP's serialiser may vary."""
    kind = draw(st.sampled_from(["ad1", "dcc", "device", "restored"]))
    response_counter = draw(counter)
    if kind == "ad1":
        value = documents.power_outage_alert(
            f"{documents.DCC_EUI}:{USER}:{response_counter}", chf_id=draw(eui), started_ms=draw(times),
            mpxn=draw(st.text("0123456789ABZ", min_size=1, max_size=13)), responded_ms=draw(times),
            throttled=draw(throttled), signed=draw(signed), schema_version=draw(version),
        )  # fmt: skip
    elif kind == "dcc":
        value = documents.dcc_alert(
            f"{documents.DCC_EUI}:{USER}:{response_counter}", dcc_alert_code=draw(st.sampled_from(["N42", "N999"])),
            responded_ms=draw(times), throttled=draw(throttled), signed=draw(signed),
        )  # fmt: skip
    else:
        code = draw(st.sampled_from(["8F35", "8F36", "8f36"]) if kind == "restored" else st.sampled_from(
            ["8F3E", "8F1C", "8154", "8f84"]))  # fmt: skip
        at = draw(times)
        value = documents.device_alert(
            f"{draw(eui)}:{USER}:{response_counter}", alert_code=code, alert_ms=draw(st.none() | st.just(at)),
            responded_ms=draw(times), outage_start_ms=draw(st.none() | st.just(at)), outage_end_ms=at,
            throttled=draw(throttled), ciphered=draw(st.booleans()), signed=draw(signed),
            schema_version=draw(version),
        )  # fmt: skip
    if draw(st.booleans()):  # pretty-printed: new lines and indents between elements
        value = re.sub(rb"><", b">\n  <", value)
    if draw(st.booleans()):
        value = value.replace(b' standalone="no"', b"")
    if draw(st.booleans()):
        value = b"\n" + value.split(b"?>", 1)[1]
    return value


def strict(value: bytes) -> dict[str, Any] | None:
    """The strict reader's record, or None when it refuses the document."""
    try:
        return messages.read_device_alert(value, R)
    except BadInput:
        return None


def held_to_strict(value: bytes) -> dict[str, Any] | None:
    fast = fast_device_alert(value, R)
    expected = strict(value)
    if expected is None:
        assert fast is None, "the fast reader accepted a document the strict reader refuses"
    elif fast is not None:
        assert fast == expected
    return fast


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert_documents())
def test_the_fast_reader_gives_the_strict_readers_record_for_dcc_shaped_alerts(value: bytes) -> None:
    expected = strict(value)
    assert expected is not None
    assert fast_device_alert(value, R) == expected
    assert read_device_alert(value, R) == expected


_INTERESTING = [
    *(bytes((c,)) for c in b"<>&\"'/: \r\n\x00\xc3\xff=a0F-"),
    *(b"&#13;", b"&amp;", b"<!-- c -->", b"<![CDATA[x]]>", b"sr:", b"ds:", b'xmlns:sr="x" '),
]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alert_documents(),
    st.lists(
        st.tuples(
            st.floats(0, 1, exclude_max=True), st.integers(0, 4), st.sampled_from(_INTERESTING) | st.binary(max_size=3)
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_on_mutated_documents_the_fast_reader_declines_or_agrees(
    value: bytes, mutations: list[tuple[float, int, bytes]]
) -> None:
    """A mutation anywhere (tags, attributes, the signature, values): whatever the strict reader says, the fast
    reader says too, or it declines."""
    for where, cut, insert in mutations:
        at = int(where * len(value))
        value = value[:at] + insert + value[at + cut :]
    held_to_strict(value)


SIGNED_8F36 = documents.device_alert(
    f"00-DB-12-34-56-78-90-A0:{USER}:7", alert_code="8F36", alert_ms=T, responded_ms=T + 500,
    outage_start_ms=T - 600_000, outage_end_ms=T,
)  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + SIGNED_8F36.split(b"?>", 1)[1].replace(b"<sr:ResponseCode>I0", b"<sr:ResponseCode>&x;"),
            id="external entity",
        ),
        pytest.param(SIGNED_8F36.replace(b"<sr:Body>", b"<sr:Body>" + b" " * (1 << 20)), id="over 1 MiB"),
        pytest.param(SIGNED_8F36.replace(b"CN=Z1", b"CN=\xe9"), id="not UTF-8"),
        pytest.param(SIGNED_8F36.replace(b"</sr:Response>", b""), id="truncated"),
        pytest.param(SIGNED_8F36.replace(b"</ds:KeyInfo>", b"</ds:KeyInf>"), id="signature not well-formed"),
        pytest.param(
            SIGNED_8F36.replace(b'schemaVersion="5.4"', b'schemaVersion="5.4" schemaVersion="5.4"'),
            id="attribute twice",
        ),
        pytest.param(SIGNED_8F36.replace(b"xmlns:sr=", b"xmlns:sr2="), id="sr unbound"),
        pytest.param(SIGNED_8F36.replace(b"<sr:ResponseCode>I0", b"<sr:ResponseCode>I0&#0;"), id="bad reference"),
        pytest.param(b"<", id="no document"),
    ],
)
def test_hostile_and_broken_documents_reach_the_strict_readers_refusal(value: bytes) -> None:
    assert fast_device_alert(value, R) is None
    with pytest.raises(BadInput):
        input_records.device_alert(AvroCodec(), value, R)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(SIGNED_8F36.replace(b"<sr:Header>", b"<sr:Header><!-- from the DSP -->"), id="a comment"),
        pytest.param(SIGNED_8F36.replace(b"<sr:Body>", b"<sr:Body>" + b" " * MAX_FAST_BYTES), id="over the fast cap"),
        pytest.param(SIGNED_8F36.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'), id="another encoding"),
        pytest.param(SIGNED_8F36.replace(b"<ds:X509Data>", b'<ds:X509Data xmlns:ds="urn:other">'), id="ds rebound"),
    ],
)
def test_a_document_the_fast_reader_declines_is_still_read_by_the_strict_reader(value: bytes) -> None:
    """Outside the fast grammar, but valid DUIS."""
    assert fast_device_alert(value, R) is None
    assert read_device_alert(value, R) == messages.read_device_alert(SIGNED_8F36, R) | {"payload": value}
