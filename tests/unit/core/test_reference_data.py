"""Reference data on compacted topics (contract 6): records per key as written, live and after compaction
alike; the HAN index on a crowded HAN; and the stored format's version (upgrades rebuild by themselves).
"""

from collections.abc import Iterator
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Forward, ForwardReason, Suppress
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest
from pipeline.core.written import Written

T = 1_717_200_000_000
ESME = "00-DB-12-34-56-78-90-A0"
CHF = "00-DB-12-34-56-78-90-C0"
CHF_B = "00-DB-12-34-56-78-90-C1"
LOWER, UPPER, MIXED = ESME.lower(), ESME, "00-db-12-34-56-78-90-A0"


def new_state(store: StagedStore | None = None) -> FilterState:
    return FilterState(store or StagedStore(MemoryBackend()), WindowPolicy())


def ad1(t: int = T + 60_000, chf: str = CHF) -> DeviceAlert:
    return DeviceAlert(f"a-{t}", "AD1", chf, None, None, t, None)


def esme(device_id: str = ESME, chf: str | None = CHF, device_type: str = "ESME") -> InventoryRecord:
    return InventoryRecord(device_id, device_type, chf, None, T)


def at(timestamp: int, partition: int = 0, offset: int = 0) -> Written:
    return Written(timestamp, partition, offset)


# --- mixed-case keys on the compacted topics ------------------------------------------------------


def test_a_tombstone_under_another_letter_case_leaves_the_device_standing() -> None:
    state = new_state()
    state.put_inventory(LOWER, esme(), at(1, 0, 10))
    state.put_inventory(UPPER, None, at(2, 1, 3))
    assert list(state.reference.esmes_on_han(CHF)) == [ESME]
    state.put_tracked(LOWER, True)
    state.put_tracked(UPPER, False)
    assert state.reference.is_tracked(ESME)
    assert state.tracked_count() == 1


def test_a_tombstone_under_the_same_key_removes_the_device() -> None:
    state = new_state()
    state.put_inventory(LOWER, esme(), at(1))
    state.put_tracked(LOWER, True)
    state.put_inventory(LOWER, None, at(2, 0, 1))
    state.put_tracked(LOWER, False)
    assert list(state.reference.esmes_on_han(CHF)) == []
    assert not state.reference.is_tracked(ESME)
    assert state.tracked_count() == 0


def test_the_value_written_last_among_those_standing_applies_whatever_the_read_order() -> None:
    for first_read in (LOWER, UPPER):
        state = new_state()
        writes = {LOWER: (CHF, at(5, 0, 1)), UPPER: (CHF_B, at(9, 1, 0))}
        for key in sorted(writes, key=lambda k: k != first_read):
            chf, written = writes[key]
            state.put_inventory(key, esme(chf=chf), written)
        assert (list(state.reference.esmes_on_han(CHF)), list(state.reference.esmes_on_han(CHF_B))) == ([], [ESME])
        state.put_inventory(UPPER, None, at(10, 1, 1))  # the later value's key is tombstoned: the other applies
        assert (list(state.reference.esmes_on_han(CHF)), list(state.reference.esmes_on_han(CHF_B))) == ([ESME], [])


def test_a_later_non_esme_record_under_another_case_takes_the_device_off_the_han() -> None:
    state = new_state()
    state.put_inventory(UPPER, esme(), at(1, 0, 0))
    state.put_inventory(LOWER, esme(device_type="GSME"), at(2, 1, 0))
    assert isinstance(state.decide(ad1()), Forward)
    state.put_inventory(LOWER, None, at(3, 1, 1))
    assert list(state.reference.esmes_on_han(CHF)) == [ESME]


@dataclass(frozen=True)
class Write:
    key: str
    chf: str | None  # None: a tombstone
    partition: int
    timestamp: int


KEYS = (LOWER, UPPER, MIXED)


@st.composite
def histories(draw: st.DrawFn) -> list[Write]:
    """Records for one device under up to three letter cases, each key on its own partition (the producer
    hashes the key bytes), written at non-decreasing times."""
    partition_of = {key: draw(st.integers(0, 2)) for key in KEYS}
    writes, clock = [], T
    for _ in range(draw(st.integers(1, 12))):
        key = draw(st.sampled_from(KEYS))
        clock += draw(st.sampled_from([0, 1, 1000]))
        writes.append(Write(key, draw(st.sampled_from([CHF, CHF_B, "", None])), partition_of[key], clock))
    return writes


def interleaved(data: st.DataObject, writes: list[Write]) -> list[tuple[Write, Written]]:
    """The records with their offsets, read in an order that keeps each partition's order."""
    offsets: dict[int, int] = {}
    placed = []
    for w in writes:
        offsets[w.partition] = offsets.get(w.partition, -1) + 1
        placed.append((w, Written(w.timestamp, w.partition, offsets[w.partition])))
    queues = {p: [x for x in placed if x[0].partition == p] for p in sorted(offsets)}
    order = []
    while any(queues.values()):
        p = data.draw(st.sampled_from([p for p, q in queues.items() if q]))
        order.append(queues[p].pop(0))
    return order


def compacted(placed: list[tuple[Write, Written]], keep_tombstones: bool) -> list[tuple[Write, Written]]:
    """What compaction leaves: the last record per key, byte for byte (tombstones eventually go too)."""
    last = {w.key: (w, written) for w, written in placed}
    return [x for x in placed if last[x[0].key] == x and (keep_tombstones or x[0].chf is not None)]


def apply_history(placed: list[tuple[Write, Written]]) -> FilterState:
    state = new_state()
    for w, written in placed:
        if w.chf is None:
            state.put_inventory(w.key, None, written)
        else:
            state.put_esme_han(w.key, w.chf, written)
        state.put_tracked(w.key, w.chf is not None)
    return state


def placement(state: FilterState) -> tuple[list[str], list[str], bool]:
    han = state.reference.esmes_on_han
    return list(han(CHF)), list(han(CHF_B)), state.reference.is_tracked(ESME)


def expected_placement(writes: list[Write]) -> tuple[list[str], list[str], bool]:
    """Contract 6 read literally: the device stands while a key's last record is a value; the value written
    last (by time, then partition and offset) among the standing keys applies."""
    placed = [(w, Written(w.timestamp, w.partition, i)) for i, w in enumerate(writes)]
    last = {w.key: (w, written) for w, written in placed}
    standing = [(written.order, w.chf) for w, written in last.values() if w.chf is not None]
    chf = max(standing)[1] if standing else None
    return ([ESME] if chf == CHF else []), ([ESME] if chf == CHF_B else []), bool(standing)


@settings(max_examples=300, deadline=None)
@given(writes=histories(), data=st.data())
def test_live_processing_and_a_rebuild_after_compaction_agree(writes: list[Write], data: st.DataObject) -> None:
    live = interleaved(data, writes)
    rebuilt = compacted(interleaved(data, writes), keep_tombstones=data.draw(st.booleans()))
    assert placement(apply_history(live)) == placement(apply_history(rebuilt)) == expected_placement(writes)


# --- a crowded HAN (issue 9, item 7) ---------------------------------------------------------------


class CountingStore(StagedStore):
    """Counts the bytes every get, put and scan moves: the work a store does, whatever the machine."""

    def __init__(self) -> None:
        super().__init__(MemoryBackend())
        self.moved = 0

    def get(self, key: bytes) -> bytes | None:
        value = super().get(key)
        self.moved += len(key) + len(value or b"")
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self.moved += len(key) + len(value)
        super().put(key, value)

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for key, value in super().scan(prefix, after):
            self.moved += len(key) + len(value)
            yield key, value


def device(n: int) -> str:
    return "-".join(f"{b:02X}" for b in (0x00, 0xDB, 0x01, 0x00, 0x00, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF))


def load_han(esmes: int) -> tuple[FilterState, CountingStore]:
    store = CountingStore()
    state = new_state(store)
    for n in range(esmes):
        state.put_inventory(device(n), esme(device(n)), at(T, 0, n))
    return state, store


def test_loading_a_crowded_han_costs_the_same_per_esme_whatever_its_size() -> None:
    _, small = load_han(5_000)
    _, crowded = load_han(20_000)
    per_esme_small, per_esme_crowded = small.moved / 5_000, crowded.moved / 20_000
    assert per_esme_crowded <= 1.05 * per_esme_small, (per_esme_small, per_esme_crowded)


def test_an_ad1_on_a_crowded_han_stops_at_the_first_esme_that_justifies_a_suppression() -> None:
    state, store = load_han(20_000)
    for n in (0, 19_999):
        state.put_tracked(device(n), True)
    state.apply_service_request(ServiceRequest(f"X:{device(0)}:1", "11.3", device(0), None, None, T), at(T))
    before = store.moved
    decision = state.decide(DeviceAlert("a", "AD1", CHF, None, None, T + 1, None))
    assert isinstance(decision, Suppress) and decision.activation.version.esme_id == device(0)
    assert store.moved - before < 2_000  # a handful of keys, not the HAN's 20,000 ESMEs
    assert state.decide(DeviceAlert("b", "AD1", CHF, None, None, T + 3_600_000, None)) == Forward(
        ForwardReason.NO_ACTIVATION_WINDOW
    )


# --- the stored format ----------------------------------------------------------------------------


def test_an_empty_store_takes_this_format_and_keeps_it() -> None:
    backend = MemoryBackend()
    state = FilterState(StagedStore(backend), WindowPolicy())
    assert state.format_version_ok()
    state.mark_format()
    state.put_tracked(ESME, True)
    state.commit()
    assert FilterState(StagedStore(backend), WindowPolicy()).format_version_ok()


def test_state_without_a_format_or_in_an_older_one_must_be_rebuilt() -> None:
    backend = MemoryBackend()
    backend.write({b"han/" + CHF.encode(): f'["{ESME}"]'.encode()})  # the first format: no version, a JSON list
    assert not FilterState(StagedStore(backend), WindowPolicy()).format_version_ok()
    backend.write({b"meta/format": b"1"})
    assert not FilterState(StagedStore(backend), WindowPolicy()).format_version_ok()
    # 3: gas meters, IHDs and GPFs in the sector index, cancellations without their request ID (issue 19)
    backend.write({b"meta/format": b"3"})
    assert not FilterState(StagedStore(backend), WindowPolicy()).format_version_ok()
