"""The profile's buckets name today's modules and functions: a module renamed or moved would otherwise leave
its samples silently under "other" (it happened: four buckets named files that no longer existed)."""

import ast
from pathlib import Path

from bench import profiling

ROOT = Path(__file__).resolve().parents[3]


def defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_module_a_bucket_names_exists() -> None:
    buckets = [*profiling.OUTER_BUCKETS, *profiling.BUCKETS]
    modules = [module for bucket in buckets for module in bucket.modules] + [profiling.LOOP_MODULE]
    missing = [module for module in modules if not (ROOT / module).exists()]
    assert not missing, f"profiling buckets name modules that do not exist: {missing}"


def test_every_function_a_bucket_names_is_defined_where_it_says() -> None:
    missing = []
    for bucket in [*profiling.OUTER_BUCKETS, *profiling.BUCKETS]:
        for where in bucket.functions:
            path, _, function = where.partition(":")
            if not (ROOT / path).exists() or function not in defined_functions(ROOT / path):
                missing.append(where)
    assert not missing, f"profiling buckets name functions that are not defined there: {missing}"


def test_a_sample_is_put_in_the_bucket_of_its_innermost_known_frame() -> None:
    frames = [
        ("run (pipeline/worker/filter_worker.py:300)", "self.step()"),
        ("triage (pipeline/worker/triage.py:140)", "raw = read_alert_fields(value, header)"),
        ("read_alert_fields (pipeline/wire/alert_bytes.py:60)", "n = data[p]"),
    ]
    assert profiling._category(frames) == "fast readers and writers of the Avro bytes"
    assert profiling._category(frames[:2]) == "triage (the fast path and the drains)"
    assert profiling._category(frames[:1]) == "loop code (bookkeeping between calls)"
    sweep = [*frames[:1], ("sweep_some (pipeline/core/filter_state.py:380)", "for key, value in scan:"), frames[2]]
    assert profiling._category(sweep).startswith("housekeeping: the state sweep")
