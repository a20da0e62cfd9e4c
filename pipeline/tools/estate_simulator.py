"""A simulated estate and firmware-campaign day, deterministic from a seed, for demos and tests.

Every alert carries the decision the contract requires for it, known from how the case was built
(an OTA-caused AD1 placed inside a tracked activation's window, a genuine outage on an untracked home,
...), never computed by the filter's code: the demo checks the filter against it.
"""

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.core.event_time import DAY_MS, HOUR_MS, MINUTE_MS
from pipeline.kafka.clients import admin_client
from pipeline.kafka.topics import create_topics
from pipeline.settings import Settings
from pipeline.tools.bulk_producer import BulkProducer
from pipeline.tools.progress import Progress
from pipeline.wire.avro_codec import AvroCodec

SECOND_MS = 1_000
CANCEL_AT_MS = 32_535_129_600_000  # 3000-12-31T00:00:00Z, the DUIS cancellation date
DEFAULT_BASE_TIME = "2025-01-15T08:00:00Z"

FORWARD, SUPPRESS, DEAD_LETTER = "forward", "suppress", "dead-letter"

# The topic each event goes to (a Topics attribute) and the record its value holds.
RECORD_NAMES = {
    "service_requests": "ServiceRequest",
    "activation_outcomes": "ActivationOutcome",
    "alerts": "DeviceAlert",
}
# Requests and outcomes at the same millisecond apply before alerts (contract 5.6): write them first.
_TOPIC_ORDER = {"service_requests": 0, "activation_outcomes": 1, "alerts": 2}

# Homes each single-case role needs beyond the campaign: tracked (7 roles) and untracked (untracked-ESME
# activation, storm, restored-within-3-minutes).
_TRACKED_ROLES = 7
_MIN_CAMPAIGN = 3  # at least one immediate and two future-dated activations (one sent twice, one lower case)
_MIN_TRACKED = _TRACKED_ROLES + _MIN_CAMPAIGN
_MIN_UNTRACKED = 5
MIN_HOMES = _MIN_TRACKED + _MIN_UNTRACKED


class SimulationError(Exception):
    """Options the scenario cannot be built with (too few homes, settings that leave no room for a case)."""


@dataclass(frozen=True, slots=True)
class Home:
    """One premises: a HAN on a Communications Hub, an ESME, usually gas, sometimes a display or PPMID."""

    chf: str
    esme: str
    mpan: str
    tracked: bool
    gsme: str | None = None
    gpf: str | None = None
    mprn: str | None = None
    ihd: str | None = None
    ppmid: str | None = None

    def inventory_rows(self, updated_at: int) -> Iterator[tuple[str, str, str, str, int]]:
        """(device_id, device_type, chf_id, mpxn, updated_at): the CHF itself is on no other HAN."""
        yield self.chf, "CHF", "", "", updated_at
        yield self.esme, "ESME", self.chf, self.mpan, updated_at
        for device_id, device_type, mpxn in (
            (self.gsme, "GSME", self.mprn),
            (self.gpf, "GPF", None),
            (self.ihd, "IHD", None),
            (self.ppmid, "PPMID", None),
        ):
            if device_id:
                yield device_id, device_type, self.chf, mpxn or "", updated_at


@dataclass(frozen=True)
class Estate:
    homes: tuple[Home, ...]
    added_at: int  # when the tracked list was published

    @property
    def tracked(self) -> list[Home]:
        return [h for h in self.homes if h.tracked]

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
            writer.writerow(["device_id", "device_type", "chf_id", "mpxn", "updated_at"])
            for home in self.homes:
                writer.writerows(home.inventory_rows(self.added_at))
        return tracked_path, inventory_path


@dataclass(frozen=True)
class Event:
    """One record for an input topic; `raw` replaces the encoded datum for undecodable bytes."""

    topic: str  # Topics attribute
    key: str
    received_at: int
    datum: dict[str, Any] | None = None
    raw: bytes | None = None


@dataclass(frozen=True)
class ExpectedAlert:
    alert_id: str
    key: str
    alert_code: str
    case: str
    expected: str
    esme_id: str | None = None
    activation_request_id: str | None = None


@dataclass(frozen=True)
class ExpectedDeadLetter:
    """A non-alert record expected on the dead-letter topic (it has no alert ID to match by)."""

    topic: str
    key: str
    case: str


@dataclass
class Scenario:
    events: list[Event] = field(default_factory=list)
    alerts: list[ExpectedAlert] = field(default_factory=list)
    other_dead_letters: list[ExpectedDeadLetter] = field(default_factory=list)

    def ordered(self) -> list[Event]:
        """In received_at order (per topic, as the DSP writes), requests and outcomes first on ties."""
        return sorted(self.events, key=lambda e: (e.received_at, _TOPIC_ORDER[e.topic]))

    def expected_json(self, **about: Any) -> dict[str, Any]:
        return {
            **about,
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
    return Estate(tuple(built), added_at=base_time - 30 * DAY_MS)


class _ScenarioBuilder:
    """Writes records the way the DSP would and notes, per alert, what the contract requires for it."""

    def __init__(self, rng: random.Random, ids: _Ids, seed: int, window_ms: int) -> None:
        self.rng = rng
        self.ids = ids
        self.seed = seed
        self.window_ms = window_ms
        self.scenario = Scenario()
        self._suppliers = [ids.eui64() for _ in range(3)]
        self._counters = dict.fromkeys(self._suppliers, 1_000_000)
        self._alerts = 0
        self.firmware_hash = f"{rng.getrandbits(256):064x}"

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
        target: str | None = None,
    ) -> str:
        if request_id is None:
            supplier = self.rng.choice(self._suppliers)
            self._counters[supplier] += 1
            request_id = f"{supplier}:{esme}:{self._counters[supplier]}"
        datum = {
            "request_id": request_id,
            "service_reference_variant": variant,
            "target_device_id": target or esme,
            "execution_datetime": execution,
            "firmware_hash": self.firmware_hash,
            "received_at": received_at,
        }
        self.scenario.events.append(Event("service_requests", target or esme, received_at, datum))
        return request_id

    def outcome(self, request_id: str, esme: str, received_at: int, outcome: str) -> None:
        datum = {"request_id": request_id, "device_id": esme, "outcome": outcome, "received_at": received_at}
        self.scenario.events.append(Event("activation_outcomes", esme, received_at, datum))

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
    ) -> None:
        """An alert keyed by its (canonical) originating device; `device_text` spells the ID in the value."""
        self._alerts += 1
        alert_id = f"SIM-{self.seed}-{self._alerts:06d}"
        datum = {
            "alert_id": alert_id,
            "alert_code": code,
            "device_id": device_text or device,
            "mpxn": mpxn,
            "raised_at": received_at - self.rng.randint(1 * SECOND_MS, 20 * SECOND_MS),
            "received_at": received_at,
            "payload": self.rng.randbytes(24),
        }
        self.scenario.events.append(Event("alerts", device, received_at, datum))
        self.scenario.alerts.append(ExpectedAlert(alert_id, device, code, case, expected, esme, request_id))

    def undecodable_alert(self, received_at: int) -> None:
        """Raw DUIS XML where an Avro DeviceAlert is due; its unique key identifies it when dead-lettered."""
        self._alerts += 1
        alert_id, key = f"SIM-{self.seed}-{self._alerts:06d}", self.ids.eui64()
        raw = f"<sr:Response><sr:DCCAlertCode>AD1</sr:DCCAlertCode><sr:CHF>{key}</sr:CHF></sr:Response>"
        self.scenario.events.append(Event("alerts", key, received_at, raw=raw.encode()))
        self.scenario.alerts.append(ExpectedAlert(alert_id, key, "AD1", "undecodable-bytes", DEAD_LETTER))


def build_scenario(estate: Estate, seed: int, base_time: int, settings: Settings) -> Scenario:
    """A firmware campaign day on the estate, with every case the contract distinguishes."""
    window, lead_in = settings.window_ms, settings.lead_in_ms
    if settings.max_future_days < 3:
        raise SimulationError("the scenario dates activations up to 3 days ahead: it needs max future days >= 3")
    rng = random.Random(f"scenario-{seed}")
    b = _ScenarioBuilder(rng, _Ids(rng), seed, window)
    tracked = estate.tracked
    untracked = [h for h in estate.homes if not h.tracked]
    rng.shuffle(tracked)
    rng.shuffle(untracked)
    campaign = max(_MIN_CAMPAIGN, (len(tracked) - _TRACKED_ROLES) // 2)
    immediate, future = tracked[: campaign // 2], tracked[campaign // 2 : campaign]
    (other_variant, hash_mismatch, activation_failure, boundary, cancelled, no_image, storm_window) = tracked[
        campaign : campaign + _TRACKED_ROLES
    ]
    idle_tracked = tracked[campaign + _TRACKED_ROLES :]
    untracked_activation, *rest = untracked
    short_outages = rest[: max(1, len(rest) // 10)]
    storm_homes = rest[len(short_outages) :] + idle_tracked
    rng.shuffle(storm_homes)
    storm_homes = storm_homes[: max(10, len(estate.homes) // 20)]

    # Time line: an immediate wave in the first 2 hours, a storm once its windows are over, future-dated
    # activations after the storm (lead-in included), so no case falls into another's window by accident.
    wave_end = base_time + 2 * HOUR_MS
    storm = wave_end + window + HOUR_MS
    future_from = storm + 2 * HOUR_MS + lead_in

    def within_first_hour() -> int:
        return base_time + rng.randrange(HOUR_MS)

    for home in immediate:
        r = base_time + rng.randrange(2 * HOUR_MS)
        req = b.request(home.esme, r)
        if rng.random() < 0.5:
            b.outcome(req, home.esme, r + rng.randint(20 * SECOND_MS, 60 * SECOND_MS), "SUCCESS")
        b.alert("AD1", home.chf, r + b.ota_offset(), "ota-immediate", SUPPRESS, home.mpan, home.esme, req)
        if rng.random() < 0.2:
            late = r + window + rng.randint(10 * MINUTE_MS, HOUR_MS)
            b.alert("AD1", home.chf, late, "genuine-after-window", FORWARD, home.mpan)
    lower = immediate[0]  # the DSP may spell IDs in lower case; the key stays canonical
    b.alert(
        "AD1",
        lower.chf,
        base_time + 2 * HOUR_MS + window + 5 * MINUTE_MS,
        "lower-case-id-after-window",
        FORWARD,
        lower.mpan,
        device_text=lower.chf.lower(),
    )

    for n, home in enumerate(future):
        r = within_first_hour()
        t = future_from + rng.randrange(2 * DAY_MS)
        req = b.request(home.esme, r, t)
        if n == 0:  # the critical-command twice: pre-command, then the signed command, same request ID
            b.request(home.esme, r + rng.randint(2 * MINUTE_MS, 10 * MINUTE_MS), t, request_id=req)
        ota = t + b.ota_offset()
        spelled = home.chf.lower() if n == 1 else None
        b.alert("AD1", home.chf, ota, "ota-future-dated", SUPPRESS, home.mpan, home.esme, req, spelled)
        b.outcome(req, home.esme, ota + MINUTE_MS, "SUCCESS")
        b.alert("8F66", home.esme, ota + MINUTE_MS, "future-dated-success-alert", FORWARD, home.mpan)

    r = within_first_hour()
    b.request(other_variant.esme, r, variant="11.1")  # firmware transfer: not an activation
    b.alert("AD1", other_variant.chf, r + b.ota_offset(), "other-variant", FORWARD, other_variant.mpan)

    r = within_first_hour()
    b.request(untracked_activation.esme, r)
    b.alert(
        "AD1",
        untracked_activation.chf,
        r + b.ota_offset(),
        "untracked-esme",
        FORWARD,
        untracked_activation.mpan,
    )

    r, offset = within_first_hour(), b.ota_offset()
    req = b.request(hash_mismatch.esme, r)
    b.outcome(req, hash_mismatch.esme, r + offset // 2, "HASH_MISMATCH")
    b.alert("AD1", hash_mismatch.chf, r + offset, "withdrawn-hash-mismatch", FORWARD, hash_mismatch.mpan)

    r, offset = within_first_hour(), b.ota_offset()
    req = b.request(activation_failure.esme, r)
    b.outcome(req, activation_failure.esme, r + offset // 2, "ACTIVATION_FAILURE")
    b.alert(
        "AD1",
        activation_failure.chf,
        r + offset,
        "activation-failure-still-active",
        SUPPRESS,
        activation_failure.mpan,
        activation_failure.esme,
        req,
    )

    r = within_first_hour()
    req = b.request(boundary.esme, r)
    home = boundary
    b.alert("AD1", home.chf, r - 1, "boundary-before-request", FORWARD, home.mpan)
    b.alert("AD1", home.chf, r, "boundary-same-ms-as-request", SUPPRESS, home.mpan, home.esme, req)
    b.alert("AD1", home.chf, r + window, "boundary-window-end", SUPPRESS, home.mpan, home.esme, req)
    b.alert("AD1", home.chf, r + window + 1, "boundary-after-window-end", FORWARD, home.mpan)

    r = within_first_hour()
    t = future_from + DAY_MS
    b.request(cancelled.esme, r, t)
    b.request(cancelled.esme, r + 3 * HOUR_MS, CANCEL_AT_MS)
    b.alert("AD1", cancelled.chf, t + b.ota_offset(), "genuine-cancelled-activation", FORWARD, cancelled.mpan)

    r = within_first_hour()
    t = future_from + rng.randrange(DAY_MS)
    req, offset = b.request(no_image.esme, r, t), b.ota_offset()
    reported = t + min(5 * SECOND_MS, offset // 2)  # the 0x8F67 comes at the execution time
    b.outcome(req, no_image.esme, reported, "NO_IMAGE_HELD")
    b.alert("8F67", no_image.esme, reported, "future-dated-failure-alert", FORWARD, no_image.mpan)
    b.alert("AD1", no_image.chf, t + offset, "withdrawn-no-image-held", FORWARD, no_image.mpan)

    # A storm: supply lost at `storm`, restored 4-8 minutes later; each CH reports AD1, each ESME 8F36.
    for home in storm_homes:
        restored = storm + rng.randint(4 * MINUTE_MS, 8 * MINUTE_MS)
        b.alert("AD1", home.chf, restored + rng.randint(0, 30 * SECOND_MS), "genuine-storm", FORWARD, home.mpan)
        b.alert(
            "8F36",
            home.esme,
            restored + rng.randint(0, 30 * SECOND_MS),
            "supply-restored",
            FORWARD,
            home.mpan,
        )
    for home in short_outages:
        b.alert(
            "8F35",
            home.esme,
            storm + rng.randint(MINUTE_MS, 3 * MINUTE_MS),
            "short-outage",
            FORWARD,
            home.mpan,
        )
    # The known cost of MP102B: a real outage inside a tracked activation's window is suppressed too.
    t = storm + 5 * MINUTE_MS - window // 3
    req = b.request(storm_window.esme, within_first_hour(), t)
    b.alert(
        "AD1",
        storm_window.chf,
        storm + 5 * MINUTE_MS,
        "genuine-storm-in-activation-window",
        SUPPRESS,
        storm_window.mpan,
        storm_window.esme,
        req,
    )

    bad_home = storm_homes[0]
    bad_id = bad_home.chf.replace("-", "")
    b.alert("AD1", bad_id, storm + 6 * MINUTE_MS, "malformed-device-id", DEAD_LETTER, bad_home.mpan)
    b.undecodable_alert(storm + 7 * MINUTE_MS)
    short_id = untracked_activation.esme[:-3]  # seven octets
    b.request(short_id, within_first_hour())
    b.scenario.other_dead_letters.append(ExpectedDeadLetter("service_requests", short_id, "malformed-target-id"))
    return b.scenario


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
    """Produce the scenario in received_at order; returns the record count per topic.

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
            value = event.raw if event.datum is None else codec.encode(RECORD_NAMES[event.topic], event.datum, topic)
            is_alert = topic == settings.topics.alerts
            if is_alert and unacknowledged_inputs:
                producer.flush()
                unacknowledged_inputs = False
            producer.produce(topic, event.key, value)
            unacknowledged_inputs = unacknowledged_inputs or not is_alert
            counts[event.topic] += 1
            progress.update(played)
        producer.flush()
        progress.finish(len(events))
    return counts


def write_expected(scenario: Scenario, path: Path, **about: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario.expected_json(**about), indent=1) + "\n")
