"""The benchmark's world: an estate, a firmware campaign and alert streams, deterministic from a seed.

Device IDs are derived from the home number, so any process (loader, backlog producer, paced producer)
rebuilds the same world from a few parameters instead of shipping it around. Every alert's required
decision is known by construction (suppress only when an AD1 falls in a live window of a plain
activation; rule 9 never releases one: no Supply Outage Restored alert comes from a home with an
activation, and the inventory has no postcodes, so no storms), so a run checks that the worker suppressed
exactly the AD1s it should, not only that it was fast.
"""

import bisect
import csv
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.core.event_time import HOUR_MS, MINUTE_MS
from pipeline.wire.avro_binary import long_bytes, optional_text_bytes, text_bytes
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis import documents

WINDOW_MS = 30 * MINUTE_MS  # the worker's default window; the bench runs it with defaults
CANCEL_AT_MS = 32_535_129_600_000  # 3000-12-31: the DUIS cancellation convention
_CHF_BASE = 0x0C_B5 << 48  # CH Functions
_ESME_BASE = 0x0E_B5 << 48  # electricity meters
_SUPPLIER = "90-B3-D5-1F-30-01-00-00"
_OTHER_CODES = ("8F36", "8F3E", "8F1C", "8F0A", "8154", "8F66", "8F84", "8F35")
# Supply Outage Restored (rule 9's supply evidence) comes only from homes without an activation, so no AD1 in a
# window is released and the decisions due stay rule 5's; the worker still reads every one for evidence.
_SUPPLY_RESTORED = frozenset({"8F35", "8F36"})
PAYLOAD_BYTES = 96  # a short GBCS alert payload, passed through untouched


def eui64(n: int) -> str:
    h = f"{n:016X}"
    return f"{h[0:2]}-{h[2:4]}-{h[4:6]}-{h[6:8]}-{h[8:10]}-{h[10:12]}-{h[12:14]}-{h[14:16]}"


def chf_of(home: int) -> str:
    return eui64(_CHF_BASE | home)


def esme_of(home: int) -> str:
    return eui64(_ESME_BASE | home)


@dataclass(frozen=True)
class WorldParams:
    """Everything needed to rebuild the world in another process (passed as JSON)."""

    tracked: int
    untracked: int
    campaign: int
    now_ms: int  # wall clock at the start of the run: the campaign is centred on it
    seed: int

    @property
    def homes(self) -> int:
        return self.tracked + self.untracked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- reference data: the CSVs the real loaders read --------------------------------------------------


def write_csvs(params: WorldParams, out_dir: Path) -> tuple[Path, Path, int, int]:
    """tracked.csv (one row per tracked ESME) and inventory.csv (CHF and ESME of every home).

    Only what the filter needs: the ESME -> CHF association of each home, plus the CHF itself. Untracked
    homes are in the inventory too, so AD1s from them take the 'no tracked ESME' path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tracked_path, inventory_path = out_dir / "tracked.csv", out_dir / "inventory.csv"
    added = params.now_ms - 30 * 24 * HOUR_MS
    with open(tracked_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "manufacturer", "model", "firmware_version", "list_version", "added_at"])
        writer.writerows(
            (esme_of(h), "Landis+Gyr", "E470", "5.3.20", "MP102B-2025-11", added) for h in range(params.tracked)
        )
    with open(inventory_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "device_type", "chf_id", "mpxn", "updated_at"])
        for h in range(params.homes):
            chf = chf_of(h)
            writer.writerow((chf, "CHF", "", "", added))
            writer.writerow((esme_of(h), "ESME", chf, f"{1_000_000_000_000 + h}", added))
    return tracked_path, inventory_path, params.tracked, 2 * params.homes


# --- the firmware campaign ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Activation:
    """One campaign activation: window [start, end]; from `stop` on (cancelled/withdrawn) it suppresses nothing."""

    home: int
    request_id: str
    received_at: int
    start: int
    end: int
    stop: int | None = None


@dataclass
class Campaign:
    plain: list[Activation] = field(default_factory=list)  # sorted by start
    stopped: list[Activation] = field(default_factory=list)  # cancelled or withdrawn, sorted by start
    homes: set[int] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)  # ServiceRequest datums, received_at order
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # ActivationOutcome datums, received_at order

    def counts(self) -> dict[str, int]:
        immediate = sum(1 for r in self.requests if r["execution_datetime"] is None)
        return {
            "service_requests": len(self.requests),
            "activation_outcomes": len(self.outcomes),
            "activations": len(self.plain) + len(self.stopped),
            "immediate_requests": immediate,
            "cancellations": sum(1 for r in self.requests if (r["execution_datetime"] or 0) >= CANCEL_AT_MS),
            "withdrawals": sum(1 for o in self.outcomes if o["outcome"] == "NO_IMAGE_HELD"),
        }

    def windows_at(self, t: int) -> tuple[int, int]:
        """(pending, active) plain windows at event time t, for the report."""
        pending = sum(1 for a in self.plain if a.start > t)
        active = sum(1 for a in self.plain if a.start <= t <= a.end)
        return pending, active


def build_campaign(params: WorldParams) -> Campaign:
    """A national campaign: requests over the last 3 hours, 40% immediate and 60% future-dated (up to 8 h
    ahead, so windows are still opening during the live phases); some sent twice (pre-command and signed),
    some cancelled (DUIS year-3000 request) and some withdrawn (NO_IMAGE_HELD), SUCCESS outcomes for others."""
    rng = random.Random(f"campaign-{params.seed}")
    now = params.now_ms
    first, last = now - 3 * HOUR_MS, now - 30_000
    homes = rng.sample(range(params.tracked), min(params.campaign, params.tracked))
    campaign = Campaign(homes=set(homes))
    for k, home in enumerate(homes):
        esme = esme_of(home)
        r = rng.randint(first, last)
        immediate = rng.random() < 0.4
        x = None if immediate else r + rng.randint(5 * MINUTE_MS, 8 * HOUR_MS)
        start = r if x is None else x
        request_id = f"{_SUPPLIER}:{esme}:{1_000_000 + k}"
        campaign.requests.append(_request(request_id, esme, r, x))
        stop = None
        roll = rng.random()
        if x is not None and roll < 0.05 and r + MINUTE_MS < min(x, last):
            r2 = rng.randint(r + 1, min(x, last) - 1)  # the signed command after the pre-command
            campaign.requests.append(_request(request_id, esme, r2, x))
        elif x is not None and roll < 0.13 and r + MINUTE_MS < min(x, last):
            stop = rng.randint(r + 1, min(x, last) - 1)
            campaign.requests.append(_request(f"{_SUPPLIER}:{esme}:{2_000_000 + k}", esme, stop, CANCEL_AT_MS))
        elif roll < 0.19:
            stop = rng.randint(r, last)
            campaign.outcomes.append(_outcome(request_id, esme, stop, "NO_IMAGE_HELD"))
        elif roll < 0.40 and start + MINUTE_MS < last:
            campaign.outcomes.append(_outcome(request_id, esme, start + MINUTE_MS, "SUCCESS"))
        activation = Activation(home, request_id, r, start, start + WINDOW_MS, stop)
        (campaign.plain if stop is None else campaign.stopped).append(activation)
    campaign.plain.sort(key=lambda a: a.start)
    campaign.stopped.sort(key=lambda a: a.start)
    campaign.requests.sort(key=lambda d: d["received_at"])
    campaign.outcomes.sort(key=lambda d: d["received_at"])
    return campaign


def _request(request_id: str, esme: str, r: int, x: int | None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "service_reference_variant": "11.3",
        "target_device_id": esme,
        "execution_datetime": x,
        "firmware_hash": "5d" * 32,
        "received_at": r,
    }


def _outcome(request_id: str, esme: str, at: int, outcome: str) -> dict[str, Any]:
    return {"request_id": request_id, "device_id": esme, "outcome": outcome, "received_at": at}


# --- alerts -------------------------------------------------------------------------------------------


class AlertEncoder:
    """DeviceAlert in Avro single-object encoding, written by hand: the generic codec costs ~30 us a record,
    which would make producing a million alerts slower than the worker it is meant to feed. Its pieces are
    the loaders' (pipeline.wire.avro_binary), held to fastavro byte for byte by
    tests/unit/wire/test_reference_bytes.py."""

    def __init__(self, codec: AvroCodec) -> None:
        self._header = codec.single_object_header("DeviceAlert")

    def encode(self, datum: dict[str, Any]) -> bytes:
        return b"".join(
            (
                self._header,
                text_bytes(datum["alert_id"]),
                text_bytes(datum["alert_code"]),
                text_bytes(datum["device_id"]),
                optional_text_bytes(datum["mpxn"]),
                b"\x02" + long_bytes(datum["raised_at"]),
                long_bytes(datum["received_at"]),
                b"\x02" + long_bytes(len(datum["payload"])) + datum["payload"],
            )
        )


class DuisAlertEncoder:
    """The same alerts as the DSP holds them in DUIS (contract 9), by the project's DUIS writers: an AD1 as a DCC
    alert from its CH Function, any other code as a device alert from its device (8F35/8F36 with the ESME's
    Supply Outage Restored notification). The alert ID is the ResponseID, numbered by this encoder; the record's
    Kafka timestamp must be the datum's received_at (`MadeAlert.received_at`)."""

    def __init__(self) -> None:
        self._count = 0

    def encode(self, datum: dict[str, Any]) -> bytes:
        self._count += 1
        received, raised, code = datum["received_at"], datum["raised_at"], datum["alert_code"]
        if code == "AD1":
            return documents.power_outage_alert(
                f"{documents.DCC_EUI}:{_SUPPLIER}:{self._count}", chf_id=datum["device_id"], started_ms=raised,
                mpxn=datum["mpxn"], responded_ms=received,
            )  # fmt: skip
        at = raised // 10 * 10  # GBCS (DLMS) times hold hundredths of a second
        supply = code in _SUPPLY_RESTORED
        return documents.device_alert(
            f"{datum['device_id']}:{_SUPPLIER}:{self._count}", alert_code=code, alert_ms=at, responded_ms=received,
            outage_start_ms=at - 10 * MINUTE_MS if supply else None, outage_end_ms=at if supply else None,
        )  # fmt: skip


_RESPONSE_ID = re.compile(rb"<sr:ResponseID>([^<]*)</sr:ResponseID>")


def alert_id_of(value: bytes) -> bytes:
    """The alert_id of a forwarded DeviceAlert or of a SuppressedAlert (whose first field is the alert):
    both start, after the 10-byte single-object header, with that string. Cheap enough for 10k records/s.
    A forwarded DUIS alert's is its ResponseID, as DuisAlertEncoder writes it."""
    if value[:1] == b"<":
        found = _RESPONSE_ID.search(value)
        return found.group(1) if found else value
    shift = length = 0
    i = 10
    while True:
        b = value[i]
        length |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            break
        shift += 7
    length = (length >> 1) ^ -(length & 1)
    return value[i : i + length]


SUPPRESS, FORWARD = "suppress", "forward"


class MadeAlert(NamedTuple):
    """An encoded alert with the decision rule 5 requires and its code (the latency report splits by both), and
    when it was received (a DUIS record's Kafka timestamp)."""

    key: bytes
    value: bytes
    expected: str
    code: str
    received_at: int


@dataclass(frozen=True)
class AlertMix:
    """Shares of the alert stream: mostly other device alerts, then AD1s inside and outside windows."""

    ad1_in_window: float = 0.05
    ad1_outside: float = 0.05


class AlertFactory:
    """Alerts with their required decision; AD1s from CHFs, other codes from CHFs and ESMEs."""

    def __init__(
        self, params: WorldParams, campaign: Campaign, codec: AvroCodec, mix: AlertMix, seed: str, duis: bool = False
    ) -> None:
        """`duis`: the alerts as DUIS documents (DuisAlertEncoder), else as Avro records."""
        self.params = params
        self.campaign = campaign
        self.mix = mix
        self.rng = random.Random(seed)
        self.encoder: AlertEncoder | DuisAlertEncoder = DuisAlertEncoder() if duis else AlertEncoder(codec)
        self._plain_starts = [a.start for a in campaign.plain]
        self._stopped_starts = [a.start for a in campaign.stopped]
        self._payloads = [self.rng.randbytes(PAYLOAD_BYTES) for _ in range(256)]

    def _live_in(self, starts: list[int], t: int) -> tuple[int, int]:
        """Index range of activations (sorted by start) whose window [start, start + 30 min] contains t."""
        return bisect.bisect_left(starts, t - WINDOW_MS), bisect.bisect_right(starts, t)

    def _below(self, n: int) -> int:
        """randrange(n) at a third of its cost; uniform enough for a workload mix."""
        return int(self.rng.random() * n)

    def make(self, alert_id: str, t: int) -> MadeAlert:
        """One alert received at t, with its expected decision."""
        rng = self.rng
        below = self._below
        roll = rng.random()
        expected = FORWARD
        if roll < self.mix.ad1_in_window:
            lo, hi = self._live_in(self._plain_starts, t)
            if hi > lo:
                home, code, expected = self.campaign.plain[lo + below(hi - lo)].home, "AD1", SUPPRESS
            else:
                home, code = self._idle_home(), "AD1"
        elif roll < self.mix.ad1_in_window + self.mix.ad1_outside:
            home, code = self._forwarded_ad1_home(t), "AD1"
        else:
            code = _OTHER_CODES[below(len(_OTHER_CODES))]
            home = self._idle_home() if code in _SUPPLY_RESTORED else below(self.params.homes)
        device = chf_of(home) if code == "AD1" or rng.random() < 0.5 else esme_of(home)
        datum = {
            "alert_id": alert_id,
            "alert_code": code,
            "device_id": device,
            "mpxn": f"{1_000_000_000_000 + home}",
            "raised_at": t - 1_000 - below(19_000),
            "received_at": t,
            "payload": self._payloads[below(256)],
        }
        return MadeAlert(device.encode(), self.encoder.encode(datum), expected, code, t)

    def _idle_home(self) -> int:
        """A home with no campaign activation: tracked but not in the campaign, or untracked."""
        while True:
            home = self.rng.randrange(self.params.homes)
            if home not in self.campaign.homes:
                return home

    def _forwarded_ad1_home(self, t: int) -> int:
        """An AD1 that must reach the DNO: a genuine outage on an idle home, an AD1 on a campaign home
        outside its window, or inside the window of a cancelled or withdrawn activation."""
        roll = self.rng.random()
        if roll < 0.25:
            lo, hi = self._live_in(self._stopped_starts, t)
            stopped = [a for a in self.campaign.stopped[lo:hi] if a.stop is not None and a.stop <= t]
            if stopped:
                return self.rng.choice(stopped).home
        elif roll < 0.5 and self.campaign.plain:
            for _ in range(5):
                a = self.campaign.plain[self.rng.randrange(len(self.campaign.plain))]
                if not a.start <= t <= a.end:
                    return a.home
        return self._idle_home()


def backlog(factory: AlertFactory, n: int, first: int, last: int, prefix: str) -> Iterator[MadeAlert]:
    """n alerts received between first and last (ms), in received_at order as the DSP writes them."""
    times = sorted(factory.rng.randint(first, last) for _ in range(n))
    for i, t in enumerate(times):
        yield factory.make(f"{prefix}{i:08d}", t)
