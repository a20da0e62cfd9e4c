"""A simulated estate and firmware-campaign day, deterministic from a seed, for demos and tests.

Every alert carries the decision the contract requires for it, known from how the case was built
(an OTA-caused AD1 placed inside a tracked activation's window, a genuine outage on an untracked home,
an ESME's own Supply Outage Restored alert beside an AD1 in a window, ...), never computed by the filter's
code: the demo checks the filter against it. So that no case is decided by another case's evidence by
accident, the day runs in phases separated by more than B + A (rule 9) and a window: AD1s that rule 5
forwards from other homes never share a phase with AD1s in windows, except in the storm, where they are
the point.
"""

import csv
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.core.event_time import DAY_MS, HOUR_MS, MINUTE_MS
from pipeline.kafka.clients import admin_client
from pipeline.kafka.topics import create_topics
from pipeline.settings import Settings
from pipeline.tools.bulk_producer import BulkProducer
from pipeline.tools.duis_campaign import (
    COUNTED_VARIANTS,
    DNO_ID,
    DuisWriter,
    hundredths,
    mismatched_device_alert,
    whole_second,
)
from pipeline.tools.progress import Progress
from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.duis.gbcs import CANCELLATION_TIME_MS

SECOND_MS = 1_000
CANCEL_AT_MS = 32_535_129_600_000  # 3000-12-31T00:00:00Z, the DUIS cancellation date
DEFAULT_BASE_TIME = "2025-01-15T08:00:00Z"

FORWARD, SUPPRESS, DEAD_LETTER = "forward", "suppress", "dead-letter"
AVRO, DUIS = "avro", "duis"  # how the records are written: the project's Avro records, or DUIS documents
FORMATS = (AVRO, DUIS)
OUTAGE_EVIDENCE = "outage_evidence"  # contract rule 9: the reason an AD1 in a window is forwarded
SUPPLY, STORM = "supply", "storm"  # the two kinds of evidence (rule 9.a, 9.b)

# The topic each event goes to (a Topics attribute) and the record its value holds.
RECORD_NAMES = {
    "service_requests": "ServiceRequest",
    "activation_outcomes": "ActivationOutcome",
    "alerts": "DeviceAlert",
}
# Requests and outcomes at the same millisecond apply before alerts (contract 5.6): write them first.
_TOPIC_ORDER = {"service_requests": 0, "activation_outcomes": 1, "alerts": 2}

# Postcode sectors: an estate of n homes has max(MIN_SECTORS, n // SECTOR_HOMES) sectors, its homes with a
# postcode (all but about 2 %) dealt evenly over them: about SECTOR_HOMES to 2 * SECTOR_HOMES homes a sector
# from n = MIN_SECTORS * SECTOR_HOMES on (as many as 6,400 sectors: larger estates get larger sectors).
SECTOR_HOMES = 200
MIN_SECTORS = 2  # the storm's sector and the near-miss storm's sector
_POSTCODE_AREAS = ("LS", "M", "BS", "NG", "CF", "EH", "G", "B", "L", "S", "NE", "BN", "OX", "SW", "CH", "YO")
_DISTRICTS = 40  # districts 1..40 of each area, sectors 0..9 of each district
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters of GB inward codes (no C, I, K, M, O, V)
_HOMES_PER_UNIT = 15
_NO_POSTCODE_SHARE = 0.02  # homes whose inventory rows carry no postcode (and one tracked home more)

# Tracked homes with a role of their own beyond the campaign: other variant, hash mismatch, activation
# failure, boundary, cancelled, no image held, six supply-evidence cases, two in the storm's windows, one
# with no postcode in the storm, one in the near-miss storm.
_SUPPLY_CASES = 6
_STORM_WINDOWS = 2
_TRACKED_ROLES = 6 + _SUPPLY_CASES + _STORM_WINDOWS + 2
_MIN_CAMPAIGN = 3  # at least one immediate and two future-dated activations (one sent twice, one lower case)
_MIN_TRACKED = _TRACKED_ROLES + _MIN_CAMPAIGN
_MIN_UNTRACKED = 12  # untracked-ESME activation, short outages, the storms' homes
MIN_HOMES = _MIN_TRACKED + _MIN_UNTRACKED + 8
_MIN_STORM = 5  # homes of the storm's sector that report it, whatever K
_STORM_SPREAD_MS = 5 * MINUTE_MS  # the storm's AD1s arrive within this (less when B + A is shorter)


class SimulationError(Exception):
    """Options the scenario cannot be built with (too few homes, settings that leave no room for a case)."""


@dataclass(frozen=True, slots=True)
class Home:
    """One premises: a HAN on a Communications Hub, an ESME, usually gas, sometimes a display or PPMID.
    Its postcode (in `sector`) is on the ESME's inventory row, sometimes on the CHF's too or instead."""

    chf: str
    esme: str
    mpan: str
    tracked: bool
    gsme: str | None = None
    gpf: str | None = None
    mprn: str | None = None
    ihd: str | None = None
    ppmid: str | None = None
    sector: str | None = None  # as built: "LS6 2"; None for a home whose rows carry no postcode
    chf_postcode: str | None = None  # as written on the rows, spelling variants included
    esme_postcode: str | None = None

    def inventory_rows(self, updated_at: int) -> Iterator[tuple[str, str, str, str, str, int]]:
        """(device_id, device_type, chf_id, mpxn, postcode, updated_at): the CHF itself is on no other HAN."""
        yield self.chf, "CHF", "", "", self.chf_postcode or "", updated_at
        yield self.esme, "ESME", self.chf, self.mpan, self.esme_postcode or "", updated_at
        for device_id, device_type, mpxn in (
            (self.gsme, "GSME", self.mprn),
            (self.gpf, "GPF", None),
            (self.ihd, "IHD", None),
            (self.ppmid, "PPMID", None),
        ):
            if device_id:
                yield device_id, device_type, self.chf, mpxn or "", "", updated_at


@dataclass(frozen=True)
class Estate:
    homes: tuple[Home, ...]
    added_at: int  # when the tracked list was published

    @property
    def tracked(self) -> list[Home]:
        return [h for h in self.homes if h.tracked]

    def sectors(self) -> dict[str, list[Home]]:
        """Homes by postcode sector, largest sector first (then by name)."""
        by_sector: dict[str, list[Home]] = {}
        for home in self.homes:
            if home.sector is not None:
                by_sector.setdefault(home.sector, []).append(home)
        return dict(sorted(by_sector.items(), key=lambda item: (-len(item[1]), item[0])))

    def write_csvs(self, out_dir: Path) -> tuple[Path, Path]:
        """tracked.csv (ISO times) and inventory.csv (epoch millis), so the demo exercises both formats."""
        out_dir.mkdir(parents=True, exist_ok=True)
        tracked_path, inventory_path = out_dir / "tracked.csv", out_dir / "inventory.csv"
        added = _iso(self.added_at)
        with open(tracked_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["device_id", "manufacturer", "model", "firmware_version", "list_version", "added_at"])
            writer.writerows((h.esme, "Landis+Gyr", "E470", "5.3.20", "MP102B-2024-11", added) for h in self.tracked)
        with open(inventory_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["device_id", "device_type", "chf_id", "mpxn", "postcode", "updated_at"])
            for home in self.homes:
                writer.writerows(home.inventory_rows(self.added_at))
        return tracked_path, inventory_path


@dataclass(frozen=True)
class Event:
    """One record for an input topic. `datum` is the record the filter reads from it, in the shape the Avro codec
    decodes (None: the bytes are bad); `raw`, when set, is the value as written instead of the datum's Avro
    encoding: a DUIS document, or bad bytes. `ignored` marks a valid DUIS document the filter reads nothing from
    (a variant 4 request, which the DSP answers with the pre-command to sign)."""

    topic: str  # Topics attribute
    key: str
    received_at: int
    datum: dict[str, Any] | None = None
    raw: bytes | None = None
    ignored: bool = False


@dataclass(frozen=True)
class ExpectedEvidence:
    """The evidence of a genuine outage an AD1 in a window was built to be released by (rule 9)."""

    kind: str  # SUPPLY or STORM
    esme_id: str | None = None  # supply: the HAN's ESME, its Supply Outage Restored alert and code
    alert_id: str | None = None
    alert_code: str | None = None
    sector: str | None = None  # storm: the sector, and the other CH Functions whose AD1s no window covers
    chf_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExpectedAlert:
    alert_id: str
    key: str
    alert_code: str
    case: str
    expected: str
    esme_id: str | None = None
    activation_request_id: str | None = None
    reason: str | None = None  # OUTAGE_EVIDENCE for an AD1 in a window forwarded on evidence
    evidence: ExpectedEvidence | None = None
    value_sha256: str | None = None  # DUIS: the document as written, which the DNO must get byte for byte
    received_at: int | None = None  # as written (a DUIS alert's Kafka timestamp, which its outputs do not keep)


@dataclass(frozen=True)
class ExpectedDeadLetter:
    """A non-alert record expected on the dead-letter topic (it has no alert ID to match by)."""

    topic: str
    key: str
    case: str


@dataclass
class Scenario:
    record_format: str = AVRO
    events: list[Event] = field(default_factory=list)
    alerts: list[ExpectedAlert] = field(default_factory=list)
    other_dead_letters: list[ExpectedDeadLetter] = field(default_factory=list)

    def ordered(self) -> list[Event]:
        """In received_at order (per topic, as the DSP writes), requests and outcomes first on ties."""
        return sorted(self.events, key=lambda e: (e.received_at, _TOPIC_ORDER[e.topic]))

    def released_on_evidence(self) -> list[ExpectedAlert]:
        return [a for a in self.alerts if a.reason == OUTAGE_EVIDENCE]

    def expected_json(self, **about: Any) -> dict[str, Any]:
        return {
            **about,
            "format": self.record_format,
            "alerts": [asdict(a) for a in self.alerts],
            "other_dead_letters": [asdict(d) for d in self.other_dead_letters],
        }


def parse_base_time(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SimulationError(f"base time {text!r} is not an ISO-8601 time, e.g. {DEFAULT_BASE_TIME}") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Ids:
    """Unique random EUI-64s (canonical form) and meter point numbers from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()

    def eui64(self) -> str:
        while True:
            hexa = f"{self._rng.getrandbits(64):016X}"
            device_id = "-".join(hexa[i : i + 2] for i in range(0, 16, 2))
            if device_id not in self._seen:
                self._seen.add(device_id)
                return device_id

    def mpan(self) -> str:
        return f"{self._rng.randint(10, 23)}{self._rng.randrange(10**11):011d}"

    def mprn(self) -> str:
        return f"{self._rng.randrange(10**9, 10**10)}"


def build_estate(homes: int, seed: int, tracked_fraction: float, base_time: int) -> Estate:
    """`homes` premises; round(homes * tracked_fraction), within the scenario's needs, have a tracked ESME."""
    if homes < MIN_HOMES:
        raise SimulationError(f"the scenario needs at least {MIN_HOMES} homes, got {homes}")
    if not 0 <= tracked_fraction <= 1:
        raise SimulationError(f"the tracked fraction must be between 0 and 1, got {tracked_fraction}")
    rng = random.Random(seed)
    ids = _Ids(rng)
    tracked_count = min(max(round(homes * tracked_fraction), _MIN_TRACKED), homes - _MIN_UNTRACKED)
    tracked = set(rng.sample(range(homes), tracked_count))
    built = []
    for n in range(homes):
        gas = rng.random() < 0.85
        built.append(
            Home(
                chf=ids.eui64(),
                esme=ids.eui64(),
                mpan=ids.mpan(),
                tracked=n in tracked,
                gsme=ids.eui64() if gas else None,
                gpf=ids.eui64() if gas else None,
                mprn=ids.mprn() if gas else None,
                ihd=ids.eui64() if rng.random() < 0.3 else None,
                ppmid=ids.eui64() if rng.random() < 0.1 else None,
            )
        )
    return Estate(tuple(_with_postcodes(built, rng)), added_at=base_time - 30 * DAY_MS)


def _with_postcodes(homes: list[Home], rng: random.Random) -> list[Home]:
    """Deal the homes into sectors of equal size, tracked and untracked alike spread over them; a few homes
    (one tracked at least) get no postcode. Most carry it on the ESME row, some on the CHF row too or only."""
    tracked = [n for n, h in enumerate(homes) if h.tracked]
    untracked = [n for n, h in enumerate(homes) if not h.tracked]
    rng.shuffle(tracked)
    rng.shuffle(untracked)
    unknown = {tracked[0], *untracked[: round(len(homes) * _NO_POSTCODE_SHARE)]}
    dealt = [n for n in tracked + untracked if n not in unknown]
    sectors = _sector_names(max(MIN_SECTORS, len(homes) // SECTOR_HOMES), rng)
    units = {s: rng.sample(_units(), max(1, len(dealt) // len(sectors) // _HOMES_PER_UNIT)) for s in sectors}
    placed = list(homes)
    for i, n in enumerate(dealt):
        sector = sectors[i % len(sectors)]
        postcode = _spelled(f"{sector}{rng.choice(units[sector])}", rng)
        where = rng.random()
        chf_postcode = postcode if where >= 0.8 else None  # 15 % on both rows, 5 % on the CHF row only
        esme_postcode = postcode if where < 0.95 else None
        placed[n] = replace(homes[n], sector=sector, chf_postcode=chf_postcode, esme_postcode=esme_postcode)
    return placed


def _sector_names(count: int, rng: random.Random) -> list[str]:
    """`count` distinct sectors ("LS6 2"), as many as the areas, districts and digits allow."""
    total = len(_POSTCODE_AREAS) * _DISTRICTS * 10
    names = []
    for index in rng.sample(range(total), min(count, total)):
        area, rest = divmod(index, _DISTRICTS * 10)
        district, digit = divmod(rest, 10)
        names.append(f"{_POSTCODE_AREAS[area]}{district + 1} {digit}")
    return names


def _units() -> list[str]:
    return [a + b for a in _UNIT_LETTERS for b in _UNIT_LETTERS]


def _spelled(postcode: str, rng: random.Random) -> str:
    """As DSP data has it: mostly "LS6 2AB", sometimes in lower case or without the space."""
    draw = rng.random()
    return postcode.lower() if draw < 0.05 else postcode.replace(" ", "") if draw < 0.1 else postcode


class _ScenarioBuilder:
    """Writes records the way the DSP would and notes, per alert, what the contract requires for it. With a
    DuisWriter, each record is written as the DUIS document it stands for; the random draws are the same in
    both formats, so one seed gives one campaign whichever way it is written."""

    def __init__(self, rng: random.Random, ids: _Ids, seed: int, window_ms: int, duis: DuisWriter | None) -> None:
        self.rng = rng
        self.ids = ids
        self.seed = seed
        self.window_ms = window_ms
        self.duis = duis
        self.scenario = Scenario(AVRO if duis is None else DUIS)
        self.latest_alert = 0
        self._suppliers = [ids.eui64() for _ in range(3)]
        self._counters = dict.fromkeys(self._suppliers, 1_000_000)
        self._alerts = 0
        self.firmware_hash = f"{rng.getrandbits(256):064x}"
        self.cancel_at = CANCEL_AT_MS if duis is None else CANCELLATION_TIME_MS  # DUIS: GBCS's 9999-12-31

    def ota_offset(self) -> int:
        """When the CH reports its outage after an activation: 12-16.5 minutes with the default 30-minute
        window, always inside the window whatever its length."""
        return self.rng.randint(int(0.4 * self.window_ms), int(0.55 * self.window_ms))

    def request(
        self,
        esme: str,
        received_at: int,
        execution: int | None = None,
        variant: str = "11.3",
        request_id: str | None = None,
        command_variant: int = 5,
    ) -> str:
        """An SR 11.3 (or `variant`); in DUIS a signed pre-command of `command_variant` (4: the request the DSP
        answers with the pre-command to sign, which the filter ignores)."""
        if request_id is None:
            supplier = self.rng.choice(self._suppliers)
            self._counters[supplier] += 1
            request_id = f"{supplier}:{esme}:{self._counters[supplier]}"
        if execution is not None and self.duis is not None:
            execution = whole_second(execution)
        datum = {
            "request_id": request_id,
            "service_reference_variant": variant,
            "target_device_id": esme,
            "execution_datetime": execution,
            "firmware_hash": self.firmware_hash,
            "received_at": received_at,
        }
        raw = None if self.duis is None else self.duis.request(datum, command_variant)
        ignored = raw is not None and (command_variant == 4 or variant != "11.3")
        self.scenario.events.append(Event("service_requests", esme, received_at, datum, raw, ignored))
        return request_id

    def activation_around(self, home: Home, t: int, earliest: int) -> str:
        """A future-dated activation of the home's ESME whose window holds t, requested hours before."""
        start = t - self.rng.randint(0, self.window_ms)
        if self.duis is not None and t - whole_second(start) > self.window_ms:  # GBCS times are whole seconds
            start = whole_second(start) + 1000
        received = max(earliest, start - self.rng.randint(HOUR_MS, DAY_MS))
        return self.request(home.esme, received, start)

    def outcome(
        self, request_id: str, esme: str, received_at: int, outcome: str, executed_at: int | None = None
    ) -> None:
        """The device's answer to an immediate 11.3, or with `executed_at` its 0x8F66 (SUCCESS) or 0x8F67 alert
        on a future-dated one: the Supplier's, on the outcome topic, never an alert for the DNO."""
        datum = {"request_id": request_id, "device_id": esme, "outcome": outcome, "received_at": received_at}
        raw = None if self.duis is None else self.duis.outcome(datum, executed_at)
        self.scenario.events.append(Event("activation_outcomes", esme, received_at, datum, raw))

    def alert(
        self,
        code: str,
        device: str,
        received_at: int,
        case: str,
        expected: str,
        mpxn: str | None = None,
        esme: str | None = None,
        request_id: str | None = None,
        device_text: str | None = None,
        evidence: ExpectedEvidence | None = None,
    ) -> str:
        """An alert keyed by its (canonical) originating device; `device_text` spells the ID in the value.
        With `evidence`, an AD1 in a window expected forwarded on it (rule 9). Returns the alert ID."""
        self._alerts += 1
        self.latest_alert = max(self.latest_alert, received_at)
        alert_id = self._alert_id(code, device)
        datum: dict[str, Any] = {
            "alert_id": alert_id,
            "alert_code": code,
            "device_id": device_text or device,
            "mpxn": mpxn,
            "raised_at": received_at - self.rng.randint(1 * SECOND_MS, 20 * SECOND_MS),
            "received_at": received_at,
            "payload": self.rng.randbytes(24),
        }
        raw = digest = None
        if self.duis is not None:  # the document is the payload, passed through untouched
            if code != "AD1":  # a device alert's time is a DLMS one, and it names no meter point (contract 9)
                datum["raised_at"], datum["mpxn"] = hundredths(datum["raised_at"]), None
            raw = datum["payload"] = self.duis.alert(datum)
            digest = hashlib.sha256(raw).hexdigest()
        self.scenario.events.append(Event("alerts", device, received_at, datum, raw))
        reason = None if evidence is None else OUTAGE_EVIDENCE
        self.scenario.alerts.append(
            ExpectedAlert(
                alert_id, device, code, case, expected, esme, request_id, reason, evidence, digest, received_at
            )
        )
        return alert_id

    def _alert_id(self, code: str, device: str) -> str:
        if self.duis is None:
            return f"SIM-{self.seed}-{self._alerts:06d}"
        return self.duis.alert_id(code, device, self._alerts)

    def malformed_alert(self, received_at: int) -> None:
        """A DUIS device alert whose GBCS frame names another originator than its header (in both formats: the
        worker reads any value starting with '<' as DUIS); its unique key identifies it when dead-lettered."""
        self._alerts += 1
        key, other = self.ids.eui64(), self.ids.eui64()
        alert_id = f"{key}:{DNO_ID}:{self._alerts}"
        raw = mismatched_device_alert(alert_id, other, received_at)
        self.scenario.events.append(Event("alerts", key, received_at, raw=raw))
        self.scenario.alerts.append(
            ExpectedAlert(alert_id, key, "8F36", "frame-disagrees-with-header", DEAD_LETTER, received_at=received_at)
        )


@dataclass
class _Cast:
    """Which home plays which case: tracked homes with a role, the campaign, and homes no window covers."""

    immediate: list[Home]
    future: list[Home]
    other_variant: Home
    hash_mismatch: Home
    activation_failure: Home
    boundary: Home
    cancelled: Home
    no_image: Home
    supply: list[Home]  # AD1s in windows beside their ESME's Supply Outage Restored alert
    storm_windows: list[Home]  # tracked, in the storm's sector, in a window when it strikes
    no_postcode_window: Home  # tracked, no postcode, in a window when the storm strikes
    near_miss_window: Home  # tracked, in the near-miss sector, in a window then
    untracked_activation: Home
    short_outages: list[Home]
    storm: list[Home]  # no window: report the storm (AD1, 8F36)
    near_miss_storm: list[Home]  # no window, K - 1 of them in the near-miss sector
    storm_sector: str
    near_miss_sector: str


def _cast(estate: Estate, rng: random.Random, k: int) -> _Cast:
    tracked = estate.tracked
    untracked = [h for h in estate.homes if not h.tracked]
    rng.shuffle(tracked)
    rng.shuffle(untracked)
    storm_sector, near_miss_sector, *_ = estate.sectors()

    def take(pool: list[Home], n: int, what: str, where: Callable[[Home], bool] = lambda h: True) -> list[Home]:
        chosen = [h for h in pool if where(h)][:n]
        if len(chosen) < n:
            raise SimulationError(f"the scenario needs {n} {what}, the estate has {len(chosen)}: give more homes")
        for home in chosen:
            pool.remove(home)
        return chosen

    storm_windows = take(tracked, _STORM_WINDOWS, f"tracked homes in sector {storm_sector}",
                         lambda h: h.sector == storm_sector)  # fmt: skip
    (near_miss_window,) = take(tracked, 1, f"tracked homes in sector {near_miss_sector}",
                               lambda h: h.sector == near_miss_sector)  # fmt: skip
    (no_postcode_window,) = take(tracked, 1, "tracked homes without a postcode", lambda h: h.sector is None)
    other_variant, hash_mismatch, activation_failure, boundary, cancelled, no_image = take(
        tracked, 6, "tracked homes for single cases"
    )
    supply = take(tracked, _SUPPLY_CASES, "tracked homes for supply evidence")
    campaign = max(_MIN_CAMPAIGN, len(tracked) // 2)
    immediate = take(tracked, campaign // 2, "tracked homes for the campaign")
    future = take(tracked, campaign - campaign // 2, "tracked homes for the campaign")
    (untracked_activation,) = take(untracked, 1, "untracked homes")
    spare = untracked + tracked  # untracked homes, and tracked ones with no activation: no window covers them
    sizes = {s: len(homes) for s, homes in estate.sectors().items()}
    in_storm = max(k, _MIN_STORM, sizes[storm_sector] // 10)
    in_storm = min(in_storm, max(k, sum(1 for h in spare if h.sector == storm_sector)))
    storm = take(spare, in_storm, f"homes no window covers in sector {storm_sector} (K = {k})",
                 lambda h: h.sector == storm_sector)  # fmt: skip
    near_miss_storm = take(spare, max(0, k - 1), f"homes no window covers in sector {near_miss_sector}",
                           lambda h: h.sector == near_miss_sector)  # fmt: skip
    short_outages = take(spare, max(1, len(untracked) // 10), "untracked homes for short outages",
                         lambda h: not h.tracked)  # fmt: skip
    return _Cast(
        immediate, future, other_variant, hash_mismatch, activation_failure, boundary, cancelled, no_image,
        supply, storm_windows, no_postcode_window, near_miss_window, untracked_activation, short_outages, storm,
        near_miss_storm, storm_sector, near_miss_sector,
    )  # fmt: skip


def build_scenario(
    estate: Estate, seed: int, base_time: int, settings: Settings, record_format: str = AVRO
) -> Scenario:
    """A firmware campaign day on the estate, with every case the contract distinguishes, written as the
    project's Avro records or as DUIS documents (the same campaign for the same seed)."""
    if settings.max_future_days < 3:
        raise SimulationError("the scenario dates activations up to 3 days ahead: it needs max future days >= 3")
    if record_format not in FORMATS:
        raise SimulationError(f"the record format must be one of {', '.join(FORMATS)}, got {record_format!r}")
    if record_format == DUIS and settings.command_variants != COUNTED_VARIANTS:
        raise SimulationError(
            "the DUIS scenario is labelled for POA_DUIS_COMMAND_VARIANTS=5,7 (the default): its variant 4 requests, "
            f"never signed, must not count; got {settings.duis_command_variants}"
        )
    rng = random.Random(f"scenario-{seed}")
    duis = DuisWriter() if record_format == DUIS else None
    b = _ScenarioBuilder(rng, _Ids(rng), seed, settings.window_ms, duis)
    cast = _cast(estate, rng, settings.storm_min_hans)
    policy = settings.evidence_policy
    # Phases lie further apart than any window and B + A, so no case's evidence reaches another phase.
    gap = policy.before_ms + policy.after_ms + settings.window_ms + settings.lead_in_ms + HOUR_MS
    _wave(b, cast, base_time, settings)
    _boundary(b, cast.boundary, b.latest_alert + gap)
    _plain_forwards(b, cast, b.latest_alert + gap)
    _storm(b, cast, b.latest_alert + gap, settings, base_time)
    _future_dated(b, cast.future, b.latest_alert + gap + settings.lead_in_ms, base_time)
    _cancelled_and_withdrawn(b, cast, b.latest_alert + gap + settings.lead_in_ms, base_time)
    return b.scenario


def _wave(b: _ScenarioBuilder, cast: _Cast, base_time: int, settings: Settings) -> None:
    """The immediate wave: AD1s inside windows only (rule 5 suppresses them all), some beside their own
    ESME's Supply Outage Restored alert, inside [t - B, t + A] (released) or 1 ms outside it (not)."""
    rng, window = b.rng, settings.window_ms
    before, after = settings.evidence_policy.before_ms, settings.evidence_policy.after_ms

    def in_wave() -> int:
        return base_time + rng.randrange(2 * HOUR_MS)

    for home in cast.immediate:
        r = in_wave()
        req = b.request(home.esme, r)
        if rng.random() < 0.5:
            b.outcome(req, home.esme, r + rng.randint(20 * SECOND_MS, 60 * SECOND_MS), "SUCCESS")
        b.alert("AD1", home.chf, r + b.ota_offset(), "ota-immediate", SUPPRESS, home.mpan, home.esme, req)

    r, offset = in_wave(), b.ota_offset()
    home = cast.activation_failure
    req = b.request(home.esme, r)
    b.outcome(req, home.esme, r + offset // 2, "ACTIVATION_FAILURE")
    b.alert("AD1", home.chf, r + offset, "activation-failure-still-active", SUPPRESS, home.mpan, home.esme, req)

    near = (-min(before, 30 * SECOND_MS), min(after, 30 * SECOND_MS))  # the CH and ESME report together
    supply_cases = (  # (case, code, where the supply alert is against t, released)
        ("genuine-in-window-supply-evidence", "8F36", rng.randint(*near), True),
        ("genuine-in-window-supply-evidence", "8F35", rng.randint(*near), True),
        ("genuine-in-window-supply-at-span-start", "8F35", -before, True),
        ("genuine-in-window-supply-at-span-end", "8F36", after, True),
        ("in-window-supply-before-span", "8F36", -before - 1, False),
        ("in-window-supply-after-span", "8F36", after + 1, False),
    )
    for home, (case, code, offset, released) in zip(cast.supply, supply_cases, strict=True):
        r = in_wave()
        req = b.request(home.esme, r)
        t = r + rng.randint(int(0.1 * window), int(0.9 * window))
        supply_id = b.alert(code, home.esme, t + offset, "supply-restored-evidence", FORWARD, home.mpan)
        if released:
            evidence = ExpectedEvidence(SUPPLY, esme_id=home.esme, alert_id=supply_id, alert_code=code)
            b.alert("AD1", home.chf, t, case, FORWARD, home.mpan, evidence=evidence)
        else:
            b.alert("AD1", home.chf, t, case, SUPPRESS, home.mpan, home.esme, req)


def _boundary(b: _ScenarioBuilder, home: Home, r: int) -> None:
    """Window edges, alone in their phase: the forwarded AD1s here are from the same HAN (never storm evidence)."""
    req, window = b.request(home.esme, r), b.window_ms
    b.alert("AD1", home.chf, r - 1, "boundary-before-request", FORWARD, home.mpan)
    b.alert("AD1", home.chf, r, "boundary-same-ms-as-request", SUPPRESS, home.mpan, home.esme, req)
    b.alert("AD1", home.chf, r + window, "boundary-window-end", SUPPRESS, home.mpan, home.esme, req)
    b.alert("AD1", home.chf, r + window + 1, "boundary-after-window-end", FORWARD, home.mpan)


def _plain_forwards(b: _ScenarioBuilder, cast: _Cast, start: int) -> None:
    """AD1s that rule 5 forwards (no window in force) and bad records, with no AD1 in a window near them."""
    rng = b.rng

    def in_phase() -> int:
        return start + rng.randrange(HOUR_MS)

    for home in cast.immediate:
        if rng.random() < 0.2:  # a later, unrelated outage at a home of the wave
            b.alert("AD1", home.chf, in_phase(), "genuine-after-window", FORWARD, home.mpan)
    lower = cast.immediate[0]  # the DSP may spell IDs in lower case; the key stays canonical
    b.alert("AD1", lower.chf, in_phase(), "lower-case-id-after-window", FORWARD, lower.mpan,
            device_text=lower.chf.lower())  # fmt: skip

    r, home = in_phase(), cast.other_variant
    b.request(home.esme, r, variant="11.1")  # firmware transfer: not an activation (DUIS: a variant 4 never signed)
    b.alert("AD1", home.chf, r + b.ota_offset(), "other-variant", FORWARD, home.mpan)

    r, home = in_phase(), cast.untracked_activation
    b.request(home.esme, r)
    b.alert("AD1", home.chf, r + b.ota_offset(), "untracked-esme", FORWARD, home.mpan)

    r, offset, home = in_phase(), b.ota_offset(), cast.hash_mismatch
    req = b.request(home.esme, r)
    b.outcome(req, home.esme, r + offset // 2, "HASH_MISMATCH")
    b.alert("AD1", home.chf, r + offset, "withdrawn-hash-mismatch", FORWARD, home.mpan)

    bad_home = cast.untracked_activation
    b.alert("AD1", bad_home.chf.replace("-", ""), in_phase(), "malformed-device-id", DEAD_LETTER, bad_home.mpan)
    b.malformed_alert(in_phase())
    short_id = bad_home.esme[:-3]  # seven octets
    b.request(short_id, in_phase())
    b.scenario.other_dead_letters.append(ExpectedDeadLetter("service_requests", short_id, "malformed-target-id"))


def _storm(b: _ScenarioBuilder, cast: _Cast, s: int, settings: Settings, base_time: int) -> None:
    """Supply lost in one sector at s, restored within minutes: its homes that no window covers report AD1s
    (and their ESMEs 8F36s); its tracked homes in a window then report AD1s too, released by storm evidence
    (K = POA_STORM_MIN_HANS other HANs in [t - B, t + A]). At the same time in another sector, K - 1 homes
    and one in a window (still suppressed), and a home in a window whose postcode is unknown (suppressed).
    Those in windows report no 8F36: their ESME is busy activating, so the evidence is the storm alone."""
    rng, k = b.rng, settings.storm_min_hans
    before, after = settings.evidence_policy.before_ms, settings.evidence_policy.after_ms
    spread = min(_STORM_SPREAD_MS, before + after)

    def restored() -> int:
        return s + rng.randint(0, spread)

    def in_window_time() -> int:  # every AD1 of the storm lies in [t - B, t + A]
        return rng.randint(max(s, s + spread - after), min(s + spread, s + before))

    for home in cast.short_outages:  # a flicker: the ESME reports, the CH did not lose power long enough
        b.alert("8F35", home.esme, s + rng.randint(MINUTE_MS, 3 * MINUTE_MS), "short-outage", FORWARD, home.mpan)
    for home in cast.storm + cast.near_miss_storm:
        t = restored()
        case = "genuine-storm" if home.sector == cast.storm_sector else "genuine-storm-near-miss-sector"
        b.alert("AD1", home.chf, t, case, FORWARD, home.mpan)
        b.alert("8F36", home.esme, t + rng.randint(0, 30 * SECOND_MS), "supply-restored", FORWARD, home.mpan)
    others = tuple(sorted(h.chf for h in cast.storm))
    for home in cast.storm_windows:
        t = in_window_time()
        req = b.activation_around(home, t, base_time)
        if k > 0:
            evidence = ExpectedEvidence(STORM, sector=cast.storm_sector, chf_ids=others)
            b.alert("AD1", home.chf, t, "genuine-storm-in-activation-window", FORWARD, home.mpan, evidence=evidence)
        else:  # storm evidence turned off
            b.alert("AD1", home.chf, t, "genuine-storm-in-activation-window", SUPPRESS, home.mpan, home.esme, req)
    for home, case in (
        (cast.no_postcode_window, "storm-in-window-without-postcode"),
        (cast.near_miss_window, "storm-in-window-k-minus-one-hans"),
    ):
        t = in_window_time()
        req = b.activation_around(home, t, base_time)
        b.alert("AD1", home.chf, t, case, SUPPRESS, home.mpan, home.esme, req)


def _future_dated(b: _ScenarioBuilder, homes: list[Home], start: int, base_time: int) -> None:
    """Future-dated activations over two days, each requested up to two days ahead, each with its OTA AD1."""
    rng = b.rng
    for n, home in enumerate(homes):
        t = start + rng.randrange(2 * DAY_MS)
        r = max(base_time, t - rng.randint(HOUR_MS, 2 * DAY_MS))
        # The critical command twice, same request ID: as the request to sign (DUIS variant 4), then signed.
        req = b.request(home.esme, r, t, command_variant=4 if n == 0 else 5)
        if n == 0:
            b.request(home.esme, r + rng.randint(2 * MINUTE_MS, 10 * MINUTE_MS), t, request_id=req, command_variant=7)
        ota = t + b.ota_offset()
        spelled = home.chf.lower() if n == 1 else None
        b.alert("AD1", home.chf, ota, "ota-future-dated", SUPPRESS, home.mpan, home.esme, req, spelled)
        b.outcome(req, home.esme, ota + MINUTE_MS, "SUCCESS", executed_at=t)  # the ESME's 0x8F66


def _cancelled_and_withdrawn(b: _ScenarioBuilder, cast: _Cast, start: int, base_time: int) -> None:
    """Future-dated activations that end before their time: cancelled, or withdrawn (no image held)."""
    rng = b.rng
    t, home = start + rng.randrange(HOUR_MS), cast.cancelled
    r = max(base_time, t - rng.randint(6 * HOUR_MS, DAY_MS))
    b.request(home.esme, r, t)
    b.request(home.esme, r + 3 * HOUR_MS, b.cancel_at)
    b.alert("AD1", home.chf, t + b.ota_offset(), "genuine-cancelled-activation", FORWARD, home.mpan)

    t, home = start + rng.randrange(HOUR_MS), cast.no_image
    r = max(base_time, t - rng.randint(HOUR_MS, DAY_MS))
    req, offset = b.request(home.esme, r, t), b.ota_offset()
    reported = t + min(5 * SECOND_MS, offset // 2)  # the 0x8F67 comes at the execution time
    b.outcome(req, home.esme, reported, "NO_IMAGE_HELD", executed_at=t)
    b.alert("AD1", home.chf, t + offset, "withdrawn-no-image-held", FORWARD, home.mpan)


# DUIS records are stamped with their received_at. A worker's housekeeping takes records stamped long before its
# wall clock for ones the inputs' retention (31 days by default) has removed, and may purge what they made.
DUIS_MAX_AGE_DAYS = 30


def check_stamps(scenario: Scenario, now_ms: int) -> None:
    """SimulationError when a DUIS campaign would be stamped too long ago to be decided as built."""
    if scenario.record_format != DUIS or not scenario.events:
        return
    oldest = min(e.received_at for e in scenario.events)
    if oldest < now_ms - DUIS_MAX_AGE_DAYS * DAY_MS:
        raise SimulationError(
            f"a DUIS record's received_at is its Kafka timestamp, and this campaign starts {_iso(oldest)}, more than "
            f"{DUIS_MAX_AGE_DAYS} days ago, beyond what the input topics keep: give a --base-time within the last "
            f"{DUIS_MAX_AGE_DAYS} days (the campaign spans about 3 days)"
        )


def ensure_input_topics(settings: Settings, partitions: int) -> list[str]:
    """Create missing input topics (the simulator plays the DSP, which owns them); compact reference ones."""
    topics = settings.topics
    compacted = {"cleanup.policy": "compact"}
    return create_topics(
        admin_client(settings),
        dict.fromkeys((*topics.activation_inputs, topics.alerts, *topics.reference_inputs), partitions),
        {topics.inventory: compacted, topics.tracked_devices: compacted},
    )


def play(scenario: Scenario, settings: Settings, codec: AvroCodec) -> dict[str, int]:
    """Produce the scenario in received_at order, DUIS documents stamped with their received_at; returns the
    record count per topic.

    Like the DSP, which accepts a firmware request long before the outage it causes, requests and
    outcomes are acknowledged before any later alert is written: records on different topics have no
    order in Kafka, and an alert that lands before its request is rightly decided without it.
    """
    producer = BulkProducer(settings, client_id="poa-filter-simulator")
    counts = dict.fromkeys(RECORD_NAMES, 0)
    unacknowledged_inputs = False
    events = scenario.ordered()
    with Progress("play scenario", total=len(events)) as progress:
        for played, event in enumerate(events, 1):
            topic = getattr(settings.topics, event.topic)
            value = event.raw
            if value is None:
                assert event.datum is not None, "an event holds a record or its bytes"
                value = codec.encode(RECORD_NAMES[event.topic], event.datum, topic)
            is_alert = topic == settings.topics.alerts
            if is_alert and unacknowledged_inputs:
                producer.flush()
                unacknowledged_inputs = False
            # A DUIS record's received_at is its Kafka timestamp (contract 9); an Avro record carries its own.
            producer.produce(topic, event.key, value, event.received_at if scenario.record_format == DUIS else None)
            unacknowledged_inputs = unacknowledged_inputs or not is_alert
            counts[event.topic] += 1
            progress.update(played)
        producer.flush()
        progress.finish(len(events))
    return counts


def write_expected(scenario: Scenario, path: Path, **about: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario.expected_json(**about), indent=1) + "\n")
