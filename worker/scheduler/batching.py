"""Filling one step: which resident rows run, which queued requests join, under the engine's limits.

Phase grouping (after dLLM-Serve's phase multiplexing). A step runs as one padded reuse forward
and one padded refresh forward. Reuse forwards are cheap and similar step to step; a refresh
forward costs the full prompt + canvas of every refreshing row, padded to the longest. If block
starts of many rows (and new admissions, whose first step is a refresh) pile into one step, that
step is several times the usual one: the rows in it wait, and the predicted step time every slack
rests on stops being a good guide. So:

- every resident row in the reuse phase runs every step (progress is never withheld from them);
- block-start refresh rows and new admissions share a per-step refresh bound: at most
  `max_refresh_rows` rows and at most `refresh_token_budget` padded refresh tokens (rows x longest
  row, what the refresh forward's cost grows with); rows that do not fit wait a step;
- the bound always lets one refresh row in, and a row deferred `max_refresh_deferrals` times runs
  first, so no row starves; resident rows take the bound before admissions (their cache and slot
  are already held, and finishing them frees capacity);
- rows with cache mode "none" refresh on every step and are not counted against the bound (there
  is nothing to spread: they are a refresh row in every step anyway).
The bound trades a little refresh batching (one forward's fixed cost per step) for steps whose cost
stays near the predicted one, which is what deadline slack, load control and admission rely on.

Admission to the engine is in queue order and stops at the first request that does not fit the
row or token limits (no skipping ahead, so a long request cannot be starved by short ones).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from dilaserve.core.steps import EngineLimits, Phase, StepFeatures, padded_features
from dilaserve.policy.scheduler_config import SchedulerConfig
from worker.scheduler.requests import RequestState


@dataclass(frozen=True)
class StepFill:
    run: list[RequestState]
    admit: list[RequestState]
    deferred: list[RequestState]
    features: StepFeatures


class RefreshBound:
    def __init__(self, config: SchedulerConfig) -> None:
        self.max_rows = config.max_refresh_rows
        self.max_tokens = config.refresh_token_budget
        self.rows = 0
        self.longest = 0

    def admits(self, seq_len: int) -> bool:
        if self.rows == 0:
            return True
        if self.max_rows is not None and self.rows + 1 > self.max_rows:
            return False
        longest = max(self.longest, seq_len)
        return self.max_tokens is None or (self.rows + 1) * longest <= self.max_tokens

    def take(self, seq_len: int) -> None:
        self.rows += 1
        self.longest = max(self.longest, seq_len)

    def slots_left(self, cap: int) -> int:
        return cap if self.max_rows is None else min(cap, max(0, self.max_rows - self.rows))


def fill_step(
    resident: Collection[RequestState],
    ordered_refresh: Callable[[list[RequestState]], list[RequestState]],
    queue_head: Callable[[int], list[RequestState]],
    limits: EngineLimits,
    config: SchedulerConfig,
    evicting: Collection[RequestState] = (),
) -> StepFill:
    """`ordered_refresh` orders refresh candidates; `queue_head(k)` gives the first k queued.
    Rows being evicted by the same plan still count against the limits: the contract does not
    say whether the engine drops them before it admits."""
    run: list[RequestState] = []
    waiting: list[RequestState] = []
    for state in resident:
        if state.at_block_start and state.cache_mode != "none":
            waiting.append(state)
        else:
            run.append(state)
    bound = RefreshBound(config)
    deferred = []
    for state in ordered_refresh(waiting) if len(waiting) > 1 else waiting:
        if bound.admits(state.seq_len):
            bound.take(state.seq_len)
            state.deferrals = 0
            run.append(state)
        else:
            state.deferrals += 1
            deferred.append(state)

    admit: list[RequestState] = []
    free_rows = limits.max_rows - len(resident) - len(evicting)
    free_tokens = (
        limits.max_tokens - sum(s.seq_len for s in resident) - sum(s.seq_len for s in evicting)
    )
    want = bound.slots_left(free_rows)
    if want > 0 and free_tokens > 0 and not deferred:
        for state in queue_head(want):
            if state.seq_len > free_tokens or not bound.admits(state.seq_len):
                break
            bound.take(state.seq_len)
            free_tokens -= state.seq_len
            admit.append(state)
    run.extend(admit)
    return StepFill(run, admit, deferred, features_of(run))


def features_of(rows: list[RequestState]) -> StepFeatures:
    """`step_features` of these rows at their next phase, without building RowShapes."""
    # flat lists, not RowShapes: this runs for every row of every step
    refresh_lens: list[int] = []
    reuse_lens: list[int] = []
    reuse_queries: list[int] = []
    for s in rows:
        if s.next_phase is Phase.REFRESH:
            refresh_lens.append(s.seq_len)
        else:
            reuse_lens.append(s.seq_len)
            reuse_queries.append(s.reuse_query_len)
    return padded_features(refresh_lens, reuse_lens, reuse_queries)
