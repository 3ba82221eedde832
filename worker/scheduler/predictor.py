"""Predicts a request's time left: steps from tokens per step, seconds from the step-cost model.

Steps left: the current block needs masked-in-block / rate steps (at least one), each later block
size / rate, where rate is the quality profile's tokens per step at the request's threshold and
block size, times the workload's speed, times the request's own correction,
(committed + K) / (expected + K): a blend of the prior (worth K tokens) and what the request
actually committed. The workload's speed is the same ratio over every row step the replica ran
lately (`learn_speed`, decayed over `speed_memory_steps`): the profile was measured on its own
tasks, and a live workload's answers may come several times faster or slower, which the prior
for a new request must know before the request has taken a step. A decoder commits only in the
current block, so later blocks are wholly masked and the current block's masked count follows
from masked_left. Refresh steps: one per block start still ahead (every step with no cache).

Seconds per step: every resident row steps together, so a request's remaining time is its steps
left times the expected step time of the current batch. A row refreshes on a fraction p of its
steps (over its whole life, see `refresh_fraction`); a step is one padded reuse forward over the
rows that reuse plus one padded refresh forward over the rows that refresh (see `step_features`),
so its expected cost is the cost model applied to the expected row counts per phase, with each
forward's fixed cost weighted by the chance that the forward happens at all (`BatchShape`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCost
from worker.scheduler.requests import RequestState

MIN_CORRECTION, MAX_CORRECTION = 0.25, 4.0
MIN_SPEED, MAX_SPEED = 0.1, 10.0  # the rate is clamped to [1, block] after it anyway


@dataclass(frozen=True, slots=True)
class BatchShape:
    """The expected composition of a step: rows per phase (fractional: expectations), the chances
    that no row refreshes and that every row does (rows independent), the longest reuse query and
    the longest row."""

    reuse_rows: float = 0.0
    refresh_rows: float = 0.0
    none_refresh: float = 1.0
    all_refresh: float = 1.0
    reuse_query: int = 0
    longest: int = 0

    @property
    def rows(self) -> float:
        return self.reuse_rows + self.refresh_rows

    def with_row(self, refresh_fraction: float, reuse_query: int, seq_len: int) -> BatchShape:
        return BatchShape(
            self.reuse_rows + 1.0 - refresh_fraction,
            self.refresh_rows + refresh_fraction,
            self.none_refresh * (1.0 - refresh_fraction),
            self.all_refresh * refresh_fraction,
            max(self.reuse_query, reuse_query),
            max(self.longest, seq_len),
        )

    def filled_to(self, rows: float) -> BatchShape:
        """The same mix of phases with `rows` rows (a batch that fills as the queue drains)."""
        if self.rows <= 0 or rows <= self.rows:
            return self
        scale = rows / self.rows
        return BatchShape(
            self.reuse_rows * scale,
            self.refresh_rows * scale,
            self.none_refresh**scale,
            self.all_refresh**scale,
            self.reuse_query,
            self.longest,
        )

    def step_seconds(self, coef: tuple[float, float, float, float]) -> float:
        if self.rows <= 0:
            return 0.0
        per_forward, per_refresh_token, per_reuse_token, per_attended = coef
        keys = self.longest + 1
        reuse = self.reuse_rows * self.reuse_query
        refresh = self.refresh_rows * self.longest
        forwards = (1.0 - self.all_refresh) + (1.0 - self.none_refresh)
        return (
            per_forward * forwards
            + per_reuse_token * reuse
            + per_refresh_token * refresh
            + per_attended * (reuse + refresh) * keys
        )


class Predictor:
    def __init__(
        self,
        quality: QualityProfile,
        step_cost: StepCost,
        rate_prior_tokens: float = 16.0,
        speed_memory_steps: float = 0.0,
    ) -> None:
        self.quality = quality
        self.step_cost = step_cost
        self.rate_prior_tokens = rate_prior_tokens
        self._profiled_blocks = tuple(quality.block_sizes())
        self._rates: dict[tuple[float, int], float] = {}
        self.speed = 1.0  # the workload's tokens per step over the profile's (`learn_speed`)
        self._keep = 1.0 - 1.0 / speed_memory_steps if speed_memory_steps > 0 else None
        self._seen_committed = self._seen_expected = 0.0

    def profile_rate(self, threshold: float, block: int) -> float:
        """The profile's tokens per step at this setting (nearest profiled block size)."""
        rate = self._rates.get((threshold, block))
        if rate is None:
            rate = profiled_rate(self.quality, threshold, block, self._profiled_blocks)
            self._rates[(threshold, block)] = rate
        return rate

    def prior_rate(self, threshold: float, block: int, state: RequestState | None = None) -> float:
        """Tokens per step a request starts with at this setting: the profile's at the
        workload's speed, in [1, block] (a top-k rule's k)."""
        if state is not None and state.topk:
            return min(float(block), state.spec.settings.param)
        return self.at_speed(self.profile_rate(threshold, block), block)

    def at_speed(self, profiled: float, block: int) -> float:
        """A profiled rate at the workload's speed, in [1, block]."""
        rate = profiled * self.speed
        return 1.0 if rate < 1.0 else (block if rate > block else rate)

    def learn_speed(self, committed: int, profiled: float) -> None:
        """One row step: it committed `committed` tokens where the profile expected `profiled`."""
        keep = self._keep
        if keep is None:
            return
        self._seen_committed = self._seen_committed * keep + committed
        self._seen_expected = self._seen_expected * keep + profiled
        k = self.rate_prior_tokens
        speed = (self._seen_committed + k) / (self._seen_expected + k)
        self.speed = MIN_SPEED if speed < MIN_SPEED else (MAX_SPEED if speed > MAX_SPEED else speed)

    def correction(self, state: RequestState) -> float:
        k = self.rate_prior_tokens
        factor = (state.committed + k) / (state.expected_committed + k)
        if factor < MIN_CORRECTION:
            return MIN_CORRECTION
        return MAX_CORRECTION if factor > MAX_CORRECTION else factor

    def rate(self, state: RequestState, threshold: float, block: int) -> float:
        """Tokens per step expected of this request at these settings: 1 <= rate <= block."""
        return self._corrected_rate(threshold, block, self.correction(state), state)

    def _corrected_rate(
        self, threshold: float, block: int, correction: float, state: RequestState
    ) -> float:
        if state.topk:
            rate = self.prior_rate(threshold, block, state)
        else:
            rate = self._rates.get((threshold, block))
            if rate is None:
                rate = self.profile_rate(threshold, block)
            rate *= self.speed
        rate *= correction
        return 1.0 if rate < 1.0 else (block if rate > block else rate)

    def work(
        self, state: RequestState, threshold: float | None = None, next_block: int | None = None
    ) -> tuple[float, float]:
        """(steps left, refresh steps left) at these settings (default: the request's own)."""
        # written out flat: this runs for every resident row after every step
        if threshold is None:
            threshold = state.threshold
        block = state.block_size
        if next_block is None:
            next_block = state.pending_block or block
        masked = state.masked_left
        after = state.spec.canvas_len - state.block_start - block
        if after < 0:
            after = 0
        in_block = masked - after
        if in_block > block:
            in_block = block
        later = masked - in_block if in_block > 0 else masked
        if later > after:
            later = after
        correction = self.correction(state)
        steps = refresh = 0.0
        rate = None
        if in_block > 0:
            rate = self._corrected_rate(threshold, block, correction, state)
            # at least one step, even when the rate would finish the block in less
            steps = in_block / rate
            if steps < 1.0:
                steps = 1.0
            if state.at_block_start:
                refresh = 1.0
        if later > 0:
            if rate is None or next_block != block:
                rate = self._corrected_rate(threshold, next_block, correction, state)
            blocks = after / next_block
            per_block = next_block / rate
            steps += blocks * (per_block if per_block > 1.0 else 1.0)
            refresh += blocks
        if state.cache_mode == "none":
            refresh = steps
        return steps, refresh

    def update(self, state: RequestState) -> None:
        state.steps_left, state.refresh_left = self.work(state)

    def shape_of(self, states) -> BatchShape:
        """The expected step composition when these (resident) requests step together."""
        reuse_rows = refresh_rows = 0.0
        none_refresh = all_refresh = 1.0
        reuse_query = longest = 0
        for s in states:
            p = refresh_fraction(s)
            reuse_rows += 1.0 - p
            refresh_rows += p
            none_refresh *= 1.0 - p
            all_refresh *= p
            if p < 1.0:
                query = s.reuse_query_len
                if query > reuse_query:
                    reuse_query = query
            if s.seq_len > longest:
                longest = s.seq_len
        return BatchShape(reuse_rows, refresh_rows, none_refresh, all_refresh, reuse_query, longest)

    def shape_with(self, shape: BatchShape, state: RequestState) -> BatchShape:
        p = refresh_fraction(state)
        return shape.with_row(p, state.reuse_query_len, state.seq_len)

    def step_seconds(self, shape: BatchShape) -> float:
        return shape.step_seconds(self.step_cost.coef)


def profiled_rate(
    quality: QualityProfile, threshold: float, block: int, blocks: tuple[int, ...] | None = None
) -> float:
    """The profile's tokens per step at this setting (nearest profiled block size), in [1, block].
    `blocks`: the profile's block sizes, when the caller has them at hand."""
    blocks = tuple(quality.block_sizes()) if blocks is None else blocks
    if blocks:
        nearest = min(blocks, key=lambda b: (abs(b - block), b))
        rate = quality.at(threshold, nearest).tokens_per_step
    else:
        rate = quality.reference.tokens_per_step
    return min(max(rate, 1.0), float(block))


def refresh_fraction(state: RequestState) -> float:
    """The share of refresh steps over the request's whole life (done + predicted). Not of its
    remaining steps alone: a slot whose row is in its last block refreshes again soon, for the
    next request it takes, so whole lives are what a batch's steady mix is made of."""
    steps = state.steps + state.steps_left
    return (state.refreshes + state.refresh_left) / steps if steps > 0 else 1.0
