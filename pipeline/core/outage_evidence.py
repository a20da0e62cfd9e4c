"""Evidence of a genuine outage (contract rule 9): why an AD1 inside an activation window is still sent.

SECAS objected to MP102B that a suppression window also hides real outages. A firmware activation cuts
the Communications Hub's power, not the premises' supply, so two things tell a real outage apart:
- supply evidence: the ESME on the same HAN itself reports Supply Outage Restored (8F35, 8F36);
- storm evidence: CH Functions in the same postcode sector that no window covers raise AD1s too.
Both are looked for in [t - B, t + A] around the AD1's event time t. These are pure functions over what
the state holds; the state finds the candidate alerts, the rules here say which of them count.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.core.event_time import MINUTE_MS

SUPPLY_RESTORED_CODES = frozenset({"8F35", "8F36"})  # ESME: Supply Outage Restored (>= 3 minutes for 8F36)
_MIN_POSTCODE_CHARS, _MAX_POSTCODE_CHARS = 5, 7  # UK postcodes without their space: "M11AA" .. "SW1A1AA"


@dataclass(frozen=True, slots=True)
class EvidencePolicy:
    before_ms: int = 10 * MINUTE_MS  # B, POA_EVIDENCE_BEFORE_MINUTES
    after_ms: int = 3 * MINUTE_MS  # A, POA_EVIDENCE_AFTER_MINUTES: DCC's Power Outage Event Window
    storm_min_hans: int = 3  # K, POA_STORM_MIN_HANS; 0 turns storm evidence off

    def span(self, t: int) -> tuple[int, int]:
        """The event times, both ends inclusive, in which evidence for an AD1 at t counts."""
        return t - self.before_ms, t + self.after_ms

    def complete_after(self, t: int) -> int:
        """Evidence for an AD1 at t is complete once every alert partition is read past this time."""
        return t + self.after_ms


@dataclass(frozen=True, slots=True)
class SupplyEvidence:
    """An ESME on the AD1's HAN reported its mains supply restored."""

    esme_id: str
    alert_id: str
    alert_code: str
    received_at: int

    def describe(self) -> str:
        return f"supply evidence: {self.alert_code} {self.alert_id} from ESME {self.esme_id} at {self.received_at} ms"


@dataclass(frozen=True, slots=True)
class StormEvidence:
    """AD1s from at least K other HANs of the sector, none of them in an activation window."""

    sector: str
    hans: tuple[tuple[str, str, int], ...]  # (CH Function, alert ID, received_at), one per HAN, by HAN

    def describe(self) -> str:
        return f"storm evidence: AD1s from {len(self.hans)} other HANs in postcode sector {self.sector}"


Evidence = SupplyEvidence | StormEvidence


@dataclass(frozen=True, slots=True)
class EvidenceAlert:
    """An alert that may be evidence: its source device, code, ID and event time."""

    device_id: str
    alert_code: str
    alert_id: str
    received_at: int


def postcode_sector(postcode: str | None) -> str | None:
    """`SW1A 1AA` and `sw1a1aa` -> `SW1A 1`: upper case, spaces removed, less the last two characters, a
    space before the last remaining one. None (unknown) for no postcode or one of the wrong length."""
    if postcode is None:
        return None
    compact = postcode.upper().replace(" ", "")
    if not _MIN_POSTCODE_CHARS <= len(compact) <= _MAX_POSTCODE_CHARS:
        return None
    return f"{compact[:-3]} {compact[-3]}"


def han_postcode(chf_postcode: str | None, esme_postcodes: Iterable[tuple[str, str | None]]) -> str | None:
    """A CH Function's postcode: its own, else that of the first ESME on its HAN, in device-ID order, that
    has one (a malformed one included: it makes the sector unknown rather than falling through)."""
    if chf_postcode is not None:
        return chf_postcode
    return next((postcode for _, postcode in sorted(esme_postcodes) if postcode is not None), None)


def supply_evidence(t: int, policy: EvidencePolicy, han_esme_alerts: Iterable[EvidenceAlert]) -> SupplyEvidence | None:
    """The earliest Supply Outage Restored alert in the span, among alerts from the ESMEs of the AD1's HAN."""
    lo, hi = policy.span(t)
    found = [
        a for a in han_esme_alerts if a.alert_code in SUPPLY_RESTORED_CODES and lo <= a.received_at <= hi
    ]
    if not found:
        return None
    first = min(found, key=lambda a: (a.received_at, a.alert_id))
    return SupplyEvidence(first.device_id, first.alert_id, first.alert_code, first.received_at)


def storm_evidence(
    chf_id: str,
    sector: str | None,
    t: int,
    policy: EvidencePolicy,
    sector_ad1s_outside_windows: Iterable[EvidenceAlert],
) -> StormEvidence | None:
    """Storm evidence when at least K other CH Functions of the sector raised an AD1 in the span that no
    window covers. The caller passes only AD1s that rule 5 alone forwards; the AD1's own HAN never counts.
    They are read only until K HANs are found (the evidence names those K), so a lazy caller stops there."""
    if policy.storm_min_hans <= 0 or sector is None:
        return None
    lo, hi = policy.span(t)
    first_per_han: dict[str, EvidenceAlert] = {}
    for a in sector_ad1s_outside_windows:
        if a.device_id == chf_id or not lo <= a.received_at <= hi:
            continue
        seen = first_per_han.get(a.device_id)
        if seen is None or (a.received_at, a.alert_id) < (seen.received_at, seen.alert_id):
            first_per_han[a.device_id] = a
        if seen is None and len(first_per_han) == policy.storm_min_hans:
            break
    if len(first_per_han) < policy.storm_min_hans:
        return None
    hans = tuple((han, a.alert_id, a.received_at) for han, a in sorted(first_per_han.items()))
    return StormEvidence(sector, hans)
