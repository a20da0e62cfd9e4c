"""Why an AD1 would be suppressed or forwarded: the filter's own answer (contract 7, "Explanations").

Asked about a device at an event time, it reads the filter state: the device's role as the state knows it
(a CH Function with ESMEs on its HAN, an ESME on a HAN, or unknown), the ESMEs of that HAN, whether each is
tracked, their activations with windows, replacements, cancellations and withdrawals. The decision is
`FilterState.decide` itself, on an AD1 from the HAN's CH Function received at that time, so it is the
decision the worker gives such an alert; the per-activation details only describe, through the same rule
functions (`activation_windows`), never decide.

A cancellation is named by its time and the request ID that carried it (the cancelling 11.3). The `evidence`
section lists rule 9's evidence in [TIME - B, TIME + A] as the state holds it: the supply alerts of the
HAN's ESMEs and, per other CH Function of the sector, its first AD1 that no window covers. An AD1 that rule
5 suppresses is shown forwarded when that evidence releases it, and its decision is marked pending while
evidence may still come (the worker says when it is complete).

The answer agrees with what the worker will do: storm evidence releases an AD1 only once the worker would
take it as final (`EvidenceStatus.complete`), as the triage does, so a storm that rule 5 may still undo is
shown pending, not forwarded. Its cost is bounded: one pass over at most MAX_STORM_SCAN_HANS other CH
Functions of the sector (a storm look-up reads each one's AD1s and decides them), so a question never
holds the worker's loop for long; past them, a decision the rest of the sector could change is pending.
"""

from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Protocol

from pipeline.core.activation_windows import (
    RequestVersion,
    Window,
    effective_activation,
    is_cancelled,
    window_of,
)
from pipeline.core.alert_decisions import Decision, Forward, ForwardReason, Suppress
from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.event_time import EARLIEST_MS, LATEST_MS
from pipeline.core.filter_state import FilterState, RequestHistory
from pipeline.core.operating_mode import Mode
from pipeline.core.outage_evidence import Evidence, EvidenceAlert, EvidencePolicy, storm_evidence
from pipeline.core.records import OUTAGE_ALERT_CODE, DeviceAlert

Json = dict[str, Any]

EXPLAIN_ALERT_ID = "explain"  # the alert ID of the AD1 made up for the question; never written anywhere
MAX_LISTED_ESMES = 100  # a crowded HAN is listed this far; `more_esmes` says when there are more
MAX_LISTED_EVIDENCE = 100  # supply alerts and storm HANs are listed this far
MAX_STORM_SCAN_HANS = 500  # other CH Functions of the sector one question looks at (about 5 ms), at most
ROLE_CH_FUNCTION = "ch_function"
ROLE_ESME = "esme"
ROLE_UNKNOWN = "unknown"

# The rule that gives each forward reason, and what it means for an AD1 from CH Function {chf} at {at}.
_FORWARD_RULES: dict[ForwardReason, tuple[str, str]] = {
    ForwardReason.NOT_AD1: ("5.4", "forwarded: not an AD1"),
    ForwardReason.NO_ESME_ON_HAN: ("5.5", "forwarded: no ESME is associated with CH Function {chf} in the inventory"),
    ForwardReason.NO_TRACKED_ESME: ("5.5", "forwarded: no ESME on the HAN of {chf} is on the tracked list"),
    ForwardReason.NO_ACTIVATION_WINDOW: (
        "5.5",
        "forwarded: no tracked ESME on the HAN of {chf} has an activation whose window contains {at} "
        "and that is neither replaced, cancelled nor withdrawn by then",
    ),
    ForwardReason.HOLD_EXPIRED: ("5.8", "forwarded: held too long for its inputs"),
}

# What each operator mode (contract 8) does to the rules' decision.
_MODE_EFFECTS: dict[Mode, str] = {
    Mode.FILTER: "the rules decide",
    Mode.SHADOW: "every alert is forwarded; an AD1 the rules would suppress is also recorded on the shadow topic",
    Mode.PASS_THROUGH: "every alert that can be decoded is forwarded; nothing is suppressed",
}


class EvidenceStatus(Protocol):
    """What the worker knows of rule 9's evidence: its policy, and whether the evidence for an AD1 at t is
    final as the triage judges it: complete (every alert partition read past t + A, or caught up past
    t + A + grace), with the activation inputs read past t + A (rule 5's decisions of the sector's AD1s, on
    which storm evidence rests, are final then)."""

    policy: EvidencePolicy

    def complete(self, t: int) -> bool: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds, e.g. 2026-03-01T00:00:00.000Z."""
    return (_EPOCH + ms * _MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment(ms: int) -> Json:
    return {"iso": iso_utc(ms), "epoch_ms": ms}


def parse_time(text: str) -> int:
    """A time as asked: epoch milliseconds (ASCII digits) or ISO-8601 (UTC when it has no offset), within the
    range of valid record times (contract 6); BadInput saying what is expected otherwise."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        ms = int(text)
    else:
        try:
            if not text.isascii():
                raise ValueError(text)
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadInput(
                f"time {text!r} is neither ISO-8601 (e.g. 2026-03-01T10:00:00Z) nor epoch milliseconds"
            ) from None
        ms = ((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)) - _EPOCH) // _MS
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise BadInput(f"time {text!r} is outside the valid range (from 2000-01-01 to before 3000-01-01 UTC)")
    return ms


def explain(
    state: FilterState, device: str, at_ms: int, mode: Mode = Mode.FILTER, evidence: EvidenceStatus | None = None
) -> Json:
    """What the state holds about `device` (any letter case; BadInput if malformed) and the decision an AD1
    from its HAN's CH Function received at `at_ms` gets in `mode`, the operator mode in force at `at_ms`.
    Without `evidence`, rule 9 is evaluated with the default policy over a state taken to hold every input
    (nothing pending)."""
    device_id = canonical_device_id(device, "device")
    listed = list(islice(state.esmes_on_han(device_id), MAX_LISTED_ESMES + 1))
    own_chf = state.chf_of(device_id)
    if listed:
        role, chf_id = ROLE_CH_FUNCTION, device_id
    elif own_chf is not None:
        role, chf_id = ROLE_ESME, own_chf
        listed = list(islice(state.esmes_on_han(chf_id), MAX_LISTED_ESMES + 1))
    else:
        role, chf_id = ROLE_UNKNOWN, device_id  # an AD1 from it is decided against its (empty) HAN
    alert = DeviceAlert(EXPLAIN_ALERT_ID, OUTAGE_ALERT_CODE, chf_id, None, None, at_ms, None)
    decision = state.decide(alert)
    policy = EvidencePolicy() if evidence is None else evidence.policy
    scan = _StormScan(state, chf_id, at_ms, policy)
    found, pending = None, False
    if isinstance(decision, Suppress):
        final = evidence is None or evidence.complete(at_ms)
        found = state.evidence_for(alert, policy, storm=False)  # supply evidence is final once found
        if found is None and final:
            found = storm_evidence(chf_id, scan.sector, at_ms, policy, scan.candidates)
        pending = found is None and (not final or (policy.storm_min_hans > 0 and not scan.whole_sector))
    answer: Json = {
        "device_id": device_id,
        "at": moment(at_ms),
        "role": role,
        "in_inventory": state.in_inventory(device_id),
        "han": {
            "chf_id": chf_id,
            "esmes": [_esme(state, esme_id, at_ms) for esme_id in listed[:MAX_LISTED_ESMES]],
            "more_esmes": len(listed) > MAX_LISTED_ESMES,
        },
    }
    if role == ROLE_UNKNOWN:
        unplaced = _esme(state, device_id, at_ms)
        if unplaced["tracked"] or unplaced["activations"] or unplaced["cancellations"]:
            answer["unplaced_esme"] = unplaced  # tracked or activated, but on no HAN: it suppresses nothing
    answer["decision"] = _in_mode(_decision(decision, chf_id, at_ms, found, pending), mode)
    answer["mode"] = {"in_force": mode.value, "text": _MODE_EFFECTS[mode]}
    answer["evidence"] = _evidence(state, chf_id, at_ms, policy, found, scan)
    return answer


class _StormScan:
    """The storm candidates of the sector (`FilterState.storm_candidates`), read once for both the decision
    and the listing, from at most MAX_STORM_SCAN_HANS other CH Functions."""

    def __init__(self, state: FilterState, chf_id: str, at_ms: int, policy: EvidencePolicy) -> None:
        self.sector = state.sector_of(chf_id)
        self.candidates: list[EvidenceAlert] = []
        self.scanned, self.whole_sector = 0, True
        if self.sector is None or policy.storm_min_hans <= 0:
            return
        lo, hi = policy.span(at_ms)
        for other in state.reference.chfs_in_sector(self.sector):
            if other == chf_id:
                continue
            if self.scanned == MAX_STORM_SCAN_HANS:
                self.whole_sector = False
                return
            self.scanned += 1
            self.candidates += islice(state.storm_candidates_of(other, lo, hi), 1)


def _evidence(
    state: FilterState, chf_id: str, at_ms: int, policy: EvidencePolicy, found: Evidence | None, scan: _StormScan
) -> Json:
    """Rule 9's evidence for an AD1 from `chf_id` at `at_ms`, as the state holds it now."""
    lo, hi = policy.span(at_ms)
    supply = (a for esme in state.esmes_on_han(chf_id) for a in state.supply_alerts(esme, lo, hi))
    storm = scan.candidates
    return {
        "evaluated": True,
        "span": {"from": moment(lo), "to": moment(hi)},
        "supply": [
            {
                "esme_id": a.device_id,
                "alert_id": a.alert_id,
                "alert_code": a.alert_code,
                "received_at": moment(a.received_at),
            }
            for a in islice(supply, MAX_LISTED_EVIDENCE)
        ],
        "storm": {
            "postcode": state.han_postcode(chf_id),
            "sector": scan.sector,
            "min_other_hans": policy.storm_min_hans,
            "hans_looked_at": scan.scanned,
            "whole_sector": scan.whole_sector,  # False: more than MAX_STORM_SCAN_HANS, the rest not looked at
            "hans": [
                {"chf_id": a.device_id, "alert_id": a.alert_id, "received_at": moment(a.received_at)}
                for a in islice(storm, MAX_LISTED_EVIDENCE)
            ],
        },
        "releases": None if found is None else found.describe(),
    }


def _esme(state: FilterState, esme_id: str, at_ms: int) -> Json:
    activity = state.activity_of(esme_id)
    cancelled_by = dict(zip(activity.cancellations, activity.cancelled_by, strict=True))
    activations = [
        _activation(state, version, request, cancelled_by, at_ms)
        for request in activity.requests
        for version in request.versions
        if version.esme_id == esme_id
    ]
    activations.sort(key=lambda a: (a["activation_time"]["epoch_ms"], a["request_id"], a["received_at"]["epoch_ms"]))
    return {
        "device_id": esme_id,
        "tracked": state.is_tracked(esme_id),
        "activations": activations,
        "cancellations": [{**moment(c), "request_id": by} for c, by in cancelled_by.items()],
    }


def _activation(
    state: FilterState, version: RequestVersion, request: RequestHistory, cancellations: dict[int, str], at_ms: int
) -> Json:
    """One sighting of an 11.3 request, with what ends it and from when (a cancellation: and by which request),
    and whether it is in force at `at_ms`. `cancellations`: the ESME's, time -> cancelling request ID."""
    versions = request.versions
    later = versions[versions.index(version) + 1 :]
    cancelled_from = next((c for c in cancellations if is_cancelled(version, (c,), c)), None)
    in_force = effective_activation(version, versions, cancellations, request.withdrawn_at, at_ms, state.policy)
    return {
        "request_id": version.request_id,
        "received_at": moment(version.received_at),
        "activation_time": moment(version.activation_time),
        "window": _window(window_of(version, state.policy)),
        "replaced": None if not later else {"from": moment(min(v.received_at for v in later))},
        "cancelled": None if cancelled_from is None else {
            "from": moment(cancelled_from), "request_id": cancellations[cancelled_from],
        },  # fmt: skip
        "withdrawn": None if request.withdrawn_at is None else {"from": moment(request.withdrawn_at)},
        "in_force": in_force is not None,
    }


def _window(window: Window) -> Json:
    return {"start": moment(window.start), "end": moment(window.end)}


def _in_mode(decided: Json, mode: Mode) -> Json:
    """The rules' decision as the mode applies it: outside filter mode, a suppression becomes a forward."""
    if mode is Mode.FILTER or decided["outcome"] != "suppressed":
        return decided
    return {
        **decided,
        "outcome": "forwarded",
        "reason": mode.value.replace("-", "_"),
        "rule": "8",
        "pending": decided["pending"] and mode is Mode.SHADOW,  # shadow: whether a shadow record is written
        "text": f"forwarded in {mode.value} mode ({_MODE_EFFECTS[mode]}); the rules would have {decided['text']}",
    }


def _decision(decision: Decision, chf_id: str, at_ms: int, found: Evidence | None, pending: bool) -> Json:
    """The decision as rules 5 and 9 give it; `pending` when it suppresses but evidence may still come."""
    alert = {"alert_code": OUTAGE_ALERT_CODE, "device_id": chf_id, "received_at": moment(at_ms)}
    if found is not None:
        return {
            "outcome": "forwarded",
            "reason": ForwardReason.OUTAGE_EVIDENCE.value,
            "rule": "9",
            "text": f"forwarded inside an activation window on evidence of a genuine outage: {found.describe()}",
            "pending": False,
            "alert": alert,
        }
    if isinstance(decision, Suppress):
        v = decision.activation.version
        window = _window(decision.activation.window)
        return {
            "outcome": "suppressed",
            "reason": "activation_window",
            "rule": "5.5",
            "text": f"suppressed by activation {v.request_id} of ESME {v.esme_id} "
            f"(window {window['start']['iso']} to {window['end']['iso']})",
            "esme_id": v.esme_id,
            "request_id": v.request_id,
            "window": window,
            "pending": pending,
            "alert": alert,
        }
    assert isinstance(decision, Forward)
    rule, text = _FORWARD_RULES[decision.reason]
    return {
        "outcome": "forwarded",
        "reason": decision.reason.value,
        "rule": rule,
        "text": text.format(chf=chf_id, at=iso_utc(at_ms)),
        "pending": False,
        "alert": alert,
    }
