"""Decision latencies split by what contract rule 7 promises each class of alert (issue 12).

Alerts that no window covers (every code but AD1, and the AD1s rule 5 forwards) must not be delayed by the
wait for rule 9's evidence; AD1s in a window wait for it, about A + grace when the worker is caught up.
One percentile over every alert would hide both: the few waiting AD1s sit past p99 and the rest barely
moves it. Samples are pooled over a side's runs, so a before/after ratio rests on every sample rather
than on an average of percentiles.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

NOT_COVERED = "not_covered"  # (a) every alert no window covers
NOT_COVERED_AD1 = "not_covered_ad1"  # of which AD1s (rule 5 forwards them; they count as storm evidence)
OTHER_CODES = "other_codes"  # of which every other code
IN_WINDOW = "ad1_in_window"  # (b) AD1s rule 5 suppresses: they wait for evidence
IN_WINDOW_SUPPRESSED = "ad1_in_window_suppressed"  # of which read back from the suppressed topic
IN_WINDOW_FORWARDED = "ad1_in_window_forwarded"  # of which forwarded (rule 9's evidence, or a hold expired)
CLASSES = (NOT_COVERED, NOT_COVERED_AD1, OTHER_CODES, IN_WINDOW, IN_WINDOW_SUPPRESSED, IN_WINDOW_FORWARDED)

WARMUP_S = 2.0  # latency samples of the first seconds of a paced run are left out (connections, caches)
FORWARDED_KIND, SUPPRESSED_KIND = 0, 1  # the receiver's index of the output topic: dno alerts, suppressed


@dataclass(frozen=True)
class ClassSamples:
    """Latencies (ms) of one class's alerts that came out, and how many of them did not."""

    latencies_ms: np.ndarray
    missing: int


def split(
    send: Mapping[str, np.ndarray], receive: Mapping[str, np.ndarray], warmup_s: float
) -> dict[str, ClassSamples]:
    """Per class, the end-to-end latencies of the alerts sent after the first `warmup_s` seconds.

    `send` has per alert `sent_at` (s), `suppress` (rule 5 suppresses it) and `ad1`; `receive` has
    `received_at` (s, NaN when it never came out) and `kind` (index of the output topic it came out on).
    The in-window AD1s that are missing are counted in the in-window class, not in either of its halves.
    """
    n = min(len(send["sent_at"]), len(receive["received_at"]))
    sent_at, suppress, ad1 = send["sent_at"][:n], send["suppress"][:n], send["ad1"][:n]
    received_at, kind = receive["received_at"][:n], receive["kind"][:n]
    measured = sent_at >= np.nanmin(sent_at) + warmup_s if n else np.zeros(0, dtype=bool)
    got = ~np.isnan(received_at)
    latency = (received_at - sent_at) * 1000
    masks = {
        NOT_COVERED: ~suppress,
        NOT_COVERED_AD1: ~suppress & ad1,
        OTHER_CODES: ~ad1,
        IN_WINDOW: suppress,
        IN_WINDOW_SUPPRESSED: suppress & got & (kind == SUPPRESSED_KIND),
        IN_WINDOW_FORWARDED: suppress & got & (kind == FORWARDED_KIND),
    }
    return {
        name: ClassSamples(latency[mask & measured & got], int((mask & measured & ~got).sum()))
        for name, mask in masks.items()
    }


def pool(runs: Iterable[Mapping[str, ClassSamples]]) -> dict[str, ClassSamples]:
    """One side's runs as one sample per class."""
    runs = list(runs)
    return {
        name: ClassSamples(
            np.concatenate([r[name].latencies_ms for r in runs]) if runs else np.zeros(0),
            sum(r[name].missing for r in runs),
        )
        for name in CLASSES
    }


def stats(samples: ClassSamples, bound_ms: float | None = None) -> dict[str, Any]:
    """Count, missing and percentiles (ms); with `bound_ms` (A + grace for AD1s in windows) each percentile's
    excess over it and how many samples came out more than a second after it."""
    values = samples.latencies_ms
    out: dict[str, Any] = {"count": int(len(values)), "missing": samples.missing}
    for q, key in ((50, "p50_ms"), (90, "p90_ms"), (99, "p99_ms"), (99.9, "p999_ms"), (100, "max_ms")):
        out[key] = round(float(np.percentile(values, q)), 2) if len(values) else None
    if bound_ms is not None:
        out["bound_ms"] = bound_ms
        for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            value = out[key]
            out[f"{key[:-3]}_minus_bound_ms"] = None if value is None else round(value - bound_ms, 2)
        out["over_bound_plus_1s"] = int((values > bound_ms + 1000).sum())
    return out


def ratios(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float | None]:
    """after / before of each percentile both sides have (None where before is 0 or either is missing)."""
    out: dict[str, float | None] = {}
    for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
        b, a = before.get(key), after.get(key)
        out[key] = round(a / b, 2) if a is not None and b else None
    return out
