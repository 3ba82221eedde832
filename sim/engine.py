"""A simulated engine: takes the scheduler's StepPlan, returns a StepResult with modelled time.

Time: the step-cost model applied to the step's features (one padded refresh forward and one padded
reuse forward, exactly `step_features`), times (1 + noise) when `step_jitter` > 0.

Tokens: a row decodes its canvas block by block. When a block starts (and whenever its threshold
changes mid-block) the engine draws how many steps the rest of the block takes: n = tokens left /
rate, rounded down or up at random so that the mean is n, at least one; the block's tokens are
spread evenly over those steps. rate = the quality profile's tokens per step at the row's threshold
and block size (nearest profiled block) x the request's own speed factor, within [1, block]. So
tokens per step match the profile on average, requests differ as real ones do, and a block never
commits past its end. A request stops when its last decoded block completes: the canvas end
(known length, finish reason "length") or the block holding its EOS (fixed canvas, "eos").

Accuracy: each committed token carries the accuracy of the threshold it was committed at; a
finished request's expected accuracy is the token-weighted mean (the simulator draws correctness
from it). Randomness comes from one seeded generator per engine, so a run is deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from dilaserve.core.steps import (
    EngineLimits,
    FinishReason,
    Phase,
    RowOutcome,
    StepPlan,
    StepResult,
    padded_features,
)
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostModel

_REFRESH, _REUSE = Phase.REFRESH, Phase.REUSE
_LENGTH, _EOS = FinishReason.LENGTH, FinishReason.EOS


@dataclass(frozen=True, slots=True)
class RequestTruth:
    """What only the engine knows about a request: where its output ends, how fast it decodes."""

    decoded_len: int  # canvas tokens decoded before it stops (a whole number of blocks)
    speed: float = 1.0  # multiplies the profile's tokens per step


class QualityTable:
    """Tokens per step and accuracy at (threshold, block), looked up once per setting."""

    def __init__(self, quality: QualityProfile) -> None:
        self.quality = quality
        self._blocks = tuple(quality.block_sizes())
        self._cache: dict[tuple[float, int], tuple[float, float]] = {}

    def at(self, threshold: float, block: int) -> tuple[float, float]:
        key = (threshold, block)
        hit = self._cache.get(key)
        if hit is None:
            nearest = min(self._blocks, key=lambda b: (abs(b - block), b))
            point = self.quality.at(threshold, nearest)
            hit = self._cache[key] = (point.tokens_per_step, point.accuracy)
        return hit


class _Row:
    __slots__ = ("prompt_len", "canvas_len", "seq_len", "decoded_len", "speed", "threshold",
                 "block_size", "pending_block", "block_start", "left_in_block", "steps_left",
                 "at_block_start", "masked_left", "cache_mode", "committed", "accuracy_tokens",
                 "rate", "accuracy", "threshold_tokens")

    def __init__(self, prompt_len: int, canvas_len: int, truth: RequestTruth,
                 threshold: float, block_size: int, cache_mode: str) -> None:
        self.prompt_len = prompt_len
        self.canvas_len = canvas_len
        self.seq_len = prompt_len + canvas_len
        self.decoded_len = min(truth.decoded_len, canvas_len)
        self.speed = truth.speed
        self.threshold = threshold
        self.block_size = block_size
        self.pending_block: int | None = None
        self.block_start = 0
        self.left_in_block = 0
        self.steps_left = 0
        self.at_block_start = True
        self.masked_left = canvas_len
        self.cache_mode = cache_mode
        self.committed = 0
        self.accuracy_tokens = 0.0
        self.threshold_tokens = 0.0
        self.rate = 1.0
        self.accuracy = 0.0


class SimulatedEngine:
    def __init__(self, cost: StepCostModel, quality: QualityTable, limits: EngineLimits,
                 truths: Mapping[str, RequestTruth], seed: int = 0,
                 step_jitter: float = 0.0, step_scale: float = 1.0) -> None:
        self.cost = cost
        self.quality = quality
        self.limits = limits
        self.truths = truths
        self.step_jitter = step_jitter
        self.step_scale = step_scale
        self.rng = random.Random(seed)
        self.rows: dict[str, _Row] = {}
        self.tokens_in_use = 0
        # request id -> (expected accuracy, token-weighted mean threshold) of finished requests
        self.finished: dict[str, tuple[float, float]] = {}
        self.steps = 0

    def step(self, plan: StepPlan) -> StepResult:
        rows = self.rows
        for rid in plan.evict:
            row = rows.pop(rid, None)
            if row is None:
                raise ValueError(f"engine: evict of unknown row {rid}")
            self.tokens_in_use -= row.seq_len
        for admit in plan.admit:
            if admit.request_id in rows:
                raise ValueError(f"engine: admit of resident row {admit.request_id}")
            s = admit.settings
            row = _Row(len(admit.prompt_ids), admit.canvas_len, self.truths[admit.request_id],
                       s.threshold, s.block_size, s.cache_mode)
            if row.seq_len > self.limits.max_seq_len:
                raise ValueError(f"engine: row {admit.request_id} of {row.seq_len} tokens is "
                                 f"over max_seq_len {self.limits.max_seq_len}")
            rows[admit.request_id] = row
            self.tokens_in_use += row.seq_len
            self._set_rate(row)
        if len(rows) > self.limits.max_rows or self.tokens_in_use > self.limits.max_tokens:
            raise ValueError(f"engine: {len(rows)} rows / {self.tokens_in_use} tokens exceed "
                             f"the limits {self.limits}")
        for change in plan.changes:
            row = rows[change.request_id]
            if change.threshold is not None and change.threshold != row.threshold:
                row.threshold = change.threshold
                self._set_rate(row)
                if not row.at_block_start:
                    row.steps_left = self._draw_steps(row.left_in_block, row.rate)
            if change.block_size is not None:
                row.pending_block = change.block_size
        return self._run(plan.run)

    def _run(self, run: tuple[str, ...]) -> StepResult:
        rows = self.rows
        outcomes = []
        refresh_lens: list[int] = []
        reuse_lens: list[int] = []
        reuse_queries: list[int] = []
        for rid in run:
            row = rows[rid]
            if row.at_block_start:
                self._start_block(row)
                phase = _REFRESH
            else:
                phase = _REFRESH if row.cache_mode == "none" else _REUSE
            if phase is _REFRESH:
                refresh_lens.append(row.seq_len)
            else:
                reuse_lens.append(row.seq_len)
                reuse_queries.append(row.seq_len - row.prompt_len - row.block_start
                                     if row.cache_mode == "prefix" else row.block_size)
            outcomes.append(self._advance(rid, row, phase))
        features = padded_features(refresh_lens, reuse_lens, reuse_queries)
        a, b, c, d = self.cost.coef
        elapsed = self.step_scale * (a * features.forwards + b * features.refresh_tokens
                                     + c * features.reuse_tokens + d * features.attended_kv)
        if self.step_jitter > 0 and run:
            elapsed *= max(0.1, 1.0 + self.step_jitter * self.rng.gauss(0.0, 1.0))
        self.steps += 1
        return StepResult(tuple(outcomes), elapsed, features)

    def _set_rate(self, row: _Row) -> None:
        tps, accuracy = self.quality.at(row.threshold, row.block_size)
        rate = tps * row.speed
        row.rate = 1.0 if rate < 1.0 else (float(row.block_size) if rate > row.block_size
                                            else rate)
        row.accuracy = accuracy

    def _draw_steps(self, tokens: int, rate: float) -> int:
        exact = tokens / rate
        whole = int(exact)
        steps = whole + (self.rng.random() < exact - whole)
        return steps if steps > 0 else 1

    def _start_block(self, row: _Row) -> None:
        if row.pending_block is not None and row.pending_block != row.block_size:
            row.block_size = row.pending_block
            self._set_rate(row)
        row.pending_block = None
        row.left_in_block = min(row.block_size, row.canvas_len - row.block_start)
        row.steps_left = self._draw_steps(row.left_in_block, row.rate)

    def _advance(self, rid: str, row: _Row, phase: Phase) -> RowOutcome:
        row.at_block_start = False
        left, steps = row.left_in_block, row.steps_left
        committed = left if steps <= 1 else -(-left // steps)
        row.left_in_block = left - committed
        row.steps_left = steps - 1 if steps > 1 else 1
        row.masked_left -= committed
        row.committed += committed
        row.accuracy_tokens += committed * row.accuracy
        row.threshold_tokens += committed * row.threshold
        if row.left_in_block:
            return RowOutcome(rid, phase, committed, row.masked_left, False, False)
        end = row.block_start + row.block_size
        if end >= row.decoded_len:
            del self.rows[rid]
            self.tokens_in_use -= row.seq_len
            self.finished[rid] = (row.accuracy_tokens / row.committed,
                                  row.threshold_tokens / row.committed)
            reason = _LENGTH if row.decoded_len >= row.canvas_len else _EOS
            return RowOutcome(rid, phase, committed, 0, True, True, reason)
        row.block_start = end
        row.at_block_start = True
        return RowOutcome(rid, phase, committed, row.masked_left, True, False)
