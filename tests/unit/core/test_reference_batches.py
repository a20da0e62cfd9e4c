"""Reference records applied in large staged batches, or in another order after compaction, give exactly the state
(byte for byte, so every decision) of applying them one by one with a commit after each (issue 19).

The histories mix what a rebuild meets: devices under two letter cases (contract 6), tombstones, ESMEs moving
between HANs, postcodes moving between sectors, a device that is a CH Function by its record and one only by
having an ESME on its HAN, other devices with postcodes, and tracked-list records.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.written import Written

DEVICES = ("00-00-00-00-00-00-00-0A", "00-00-00-00-00-00-00-0B", "00-00-00-00-00-00-00-0C", "00-00-00-00-00-00-00-0D")
POSTCODES = (None, "SW1A 1AA", "SW1A 1BB", "SW1A 2AA", "EH1 1YZ", "X1")  # two sectors share SW1A 1; X1: unknown
KINDS = ("CHF", "ESME", "GSME")
# (topic, raw key, value): on the inventory, None for a tombstone or (device type, CHF index or None, postcode);
# on the tracked list, whether listed (False: a tombstone)
Op = tuple[str, str, tuple[str, int | None, str | None] | bool | None]


@st.composite
def operations(draw: st.DrawFn) -> list[Op]:
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, 30))):
        device = draw(st.sampled_from(DEVICES))
        key = device.lower() if draw(st.booleans()) else device  # two keys of one device
        if draw(st.integers(0, 3)) == 0:
            ops.append(("tracked", key, draw(st.booleans())))
            continue
        value = None
        if draw(st.integers(0, 4)):
            value = (draw(st.sampled_from(KINDS)), draw(st.sampled_from((None, 0, 1, 2, 3))),
                     draw(st.sampled_from(POSTCODES)))  # fmt: skip
        ops.append(("inventory", key, value))
    return ops


def apply(state: FilterState, op: Op, written: Written) -> None:
    topic, key, value = op
    if topic == "tracked":
        state.put_tracked(key, bool(value))
    elif not isinstance(value, tuple):
        state.reference.remove_inventory(key)
    else:
        kind, chf, postcode = value
        chf_id = DEVICES[chf] if chf is not None and kind == "ESME" else None
        state.put_esme_han(key, chf_id, written, postcode, kind == "CHF")


def applied(ops: list[tuple[Op, Written]], commit_every: int) -> dict[bytes, bytes]:
    backend = MemoryBackend()
    store = StagedStore(backend)
    state = FilterState(store, WindowPolicy(30 * 60_000, 0, 30 * 86_400_000))
    for n, (op, written) in enumerate(ops, 1):
        apply(state, op, written)
        if n % commit_every == 0:
            store.commit()
    store.commit()
    return dict(backend._data)


def numbered(ops: list[Op]) -> list[tuple[Op, Written]]:
    return [(op, Written(1_700_000_000_000 + n, 0, n)) for n, op in enumerate(ops)]


def unordered(state: dict[bytes, bytes]) -> dict[bytes, object]:
    """The state with the records kept per raw key as a set (their order says only which was applied first), and
    a tracked count of 0 as none."""
    return {k: frozenset(v.split(b"\n" if k.startswith(b"inv/") else b" ")) if k.startswith((b"inv/", b"trk/")) else v
            for k, v in state.items() if (k, v) != (b"trk-count", b"0")}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(ops=operations(), commit_every=st.integers(2, 40))
def test_a_batched_apply_gives_the_state_of_a_record_by_record_one(ops: list[Op], commit_every: int) -> None:
    placed = numbered(ops)
    assert applied(placed, commit_every) == applied(placed, 1)


@settings(max_examples=400, deadline=None)
@given(ops=operations(), data=st.data())
def test_a_rebuild_in_any_order_after_compaction_gives_the_live_state(ops: list[Op], data: st.DataObject) -> None:
    """Indexes (HAN, postcodes, sectors) are those of the standing records, however they were reached: an update
    skipped on the way (a sector not looked at again) would leave the live state apart from the rebuilt one."""
    placed = numbered(ops)
    last = {op[:2]: (op, written) for op, written in placed}  # compaction: the last record per key and topic
    standing = [x for x in last.values() if x[0][2]]  # tombstones compacted away too
    rebuild = data.draw(st.permutations(standing))
    assert unordered(applied(rebuild, data.draw(st.integers(1, 10)))) == unordered(applied(placed, 1_000))
