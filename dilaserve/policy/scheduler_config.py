"""The scheduler's knobs, validated once, so that a bad config fails at start, not mid-trace."""

from __future__ import annotations

import math
from dataclasses import dataclass

ORDERINGS = ("fcfs", "edf")
LOAD_CONTROLS = ("none", "threshold", "threshold+block")


@dataclass(frozen=True)
class SchedulerConfig:
    """How the worker's scheduler orders, batches, degrades and admits requests.

    ordering: "fcfs" (arrival order) or "edf" (least slack first: deadline - now - predicted
        remaining time). Priority tiers come before either.
    load_control: "none", "threshold" (lower a late request's threshold toward its floor) or
        "threshold+block" (then also raise its block size within its range).
    threshold_step: the distance between threshold rungs of the load-control ladder.
    block_ladder: the block sizes load control may move a request between (ascending).
    slack_margin: load control counts a request late when its slack is below this fraction of its
        predicted remaining time (a margin for step-time and tokens-per-step noise; 0: only
        negative slack counts).
    hysteresis: a lowered request is raised one rung only when its predicted slack at the higher
        rung is at least (slack_margin + hysteresis) times its predicted remaining time there.
    raise_dwell_steps: steps a request must take after a settings change before it is raised.
    max_refresh_rows / refresh_token_budget: the refresh-phase bound of one step (rows, and padded
        query tokens = rows x longest row); None is unbounded. One refresh row always runs.
    max_refresh_deferrals: a row deferred this many steps in a row by the refresh bound goes first.
    admission: whether arrivals are checked for feasibility (off: everything is accepted).
    admission_headroom: an arrival is feasible when its predicted time x (1 + headroom) fits its
        deadline (the margin for the noise in step times and tokens per step).
    admission_protects_queue: also refuse an arrival that would make a queued request late.
    rate_prior_tokens: how many committed tokens of evidence the profile's tokens-per-step prior is
        worth when blended with a request's observed rate.
    speed_memory_steps: the replica learns its workload's speed (tokens committed per step over
        what the quality profile predicts: the profile's tasks are not the live ones) over about
        this many row steps, and predicts new requests with it; 0: the profile as it is.
    """

    ordering: str = "edf"
    load_control: str = "threshold"
    threshold_step: float = 0.05
    block_ladder: tuple[int, ...] = (8, 16, 32, 64)
    slack_margin: float = 0.1
    hysteresis: float = 0.2
    raise_dwell_steps: int = 4
    max_refresh_rows: int | None = 4
    refresh_token_budget: int | None = None
    max_refresh_deferrals: int = 4
    admission: bool = True
    admission_headroom: float = 0.1
    admission_protects_queue: bool = True
    rate_prior_tokens: float = 16.0
    speed_memory_steps: float = 2048.0

    def __post_init__(self) -> None:
        if self.ordering not in ORDERINGS:
            _fail("ordering", f"must be one of {', '.join(ORDERINGS)}", self.ordering)
        if self.load_control not in LOAD_CONTROLS:
            _fail("load_control", f"must be one of {', '.join(LOAD_CONTROLS)}", self.load_control)
        if not _finite(self.threshold_step) or not 0 < self.threshold_step < 1:
            _fail("threshold_step", "must be in (0, 1)", self.threshold_step)
        ladder = self.block_ladder
        if not ladder or any(not isinstance(b, int) or b <= 0 for b in ladder):
            _fail("block_ladder", "must be a non-empty tuple of positive ints", ladder)
        if any(lo >= hi for lo, hi in zip(ladder, ladder[1:], strict=False)):
            _fail("block_ladder", "must be strictly ascending", ladder)
        for name in ("slack_margin", "hysteresis"):
            if not _finite(getattr(self, name)) or getattr(self, name) < 0:
                _fail(name, "must be >= 0", getattr(self, name))
        for name in ("raise_dwell_steps", "max_refresh_deferrals"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                _fail(name, "must be an int >= 0", value)
        for name in ("max_refresh_rows", "refresh_token_budget"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                _fail(name, "must be None or an int >= 1", value)
        for name in ("admission", "admission_protects_queue"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, "must be a bool", getattr(self, name))
        if not _finite(self.admission_headroom) or self.admission_headroom < 0:
            _fail("admission_headroom", "must be >= 0", self.admission_headroom)
        if not _finite(self.rate_prior_tokens) or self.rate_prior_tokens <= 0:
            _fail("rate_prior_tokens", "must be > 0", self.rate_prior_tokens)
        if not _finite(self.speed_memory_steps) or self.speed_memory_steps < 0:
            _fail("speed_memory_steps", "must be >= 0 (0: not learned)", self.speed_memory_steps)

    @property
    def lowers_threshold(self) -> bool:
        return self.load_control != "none"

    @property
    def raises_block(self) -> bool:
        return self.load_control == "threshold+block"


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fail(name: str, rule: str, value: object) -> None:
    raise ValueError(f"SchedulerConfig.{name} {rule}, got {value!r}")
