"""The split of paced-run latencies by alert class (bench/latency_classes.py), the basis of the before/after
comparison of issue 12: a wrong mask would quote the waiting AD1s as 'alerts no window covers'."""

import math

import numpy as np
import pytest

from bench import latency_classes as lc

NAN = math.nan


def _run() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Seven alerts: a warm-up one, an other code, two AD1s no window covers (one never out), three AD1s in
    windows (suppressed, forwarded on evidence, never out)."""
    send = {
        "sent_at": np.array([100.0, 103.0, 103.0, 104.0, 105.0, 106.0, 107.0]),
        "suppress": np.array([False, False, False, False, True, True, True]),
        "ad1": np.array([False, False, True, True, True, True, True]),
    }
    receive = {
        "received_at": np.array([100.5, 103.01, 103.02, NAN, 305.0, 110.0, NAN, NAN]),  # receiver has spare room
        "kind": np.array([0, 0, 0, -1, 1, 0, -1, -1], dtype=np.int8),
    }
    return send, receive


def test_each_class_gets_its_own_alerts_and_the_warm_up_is_left_out() -> None:
    send, receive = _run()
    classes = lc.split(send, receive, warmup_s=2.0)
    assert classes[lc.OTHER_CODES].latencies_ms == pytest.approx([10.0])
    assert classes[lc.NOT_COVERED_AD1].latencies_ms == pytest.approx([20.0])
    assert classes[lc.NOT_COVERED_AD1].missing == 1
    assert sorted(classes[lc.NOT_COVERED].latencies_ms) == pytest.approx([10.0, 20.0])
    assert classes[lc.NOT_COVERED].missing == 1
    assert sorted(classes[lc.IN_WINDOW].latencies_ms) == pytest.approx([4000.0, 200_000.0])
    assert classes[lc.IN_WINDOW].missing == 1
    assert classes[lc.IN_WINDOW_SUPPRESSED].latencies_ms == pytest.approx([200_000.0])
    assert classes[lc.IN_WINDOW_FORWARDED].latencies_ms == pytest.approx([4000.0])


def test_pooled_runs_and_the_comparison_with_a_plus_grace() -> None:
    send, receive = _run()
    one = lc.split(send, receive, warmup_s=2.0)
    pooled = lc.pool([one, one])
    assert len(pooled[lc.IN_WINDOW].latencies_ms) == 4
    assert pooled[lc.IN_WINDOW].missing == 2
    stats = lc.stats(pooled[lc.IN_WINDOW_SUPPRESSED], bound_ms=198_500.0)
    assert stats["count"] == 2
    assert stats["p50_ms"] == 200_000.0
    assert stats["p50_minus_bound_ms"] == 1500.0
    assert stats["over_bound_plus_1s"] == 2  # 1.5 s past A + grace: more than the second allowed


def test_ratios_are_after_over_before_and_none_without_a_before() -> None:
    before = {"p50_ms": 10.0, "p90_ms": 0.0, "p99_ms": 40.0, "p999_ms": None, "max_ms": 80.0}
    after = {"p50_ms": 12.0, "p90_ms": 5.0, "p99_ms": 30.0, "p999_ms": 70.0, "max_ms": None}
    assert lc.ratios(before, after) == {"p50_ms": 1.2, "p90_ms": None, "p99_ms": 0.75, "p999_ms": None, "max_ms": None}


def test_an_empty_class_has_no_percentiles() -> None:
    stats = lc.stats(lc.ClassSamples(np.zeros(0), 3), bound_ms=1000.0)
    assert stats["count"] == 0 and stats["missing"] == 3
    assert stats["p99_ms"] is None and stats["p99_minus_bound_ms"] is None
