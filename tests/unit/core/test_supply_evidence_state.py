"""Rule 9.a over the filter's state: which Supply Outage Restored alerts the state keeps, and which of them
count as evidence for an AD1 from CH Function C at t, with the inventory as it stands when it is decided."""

import pytest

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.outage_evidence import EvidencePolicy, SupplyEvidence
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest

MIN = 60_000
DAY = 86_400_000
T = 1_772_323_200_000  # the AD1's received_at
POLICY = EvidencePolicy()  # B = 10 min, A = 3 min
CHF, CHF_2 = "00-DB-12-34-56-78-90-C0", "00-DB-12-34-56-78-90-D0"
ESME, ESME_2, GSME = "00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-A1", "00-DB-12-34-56-78-90-B0"


def alert(device: str, code: str, at: int, alert_id: str = "a1") -> DeviceAlert:
    return DeviceAlert(alert_id, code, device, None, None, at, None)


def state(*devices: tuple[str, str, str | None]) -> FilterState:
    s = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    for device, kind, chf in devices:
        s.put_inventory(device, InventoryRecord(device, kind, chf, None, T - DAY))
    return s


def evidence(s: FilterState, chf: str = CHF, t: int = T) -> object:
    return s.evidence_for(alert(chf, "AD1", t, "the-ad1"), POLICY)


@pytest.mark.parametrize(
    ("at", "counts"),
    [(T - 10 * MIN - 1, False), (T - 10 * MIN, True), (T, True), (T + 3 * MIN, True), (T + 3 * MIN + 1, False)],
)
def test_supply_alert_counts_within_t_minus_b_and_t_plus_a_inclusive(at: int, counts: bool) -> None:
    s = state((ESME, "ESME", CHF))
    assert s.put_evidence_alert(alert(ESME, "8F35", at))
    assert (evidence(s) is not None) is counts


@pytest.mark.parametrize("code", ["8F34", "8f35", "8F37", " 8F35"])
def test_only_supply_restored_codes_and_ad1s_are_kept(code: str) -> None:
    s = state((ESME, "ESME", CHF))
    assert not s.put_evidence_alert(alert(ESME, code, T))
    assert s.put_evidence_alert(alert(ESME, "AD1", T, "ad1"))  # kept for storms, but no supply evidence
    assert evidence(s) is None


def test_the_evidence_names_the_earliest_alert_of_any_esme_on_the_han() -> None:
    s = state((ESME, "ESME", CHF), (ESME_2, "esme", CHF))  # device type in any letter case
    s.put_evidence_alert(alert(ESME, "8F35", T + MIN, "later"))
    s.put_evidence_alert(alert(ESME_2, "8F36", T - MIN, "earlier"))
    assert evidence(s) == SupplyEvidence(ESME_2, "earlier", "8F36", T - MIN)


def test_alerts_from_devices_that_are_not_esmes_of_the_han_are_no_evidence() -> None:
    s = state((ESME, "ESME", CHF), (GSME, "GSME", CHF), (ESME_2, "ESME", CHF_2))
    for device in (GSME, CHF, ESME_2):  # a gas meter and the CH Function on the HAN, an ESME of another HAN
        s.put_evidence_alert(alert(device, "8F35", T, device))
    assert evidence(s) is None
    assert evidence(s, CHF_2) == SupplyEvidence(ESME_2, ESME_2, "8F35", T)


def test_an_esme_moved_to_another_han_counts_for_the_han_it_is_on_when_the_ad1_is_decided() -> None:
    s = state((ESME, "ESME", CHF), (ESME_2, "ESME", CHF))
    s.put_evidence_alert(alert(ESME_2, "8F35", T))  # received while it was on CHF's HAN
    s.put_inventory(ESME_2, InventoryRecord(ESME_2, "ESME", CHF_2, None, T))
    assert evidence(s) is None
    assert evidence(s, CHF_2) == SupplyEvidence(ESME_2, "a1", "8F35", T)


def test_evidence_read_before_or_after_the_esme_joins_the_han_counts_alike() -> None:
    before = state()
    before.put_evidence_alert(alert(ESME, "8F35", T + MIN))
    before.put_inventory(ESME, InventoryRecord(ESME, "ESME", CHF, None, T))
    after = state((ESME, "ESME", CHF))
    after.put_evidence_alert(alert(ESME, "8F35", T + MIN))
    assert evidence(before) == evidence(after) == SupplyEvidence(ESME, "a1", "8F35", T + MIN)


def test_evidence_outlives_a_commit_and_is_found_in_the_committed_store() -> None:
    s = state((ESME, "ESME", CHF))
    s.put_evidence_alert(alert(ESME, "8F36", T))
    s.commit()
    assert evidence(s) == SupplyEvidence(ESME, "a1", "8F36", T)


def test_housekeeping_keeps_old_evidence_still_on_the_topic_and_purges_what_the_topic_no_longer_holds() -> None:
    """An alert received long ago but written recently (a backlog) is still on the topic: a rebuild would read
    it again, so it is kept; once written before the horizon and far older than any window, it goes."""
    s = state((ESME, "ESME", CHF))
    now = T + 400 * DAY
    s.put_evidence_alert(alert(ESME, "8F35", T, "written-recently"), written=now - DAY)
    s.put_evidence_alert(alert(ESME, "8F36", T + 1, "written-long-ago"), written=T + 2)
    s.put_evidence_alert(alert(ESME, "8F35", T + 2, "write-time-unknown"), written=None)
    sweep = s.start_sweep(now)
    while not s.sweep_some(sweep, 10):
        pass
    kept = [a.alert_id for a in s.supply_alerts(ESME, 0, now)]
    assert kept == ["written-recently", "write-time-unknown"]


def test_evidence_recorded_after_the_ad1_was_first_looked_at_counts_then() -> None:
    """Evidence may arrive after the AD1, on another partition, read by another worker's reader: the state is
    global, so what is recorded by the time the AD1 is decided counts, whenever it was recorded."""
    s = state((ESME, "ESME", CHF))
    assert evidence(s) is None
    s.put_evidence_alert(alert(ESME, "8F36", T + 2 * MIN))
    assert evidence(s) == SupplyEvidence(ESME, "a1", "8F36", T + 2 * MIN)


def test_the_same_alert_recorded_twice_is_kept_once() -> None:
    s = state((ESME, "ESME", CHF))
    s.put_evidence_alert(alert(ESME, "8F35", T))
    s.commit()
    s.put_evidence_alert(alert(ESME, "8F35", T))  # read again after a restart from older positions
    assert [a.alert_id for a in s.supply_alerts(ESME, T - DAY, T + DAY)] == ["a1"]


def test_an_esme_moved_onto_the_han_from_another_counts_for_its_new_han() -> None:
    s = state((ESME, "ESME", CHF), (ESME_2, "ESME", CHF_2))
    s.put_evidence_alert(alert(ESME_2, "8F35", T + MIN))  # received while it was on CHF_2's HAN
    assert evidence(s) is None
    s.put_inventory(ESME_2, InventoryRecord(ESME_2, "ESME", CHF, None, T + 2 * MIN))
    assert evidence(s) == SupplyEvidence(ESME_2, "a1", "8F35", T + MIN)
    assert evidence(s, CHF_2) is None


def test_an_esme_that_is_no_longer_an_esme_gives_no_supply_evidence() -> None:
    s = state((ESME, "ESME", CHF))
    s.put_evidence_alert(alert(ESME, "8F35", T))
    s.put_inventory(ESME, InventoryRecord(ESME, "GSME", CHF, None, T))
    assert evidence(s) is None


def test_supply_evidence_from_an_untracked_esme_of_the_han_releases_an_ad1_a_tracked_one_suppresses() -> None:
    """Rule 9.a asks for an ESME associated with C, not a tracked one: any meter on the HAN that saw its
    mains supply fail."""
    s = state((ESME, "ESME", CHF), (ESME_2, "ESME", CHF))
    s.put_tracked(ESME, True)
    s.apply_service_request(ServiceRequest("r1", "11.3", ESME, None, None, T - 5 * MIN))
    the_ad1 = alert(CHF, "AD1", T, "the-ad1")
    assert isinstance(s.decide(the_ad1), Suppress)
    s.put_evidence_alert(alert(ESME_2, "8F36", T + MIN))
    assert s.evidence_for(the_ad1, POLICY) == SupplyEvidence(ESME_2, "a1", "8F36", T + MIN)


def test_supply_evidence_needs_no_storm_and_is_found_before_the_inputs_are_read_past_t_plus_a() -> None:
    s = state((ESME, "ESME", CHF))
    s.put_evidence_alert(alert(ESME, "8F35", T))
    assert s.evidence_for(alert(CHF, "AD1", T, "the-ad1"), POLICY, storm=False) is not None
    assert s.evidence_for(alert(CHF, "AD1", T, "the-ad1"), EvidencePolicy(storm_min_hans=0)) is not None
