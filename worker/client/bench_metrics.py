"""Scoring replayed traces: attainment, latency percentiles, accuracy per task, threshold used;
and the search for the highest rate that keeps a target attainment."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from worker.client.loadgen import ReplayOutcome


@dataclass(frozen=True)
class TrialSummary:
    rate: float
    requests: int
    attainment: float  # met / all (rejected, expired and late requests are misses)
    rejected: int
    late: int  # finished after the deadline, or stopped at it
    p50_ms: float  # end-to-end latency of finished requests
    p99_ms: float
    accuracy: float  # exact match over finished requests
    per_task: dict[str, float]
    mean_threshold: float
    errors: int  # any other ending (should be 0)


def summarize(rate: float, outcomes: list[ReplayOutcome]) -> TrialSummary:
    finished = [o for o in outcomes if o.finished]
    latencies = sorted(o.e2e_ms for o in finished)
    tasks = sorted({o.task for o in finished})
    per_task = {t: statistics.fmean(o.correct for o in finished if o.task == t) for t in tasks}
    return TrialSummary(
        rate=rate,
        requests=len(outcomes),
        attainment=sum(o.status == "met" for o in outcomes) / len(outcomes) if outcomes else 0.0,
        rejected=sum(o.status == "rejected" for o in outcomes),
        late=sum(o.status in ("late", "expired") for o in outcomes),
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        accuracy=statistics.fmean(o.correct for o in finished) if finished else math.nan,
        per_task=per_task,
        mean_threshold=(
            statistics.fmean(o.threshold_mean for o in finished) if finished else math.nan
        ),
        errors=sum(not o.finished and o.status not in ("rejected", "expired") for o in outcomes),
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def highest_sustained_rate(
    attainment_at: Callable[[float], float],
    start_rate: float,
    target: float = 0.9,
    refinements: int = 4,
    max_doublings: int = 8,
) -> tuple[float, list[tuple[float, float]]]:
    """The highest rate whose attainment is >= target: double from start_rate until it fails (or
    halve until it holds), then bisect between the last good and the first bad rate
    `refinements` times. Returns the rate (0 if even the lowest tried fails) and every
    (rate, attainment) tried."""
    tried: list[tuple[float, float]] = []

    def ok(rate: float) -> bool:
        value = attainment_at(rate)
        tried.append((rate, value))
        return value >= target

    good, bad = 0.0, math.inf
    rate = start_rate
    for _ in range(max_doublings):
        if ok(rate):
            good = rate
            if bad < math.inf:
                break
            rate *= 2
        else:
            bad = rate
            if good > 0:
                break
            rate /= 2
    if good == 0.0 or bad == math.inf:
        return good, tried
    for _ in range(refinements):
        middle = math.sqrt(good * bad)
        if ok(middle):
            good = middle
        else:
            bad = middle
    return good, tried
