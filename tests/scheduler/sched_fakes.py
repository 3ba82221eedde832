"""Test doubles for the scheduler: a synthetic quality profile and a tiny fake engine.

The fake engine follows the step boundary's contract (admit before run, evict, changes from the next
step, block-size changes at the next block start, done rows freed after their step) and asserts the
engine's limits, so every scheduler test that drives it also checks that the plans are legal.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from dilaserve.core.steps import (
    DecodeSettings,
    EngineLimits,
    FinishReason,
    Phase,
    RowOutcome,
    RowShape,
    StepPlan,
    StepResult,
    query_len,
    step_features,
)
from dilaserve.profiles.quality import QualityPoint, QualityProfile
from dilaserve.profiles.step_cost import StepCostModel
from worker.scheduler import (
    RequestSpec,
    Scheduler,
    SchedulerConfig,
    TerminalEvent,
    plan_has_work,
)

TRUE_COST = StepCostModel((1e-3, 2e-6, 4e-6, 1e-9))
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BLOCKS = (8, 16, 32, 64)
LIMITS = EngineLimits(max_rows=8, max_tokens=8 * 128, max_seq_len=256)


def tokens_per_step(threshold: float, block: int) -> float:
    """The synthetic truth: lower threshold and bigger block commit more per step."""
    return max(1.0, (1.0 + 10.0 * (1.0 - threshold)) * (block / 32) ** 0.5)


def steps_per_block(threshold: float, block: int) -> float:
    """Expected steps for the fake engine to fill a block: each step commits floor(rate) or one more
    (with probability the fraction), never more than is left."""
    rate = tokens_per_step(threshold, block)
    whole, frac = int(rate), rate - int(rate)
    expected = [0.0] * (block + 1)
    for left in range(1, block + 1):
        expected[left] = 1 + (1 - frac) * expected[max(0, left - whole)] + frac * expected[
            max(0, left - whole - 1)]
    return expected[block]


def make_quality(blocks: tuple[int, ...] = BLOCKS) -> QualityProfile:
    """What profiling the fake engine would measure: tokens per step over whole blocks."""
    points = []
    for block in blocks:
        for tau in THRESHOLDS:
            tps = block / steps_per_block(tau, block)
            points.append(QualityPoint(rule="threshold", threshold=tau, block_size=block,
                                       accuracy=0.5 + 0.4 * tau, per_task={"add": 0.5 + 0.4 * tau},
                                       answer_tokens_per_step=tps, tokens_per_step=tps,
                                       forwards_per_request=32 / tps))
    return QualityProfile(model="fake", reference=points[-1], points=tuple(points))


@dataclass
class FakeRow:
    canvas_len: int
    seq_len: int
    threshold: float
    block_size: int
    cache_mode: str
    pending_block: int | None = None
    block_start: int = 0
    committed_in_block: int = 0
    at_block_start: bool = True
    masked_left: int = 0
    steps: int = 0


@dataclass
class FakeEngine:
    limits: EngineLimits
    seed: int = 0
    eos_chance: float = 0.0  # chance that a finished block ends the canvas early (EOS)
    jitter: float = 0.0  # relative noise on tokens committed and on elapsed time
    speed: float = 1.0  # tokens per step over the synthetic truth (a workload unlike the profile's)
    admit_before_evict: bool = False  # the strictest reading of the contract's limits
    rows: dict[str, FakeRow] = field(default_factory=dict)
    admitted_total: int = 0
    history: list[StepPlan] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def step(self, plan: StepPlan) -> StepResult:
        self.history.append(plan)
        for rid in plan.evict:
            assert rid in self.rows, f"evict of unknown row {rid}"
        if not self.admit_before_evict:
            self._evict(plan)
        for row in plan.admit:
            assert row.request_id not in self.rows, f"admit of resident row {row.request_id}"
            assert row.seq_len <= self.limits.max_seq_len
            self.rows[row.request_id] = FakeRow(row.canvas_len, row.seq_len,
                                                row.settings.threshold, row.settings.block_size,
                                                row.settings.cache_mode,
                                                masked_left=row.canvas_len)
            self.admitted_total += 1
        assert len(self.rows) <= self.limits.max_rows, "row limit exceeded"
        assert sum(r.seq_len for r in self.rows.values()) <= self.limits.max_tokens, \
            "token limit exceeded"
        self._evict(plan)
        for change in plan.changes:
            row = self.rows[change.request_id]
            if change.threshold is not None:
                row.threshold = change.threshold
            if change.block_size is not None:
                row.pending_block = change.block_size
        assert len(set(plan.run)) == len(plan.run), "row run twice in one step"
        shapes, outcomes = [], []
        for rid in plan.run:
            row = self.rows[rid]
            phase = Phase.REFRESH if row.at_block_start or row.cache_mode == "none" else Phase.REUSE
            prompt = row.seq_len - row.canvas_len
            start = prompt + row.block_start
            shapes.append(RowShape(row.seq_len, query_len(phase, row.cache_mode, row.seq_len,
                                                          start, start + row.block_size), phase))
            outcomes.append(self._advance(rid, row, phase))
        features = step_features(shapes)
        elapsed = TRUE_COST.predict(features) * (1 + self.jitter * self.rng.uniform(-1, 1))
        return StepResult(tuple(outcomes), elapsed, features)

    def _evict(self, plan: StepPlan) -> None:
        for rid in plan.evict:
            self.rows.pop(rid, None)

    def _advance(self, rid: str, row: FakeRow, phase: Phase) -> RowOutcome:
        row.at_block_start = False
        row.steps += 1
        block_len = min(row.block_size, row.canvas_len - row.block_start)
        left_in_block = block_len - row.committed_in_block
        rate = tokens_per_step(row.threshold, row.block_size) * self.speed
        rate *= 1 + self.jitter * self.rng.uniform(-1, 1)
        whole = int(rate)
        committed = min(left_in_block, max(1, whole + (self.rng.random() < rate - whole)))
        row.committed_in_block += committed
        row.masked_left -= committed
        block_finished = row.committed_in_block == block_len
        done = row.masked_left == 0
        reason = FinishReason.LENGTH if done else None
        if block_finished and not done and self.rng.random() < self.eos_chance:
            done, reason = True, FinishReason.EOS
        if block_finished and not done:
            row.block_start += row.block_size
            row.block_size = row.pending_block or row.block_size
            row.pending_block = None
            row.committed_in_block = 0
            row.at_block_start = True
        if done:
            del self.rows[rid]
        return RowOutcome(rid, phase, committed, row.masked_left if not done else 0,
                          block_finished, done, reason,
                          output_ids=tuple(range(row.canvas_len - row.masked_left)) if done else ())


def spec(rid: str, now: float = 0.0, *, deadline: float = math.inf, prompt: int = 32,
         canvas: int = 64, threshold: float = 0.9, floor: float | None = None, block: int = 16,
         block_range: tuple[int, int] | None = None, best_effort: bool = False,
         priority: int = 0, cache_mode: str = "dual") -> RequestSpec:
    return RequestSpec(rid, tuple(range(1, prompt + 1)), canvas, now, deadline_s=deadline,
                       priority=priority, best_effort=best_effort, quality_floor=floor,
                       block_range=block_range,
                       settings=DecodeSettings(threshold=threshold, block_size=block,
                                               cache_mode=cache_mode))


def make_scheduler(limits: EngineLimits = LIMITS, cost=TRUE_COST, **config) -> Scheduler:
    return Scheduler(SchedulerConfig(**config), limits, make_quality(), cost)


def drive(scheduler: Scheduler, engine: FakeEngine, now: float = 0.0,
          max_steps: int = 10_000) -> tuple[list[TerminalEvent], float]:
    """Step until nothing is active; returns the events and the clock."""
    events: list[TerminalEvent] = []
    for _ in range(max_steps):
        if not scheduler.active_count:
            break
        ended, now = run_plan(scheduler, engine, scheduler.plan(now), now)
        events += ended
    events += scheduler.take_events()
    return events, now


def run_plan(scheduler: Scheduler, engine: FakeEngine, plan: StepPlan,
             now: float) -> tuple[list[TerminalEvent], float]:
    """One plan executed and observed (with nothing to run, the clock moves on 1 ms); returns
    the requests that ended and the clock."""
    if plan_has_work(plan):
        result = engine.step(plan)
        now += result.elapsed_s
        return scheduler.observe(result, now), now
    return scheduler.take_events(), now + 1e-3
