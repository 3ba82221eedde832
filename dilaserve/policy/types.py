"""The worker's SLO policy as the code uses it: frozen dataclasses, built from the validated YAML
(`schema`, `loader`) or directly (tests, defaults).

A request's class gives it a deadline, a quality floor, a priority and whether it is best-effort:
- deadline: `deadline_ms` + `deadline_per_token_ms` x its max new tokens (either may be absent;
  a best-effort class may have neither: no deadline);
- quality floor: the strictest (highest) of `min_threshold` and the lowest profiled threshold whose
  accuracy drop against the quality profile's reference setting is at most `max_accuracy_drop`;
- accuracy budget (`mean_accuracy_drop`): the mean drop the class's finished requests may take
  together; each request may still go no lower than its floor (the scheduler's `budget`);
- priority: the scheduler orders requests by priority tier before arrival (fcfs) or slack (edf)
  among requests that are not demoted, so a higher priority waits less and is the last to be made
  late when the worker is overloaded;
- best-effort: a request that admission finds infeasible is accepted anyway (demoted: it runs on
  capacity no deadline needs), and one whose deadline passes finishes with deadline_met=false
  instead of ending with DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dilaserve.policy.scheduler_config import SchedulerConfig
from dilaserve.profiles.quality import QualityProfile


@dataclass(frozen=True)
class SloClass:
    name: str
    deadline_ms: float | None = None
    deadline_per_token_ms: float | None = None
    target_attainment: float = 0.9
    min_threshold: float | None = None
    max_accuracy_drop: float | None = None
    mean_accuracy_drop: float | None = None
    priority: int = 0
    best_effort: bool = False

    @property
    def has_deadline(self) -> bool:
        return self.deadline_ms is not None or self.deadline_per_token_ms is not None

    def deadline_s(self, new_tokens: int) -> float:
        """The class's relative deadline for this many new tokens (inf: none)."""
        if not self.has_deadline:
            return math.inf
        ms = (self.deadline_ms or 0.0) + (self.deadline_per_token_ms or 0.0) * new_tokens
        return ms / 1e3

    def floor(self, quality: QualityProfile | None, block_size: int) -> float | None:
        """The lowest threshold this class allows at this block size (None: no floor of its own)."""
        floors = []
        if self.min_threshold is not None:
            floors.append(self.min_threshold)
        if self.max_accuracy_drop is not None:
            if quality is None:
                raise ValueError(
                    f"class {self.name!r}: quality_floor.max_accuracy_drop needs the model's "
                    "quality profile (run `dilaserve profile`)"
                )
            floors.append(
                quality.lowest_threshold(
                    self.max_accuracy_drop, profiled_block(quality, block_size)
                )
            )
        return max(floors) if floors else None


def profiled_block(quality: QualityProfile, block_size: int) -> int:
    """The profiled block size nearest to this one (ties: the smaller)."""
    blocks = quality.block_sizes()
    if not blocks:
        raise ValueError(f"quality profile of {quality.model} has no threshold points")
    return min(blocks, key=lambda b: (abs(b - block_size), b))


@dataclass(frozen=True)
class ThresholdRange:
    """The replica's thresholds: requests start at `max`; load control goes no lower than `min`."""

    min: float = 0.5
    max: float = 0.9

    def __post_init__(self) -> None:
        if not (0 < self.min <= 1 and 0 < self.max <= 1):
            raise ValueError(
                f"threshold range: min and max must be in (0, 1], got [{self.min}, {self.max}]"
            )
        if self.min > self.max:
            raise ValueError(f"threshold range: min {self.min} is above max {self.max}")


@dataclass(frozen=True)
class WorkerSettings:
    threshold_range: ThresholdRange = field(default_factory=ThresholdRange)
    block_size: int = 32
    cache_mode: str = "dual"
    max_new_tokens: int = 256
    max_rows: int | None = None
    max_tokens: int | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass(frozen=True)
class Policy:
    classes: tuple[SloClass, ...]
    default_class: str
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"policy: class names must be unique, got {names}")
        if self.default_class not in names:
            raise ValueError(f"policy: default_class {self.default_class!r} is not a class")

    def slo_class(self, name: str) -> SloClass:
        """The named class; the default class for an empty name."""
        name = name or self.default_class
        for c in self.classes:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.classes)
        raise ValueError(f"slo_class: unknown class {name!r}; known: {known}")

    def check_against(self, quality: QualityProfile | None) -> None:
        """Fail at start, not at the first request, when a floor cannot be resolved."""
        for c in self.classes:
            c.floor(quality, self.worker.block_size)


def default_policy() -> Policy:
    """One best-effort class without a deadline: what a worker started without --policy uses."""
    return Policy(classes=(SloClass("default", best_effort=True),), default_class="default")
