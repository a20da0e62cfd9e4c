"""The reference data of rule 5.5 (inventory, tracked list), read from compacted topics, and the HAN index.

On a compacted topic a record is identified by its key as written, byte for byte, as compaction does: a
tombstone removes only the record written under the same key (contract 6). So records are kept per raw
key, and a device (its canonical ID) stands while any of its keys does, with the value written last among
those that stand. Live processing and a rebuild after compaction then agree: per key both see the last
value written, and the choice among keys depends only on where each was written (`Written.order`).

The inventory is reduced to what rule 5.5 needs: whether the device is an ESME and its CHF. The CHF ->
ESMEs index is one key per (CHF, ESME) pair, so an inventory update costs the same on a HAN of 20,000
ESMEs as on a HAN of one, and a decision reads the HAN's ESMEs by a prefix scan, in device-ID order.
"""

from collections.abc import Iterator

from pipeline.core.key_value import StagedStore
from pipeline.core.written import Written

# Values are space-separated fields (device IDs hold no spaces), one line per raw key: a rebuild applies
# millions of these, and JSON would cost it a third more.
INVENTORY = b"inv/"  # device ID -> lines "raw-key timestamp partition offset CHF" ("-": none), in order applied
HAN = b"han/"  # CHF ID b"/" ESME ID -> b"": the ESMEs whose inventory record puts them on this HAN
TRACKED = b"trk/"  # device ID -> the raw keys under which it is on the tracked list, space-separated
TRACKED_COUNT = b"trk-count"  # how many devices are on the tracked list
NONE = b"-"

_Entry = tuple[tuple[int, int, int], bytes]  # write order, CHF (NONE: not an ESME on a HAN)


def _han_key(chf_id: bytes, esme_id: bytes) -> bytes:
    return HAN + chf_id + b"/" + esme_id


def _entries(raw: bytes | None) -> dict[bytes, _Entry]:
    entries = {}
    for line in raw.split(b"\n") if raw else ():
        key, timestamp, partition, offset, chf = line.split(b" ")
        entries[key] = ((-1 if timestamp == NONE else int(timestamp), int(partition), int(offset)), chf)
    return entries


def _encoded(entries: dict[bytes, _Entry]) -> bytes:
    return b"\n".join(
        b"%s %s %d %d %s" % (key, NONE if ts < 0 else str(ts).encode(), partition, offset, chf)
        for key, ((ts, partition, offset), chf) in entries.items()
    )


def _placement(entries: dict[bytes, _Entry]) -> bytes | None:
    """The CHF of the record written last among those standing (a tie goes to the one applied last)."""
    latest: _Entry | None = None
    for entry in entries.values():  # in the order applied: a key written again moves to the end
        if latest is None or entry[0] >= latest[0]:
            latest = entry
    return None if latest is None or latest[1] == NONE else latest[1]


class ReferenceData:
    def __init__(self, store: StagedStore) -> None:
        self._store = store
        self._tracked_count: int | None = None

    # --- inventory ------------------------------------------------------------------------------

    def put_inventory(self, key: str, chf_id: str | None, written: Written) -> None:
        """A record under this raw key (a valid device ID, any case) stands: the device is an ESME on the HAN
        of `chf_id`, or (None) not an ESME on any HAN."""
        self._update_inventory(key, (written.order, chf_id.encode() if chf_id else NONE))

    def remove_inventory(self, key: str) -> None:
        """A tombstone under this raw key: removes the record written under the same key only."""
        self._update_inventory(key, None)

    def _update_inventory(self, key: str, entry: _Entry | None) -> None:
        raw_key = key.encode()
        device_id = raw_key.upper()
        store_key = INVENTORY + device_id
        raw = self._store.get(store_key)
        entries = _entries(raw)
        before = _placement(entries)
        entries.pop(raw_key, None)
        if entry is not None:
            entries[raw_key] = entry
        if entries:
            self._store.put(store_key, _encoded(entries))
        elif raw is not None:
            self._store.delete(store_key)
        after = _placement(entries)
        if before != after:
            if before is not None:
                self._store.delete(_han_key(before, device_id))
            if after is not None:
                self._store.put(_han_key(after, device_id), b"")

    def esmes_on_han(self, chf_id: str) -> Iterator[str]:
        """The ESMEs associated with this CHF, in device-ID order, read as they are needed."""
        prefix = HAN + chf_id.encode() + b"/"
        for key, _ in self._store.scan(prefix):
            yield key[len(prefix) :].decode()

    def chf_of(self, device_id: str) -> str | None:
        """The CHF whose HAN the inventory puts this device on as an ESME; None if it is not an ESME on a HAN."""
        placement = _placement(_entries(self._store.get(INVENTORY + device_id.encode())))
        return None if placement is None else placement.decode()

    def in_inventory(self, device_id: str) -> bool:
        return self._store.get(INVENTORY + device_id.encode()) is not None

    # --- tracked list ---------------------------------------------------------------------------

    def put_tracked(self, key: str, listed: bool) -> None:
        """A record (listed) or a tombstone under this raw key of the tracked-devices topic."""
        raw_key = key.encode()
        store_key = TRACKED + raw_key.upper()
        raw = self._store.get(store_key)
        keys = raw.split(b" ") if raw else []
        if (raw_key in keys) == listed:
            return
        keys = [*keys, raw_key] if listed else [k for k in keys if k != raw_key]
        if keys:
            self._store.put(store_key, b" ".join(keys))
        else:
            self._store.delete(store_key)
        if bool(keys) != (raw is not None):
            self._tracked_count = self.tracked_count() + (1 if keys else -1)
            self._store.put(TRACKED_COUNT, str(self._tracked_count).encode())

    def is_tracked(self, device_id: str) -> bool:
        return self._store.get(TRACKED + device_id.encode()) is not None

    def tracked_count(self) -> int:
        if self._tracked_count is None:  # kept in memory: a rebuild changes it 1.5 million times
            raw = self._store.get(TRACKED_COUNT)
            self._tracked_count = int(raw) if raw else 0
        return self._tracked_count
