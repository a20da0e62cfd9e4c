"""The document writers (used by the simulator, the publish-duis tests and the bench) read back through the
readers to the fields they were given, for any fields: a writer and a reader that disagree fail here."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.event_time import CANCELLATION_FROM_MS, EARLIEST_MS
from pipeline.wire import validation
from pipeline.wire.duis import documents, gbcs, read_activation_outcome, read_device_alert, read_service_request
from pipeline.wire.duis.xml_document import MAX_COUNTER, date_time

EXAMPLES = settings(max_examples=150, deadline=None)
euis = st.binary(min_size=8, max_size=8).map(lambda b: "-".join(f"{x:02X}" for x in b))
any_case_euis = st.tuples(euis, st.booleans()).map(lambda t: t[0].lower() if t[1] else t[0])
counters = st.integers(1, MAX_COUNTER)
times = st.integers(EARLIEST_MS, CANCELLATION_FROM_MS - 1)
hundredths = times.map(lambda ms: ms // 10 * 10)  # DLMS date-times hold hundredths of a second
seconds = times.map(lambda ms: ms // 1000 * 1000)  # GeneralizedTime as GBCS writes it: whole seconds
received = times


def ids(originator: str, target: str, counter: int) -> str:
    return f"{originator}:{target}:{counter}"


@EXAMPLES
@given(
    user=any_case_euis,
    esme=any_case_euis,
    counter=counters,
    variant=st.sampled_from([4, 5, 6, 7]),
    execution=st.none() | seconds | st.just(gbcs.CANCELLATION_TIME_MS),
    firmware_hash=st.binary(min_size=32, max_size=32),
    ciphered=st.booleans(),
    signed=st.booleans(),
    received_at=received,
)
def test_requests(
    user: str,
    esme: str,
    counter: int,
    variant: int,
    execution: int | None,
    firmware_hash: bytes,
    ciphered: bool,
    signed: bool,
    received_at: int,
) -> None:
    document = documents.activate_firmware_request(
        ids(user, esme, counter),
        command_variant=variant,
        execution_ms=execution,
        firmware_hash=firmware_hash,
        ciphered=ciphered,
        signed=signed,
    )
    datum = read_service_request(document, received_at, frozenset({variant}))
    assert datum == {
        "request_id": ids(user.upper(), esme.upper(), counter),
        "service_reference_variant": "11.3",
        "target_device_id": esme.upper(),
        "execution_datetime": execution,
        "firmware_hash": firmware_hash.hex(),
        "received_at": received_at,
    }
    validation.service_request(datum)
    assert read_service_request(document, received_at, frozenset({1, 2, 3, 8, 9} - {variant})) is None


@EXAMPLES
@given(
    user=any_case_euis,
    esme=any_case_euis,
    counter=counters,
    code=st.none() | st.integers(0, 2**31),
    responded=times,
    ciphered=st.booleans(),
    received_at=received,
)
def test_immediate_outcomes(
    user: str, esme: str, counter: int, code: int | None, responded: int, ciphered: bool, received_at: int
) -> None:
    document = documents.activation_outcome_response(
        ids(user, esme, counter),
        ids(esme, user, counter),
        response_code=code,
        responded_ms=responded,
        ciphered=ciphered,
    )
    datum = read_activation_outcome(document, received_at)
    if code is None:
        assert datum is None
        return
    expected = {0: "SUCCESS", 1: "NO_IMAGE_HELD", 2: "HASH_MISMATCH", 3: "ACTIVATION_FAILURE"}.get(code, "UNKNOWN")
    assert datum == {
        "request_id": ids(user.upper(), esme.upper(), counter),
        "device_id": esme.upper(),
        "outcome": expected,
        "received_at": received_at,
    }
    validation.activation_outcome(datum)


@EXAMPLES
@given(
    user=any_case_euis,
    esme=any_case_euis,
    counter=counters,
    alert_counter=counters,
    alert_code=st.sampled_from([0x8F66, 0x8F67]),
    code=st.integers(0, 3),
    execution=seconds,
    with_request_id=st.booleans(),
    received_at=received,
)
def test_future_dated_outcomes(
    user: str,
    esme: str,
    counter: int,
    alert_counter: int,
    alert_code: int,
    code: int,
    execution: int,
    with_request_id: bool,
    received_at: int,
) -> None:
    document = documents.future_dated_activation_alert(
        ids(user, esme, counter) if with_request_id else None,
        ids(esme, user, alert_counter),
        alert_code=alert_code,
        execution_ms=execution,
        counter=counter,
        response_code=code,
        responded_ms=execution,
    )
    datum = read_activation_outcome(document, received_at)
    assert datum == {
        "request_id": ids(user.upper(), esme.upper(), counter),
        "device_id": esme.upper(),
        "outcome": ["SUCCESS", "NO_IMAGE_HELD", "HASH_MISMATCH", "ACTIVATION_FAILURE"][code],
        "received_at": received_at,
    }


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Cn", "Zs", "Zl", "Zp"]), min_size=1)


@EXAMPLES
@given(
    dcc=euis,
    user=any_case_euis,
    counter=counters,
    chf=any_case_euis,
    started=times,
    mpxn=texts.filter(lambda t: len(t) <= 13),
    responded=times,
    throttled=st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    received_at=received,
)
def test_power_outage_alerts(
    dcc: str,
    user: str,
    counter: int,
    chf: str,
    started: int,
    mpxn: str,
    responded: int,
    throttled: tuple[int, int] | None,
    received_at: int,
) -> None:
    alert_id = ids(dcc, user, counter)
    document = documents.power_outage_alert(
        alert_id, chf_id=chf, started_ms=started, mpxn=mpxn, responded_ms=responded, throttled=throttled
    )
    datum = read_device_alert(document, received_at)
    assert datum == {
        "alert_id": ids(dcc, user.upper(), counter),
        "alert_code": "AD1",
        "device_id": chf.upper(),
        "mpxn": mpxn,
        "raised_at": started,
        "received_at": received_at,
        "payload": document,
    }
    validation.device_alert(datum)


@EXAMPLES
@given(dcc=euis, user=euis, counter=counters, code=texts.filter(lambda t: t != "AD1"), received_at=received)
def test_other_dcc_alerts(dcc: str, user: str, counter: int, code: str, received_at: int) -> None:
    document = documents.dcc_alert(ids(dcc, user, counter), dcc_alert_code=code, responded_ms=received_at)
    datum = read_device_alert(document, received_at)
    assert (datum["alert_code"], datum["device_id"], datum["mpxn"], datum["raised_at"]) == (code, dcc, None, None)


@EXAMPLES
@given(
    esme=any_case_euis,
    user=any_case_euis,
    counter=counters,
    code=st.sampled_from(["8F35", "8F36", "8f36"]) | st.integers(0, 0xFFFF).map(lambda c: f"{c:04x}"),
    alert_ms=st.none() | hundredths,
    start=st.none() | hundredths,
    end=st.none() | hundredths,
    ciphered=st.booleans(),
    received_at=received,
)
def test_device_alerts(
    esme: str,
    user: str,
    counter: int,
    code: str,
    alert_ms: int | None,
    start: int | None,
    end: int | None,
    ciphered: bool,
    received_at: int,
) -> None:
    document = documents.device_alert(
        ids(esme, user, counter),
        alert_code=code,
        alert_ms=alert_ms,
        outage_start_ms=start,
        outage_end_ms=end,
        responded_ms=received_at,
        ciphered=ciphered,
    )
    datum = read_device_alert(document, received_at)
    assert datum == {
        "alert_id": ids(esme.upper(), user.upper(), counter),
        "alert_code": code.upper(),
        "device_id": esme.upper(),
        "mpxn": None,
        "raised_at": alert_ms,
        "received_at": received_at,
        "payload": document,
    }


@EXAMPLES
@given(times)
def test_date_times_are_written_as_dcc_does_and_read_back(ms: int) -> None:
    text = documents.date_time_text(ms)
    assert date_time(text, "/x") == ms
    fraction = text[text.index(".") + 1 : -1]
    assert len(fraction) == (2 if ms % 10 == 0 else 3)


def test_dcc_writes_two_fraction_digits() -> None:
    assert documents.date_time_text(1_894_698_000_000) == "2030-01-15T09:00:00.00Z"
    assert documents.date_time_text(1_894_698_000_123) == "2030-01-15T09:00:00.123Z"
