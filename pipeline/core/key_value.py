"""The key-value interface the filter's state is kept behind (as Quix Streams does), and its in-memory store.

Writes are staged and become durable together in `commit()`, with the input offsets they came from, so
a crash never leaves state that is ahead of or behind its recorded read position.
"""

import heapq
from bisect import bisect_left, bisect_right
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


class StagedStore:
    """Read-your-writes overlay on a backend; `commit()` applies the staged changes in one atomic batch."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend
        self._staged: dict[bytes, bytes | None] = {}
        # The staged keys in order, for scans: keys staged since the last scan are merged in by the next one,
        # so a scan costs a bisection, not a pass over every staged change (up to 50,000 in a rebuild).
        self._ordered: list[bytes] = []
        self._unordered: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        if key in self._staged:
            return self._staged[key]
        return self._backend.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._stage(key, value)

    def delete(self, key: bytes) -> None:
        self._stage(key, None)

    def _stage(self, key: bytes, value: bytes | None) -> None:
        if key not in self._staged:
            self._unordered.append(key)
        self._staged[key] = value

    def _staged_in_order(self) -> list[bytes]:
        if self._unordered:
            self._unordered.sort()
            merged = self._ordered + self._unordered  # a new list: a scan under way keeps its own
            merged.sort()  # two sorted runs: merged in linear time
            self._ordered, self._unordered = merged, []
        return self._ordered

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Committed and staged entries under a prefix in key order, staged ones winning; lazy, so a
        caller can take a slice of a large prefix and resume after its last key."""
        keys, changes = self._staged_in_order(), self._staged
        start = bisect_left(keys, prefix)
        if after is not None:
            start = max(start, bisect_right(keys, after))
        if start == len(keys) or not keys[start].startswith(prefix):  # nothing staged here: the backend's
            yield from self._backend.scan(prefix, after)
            return
        staged = ((k, changes[k]) for k in _while_prefixed(keys, start, prefix))
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
            self._ordered, self._unordered = [], []


def _while_prefixed(keys: list[bytes], start: int, prefix: bytes) -> Iterator[bytes]:
    for i in range(start, len(keys)):
        if not keys[i].startswith(prefix):
            return
        yield keys[i]
