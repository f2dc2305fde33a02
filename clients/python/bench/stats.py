"""Latency samples → percentiles, and medians across runs. Standard library only."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Optional

NS_PER_US = 1_000.0


def percentile(sorted_ns: List[int], q: float) -> int:
    """The nearest-rank ``q`` percentile (0 < q ≤ 100) of sorted samples."""
    if not sorted_ns:
        raise ValueError("no samples")
    rank = max(1, -(-len(sorted_ns) * q // 100))  # ceil(n * q / 100), at least 1
    return sorted_ns[int(rank) - 1]


def summarize(ns: List[int], elapsed_s: Optional[float] = None) -> Dict[str, Any]:
    """``{"n", "p50_us", "p99_us", "max_us", "mean_us"}`` of per-operation samples in ns,
    plus ``ops_per_s`` when the wall time of the whole loop is given."""
    s = sorted(ns)
    out: Dict[str, Any] = {
        "n": len(s),
        "p50_us": round(percentile(s, 50) / NS_PER_US, 1),
        "p99_us": round(percentile(s, 99) / NS_PER_US, 1),
        "max_us": round(s[-1] / NS_PER_US, 1),
        "mean_us": round(sum(s) / len(s) / NS_PER_US, 1),
    }
    if elapsed_s is not None and elapsed_s > 0:
        out["ops_per_s"] = round(len(s) / elapsed_s)
    return out


def time_loop(
    op: Callable[[], Any], count: int, budget_s: Optional[float] = None, min_count: int = 50
) -> Dict[str, Any]:
    """Run ``op`` ``count`` times (or until ``budget_s`` seconds have passed, but at least
    ``min_count`` times) and summarize the per-call latency."""
    ns: List[int] = []
    clock = time.perf_counter_ns
    start = clock()
    stop_at = start + int(budget_s * 1e9) if budget_s is not None else None
    for i in range(count):
        t0 = clock()
        op()
        t1 = clock()
        ns.append(t1 - t0)
        if stop_at is not None and t1 >= stop_at and i + 1 >= min_count:
            break
    return summarize(ns, (clock() - start) / 1e9)


def median_of(values: List[Any]) -> Any:
    """The median of the numbers in ``values`` (``None`` and non-numbers ignored)."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return None
    m = statistics.median(nums)
    return round(m, 1) if isinstance(m, float) else m


def merge_runs(runs: List[Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Per measurement, the median of each numeric field across runs; other fields (notes,
    strings) are taken from the first run that has them."""
    names: List[str] = []
    for run in runs:
        for name in run:
            if name not in names:
                names.append(name)
    merged: Dict[str, Dict[str, Any]] = {}
    for name in names:
        present = [run[name] for run in runs if name in run]
        fields: List[str] = []
        for m in present:
            fields += [f for f in m if f not in fields]
        out: Dict[str, Any] = {}
        for field in fields:
            values = [m.get(field) for m in present]
            numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numeric:
                out[field] = median_of(numeric)
            else:
                out[field] = next((v for v in values if v is not None), None)
        out["runs"] = len(present)
        merged[name] = out
    return merged
