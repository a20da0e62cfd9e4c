"""The reference data of rule 5.5 (inventory, tracked list), read from compacted topics, and the HAN index.

On a compacted topic a record is identified by its key as written, byte for byte, as compaction does: a
tombstone removes only the record written under the same key (contract 6). So records are kept per raw
key, and a device (its canonical ID) stands while any of its keys does, with the value written last among
those that stand. Live processing and a rebuild after compaction then agree: per key both see the last
value written, and the choice among keys depends only on where each was written (`Written.order`).

The inventory is reduced to what rules 5.5 and 9 need: whether the device is an ESME, its CHF, whether its
record says it is a CH Function, and its postcode. The CHF -> ESMEs index is one key per (CHF, ESME) pair,
so an inventory update costs the same on a HAN of 20,000 ESMEs as on a HAN of one, and a decision reads the
HAN's ESMEs by a prefix scan, in device-ID order. So are the indexes of rule 9's postcode sectors: the ESMEs
of a HAN that have a postcode (the first in device-ID order gives a CH Function without one its postcode),
and sector -> CH Functions, updated for the CH Functions an inventory change concerns (and told to whoever
indexes by sector, `on_sector_change`). Only CH Functions are in a sector (a device whose record says CHF,
or that an ESME is associated with): rule 9.b counts AD1s of CH Functions, and a gas meter, IHD or GPF with a
postcode would triple the entries a storm look-up reads.
"""

from collections.abc import Callable, Iterator
from itertools import islice

from pipeline.core.key_value import StagedStore
from pipeline.core.outage_evidence import han_postcode, postcode_sector
from pipeline.core.written import Written

# Values are space-separated fields (device IDs hold no spaces), one line per raw key: a rebuild applies
# millions of these, and JSON would cost it a third more.
# device ID -> lines "raw-key timestamp partition offset CHF postcode kind" ("-": none; the postcode in hex, as
# it may hold spaces; kind "c" when the record says the device is a CH Function), in order applied
INVENTORY = b"inv/"
HAN = b"han/"  # CHF ID b"/" ESME ID -> b"": the ESMEs whose inventory record puts them on this HAN
HAN_POSTCODES = b"hpc/"  # CHF ID b"/" ESME ID -> postcode: the ESMEs of this HAN that have a postcode
SECTOR_OF = b"hsc/"  # CHF ID -> its postcode sector (rule 9.b), for the CH Functions with a known one
SECTOR = b"sec/"  # sector b"/" CHF ID -> b"": the CH Functions of each postcode sector
TRACKED = b"trk/"  # device ID -> the raw keys under which it is on the tracked list, space-separated
TRACKED_COUNT = b"trk-count"  # how many devices are on the tracked list
NONE = b"-"
CH_FUNCTION = b"c"

# write order, CHF (NONE: not an ESME on a HAN), postcode, whether the record says the device is a CH Function
_Entry = tuple[tuple[int, int, int], bytes, bytes | None, bool]
# (CHF, postcode, record says CH Function) of the record that applies; None: none
_Place = tuple[bytes | None, bytes | None, bool]


def _han_key(chf_id: bytes, esme_id: bytes) -> bytes:
    return HAN + chf_id + b"/" + esme_id


def _entries(raw: bytes | None) -> dict[bytes, _Entry]:
    entries = {}
    for line in raw.split(b"\n") if raw else ():
        key, timestamp, partition, offset, chf, postcode, kind = line.split(b" ")
        order = (-1 if timestamp == NONE else int(timestamp), int(partition), int(offset))
        entries[key] = (order, chf, None if postcode == NONE else bytes.fromhex(postcode.decode()), kind == CH_FUNCTION)
    return entries


def _encoded(entries: dict[bytes, _Entry]) -> bytes:
    return b"\n".join(
        b"%s %s %d %d %s %s %s"
        % (
            key, NONE if ts < 0 else str(ts).encode(), partition, offset, chf,
            NONE if pc is None else pc.hex().encode(), CH_FUNCTION if ch_function else NONE,
        )  # fmt: skip
        for key, ((ts, partition, offset), chf, pc, ch_function) in entries.items()
    )


def _latest(entries: dict[bytes, _Entry]) -> _Entry | None:
    """The record written last among those standing (a tie goes to the one applied last)."""
    latest: _Entry | None = None
    for entry in entries.values():  # in the order applied: a key written again moves to the end
        if latest is None or entry[0] >= latest[0]:
            latest = entry
    return latest


def _placement(entries: dict[bytes, _Entry]) -> bytes | None:
    """The CHF of the record written last among those standing."""
    latest = _latest(entries)
    return None if latest is None or latest[1] == NONE else latest[1]


def _place(entries: dict[bytes, _Entry]) -> _Place:
    """(CHF, postcode, says CH Function) of the record written last among those standing; None for none."""
    latest = _latest(entries)
    if latest is None:
        return None, None, False
    return (None if latest[1] == NONE else latest[1]), latest[2], latest[3]


def _own(place: _Place) -> bytes | None:
    """The postcode a device's own record gives it as a CH Function: none when it is an ESME on a HAN."""
    return place[1] if place[0] is None else None


SectorChange = Callable[[bytes, bytes | None, bytes | None], None]  # (CHF, sector before, after; None: none)


class ReferenceData:
    def __init__(self, store: StagedStore, on_sector_change: SectorChange | None = None) -> None:
        """`on_sector_change` is told each time a CH Function's sector changes, so that what is indexed by
        sector (the storm evidence of rule 9.b) follows the inventory as it stands."""
        self._store = store
        self._tracked_count: int | None = None
        self._on_sector_change = on_sector_change

    # --- inventory ------------------------------------------------------------------------------

    def put_inventory(
        self, key: str, chf_id: str | None, written: Written, postcode: str | None = None, ch_function: bool = False
    ) -> None:
        """A record under this raw key (a valid device ID, any case) stands: the device is an ESME on the HAN
        of `chf_id`, or (None) not an ESME on any HAN; `postcode` is its premises' (None: none);
        `ch_function` when the record's device type is CHF."""
        place = postcode.encode() if postcode else None
        self._update_inventory(key, (written.order, chf_id.encode() if chf_id else NONE, place, ch_function))

    def remove_inventory(self, key: str) -> None:
        """A tombstone under this raw key: removes the record written under the same key only."""
        self._update_inventory(key, None)

    def _update_inventory(self, key: str, entry: _Entry | None) -> None:
        raw_key = key.encode()
        device_id = raw_key.upper()
        store_key = INVENTORY + device_id
        raw = self._store.get(store_key)
        entries = _entries(raw)
        place_before = _place(entries)
        entries.pop(raw_key, None)
        if entry is not None:
            entries[raw_key] = entry
        if entries:
            self._store.put(store_key, _encoded(entries))
        elif raw is not None:
            self._store.delete(store_key)
        place_after = _place(entries)
        before, after = place_before[0], place_after[0]
        if before != after:
            if before is not None:
                self._store.delete(_han_key(before, device_id))
            if after is not None:
                self._store.put(_han_key(after, device_id), b"")
        if place_before != place_after:
            self._update_postcodes(device_id, place_before, place_after)

    # --- postcode sectors (rule 9.b) --------------------------------------------------------------

    def _update_postcodes(self, device_id: bytes, before: _Place, after: _Place) -> None:
        """A device's (CHF, postcode, kind) changed: the HAN postcode index, and the sectors of the CH Functions
        concerned (the HANs it left and joined as an ESME, and itself as a CH Function). What this change cannot
        alter is not looked up again: a rebuild makes millions of them, and each look-up scans a HAN."""
        (chf_before, postcode_before, _), (chf_after, postcode_after, says_ch_function) = before, after
        if chf_before is not None and postcode_before is not None:
            self._store.delete(HAN_POSTCODES + chf_before + b"/" + device_id)
        if chf_after is not None and postcode_after is not None:
            self._store.put(HAN_POSTCODES + chf_after + b"/" + device_id, postcode_after)
        if chf_before is not None and chf_before != chf_after:
            self._update_sector(chf_before)
        if chf_after is not None:
            self._update_sector(chf_after, is_ch_function=True)  # this ESME is on its HAN now
        # Its own sector depends on its HAN (changed only if it is on it), its kind and its own postcode.
        if device_id in (chf_before, chf_after) or before[2] != says_ch_function or _own(before) != _own(after):
            self._update_sector(device_id, is_ch_function=says_ch_function or None, says_ch_function=says_ch_function)

    def _own_postcode(self, chf_id: bytes) -> bytes | None:
        """The postcode of this device's own inventory record, unless it is an ESME on a HAN."""
        return _own(_place(_entries(self._store.get(INVENTORY + chf_id))))

    def _is_ch_function(self, device_id: bytes, says_ch_function: bool | None = None) -> bool:
        """Its own record says CHF (`says_ch_function`, when known), or an ESME is associated with it (rule 5
        takes it for one)."""
        if says_ch_function is None:
            says_ch_function = _place(_entries(self._store.get(INVENTORY + device_id)))[2]
        return says_ch_function or next(iter(self._store.scan(HAN + device_id + b"/")), None) is not None

    def han_postcode(self, chf_id: str) -> str | None:
        """A CH Function's postcode (rule 9.b): its own, else that of the first ESME on its HAN, in device-ID
        order, that has one."""
        chf = chf_id.encode()
        prefix = HAN_POSTCODES + chf + b"/"
        first_esme = [(k[len(prefix) :].decode(), v.decode()) for k, v in islice(self._store.scan(prefix), 1)]
        own = self._own_postcode(chf)
        return han_postcode(None if own is None else own.decode(), first_esme)

    def sector_of(self, chf_id: str) -> str | None:
        raw = self._store.get(SECTOR_OF + chf_id.encode())
        return None if raw is None else raw.decode()

    def chfs_in_sector(self, sector: str) -> Iterator[str]:
        """The CH Functions whose postcode is in this sector, in device-ID order."""
        prefix = SECTOR + sector.encode() + b"/"
        for key, _ in self._store.scan(prefix):
            yield key[len(prefix) :].decode()

    def _update_sector(
        self, chf: bytes, is_ch_function: bool | None = None, says_ch_function: bool | None = None
    ) -> None:
        """Index the device under its sector if it is a CH Function with a known one, else under none;
        `is_ch_function` and `says_ch_function` (of `_is_ch_function`) when the caller knows them."""
        if is_ch_function is None:
            is_ch_function = self._is_ch_function(chf, says_ch_function)
        sector = postcode_sector(self.han_postcode(chf.decode())) if is_ch_function else None
        stored = self._store.get(SECTOR_OF + chf)
        new = None if sector is None else sector.encode()
        if stored == new:
            return
        if stored is not None:
            self._store.delete(SECTOR + stored + b"/" + chf)
        if new is None:
            self._store.delete(SECTOR_OF + chf)
        else:
            self._store.put(SECTOR_OF + chf, new)
            self._store.put(SECTOR + new + b"/" + chf, b"")
        if self._on_sector_change is not None:
            self._on_sector_change(chf, stored, new)

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
