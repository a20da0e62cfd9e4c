"""A deterministic firmware-campaign scenario for the worker tests, with its expected decisions.

The expected decisions come from two independent places: each alert is labelled by construction
(`intent`), and the pure decision core applied to the complete input gives the reference decision;
tests check the worker against both.
"""

import random
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.alert_decisions import Suppress
from pipeline.core.bad_input import BadInput
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.wire import validation

BASE = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MIN = 60_000
HOUR = 60 * MIN
CANCEL_AT = 32_535_129_600_000  # 3000-12-31T00:00:00Z


def eui(rng: random.Random, lower: bool = False) -> str:
    text = "-".join(f"{rng.randrange(256):02X}" for _ in range(8))
    return text.lower() if lower else text


@dataclass
class Scenario:
    inventory: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    tracked: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    intent: dict[str, str] = field(default_factory=dict)  # alert_id -> "suppress" | "forward"

    def events(self) -> list[tuple[int, int, str, dict[str, Any]]]:
        """Activation inputs and alerts in received_at order, requests and outcomes first at a tie (5.6)."""
        rows = [(d["received_at"], 0, "request", d) for d in self.requests]
        rows += [(d["received_at"], 0, "outcome", d) for d in self.outcomes]
        rows += [(d["received_at"], 1, "alert", d) for d in self.alerts]
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def reference_decisions(
        self, policy: WindowPolicy | None = None, evidence: EvidencePolicy | None = None
    ) -> dict[str, tuple[str, str | None]]:
        """alert_id -> ("suppress", request_id) or ("forward", None) for every valid alert, from the pure core
        with all inputs: rule 5, then rule 9 with every valid alert that may be evidence."""
        decisions, _ = self._reference(policy, evidence or EvidencePolicy())
        return decisions

    def released_on_evidence(self, evidence: EvidencePolicy | None = None) -> set[str]:
        """The AD1s that rule 5 suppresses and rule 9 forwards."""
        return self._reference(None, evidence or EvidencePolicy())[1]

    def _reference(
        self, policy: WindowPolicy | None, evidence: EvidencePolicy
    ) -> tuple[dict[str, tuple[str, str | None]], set[str]]:
        state = FilterState(StagedStore(MemoryBackend()), policy or WindowPolicy())
        for key, datum in self.inventory:  # under the key as written: a tombstone removes that key's record only
            state.put_inventory(key, None if datum is None else validation.inventory_record(datum))
        for key, datum in self.tracked:
            state.put_tracked(key, datum is not None)
        for d in self.requests:
            state.apply_service_request(validation.service_request(d))
        for d in self.outcomes:
            state.apply_outcome(validation.activation_outcome(d))
        valid = []
        for d in self.alerts:
            try:
                valid.append(validation.device_alert(d))
            except BadInput:
                continue  # dead-lettered: decided by nothing, evidence of nothing
        for alert in valid:
            state.put_evidence_alert(alert)
        decisions: dict[str, tuple[str, str | None]] = {}
        released = set()
        for alert in valid:
            decision = state.decide(alert)
            if isinstance(decision, Suppress) and state.evidence_for(alert, evidence) is not None:
                released.add(alert.alert_id)
                decisions[alert.alert_id] = ("forward", None)
            elif isinstance(decision, Suppress):
                decisions[alert.alert_id] = ("suppress", decision.activation.version.request_id)
            else:
                decisions[alert.alert_id] = ("forward", None)
        return decisions, released


def campaign(homes: int = 30, seed: int = 7, start: int = BASE) -> Scenario:
    """Tracked and untracked homes; immediate, future-dated, replaced, cancelled and withdrawn activations;
    AD1s at the window edges and at the request's own millisecond; genuine outages; other alert codes."""
    rng = random.Random(seed)
    sc = Scenario()
    counter = 0
    alert_no = 0

    def alert(chf: str, t: int, intent: str, code: str = "AD1") -> None:
        nonlocal alert_no
        alert_no += 1
        alert_id = f"alert-{alert_no:05d}"
        sc.alerts.append(
            {"alert_id": alert_id, "alert_code": code, "device_id": chf, "mpxn": f"{1000000000000 + alert_no}",
             "raised_at": t - 1000, "received_at": t, "payload": bytes([alert_no % 256]) * 3}
        )
        sc.intent[alert_id] = intent

    def request(esme: str, r: int, execution: int | None, request_id: str | None = None) -> str:
        nonlocal counter
        counter += 1
        rid = request_id or f"90-B3-D5-1F-30-01-00-00:{esme}:{counter}"
        sc.requests.append(
            {"request_id": rid, "service_reference_variant": "11.3", "target_device_id": esme,
             "execution_datetime": execution, "firmware_hash": "ab" * 32, "received_at": r}
        )
        return rid

    for h in range(homes):
        chf, esme, gsme = eui(rng), eui(rng, lower=h % 5 == 0), eui(rng)
        sc.inventory += [
            (chf, {"device_id": chf, "device_type": "CHF", "chf_id": None, "mpxn": None, "updated_at": start}),
            (esme, {"device_id": esme, "device_type": "esme" if h % 4 == 0 else "ESME", "chf_id": chf,
                    "mpxn": f"{h:013d}", "updated_at": start}),
            (gsme, {"device_id": gsme, "device_type": "GSME", "chf_id": chf, "mpxn": None, "updated_at": start}),
        ]
        tracked = h % 6 != 5
        if tracked:
            sc.tracked.append((esme, {"device_id": esme, "manufacturer": "L+G", "model": "E470",
                                      "firmware_version": "1.0", "list_version": "2026-02", "added_at": start}))
        r = start + (h + 1) * HOUR
        kind = h % 6
        if kind == 0:  # immediate activation: window [r, r+30min], alert at r itself is inside (5.6 tie)
            request(esme, r, None)
            alert(chf, r, "suppress")
            alert(chf, r + 30 * MIN, "suppress")
            alert(chf, r + 30 * MIN + 1, "forward")
            alert(chf, r + 10 * MIN, "forward", code="8F36")
        elif kind == 1:  # future-dated: window [x, x+30min]
            x = r + 2 * HOUR
            request(esme, r, x)
            alert(chf, x - 1, "forward")
            alert(chf, x, "suppress")
            alert(chf, x + 17 * MIN, "suppress")
        elif kind == 2:  # future-dated then cancelled before it starts
            x = r + 3 * HOUR
            request(esme, r, x)
            request(esme, r + HOUR, CANCEL_AT)
            alert(chf, x + 5 * MIN, "forward")
        elif kind == 3:  # withdrawn: the device did not hold the image
            x = r + HOUR
            rid = request(esme, r, x)
            sc.outcomes.append({"request_id": rid, "device_id": esme, "outcome": "NO_IMAGE_HELD",
                                "received_at": x})
            alert(chf, x + 5 * MIN, "forward")
        elif kind == 4:  # the same request seen twice (pre-command, then signed): the second replaces the first
            x1, x2 = r + HOUR, r + 5 * HOUR
            rid = request(esme, r, x1)
            request(esme, r + 30 * MIN, x2, request_id=rid)
            alert(chf, x1 + 5 * MIN, "forward")
            alert(chf, x2 + 5 * MIN, "suppress")
            sc.outcomes.append({"request_id": rid, "device_id": esme, "outcome": "SUCCESS",
                                "received_at": x2 + MIN})
        else:  # activation on an ESME that is not on the tracked list: a genuine-looking AD1 goes through
            request(esme, r, None)
            alert(chf, r + MIN, "forward")
        alert(chf, r + 20 * HOUR + rng.randrange(HOUR), "forward")  # a genuine outage, far from any window
    return sc


@dataclass
class EvidenceHome:
    """A home of `with_supply_evidence`: its CH Function and the AD1 inside its activation window."""

    chf: str
    esme: str
    ad1_id: str
    kind: str


def with_supply_evidence(
    sc: Scenario, start: int, homes: int = 10, seed: int = 3, evidence: EvidencePolicy | None = None
) -> list[EvidenceHome]:
    """Adds homes with an immediate activation at `start` and an AD1 inside its window at start + 5 min,
    and, by kind, Supply Outage Restored alerts (rule 9.a) that count or do not:
    after: 8F35 from the home's ESME exactly at t + A (forward); before: 8F36 exactly at t - B (forward);
    outside: 8F35 at t + A + 1 ms and 8F36 at t - B - 1 ms (suppress); not_esme: 8F35 from the CH Function
    itself and from another home's ESME (suppress); moved: 8F35 from an ESME that the inventory moved to
    another HAN (suppress). The AD1s of no window (start + 5 min from an untracked home) are forwarded."""
    policy = evidence or EvidencePolicy()
    rng = random.Random(seed)
    kinds = ("after", "before", "outside", "not_esme", "moved")
    added: list[EvidenceHome] = []
    other_esme = eui(rng)
    t = start + 5 * MIN
    lo, hi = policy.span(t)

    def alert(device: str, at: int, intent: str, code: str) -> str:
        alert_id = f"ev-alert-{len(sc.alerts):05d}"
        sc.alerts.append(
            {"alert_id": alert_id, "alert_code": code, "device_id": device, "mpxn": None, "raised_at": None,
             "received_at": at, "payload": None}
        )
        sc.intent[alert_id] = intent
        return alert_id

    def inventory(device: str, kind: str, chf: str | None) -> None:
        sc.inventory.append((device, {"device_id": device, "device_type": kind, "chf_id": chf, "mpxn": None,
                                      "updated_at": start - HOUR}))

    for h in range(homes):
        kind = kinds[h % len(kinds)]
        chf, esme = eui(rng), eui(rng)
        inventory(chf, "CHF", None)
        inventory(esme, "ESME", chf)
        sc.tracked.append((esme, {"device_id": esme, "manufacturer": "L+G", "model": "E470",
                                  "firmware_version": "1.0", "list_version": "2026-02", "added_at": start - HOUR}))
        sc.requests.append(
            {"request_id": f"ev-request-{h}", "service_reference_variant": "11.3", "target_device_id": esme,
             "execution_datetime": None, "firmware_hash": "ab" * 32, "received_at": start}
        )
        forward = kind in ("after", "before")
        ad1 = alert(chf, t, "forward" if forward else "suppress", "AD1")
        if kind == "after":
            alert(esme, hi, "forward", "8F35")
        elif kind == "before":
            alert(esme, lo, "forward", "8F36")
        elif kind == "outside":
            alert(esme, hi + 1, "forward", "8F35")
            alert(esme, lo - 1, "forward", "8F36")
        elif kind == "not_esme":
            alert(chf, t + MIN, "forward", "8F35")
            alert(other_esme, t + MIN, "forward", "8F35")
        else:
            moved = eui(rng)
            inventory(moved, "ESME", chf)
            inventory(moved, "ESME", eui(rng))  # the latest record: on another HAN now
            alert(moved, t + MIN, "forward", "8F35")
        added.append(EvidenceHome(chf, esme, ad1, kind))
    untracked_chf = eui(rng)
    inventory(untracked_chf, "CHF", None)
    alert(untracked_chf, t, "forward", "AD1")  # no window covers it: never waits for evidence
    return added


def with_storms(sc: Scenario, start: int, seed: int = 4, evidence: EvidencePolicy | None = None) -> list[str]:
    """Adds two postcode sectors with an AD1 in an activation window at start + 5 min (rule 9.b), and
    returns those AD1s' IDs. In sector ST1 1, K other HANs raise AD1s in the span that no window covers
    (one HAN's postcode only on its ESME; one of them before, one at t, one at t + A), and a further HAN in
    a window raises one too (it does not count, and is itself released by the storm): the AD1s in windows
    are forwarded. In sector ST2 2 only K - 1 other HANs do: its AD1 in a window is suppressed."""
    policy = evidence or EvidencePolicy()
    k = policy.storm_min_hans
    rng = random.Random(seed)
    t = start + 5 * MIN
    lo, hi = policy.span(t)
    targets = []

    def add_home(postcode: str, in_window: bool, esme_postcode: bool = False) -> str:
        chf, esme = eui(rng), eui(rng)
        on_chf, on_esme = (None, postcode) if esme_postcode else (postcode, None)
        sc.inventory += [
            (chf, {"device_id": chf, "device_type": "CHF", "chf_id": None, "mpxn": None,
                   "updated_at": start - HOUR, "postcode": on_chf}),
            (esme, {"device_id": esme, "device_type": "ESME", "chf_id": chf, "mpxn": None,
                    "updated_at": start - HOUR, "postcode": on_esme}),
        ]  # fmt: skip
        if in_window:
            sc.tracked.append((esme, {"device_id": esme, "manufacturer": "L+G", "model": "E470",
                                      "firmware_version": "1.0", "list_version": "2026-02",
                                      "added_at": start - HOUR}))  # fmt: skip
            sc.requests.append(
                {"request_id": f"storm-request-{esme}", "service_reference_variant": "11.3",
                 "target_device_id": esme, "execution_datetime": None, "firmware_hash": "ab" * 32,
                 "received_at": start}
            )  # fmt: skip
        return chf

    def ad1(chf: str, at: int, intent: str) -> str:
        alert_id = f"storm-alert-{len(sc.alerts):05d}"
        sc.alerts.append({"alert_id": alert_id, "alert_code": "AD1", "device_id": chf, "mpxn": None,
                          "raised_at": None, "received_at": at, "payload": None})  # fmt: skip
        sc.intent[alert_id] = intent
        return alert_id

    for sector, others, intent in (("ST1 1", k, "forward"), ("ST2 2", k - 1, "suppress")):
        targets.append(ad1(add_home(f"{sector}AA", in_window=True), t, intent))
        times = [lo, t, hi] + [t + MIN] * k
        for n in range(others):
            ad1(add_home(f"{sector}B{chr(65 + n)}", in_window=False, esme_postcode=n == 0), times[n], "forward")
        ad1(add_home(f"{sector}ZZ", in_window=True), t + MIN, intent)  # in a window: never counts
    ad1(add_home("ST1 1XX", in_window=False), hi + 1, "forward")  # just after the span: does not count
    return targets
