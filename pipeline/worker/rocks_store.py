"""The worker's durable store: RocksDB through rocksdict, behind the core's key-value interface."""

import os
from collections.abc import Iterator
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch


class RocksBackend:
    """RocksDB through rocksdict (the store Faust's rocksdb:// uses), raw bytes keys and values."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_background_jobs(2)
        options.increase_parallelism(max(os.cpu_count() or 1, 2))
        self._db = Rdict(str(path), options)

    def size(self) -> tuple[int, int]:
        """Estimated keys, and bytes on disk and in memtables (the state-size gauges)."""
        db = self._db
        keys = db.property_int_value("rocksdb.estimate-num-keys") or 0
        files, memtables = ("rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables")
        size = (db.property_int_value(files) or 0) + (db.property_int_value(memtables) or 0)
        return keys, size

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        it.seek(prefix if after is None else after)
        while it.valid():
            key = bytes(it.key())
            if not key.startswith(prefix):
                break
            if key != after:
                yield key, bytes(it.value())
            it.next()

    def write(self, changes: dict[bytes, bytes | None]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
