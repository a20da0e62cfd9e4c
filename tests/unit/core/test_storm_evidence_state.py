"""Rule 9.b over the filter's state: postcodes from the inventory (the CH Function's own, else its first
ESME's in device-ID order), the sector index kept up to date on inventory changes, and storm evidence:
AD1s from at least K other CH Functions of the sector that rule 5 alone forwards."""

import pytest

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.outage_evidence import EvidencePolicy, StormEvidence, SupplyEvidence
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest

MIN = 60_000
T = 1_772_323_200_000  # the AD1 under test is received at T
POLICY = EvidencePolicy(storm_min_hans=3)


def chf(n: int) -> str:
    return f"00-DB-12-34-56-78-{n:02X}-C0"


def esme(n: int, letter: str = "A") -> str:
    return f"00-DB-12-34-56-78-{n:02X}-{letter}0"


def new_state() -> FilterState:
    return FilterState(StagedStore(MemoryBackend()), WindowPolicy())


def put(s: FilterState, device: str, kind: str, on: str | None, postcode: str | None) -> None:
    s.put_inventory(device, InventoryRecord(device, kind, on, None, T - 60 * MIN, postcode))


def home(s: FilterState, n: int, postcode: str | None = "SW1A 1AA", tracked_window: bool = False) -> str:
    """A HAN: CH Function n with its postcode and one ESME; with `tracked_window`, the ESME is tracked and
    has an activation whose window covers T."""
    put(s, chf(n), "CHF", None, postcode)
    put(s, esme(n), "ESME", chf(n), None)
    if tracked_window:
        s.put_tracked(esme(n), True)
        s.apply_service_request(ServiceRequest(f"r{n}", "11.3", esme(n), None, None, T - 5 * MIN))
    return chf(n)


def ad1(device: str, at: int = T, alert_id: str | None = None) -> DeviceAlert:
    return DeviceAlert(alert_id or f"ad1-{device}-{at}", "AD1", device, None, None, at, None)


def storm(s: FilterState, target: str, policy: EvidencePolicy = POLICY) -> StormEvidence | None:
    found = s.evidence_for(ad1(target), policy)
    assert found is None or isinstance(found, StormEvidence)
    return found


# --- postcodes and sectors -------------------------------------------------------------------------


def test_a_chfs_sector_is_its_own_postcodes() -> None:
    s = new_state()
    put(s, chf(1), "CHF", None, "sw1a1aa")
    assert (s.han_postcode(chf(1)), s.sector_of(chf(1))) == ("sw1a1aa", "SW1A 1")


def test_a_postcode_only_on_the_esme_gives_the_han_its_sector() -> None:
    s = new_state()
    put(s, chf(1), "CHF", None, None)
    put(s, esme(1), "ESME", chf(1), "M1 1AE")
    assert s.sector_of(chf(1)) == "M1 1"
    assert s.sector_of(esme(1)) is None  # an ESME on a HAN has no sector of its own


def test_the_chfs_own_postcode_comes_before_its_esmes() -> None:
    s = new_state()
    put(s, esme(1), "ESME", chf(1), "M1 1AE")
    put(s, chf(1), "CHF", None, "SW1A 1AA")
    assert s.sector_of(chf(1)) == "SW1A 1"


def test_the_first_esme_in_device_id_order_that_has_a_postcode_gives_it() -> None:
    s = new_state()
    put(s, esme(1, "B"), "ESME", chf(1), "B1 1AA")
    put(s, esme(1, "C"), "ESME", chf(1), "C1 1AA")
    put(s, esme(1, "A"), "ESME", chf(1), None)  # first in device-ID order, without a postcode
    assert s.sector_of(chf(1)) == "B1 1"
    put(s, esme(1, "A"), "ESME", chf(1), "A1 1AA")
    assert s.sector_of(chf(1)) == "A1 1"


def test_a_malformed_first_postcode_makes_the_sector_unknown_rather_than_the_next() -> None:
    s = new_state()
    put(s, esme(1, "A"), "ESME", chf(1), "SW1A 1AAX")  # 8 characters
    put(s, esme(1, "B"), "ESME", chf(1), "B1 1AA")
    assert s.sector_of(chf(1)) is None


def test_a_postcode_on_another_kind_of_device_of_the_han_gives_it_none() -> None:
    s = new_state()
    put(s, esme(1, "B"), "GSME", chf(1), "B1 1AA")  # a gas meter on the HAN: not an ESME
    assert s.sector_of(chf(1)) is None
    put(s, esme(1, "B"), "esme", chf(1), "B1 1AA")  # an ESME, in any letter case
    assert s.sector_of(chf(1)) == "B1 1"


def test_an_esme_moved_to_another_han_takes_its_postcode_with_it() -> None:
    s = new_state()
    put(s, chf(1), "CHF", None, None)
    put(s, chf(2), "CHF", None, None)
    put(s, esme(1), "ESME", chf(1), "M1 1AE")
    assert list(s.reference.chfs_in_sector("M1 1")) == [chf(1)]
    put(s, esme(1), "ESME", chf(2), "M1 1AE")
    assert (s.sector_of(chf(1)), s.sector_of(chf(2))) == (None, "M1 1")
    assert list(s.reference.chfs_in_sector("M1 1")) == [chf(2)]


def test_a_changed_or_removed_postcode_moves_the_chf_out_of_its_sector() -> None:
    s = new_state()
    put(s, chf(1), "CHF", None, "SW1A 1AA")
    put(s, chf(1), "CHF", None, "SW1A 2AA")
    assert list(s.reference.chfs_in_sector("SW1A 1")) == []
    assert list(s.reference.chfs_in_sector("SW1A 2")) == [chf(1)]
    s.put_inventory(chf(1), None)  # a tombstone
    assert list(s.reference.chfs_in_sector("SW1A 2")) == [] and s.sector_of(chf(1)) is None


@pytest.mark.parametrize("kind", ["GSME", "IHD", "GPF", "PPMID", "ESME"])
def test_only_ch_functions_are_indexed_in_their_sector(kind: str) -> None:
    """A gas meter, IHD or GPF with a postcode, on a HAN or on none, or an ESME on none, is no CH Function:
    rule 9.b never reads it, so it takes no sector entry (issue 19)."""
    s = new_state()
    home(s, 1, postcode="SW1A 1AA")
    put(s, esme(1, "B"), kind if kind != "ESME" else "GSME", chf(1), "SW1A 1AB")  # on the HAN
    put(s, esme(2, "B"), kind, None, "SW1A 1AC")  # on no HAN
    assert list(s.reference.chfs_in_sector("SW1A 1")) == [chf(1)]
    assert (s.sector_of(esme(1, "B")), s.sector_of(esme(2, "B"))) == (None, None)


def test_a_device_becomes_a_sector_member_as_its_record_says_chf_or_an_esme_joins_its_han() -> None:
    s = new_state()
    put(s, chf(1), "GSME", None, "SW1A 1AA")
    assert s.sector_of(chf(1)) is None
    put(s, chf(1), "chf", None, "SW1A 1AA")  # the same postcode: only the kind changed (any letter case)
    assert list(s.reference.chfs_in_sector("SW1A 1")) == [chf(1)]
    put(s, chf(1), "GSME", None, "SW1A 1AA")
    assert s.sector_of(chf(1)) is None
    put(s, esme(1), "ESME", chf(1), None)  # an ESME associated with it: rule 5 takes it for a CH Function
    assert list(s.reference.chfs_in_sector("SW1A 1")) == [chf(1)]
    s.put_inventory(esme(1), None)  # its last ESME leaves
    assert list(s.reference.chfs_in_sector("SW1A 1")) == [] and s.sector_of(chf(1)) is None


def test_a_gas_meters_ad1s_are_no_storm_evidence_but_a_chfs_are() -> None:
    s = new_state()
    target = home(s, 0, tracked_window=True)
    for n in (1, 2):
        s.put_evidence_alert(ad1(home(s, n), T + n * MIN))
    gas = esme(3, "B")
    put(s, gas, "GSME", None, "SW1A 1AB")
    s.put_evidence_alert(ad1(gas, T + MIN))
    assert storm(s, target) is None
    s.put_evidence_alert(ad1(home(s, 4), T + MIN))
    assert storm(s, target) is not None


# --- storm evidence --------------------------------------------------------------------------------


def sector_with_outages(s: FilterState, others: int, in_window: int = 0) -> str:
    """The AD1 under test from CHF 0 (in a window); `others` other HANs of its sector raise AD1s in the span
    outside any window, `in_window` more inside one."""
    target = home(s, 0, tracked_window=True)
    for n in range(1, others + 1):
        s.put_evidence_alert(ad1(home(s, n), T + n * MIN))
    for n in range(others + 1, others + in_window + 1):
        s.put_evidence_alert(ad1(home(s, n, tracked_window=True), T))
    return target


def test_k_other_hans_outside_windows_are_storm_evidence() -> None:
    s = new_state()
    target = sector_with_outages(s, others=3)
    found = storm(s, target)
    assert found is not None and found.sector == "SW1A 1"
    assert [han for han, _, _ in found.hans] == [chf(1), chf(2), chf(3)]


def test_k_minus_one_other_hans_are_not() -> None:
    s = new_state()
    assert storm(s, sector_with_outages(s, others=2)) is None


def test_ad1s_that_are_themselves_in_windows_do_not_count() -> None:
    s = new_state()
    assert storm(s, sector_with_outages(s, others=2, in_window=5)) is None


def test_the_ad1s_own_han_and_other_sectors_do_not_count() -> None:
    s = new_state()
    target = sector_with_outages(s, others=2)
    for n in range(3):
        s.put_evidence_alert(ad1(target, T + n * MIN))  # its own HAN, again and again
    s.put_evidence_alert(ad1(home(s, 9, postcode="M1 1AE"), T))  # another sector
    assert storm(s, target) is None


def test_an_ad1s_own_window_makes_it_no_evidence_though_its_neighbours_are() -> None:
    """Each AD1 counts by rule 5 alone at its own time: an AD1 from a HAN whose window ended before it counts."""
    s = new_state()
    target = sector_with_outages(s, others=2)
    late = home(s, 7, tracked_window=True)  # window [T - 5 min, T + 25 min]
    s.put_evidence_alert(ad1(late, T - 6 * MIN))  # before its window: rule 5 forwards it
    assert storm(s, target) is not None


def test_no_known_postcode_no_storm_evidence() -> None:
    s = new_state()
    home(s, 0, postcode=None, tracked_window=True)
    for n in range(1, 5):
        s.put_evidence_alert(ad1(home(s, n, postcode=None), T))
    assert storm(s, chf(0)) is None


def test_k_zero_turns_storm_evidence_off() -> None:
    s = new_state()
    target = sector_with_outages(s, others=5)
    assert storm(s, target, EvidencePolicy(storm_min_hans=0)) is None


@pytest.mark.parametrize(("at", "counts"), [(T - 10 * MIN - 1, False), (T - 10 * MIN, True), (T + 3 * MIN, True),
                                            (T + 3 * MIN + 1, False)])  # fmt: skip
def test_storm_ad1s_count_within_t_minus_b_and_t_plus_a(at: int, counts: bool) -> None:
    s = new_state()
    target = sector_with_outages(s, others=2)
    s.put_evidence_alert(ad1(home(s, 5), at))
    assert (storm(s, target) is not None) is counts


def test_storm_evidence_is_not_looked_for_when_the_caller_says_the_inputs_are_not_read_far_enough() -> None:
    s = new_state()
    target = sector_with_outages(s, others=3)
    assert s.evidence_for(ad1(target), POLICY, storm=False) is None


@pytest.mark.parametrize("malformed", ["-", "--", "2D"])
def test_a_malformed_own_postcode_whatever_its_characters_makes_the_sector_unknown(malformed: str) -> None:
    """The CH Function has a postcode, so its ESMEs' do not apply; one that reads like the store's own
    "no postcode" mark is no exception."""
    s = new_state()
    put(s, chf(1), "CHF", None, malformed)
    put(s, esme(1), "ESME", chf(1), "M1 1AE")
    assert (s.han_postcode(chf(1)), s.sector_of(chf(1))) == (malformed, None)
    put(s, esme(2, "A"), "ESME", chf(2), malformed)  # the first ESME of CH Function 2 has one
    put(s, esme(2, "B"), "ESME", chf(2), "M1 1AE")
    assert (s.han_postcode(chf(2)), s.sector_of(chf(2))) == (malformed, None)


def test_several_ad1s_from_one_other_han_count_once() -> None:
    s = new_state()
    target = sector_with_outages(s, others=2)
    for n in range(4):
        s.put_evidence_alert(ad1(chf(1), T - n * MIN))  # CH Function 1 again and again: still one HAN
    assert storm(s, target) is None
    s.put_evidence_alert(ad1(home(s, 3), T))
    assert storm(s, target) is not None


def test_a_han_counts_when_one_of_its_ad1s_in_the_span_is_outside_its_window() -> None:
    """Rule 5 alone decides each AD1 at its own time: an AD1 just after the HAN's window ended counts, one
    inside it does not."""
    s = new_state()
    target = sector_with_outages(s, others=2)
    ending = home(s, 7)
    s.put_tracked(esme(7), True)
    s.apply_service_request(ServiceRequest("r7", "11.3", esme(7), None, None, T - 28 * MIN))  # ends at T + 2 min
    s.put_evidence_alert(ad1(ending, T + 2 * MIN))
    assert storm(s, target) is None
    s.put_evidence_alert(ad1(ending, T + 2 * MIN + 1))
    found = storm(s, target)
    assert found is not None and (ending, f"ad1-{ending}-{T + 2 * MIN + 1}", T + 2 * MIN + 1) in found.hans


def test_an_activation_recorded_after_an_ad1_still_keeps_it_from_counting() -> None:
    """Whether an AD1 counts is rule 5's decision with the activation inputs read past its time, whatever
    order they were recorded in: the look-up waits for them (rule 7), and then they are all there."""
    s = new_state()
    target = sector_with_outages(s, others=3)
    assert storm(s, target) is not None
    s.put_tracked(esme(3), True)
    s.apply_service_request(ServiceRequest("r3", "11.3", esme(3), None, None, T))  # covers HAN 3's AD1 at T + 3 min
    assert storm(s, target) is None


@pytest.mark.parametrize("postcode", [None, "SW1A1", "SW1A 1AAA", "sw1a 1"])
def test_hans_without_a_known_postcode_of_the_sector_do_not_count(postcode: str | None) -> None:
    s = new_state()
    target = sector_with_outages(s, others=2)
    s.put_evidence_alert(ad1(home(s, 5, postcode=postcode), T))
    assert storm(s, target) is None


def test_a_han_whose_postcode_moves_into_the_sector_after_its_ad1_counts_and_one_moving_out_does_not() -> None:
    """Postcodes are taken as they stand when the AD1 is decided."""
    s = new_state()
    target = sector_with_outages(s, others=2)
    newcomer = home(s, 5, postcode="M1 1AE")
    s.put_evidence_alert(ad1(newcomer, T))
    assert storm(s, target) is None
    put(s, newcomer, "CHF", None, "SW1A 1ZZ")
    assert storm(s, target) is not None
    put(s, chf(1), "CHF", None, "M1 1AE")
    assert storm(s, target) is None


def test_the_sector_of_the_ad1_itself_is_taken_as_it_stands() -> None:
    s = new_state()
    target = sector_with_outages(s, others=3)
    put(s, target, "CHF", None, "M1 1AE")
    assert storm(s, target) is None
    put(s, target, "CHF", None, None)
    put(s, esme(0), "ESME", target, "sw1a1xx")  # the postcode now only on its ESME, in lower case
    assert storm(s, target) is not None


def test_storm_ad1s_recorded_after_the_ad1_was_first_looked_at_count_then() -> None:
    s = new_state()
    target = sector_with_outages(s, others=0)
    assert storm(s, target) is None
    for n in (1, 2, 3):
        s.put_evidence_alert(ad1(home(s, n), T + 3 * MIN))
    assert storm(s, target) is not None


def test_supply_evidence_comes_first_when_both_are_there() -> None:
    s = new_state()
    target = sector_with_outages(s, others=3)
    s.put_evidence_alert(DeviceAlert("restored", "8F35", esme(0), None, None, T, None))
    assert isinstance(s.evidence_for(ad1(target), POLICY), SupplyEvidence)


def test_housekeeping_purges_only_ad1s_the_alert_topic_no_longer_holds() -> None:
    s = new_state()
    day = 86_400_000
    now = T + 400 * day
    s.put_evidence_alert(ad1(chf(1), T, "written-recently"), written=now - day)
    s.put_evidence_alert(ad1(chf(1), T + 1, "written-long-ago"), written=T + 2)
    s.put_evidence_alert(ad1(chf(1), T + 2, "write-time-unknown"), written=None)
    sweep = s.start_sweep(now)
    while not s.sweep_some(sweep, 2):
        pass
    assert [a.alert_id for a in s.ad1s(chf(1), 0, now)] == ["written-recently", "write-time-unknown"]
