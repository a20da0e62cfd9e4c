"""The key-value interface the filter's state is kept behind (as Quix Streams does), and its in-memory store.

Writes are staged and become durable together in `commit()`, with the input offsets they came from, so
a crash never leaves state that is ahead of or behind its recorded read position.
"""

import heapq
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

    def get(self, key: bytes) -> bytes | None:
        if key in self._staged:
            return self._staged[key]
        return self._backend.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._staged[key] = value

    def delete(self, key: bytes) -> None:
        self._staged[key] = None

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Committed and staged entries under a prefix in key order, staged ones winning; lazy, so a
        caller can take a slice of a large prefix and resume after its last key."""
        staged = sorted(
            (k, v) for k, v in self._staged.items() if k.startswith(prefix) and (after is None or k > after)
        )
        committed = ((k, v) for k, v in self._backend.scan(prefix, after) if k not in self._staged)
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
