"""Load control: trade a late request's quality for speed, one rung at a time, and give it back.

The ladder. Threshold rungs run from the starting threshold down by `threshold_step` to the
request's floor (the floor itself is the last rung; nothing goes below it). With
"threshold+block", block rungs run from the starting block size up through the configured ladder
sizes inside the request's block range that divide its canvas. Lowering pulls the threshold first
(it acts on the very next step and is what the quality profile measures best), then, at the floor,
the block size (it acts only from the next block start). Raising releases them in reverse order:
block size first, then threshold.

Budget: a rung down is taken only when the class's accuracy budget has room for it (`budget`);
a rung up always is, and gives room back.

When: a request is late when its predicted slack is below `slack_margin` times its predicted
remaining time (a noise margin: aiming at zero slack would miss half the deadlines it aims at);
a late request goes down one rung per plan. It goes back up one rung only when its predicted
slack at the higher rung would be at least (slack_margin + hysteresis) times its predicted
remaining time there, and only `raise_dwell_steps` steps after its last change: the gap between
the two conditions is the hysteresis that keeps it from flapping.

Block-size changes are emitted only mid-block, where "the next block start" is this block's end
without ambiguity, and only to a size that the next block start and the rest of the canvas are
whole multiples of, so that blocks stay aligned.
"""

from __future__ import annotations

import functools

from dilaserve.core.steps import SettingsChange
from dilaserve.policy.scheduler_config import SchedulerConfig
from worker.scheduler.budget import Budget
from worker.scheduler.predictor import Predictor
from worker.scheduler.requests import RequestSpec, RequestState


@functools.lru_cache(maxsize=1024)  # every request of a class and replica has the same ladder
def threshold_rungs(start: float, floor: float, step: float) -> tuple[float, ...]:
    rungs = [start]
    k = 1
    while (t := round(start - k * step, 6)) > floor + 1e-9:
        rungs.append(t)
        k += 1
    if floor < start:
        rungs.append(floor)
    return tuple(rungs)


def block_rungs(spec: RequestSpec, config: SchedulerConfig) -> tuple[int, ...]:
    start = spec.settings.block_size
    if not config.raises_block:
        return (start,)
    lo, hi = spec.blocks
    bigger = (
        b for b in config.block_ladder if b > start and lo <= b <= hi and spec.canvas_len % b == 0
    )
    return (start, *bigger)


def ladders(
    spec: RequestSpec, config: SchedulerConfig
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    if not config.lowers_threshold or spec.settings.rule != "threshold":
        return (spec.settings.threshold,), (spec.settings.block_size,)
    return (
        threshold_rungs(spec.settings.threshold, spec.floor, config.threshold_step),
        block_rungs(spec, config),
    )


def block_change_possible(state: RequestState, new_block: int) -> bool:
    if state.at_block_start:
        return False
    next_start = state.block_start + state.block_size
    rest = state.spec.canvas_len - next_start
    return rest > 0 and next_start % new_block == 0 and rest % new_block == 0


class LoadController:
    def __init__(
        self, config: SchedulerConfig, predictor: Predictor, budget: Budget | None = None
    ) -> None:
        self.config = config
        self.predictor = predictor
        self.budget = budget or Budget(predictor.quality)
        self._raise_margin = config.slack_margin + config.hysteresis

    def decide(self, state: RequestState, now: float, step_s: float) -> SettingsChange | None:
        """At most one rung of change for a resident request; applied to `state` when returned."""
        if len(state.threshold_rungs) == 1 and len(state.block_rungs) == 1:
            return None
        if self._late(state, now, step_s):
            return self._lower(state)
        if state.steps - state.steps_at_change < self.config.raise_dwell_steps:
            return None
        return self._raise(state, now, step_s)

    def settle_before_admission(self, state: RequestState, now: float, step_s: float) -> None:
        """Start a request as low on the threshold ladder as its slack needs (it is not resident
        yet, so its settings go straight into its AdmitRow)."""
        rungs = state.threshold_rungs
        while (
            state.threshold_rung + 1 < len(rungs)
            and self._late(state, now, step_s)
            and self.budget.allows(state, rungs[state.threshold_rung + 1])
        ):
            self._set_threshold(state, state.threshold_rung + 1)

    def _late(self, state: RequestState, now: float, step_s: float) -> bool:
        remaining = state.steps_left * step_s
        return state.deadline_s - now - remaining < self.config.slack_margin * remaining

    def _lower(self, state: RequestState) -> SettingsChange | None:
        rungs = state.threshold_rungs
        if state.threshold_rung + 1 < len(rungs):
            if not self.budget.allows(state, rungs[state.threshold_rung + 1]):
                return None
            self._set_threshold(state, state.threshold_rung + 1)
            return SettingsChange(state.request_id, threshold=state.threshold)
        if state.block_rung + 1 < len(state.block_rungs):
            new_block = state.block_rungs[state.block_rung + 1]
            if block_change_possible(state, new_block):
                self._set_block(state, state.block_rung + 1)
                return SettingsChange(state.request_id, block_size=new_block)
        return None

    def _raise(self, state: RequestState, now: float, step_s: float) -> SettingsChange | None:
        threshold, block = state.threshold, state.next_block
        if state.block_rung > 0:
            block = state.block_rungs[state.block_rung - 1]
            if not block_change_possible(state, block):
                return None
        elif state.threshold_rung > 0:
            threshold = state.threshold_rungs[state.threshold_rung - 1]
        else:
            return None
        steps, _ = self.predictor.work(state, threshold, block)
        remaining = steps * step_s
        if state.deadline_s - now - remaining < self._raise_margin * remaining:
            return None
        if block != state.next_block:
            self._set_block(state, state.block_rung - 1)
            return SettingsChange(state.request_id, block_size=block)
        self._set_threshold(state, state.threshold_rung - 1)
        return SettingsChange(state.request_id, threshold=threshold)

    def _set_threshold(self, state: RequestState, rung: int) -> None:
        state.threshold_rung = rung
        state.threshold = state.threshold_rungs[rung]
        self._changed(state)
        self.budget.retarget(state)

    def _set_block(self, state: RequestState, rung: int) -> None:
        state.block_rung = rung
        new_block = state.block_rungs[rung]
        state.pending_block = None if new_block == state.block_size else new_block
        self._changed(state)

    def _changed(self, state: RequestState) -> None:
        state.steps_at_change = state.steps
        self.predictor.update(state)
