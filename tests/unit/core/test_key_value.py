"""State backends (contract 6: state survives restarts): MemoryBackend and RocksBackend behave alike,
StagedStore gives read-your-writes and applies staged changes in one write on commit.
"""

from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import key_value
from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import KeyValueBackend, MemoryBackend, StagedStore
from pipeline.core.records import DeviceAlert, InventoryRecord, ServiceRequest
from pipeline.worker.rocks_store import RocksBackend

Changes = dict[bytes, bytes | None]


class RecordingBackend(MemoryBackend):
    """A MemoryBackend that remembers each write, or refuses them all (a disk or process failure)."""

    def __init__(self, failing: bool = False) -> None:
        super().__init__()
        self.writes: list[Changes] = []
        self.failing = failing

    def write(self, changes: Changes) -> None:
        if self.failing:
            raise OSError("disk full")
        self.writes.append(dict(changes))
        super().write(changes)


@pytest.fixture(params=["memory", "rocks"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueBackend]:
    b: KeyValueBackend = MemoryBackend() if request.param == "memory" else RocksBackend(tmp_path / "db")
    yield b
    b.close()


def committed(backend: KeyValueBackend, **items: bytes | None) -> KeyValueBackend:
    backend.write({k.encode(): v for k, v in items.items()})
    return backend


def everything(store: KeyValueBackend | StagedStore) -> list[tuple[bytes, bytes]]:
    return list(store.scan(b""))


# --- both backends --------------------------------------------------------------------------------


def test_get_returns_what_was_written_and_none_for_absent_keys(backend: KeyValueBackend) -> None:
    committed(backend, a=b"1", b=b"")
    assert (backend.get(b"a"), backend.get(b"b"), backend.get(b"c")) == (b"1", b"", None)


def test_write_overwrites_and_none_deletes(backend: KeyValueBackend) -> None:
    committed(backend, a=b"1", b=b"2")
    committed(backend, a=b"3", b=None, c=None)
    assert everything(backend) == [(b"a", b"3")]


def test_scan_yields_only_the_prefix_in_byte_order(backend: KeyValueBackend) -> None:
    backend.write({b"req/b": b"2", b"req/a": b"1", b"req0": b"x", b"re": b"y", b"req/\xff": b"3", b"wdr/a": b"4"})
    assert list(backend.scan(b"req/")) == [(b"req/a", b"1"), (b"req/b", b"2"), (b"req/\xff", b"3")]
    assert list(backend.scan(b"nothing/")) == []


OPS = st.lists(
    st.dictionaries(st.binary(min_size=1, max_size=3), st.none() | st.binary(max_size=3), max_size=5),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(batches=OPS, prefix=st.binary(max_size=2))
def test_rocks_and_memory_agree_on_any_sequence_of_writes(
    tmp_path_factory: pytest.TempPathFactory, batches: list[Changes], prefix: bytes
) -> None:
    memory, rocks = MemoryBackend(), RocksBackend(tmp_path_factory.mktemp("db"))
    try:
        for batch in batches:
            memory.write(batch)
            rocks.write(batch)
        assert list(rocks.scan(prefix)) == list(memory.scan(prefix))
        keys = {k for batch in batches for k in batch}
        assert {k: rocks.get(k) for k in keys} == {k: memory.get(k) for k in keys}
    finally:
        rocks.close()


def test_rocks_data_survives_close_and_reopen(tmp_path: Path) -> None:
    first = RocksBackend(tmp_path / "db")
    committed(first, a=b"1", b=b"2", c=b"3")
    committed(first, b=None)
    first.close()
    again = RocksBackend(tmp_path / "db")
    try:
        assert everything(again) == [(b"a", b"1"), (b"c", b"3")]
    finally:
        again.close()


# --- StagedStore ----------------------------------------------------------------------------------


def staged(**committed_items: bytes) -> tuple[StagedStore, RecordingBackend]:
    backend = RecordingBackend()
    committed(backend, **committed_items)
    backend.writes.clear()
    return StagedStore(backend), backend


def test_staged_writes_are_read_back_before_commit_and_reach_the_backend_only_on_commit() -> None:
    store, backend = staged(a=b"old")
    store.put(b"a", b"new")
    store.put(b"b", b"2")
    assert (store.get(b"a"), store.get(b"b")) == (b"new", b"2")
    assert (backend.get(b"a"), backend.get(b"b"), store.pending) == (b"old", None, 2)
    store.commit()
    assert (backend.get(b"a"), backend.get(b"b"), store.pending) == (b"new", b"2", 0)


def test_staged_delete_hides_the_committed_value() -> None:
    store, backend = staged(a=b"1", b=b"2")
    store.delete(b"a")
    assert (store.get(b"a"), everything(store)) == (None, [(b"b", b"2")])
    assert backend.get(b"a") == b"1"
    store.commit()
    assert everything(backend) == [(b"b", b"2")]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([b"x"], b"x", id="put"),
        pytest.param([None, b"x"], b"x", id="delete then put"),
        pytest.param([b"x", None], None, id="put then delete"),
    ],
)
def test_last_staged_change_to_a_key_wins(steps: list[bytes | None], expected: bytes | None) -> None:
    """Each step puts its value, or deletes the key when it is None."""
    store, backend = staged(k=b"committed")
    for value in steps:
        if value is None:
            store.delete(b"k")
        else:
            store.put(b"k", value)
    assert store.get(b"k") == expected
    store.commit()
    assert backend.get(b"k") == expected


def test_scan_merges_staged_and_committed_in_key_order() -> None:
    store, _ = staged(**{"p/a": b"1", "p/c": b"3", "p/d": b"4", "q/a": b"9"})
    store.put(b"p/b", b"2")
    store.put(b"p/c", b"33")
    store.delete(b"p/d")
    store.put(b"q/b", b"8")
    assert list(store.scan(b"p/")) == [(b"p/a", b"1"), (b"p/b", b"2"), (b"p/c", b"33")]


SHORT_KEYS = st.binary(max_size=3).map(lambda k: b"p" + k)
STORE_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), SHORT_KEYS, st.binary(min_size=1, max_size=2)),
        st.tuples(st.just("delete"), SHORT_KEYS, st.none()),
        st.tuples(st.just("commit"), st.none(), st.none()),
        st.tuples(st.just("scan"), st.binary(max_size=2).map(lambda k: b"p" + k), st.one_of(st.none(), SHORT_KEYS)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=STORE_STEPS)
def test_scan_agrees_with_a_plain_dict_over_any_puts_deletes_commits_and_scans(
    steps: list[tuple[str, bytes | None, bytes | None]],
) -> None:
    agrees_with_a_dict(steps)


@settings(max_examples=300, deadline=None)
@given(steps=STORE_STEPS)
def test_scan_agrees_with_a_plain_dict_when_recent_keys_join_the_large_run_often(
    steps: list[tuple[str, bytes | None, bytes | None]],
) -> None:
    """Staged keys move from the small sorted run to the large one every few keys here (RECENT_KEYS)."""
    with patch.object(key_value, "RECENT_KEYS", 2):
        agrees_with_a_dict(steps)


def test_a_scan_under_way_is_not_disturbed_by_keys_staged_meanwhile() -> None:
    store = StagedStore(MemoryBackend())
    for n in range(0, 20, 2):
        store.put(b"p%02d" % n, b"v")
    seen = []
    with patch.object(key_value, "RECENT_KEYS", 2):
        for key, _ in store.scan(b"p"):
            seen.append(key)
            store.put(key + b"x", b"w")  # staged while the scan goes on: joins the runs at the next scan
            list(store.scan(b"q"))
    assert seen == [b"p%02d" % n for n in range(0, 20, 2)]
    assert len(list(store.scan(b"p"))) == 20


def test_prefixes_ending_in_ff_bytes_scan_their_own_keys_only() -> None:
    store = StagedStore(MemoryBackend())
    for key in (b"a\xff", b"a\xff\x00", b"a\xff\xff", b"b", b"\xff\xff\x01"):
        store.put(key, b"v")
    assert [k for k, _ in store.scan(b"a\xff")] == [b"a\xff", b"a\xff\x00", b"a\xff\xff"]
    assert [k for k, _ in store.scan(b"\xff\xff")] == [b"\xff\xff\x01"]


def agrees_with_a_dict(steps: list[tuple[str, bytes | None, bytes | None]]) -> None:
    store, model = StagedStore(MemoryBackend()), dict[bytes, bytes]()
    for op, key, value in steps:
        if op == "put" and key is not None and value is not None:
            store.put(key, value)
            model[key] = value
        elif op == "delete" and key is not None:
            store.delete(key)
            model.pop(key, None)
        elif op == "commit":
            store.commit()
        elif key is not None:  # a scan of prefix `key`, resumed after `value`
            expected = sorted((k, v) for k, v in model.items() if k.startswith(key) and (value is None or k > value))
            assert list(store.scan(key, value)) == expected


def test_commit_applies_all_staged_changes_in_one_write() -> None:
    store, backend = staged(a=b"1")
    store.put(b"b", b"2")
    store.delete(b"a")
    store.put(b"c", b"3")
    store.commit()
    assert backend.writes == [{b"a": None, b"b": b"2", b"c": b"3"}]


def test_commit_with_nothing_staged_writes_nothing() -> None:
    store, backend = staged(a=b"1")
    store.commit()
    assert backend.writes == []


def test_failed_commit_keeps_the_staged_changes_and_writes_nothing() -> None:
    store, backend = staged(a=b"1")
    store.put(b"a", b"2")
    store.put(b"b", b"3")
    backend.failing = True
    with pytest.raises(OSError):
        store.commit()
    assert (everything(backend), store.pending, store.get(b"a")) == ([(b"a", b"1")], 2, b"2")
    backend.failing = False
    store.commit()
    assert everything(backend) == [(b"a", b"2"), (b"b", b"3")]


def test_uncommitted_changes_are_lost_and_committed_ones_kept_across_a_crash(tmp_path: Path) -> None:
    backend = RocksBackend(tmp_path / "db")
    store = StagedStore(backend)
    store.put(b"a", b"1")
    store.commit()
    store.put(b"b", b"2")
    store.delete(b"a")
    backend.close()  # the process dies before the next commit
    reopened = RocksBackend(tmp_path / "db")
    try:
        assert everything(StagedStore(reopened)) == [(b"a", b"1")]
    finally:
        reopened.close()


# --- the filter state on RocksDB ------------------------------------------------------------------

ESME, CHF = "00-DB-12-34-56-78-90-A0", "00-DB-12-34-56-78-90-C0"
T = 1_717_200_000_000


def rocks_state(path: Path) -> tuple[FilterState, RocksBackend]:
    backend = RocksBackend(path)
    return FilterState(StagedStore(backend), WindowPolicy()), backend


def ad1(t: int) -> DeviceAlert:
    return DeviceAlert(f"a{t}", "AD1", CHF, None, None, t, None)


def test_filter_state_decides_the_same_after_a_restart_on_rocksdb(tmp_path: Path) -> None:
    times = [T + 3_600_000 + m * 60_000 for m in (-1, 0, 30, 31)]
    state, backend = rocks_state(tmp_path / "db")
    state.put_inventory(ESME, InventoryRecord(ESME, "ESME", CHF, None, T))
    state.put_tracked(ESME, True)
    state.apply_service_request(ServiceRequest(f"X:{ESME}:1", "11.3", ESME, T + 3_600_000, None, T))
    before = [state.decide(ad1(t)) for t in times]
    state.commit()
    backend.close()
    again, backend = rocks_state(tmp_path / "db")
    try:
        assert [again.decide(ad1(t)) for t in times] == before
    finally:
        backend.close()
    assert [type(d).__name__ for d in before] == ["Forward", "Suppress", "Suppress", "Forward"]
