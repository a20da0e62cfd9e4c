"""The worker's local state folder: a free slot under the data directory, and the identity that goes with it.

Several workers may share one data directory (one host, one volume): each takes the first slot whose
RocksDB lock is free. The slot also names the worker's transactional ID, so a worker restarted on the
same folder fences its predecessor's unfinished transaction.
"""

import hashlib
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from pipeline.worker.rocks_store import RocksBackend

SLOTS = 64


class LocalStateUnavailable(Exception):
    """The local state cannot be opened, so the worker cannot start (the CLI shows the message)."""


@dataclass(frozen=True)
class LocalState:
    backend: RocksBackend
    path: Path
    instance_id: str  # stable per state folder and host

    def discarded(self) -> "LocalState":
        """The same slot, emptied: for state in an older format, which the worker rebuilds from the topics
        (contract 6: upgrades need no manual step)."""
        self.backend.close()
        shutil.rmtree(self.path)
        try:
            backend = RocksBackend(self.path)
        except Exception as exc:  # noqa: BLE001 - rocksdict raises a bare Exception
            raise LocalStateUnavailable(f"cannot reopen local state at {self.path}: {exc}") from exc
        return LocalState(backend, self.path, self.instance_id)


def open_local_state(data_dir: str, app_id: str) -> LocalState:
    root = Path(data_dir).resolve()
    for slot in range(SLOTS):
        path = root / f"{app_id}-{slot}"
        try:
            backend = RocksBackend(path)
        except Exception as exc:  # noqa: BLE001 - rocksdict raises a bare Exception when locked
            if "lock" in str(exc).lower():
                continue
            raise LocalStateUnavailable(f"cannot open local state at {path}: {exc}") from exc
        digest = hashlib.sha1(f"{socket.gethostname()}:{path}".encode()).hexdigest()[:12]
        return LocalState(backend, path, f"{app_id}-{digest}")
    raise LocalStateUnavailable(f"no free state slot under {root}: {SLOTS} workers already use it")
