"""What a run measured, per request and in summary (metric names after vLLM's and SGLang's serving
benchmarks where they fit: request rate, goodput, end-to-end latency percentiles).

Every request ends in exactly one outcome: met (finished by its deadline), late (finished after
it), expired (its deadline passed while it was queued or running), rejected (the worker's
admission refused it), shed (the router sent it nowhere). SLO attainment is met / all requests:
rejected, shed, expired and late all count as misses. Goodput is met requests per second of the
trace's span. Latency percentiles are over finished requests (met or late). Accuracy is each
finished request's expected accuracy from the quality profile (token-weighted over the thresholds
it decoded at); `accuracy_drawn` is the share of finished requests whose seeded draw came out
correct.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field

import numpy as np


class Outcome(enum.IntEnum):
    PENDING = 0
    MET = 1
    LATE = 2
    EXPIRED = 3
    REJECTED = 4
    SHED = 5
    CANCELLED = 6


class Records:
    """Per-request results of one run, indexed by job index."""

    def __init__(self, n: int) -> None:
        self.outcome = np.zeros(n, dtype=np.int8)
        self.end_s = np.full(n, np.nan)
        self.accuracy = np.full(n, np.nan)
        self.threshold = np.full(n, np.nan)
        self.replica = np.full(n, -1, dtype=np.int32)

    def end(self, index: int, outcome: Outcome, at_s: float) -> None:
        if self.outcome[index] != Outcome.PENDING:
            raise RuntimeError(f"request {index} ended twice ({Outcome(self.outcome[index])}, "
                               f"then {outcome})")
        self.outcome[index] = outcome
        self.end_s[index] = at_s

    def counts(self) -> dict[str, int]:
        return {o.name.lower(): int((self.outcome == o).sum()) for o in Outcome}


@dataclass(frozen=True)
class RunSummary:
    policy: str
    layout: str
    requests: int
    duration_s: float
    request_rate: float
    attainment: float
    goodput: float
    met: int
    late: int
    expired: int
    rejected: int
    shed: int
    latency_p50_s: float
    latency_p90_s: float
    latency_p99_s: float
    mean_accuracy: float
    accuracy_drawn: float
    reference_accuracy: float
    mean_threshold: float
    thresholds: dict[str, float]  # token-weighted threshold (rounded to 0.05) -> share of finished
    reconfigurations: dict[str, int]
    replica_steps: int
    wall_s: float
    sim_s: float
    scheduler_s: float
    planning_s: float = 0.0  # wall time in the controller (solver, plan evaluations)
    notes: tuple[str, ...] = field(default=())
    accuracy_budget: float | None = None  # the classes' (tightest) mean drop allowed, 0..1
    class_drops: dict[str, float] = field(default_factory=dict)  # class -> its spent, points

    @property
    def accuracy_drop_points(self) -> float:
        return 100.0 * (self.reference_accuracy - self.mean_accuracy)

    @property
    def within_budget(self) -> bool:
        """Whether every class spent no more than the budget (none: always)."""
        if self.accuracy_budget is None:
            return True
        spent = self.class_drops.values() or [self.accuracy_drop_points]
        return all(d <= 100.0 * self.accuracy_budget + 1e-6 for d in spent)

    @property
    def steps_per_s(self) -> float:
        """Simulated replica steps per second of wall time, planning (solver and the plan
        evaluator's own simulations) excluded."""
        wall = self.wall_s - self.planning_s
        return self.replica_steps / wall if wall > 0 else math.nan

    def to_dict(self) -> dict:
        out = asdict(self)
        out["accuracy_drop_points"] = self.accuracy_drop_points
        out["steps_per_s"] = self.steps_per_s
        return out


def summarize(records: Records, *, policy: str, layout: str, arrivals: np.ndarray,
              draws: np.ndarray, duration_s: float, reference_accuracy: float,
              reconfigurations: dict[str, int], replica_steps: int, wall_s: float,
              sim_s: float, scheduler_s: float, planning_s: float = 0.0,
              notes: tuple[str, ...] = (), classes: np.ndarray | None = None,
              accuracy_budget: float | None = None) -> RunSummary:
    """`classes`: each request's class name (for the drop each class spent)."""
    n = len(records.outcome)
    if n and (records.outcome == Outcome.PENDING).any():
        raise RuntimeError(f"{int((records.outcome == Outcome.PENDING).sum())} requests never "
                           f"ended")
    counts = records.counts()
    finished = (records.outcome == Outcome.MET) | (records.outcome == Outcome.LATE)
    latency = records.end_s[finished] - arrivals[finished]
    pct = (np.percentile(latency, [50, 90, 99]) if latency.size else np.full(3, math.nan))
    acc = records.accuracy[finished]
    thr = records.threshold[finished]
    hist: dict[str, float] = {}
    if thr.size:
        rounded = np.round(thr / 0.05) * 0.05
        for value in np.unique(rounded):
            hist[f"{value:.2f}"] = float((rounded == value).mean())
    class_drops: dict[str, float] = {}
    if classes is not None:
        for name in np.unique(classes[finished]):
            mine = acc[classes[finished] == name]
            class_drops[str(name)] = float(100.0 * (reference_accuracy - mine.mean()))
    return RunSummary(
        policy=policy, layout=layout, requests=n, duration_s=duration_s,
        request_rate=n / duration_s if duration_s > 0 else math.nan,
        attainment=counts["met"] / n if n else math.nan,
        goodput=counts["met"] / duration_s if duration_s > 0 else math.nan,
        met=counts["met"], late=counts["late"], expired=counts["expired"],
        rejected=counts["rejected"], shed=counts["shed"],
        latency_p50_s=float(pct[0]), latency_p90_s=float(pct[1]), latency_p99_s=float(pct[2]),
        mean_accuracy=float(acc.mean()) if acc.size else math.nan,
        accuracy_drawn=float((draws[finished] < acc).mean()) if acc.size else math.nan,
        reference_accuracy=reference_accuracy,
        mean_threshold=float(thr.mean()) if thr.size else math.nan, thresholds=hist,
        reconfigurations=dict(reconfigurations), replica_steps=replica_steps, wall_s=wall_s,
        sim_s=sim_s, scheduler_s=scheduler_s, planning_s=planning_s, notes=notes,
        accuracy_budget=accuracy_budget, class_drops=class_drops)
