"""The key-value interface the filter's state is kept behind (as Quix Streams does), and its in-memory store.

Writes are staged and become durable together in `commit()`, with the input offsets they came from, so
a crash never leaves state that is ahead of or behind its recorded read position.
"""

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Protocol


class KeyValueBackend(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...
    def write(self, changes: dict[bytes, bytes | None]) -> None: ...
    def close(self) -> None: ...


class MemoryBackend:
    """For unit tests and dry runs: the same semantics as RocksDB, no durability."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(k for k in self._data if k.startswith(prefix) and (after is None or k > after)):
            yield key, self._data[key]

    def write(self, changes: dict[bytes, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value

    def close(self) -> None:
        self._data.clear()


RECENT_KEYS = 1_024  # staged keys kept in a small sorted run of their own before they join the large one


class StagedStore:
    """Read-your-writes overlay on a backend; `commit()` applies the staged changes in one atomic batch."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend
        self._staged: dict[bytes, bytes | None] = {}
        # The staged keys in order, for scans, in two sorted runs: a large one and a small one of recent keys.
        # A new key is inserted into the small run, which joins the large one once it holds RECENT_KEYS: a scan
        # costs a bisection of each, not a sort nor a pass over every staged change (up to 50,000 in a rebuild,
        # where an inventory change scans its HAN). A run that a scan under way reads is replaced, not changed:
        # the small run is copied before the next insertion (`_recent_shared`), the large one always replaced.
        self._ordered: list[bytes] = []
        self._recent: list[bytes] = []
        self._recent_shared = False
        self.version = 0  # changes staged so far: what a reader read stands while it is the same

    def get(self, key: bytes) -> bytes | None:
        if key in self._staged:
            return self._staged[key]
        return self._backend.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._stage(key, value)

    def delete(self, key: bytes) -> None:
        self._stage(key, None)

    def _stage(self, key: bytes, value: bytes | None) -> None:
        self.version += 1
        if key not in self._staged:
            recent = self._recent
            if self._recent_shared:
                recent, self._recent_shared = recent.copy(), False
            insort(recent, key)
            if len(recent) >= RECENT_KEYS:
                self._ordered, recent = sorted(self._ordered + recent), []  # two sorted runs: a linear merge
            self._recent = recent
        self._staged[key] = value

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Committed and staged entries under a prefix in key order, staged ones winning; lazy, so a
        caller can take a slice of a large prefix and resume after its last key."""
        changes = self._staged
        runs = [(keys, _prefixed(keys, prefix, after)) for keys in (self._ordered, self._recent)]
        if not any(where for _, where in runs):  # nothing staged here: the backend's
            yield from self._backend.scan(prefix, after)
            return
        self._recent_shared = self._recent_shared or bool(runs[1][1])
        in_runs = [map(keys.__getitem__, where) for keys, where in runs]  # runs are replaced, never changed
        staged = ((k, changes[k]) for k in heapq.merge(*in_runs))
        committed = ((k, v) for k, v in self._backend.scan(prefix, after) if k not in changes)
        for key, value in heapq.merge(staged, committed, key=lambda kv: kv[0]):
            if value is not None:
                yield key, value

    @property
    def pending(self) -> int:
        return len(self._staged)

    def commit(self) -> None:
        if self._staged:
            self._backend.write(self._staged)
            self._staged = {}
            self._ordered, self._recent, self._recent_shared = [], [], False


def _prefixed(keys: list[bytes], prefix: bytes, after: bytes | None) -> range:
    """Where the keys under `prefix` (after `after`) are in a sorted run."""
    start = bisect_left(keys, prefix)
    if after is not None:
        start = max(start, bisect_right(keys, after))
    end = start if start == len(keys) or not keys[start].startswith(prefix) else bisect_left(keys, _past(prefix))
    return range(start, max(start, end))


def _past(prefix: bytes) -> bytes:
    """A key after every key that starts with `prefix`, before every other key after it."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1_000)  # no such key: past any key this state holds
    return stripped[:-1] + bytes([stripped[-1] + 1])
