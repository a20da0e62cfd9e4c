"""Contract rule 9, sentence by sentence, on the pure evidence rules (the state finds the candidates)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.event_time import MINUTE_MS
from pipeline.core.outage_evidence import (
    EvidenceAlert,
    EvidencePolicy,
    StormEvidence,
    SupplyEvidence,
    han_postcode,
    postcode_sector,
    storm_evidence,
    supply_evidence,
)

T = 1_780_000_000_000
POLICY = EvidencePolicy()  # B = 10 min, A = 3 min, K = 3
B, A = 10 * MINUTE_MS, 3 * MINUTE_MS
CHF = "00-DB-12-34-56-78-90-A0"
ESME = "00-DB-12-34-56-78-90-A1"


def supply(t: int, code: str = "8F36", esme: str = ESME, alert_id: str = "s1") -> EvidenceAlert:
    return EvidenceAlert(esme, code, alert_id, t)


def ad1(chf: str, t: int, alert_id: str | None = None) -> EvidenceAlert:
    return EvidenceAlert(chf, "AD1", alert_id or f"ad1-{chf}-{t}", t)


def other_chf(n: int) -> str:
    return f"00-DB-12-34-56-78-91-{n:02X}"


def test_defaults_are_the_contracts() -> None:
    assert (POLICY.before_ms, POLICY.after_ms, POLICY.storm_min_hans) == (B, A, 3)
    assert POLICY.span(T) == (T - B, T + A)
    assert POLICY.complete_after(T) == T + A


@pytest.mark.parametrize("code", ["8F35", "8F36"])
def test_supply_restored_alerts_are_supply_evidence(code: str) -> None:
    assert supply_evidence(T, POLICY, [supply(T + MINUTE_MS, code)]) == SupplyEvidence(ESME, "s1", code, T + MINUTE_MS)


@pytest.mark.parametrize("code", ["8F37", "8f36", "AD1", "8F66", " 8F36"])
def test_other_codes_are_not_supply_evidence(code: str) -> None:
    assert supply_evidence(T, POLICY, [supply(T, code)]) is None


@pytest.mark.parametrize(
    ("offset", "counts"),
    [(-B, True), (-B - 1, False), (A, True), (A + 1, False), (0, True), (-1, True)],
)
def test_supply_evidence_span_is_inclusive_at_both_ends(offset: int, counts: bool) -> None:
    assert (supply_evidence(T, POLICY, [supply(T + offset)]) is not None) is counts


def test_the_earliest_supply_alert_is_named() -> None:
    found = supply_evidence(T, POLICY, [supply(T + 60_000, alert_id="late"), supply(T - 60_000, alert_id="early")])
    assert found is not None and found.alert_id == "early"


@pytest.mark.parametrize(
    ("postcode", "sector"),
    [
        ("SW1A 1AA", "SW1A 1"),
        ("sw1a1aa", "SW1A 1"),
        ("M1 1AE", "M1 1"),
        ("m11ae", "M1 1"),
        ("B33 8TH", "B33 8"),
        ("CR2 6XH", "CR2 6"),
        ("DN55 1PT", "DN55 1"),
        (" EC1A  1BB ", "EC1A 1"),
        ("M1 1A", None),  # four characters
        ("SW1A 1AAA", None),  # eight characters
        ("", None),
        (None, None),
    ],
)
def test_postcode_sector(postcode: str | None, sector: str | None) -> None:
    assert postcode_sector(postcode) == sector


def test_han_postcode_is_the_chfs_own_first() -> None:
    assert han_postcode("SW1A 1AA", [(ESME, "M1 1AE")]) == "SW1A 1AA"


def test_han_postcode_falls_back_to_the_first_esme_in_device_id_order_that_has_one() -> None:
    esmes = [
        ("00-DB-00-00-00-00-00-03", "B33 8TH"),
        ("00-DB-00-00-00-00-00-01", None),
        ("00-DB-00-00-00-00-00-02", "M1 1AE"),
    ]
    assert han_postcode(None, esmes) == "M1 1AE"


def test_a_malformed_first_postcode_makes_the_han_postcode_malformed_not_the_next() -> None:
    esmes = [("00-DB-00-00-00-00-00-01", "XX"), ("00-DB-00-00-00-00-00-02", "M1 1AE")]
    assert postcode_sector(han_postcode(None, esmes)) is None


def test_no_postcode_anywhere_is_unknown() -> None:
    assert han_postcode(None, [(ESME, None)]) is None
    assert han_postcode(None, []) is None


def test_k_other_hans_make_a_storm_and_k_minus_one_do_not() -> None:
    three = [ad1(other_chf(n), T + n) for n in range(3)]
    found = storm_evidence(CHF, "SW1A 1", T, POLICY, three)
    assert isinstance(found, StormEvidence) and [h for h, _, _ in found.hans] == sorted(other_chf(n) for n in range(3))
    assert storm_evidence(CHF, "SW1A 1", T, POLICY, three[:2]) is None


def test_several_ad1s_from_one_han_count_once() -> None:
    alerts = [ad1(other_chf(1), T + n) for n in range(5)] + [ad1(other_chf(2), T)]
    assert storm_evidence(CHF, "SW1A 1", T, POLICY, alerts) is None


def test_the_ad1s_own_han_does_not_count() -> None:
    alerts = [ad1(CHF, T - 1), ad1(other_chf(1), T), ad1(other_chf(2), T)]
    assert storm_evidence(CHF, "SW1A 1", T, POLICY, alerts) is None


@pytest.mark.parametrize(("offset", "counts"), [(-B, True), (-B - 1, False), (A, True), (A + 1, False)])
def test_storm_span_is_inclusive_at_both_ends(offset: int, counts: bool) -> None:
    alerts = [ad1(other_chf(1), T), ad1(other_chf(2), T), ad1(other_chf(3), T + offset)]
    assert (storm_evidence(CHF, "SW1A 1", T, POLICY, alerts) is not None) is counts


def test_no_storm_evidence_without_a_known_sector() -> None:
    alerts = [ad1(other_chf(n), T) for n in range(5)]
    assert storm_evidence(CHF, None, T, POLICY, alerts) is None


def test_k_zero_turns_storm_evidence_off() -> None:
    alerts = [ad1(other_chf(n), T) for n in range(5)]
    assert storm_evidence(CHF, "SW1A 1", T, EvidencePolicy(storm_min_hans=0), alerts) is None


def test_k_one() -> None:
    assert storm_evidence(CHF, "SW1A 1", T, EvidencePolicy(storm_min_hans=1), [ad1(other_chf(1), T)]) is not None


@settings(deadline=None)  # a loaded machine must not fail it
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(-20 * MINUTE_MS, 20 * MINUTE_MS)), max_size=30), st.integers(0, 5)
)
def test_storm_evidence_counts_distinct_other_hans_in_the_span(raw: list[tuple[int, int]], k: int) -> None:
    """An independent statement of rule 9b: the set of other HANs with an AD1 in [t - B, t + A] has K or more;
    the evidence names K of them (reading stops there)."""
    alerts = [ad1(CHF if n == 0 else other_chf(n), T + offset) for n, offset in raw]
    policy = EvidencePolicy(storm_min_hans=k)
    hans = {a.device_id for a in alerts if a.device_id != CHF and T - B <= a.received_at <= T + A}
    expected = k > 0 and len(hans) >= k
    found = storm_evidence(CHF, "SW1A 1", T, policy, alerts)
    assert (found is not None) is expected
    if found is not None:
        named = [h for h, _, _ in found.hans]
        assert len(named) == k and set(named) <= hans


CODES = st.sampled_from(["8F35", "8F36", "8f36", "8F37", "AD1"])


@settings(deadline=None)
@given(st.lists(st.tuples(CODES, st.integers(-15 * MINUTE_MS, 15 * MINUTE_MS)), max_size=12))
def test_supply_evidence_is_the_earliest_supply_restored_alert_in_the_span(raw: list[tuple[str, int]]) -> None:
    """An independent statement of rule 9a over the HAN's ESMEs' alerts: code 8F35 or 8F36 exactly, received
    in [t - B, t + A]; the earliest is named."""
    alerts = [supply(T + offset, code, alert_id=f"s{n:02d}") for n, (code, offset) in enumerate(raw)]
    counting = sorted((a.received_at, a.alert_id) for a in alerts
                      if a.alert_code in ("8F35", "8F36") and T - B <= a.received_at <= T + A)  # fmt: skip
    found = supply_evidence(T, POLICY, alerts)
    assert (found is None) == (not counting)
    if found is not None:
        assert (found.received_at, found.alert_id) == counting[0]
