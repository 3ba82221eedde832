from __future__ import annotations

import math

import pytest
from sched_fakes import TRUE_COST, FakeEngine, drive, make_quality, make_scheduler, spec

from worker.scheduler import RequestState, SchedulerConfig
from worker.scheduler.load_control import LoadController, ladders, threshold_rungs
from worker.scheduler.predictor import Predictor


def test_threshold_ladder_ends_exactly_at_the_floor() -> None:
    assert threshold_rungs(0.9, 0.6, 0.1) == (0.9, 0.8, 0.7, 0.6)
    assert threshold_rungs(0.9, 0.62, 0.1) == (0.9, 0.8, 0.7, 0.62)
    assert threshold_rungs(0.9, 0.9, 0.1) == (0.9,)


def controller(**config) -> tuple[LoadController, SchedulerConfig, Predictor]:
    cfg = SchedulerConfig(**config)
    predictor = Predictor(make_quality(), TRUE_COST, cfg.rate_prior_tokens)
    return LoadController(cfg, predictor), cfg, predictor


def state_for(cfg: SchedulerConfig, predictor: Predictor, **spec_args) -> RequestState:
    s = spec("a", **spec_args)
    state = RequestState(s, *ladders(s, cfg))
    predictor.update(state)
    return state


def test_lowers_one_rung_per_decision_while_late_and_never_below_the_floor() -> None:
    lc, cfg, predictor = controller(load_control="threshold", threshold_step=0.1)
    state = state_for(cfg, predictor, deadline=0.01, floor=0.6)
    thresholds = []
    for _ in range(6):
        change = lc.decide(state, now=0.0, step_s=1e-3)  # ~20+ steps of 1 ms: 10 ms is late
        if change is not None:
            assert change.block_size is None
            thresholds.append(change.threshold)
    assert thresholds == [0.8, 0.7, 0.6]
    assert state.threshold == 0.6


def test_raises_back_with_hysteresis_and_dwell() -> None:
    lc, cfg, predictor = controller(load_control="threshold", threshold_step=0.1,
                                    hysteresis=0.5, raise_dwell_steps=3)
    state = state_for(cfg, predictor, deadline=1.0, floor=0.6)
    while lc.decide(state, now=0.0, step_s=0.1) is not None:  # very late: down to the floor
        pass
    assert state.threshold == 0.6
    steps_at_floor = state.steps_left
    # on time at the floor, but the next rung up would not leave the hysteresis margin: stay
    steps_up, _ = predictor.work(state, 0.7)
    step_s = 1.0 / (steps_up * 1.55)  # slack at 0.7 is 0.55 x its remaining, below 0.1 + 0.5
    assert 1.0 - steps_at_floor * step_s > 0
    state.steps = 10
    assert lc.decide(state, now=0.0, step_s=step_s) is None
    # ample slack, but no step since the last change: dwell first
    state.steps = state.steps_at_change
    assert lc.decide(state, now=0.0, step_s=1e-4) is None
    state.steps += 3
    change = lc.decide(state, now=0.0, step_s=1e-4)
    assert change is not None and change.threshold == 0.7
    state.steps += 3
    assert lc.decide(state, now=0.0, step_s=1e-4).threshold == 0.8


def mid_block(state: RequestState, block_start: int, committed: int) -> None:
    state.block_start = block_start
    state.at_block_start = False
    state.masked_left = state.spec.canvas_len - block_start - committed


def test_block_size_rises_only_at_the_floor_mid_block_aligned_and_within_range() -> None:
    lc, cfg, predictor = controller(load_control="threshold+block", threshold_step=0.3)
    state = state_for(cfg, predictor, deadline=0.001, floor=0.6, canvas=256, block=16,
                      block_range=(16, 32))
    assert state.block_rungs == (16, 32)  # 64 is outside the request's range
    assert lc.decide(state, 0.0, 1e-3).threshold == 0.6
    assert lc.decide(state, 0.0, 1e-3) is None  # at a block start: no block change yet
    mid_block(state, block_start=0, committed=4)  # next block starts at 16: not 32-aligned
    predictor.update(state)
    assert lc.decide(state, 0.0, 1e-3) is None
    mid_block(state, block_start=16, committed=4)  # next block starts at 32
    predictor.update(state)
    change = lc.decide(state, 0.0, 1e-3)
    assert change.block_size == 32 and change.threshold is None
    assert state.block_size == 16 and state.pending_block == 32  # in force at the next block
    assert lc.decide(state, 0.0, 1e-3) is None  # nothing left to pull
    # slack back: the block size is released first, then the threshold
    state.steps += cfg.raise_dwell_steps
    assert lc.decide(state, 0.0, 1e-6).block_size == 16
    state.steps += cfg.raise_dwell_steps
    assert lc.decide(state, 0.0, 1e-6).threshold == 0.9


def test_no_deadline_means_no_degradation() -> None:
    lc, cfg, predictor = controller(load_control="threshold")
    state = state_for(cfg, predictor, deadline=math.inf, floor=0.5)
    assert lc.decide(state, 0.0, 1.0) is None and state.threshold == 0.9


@pytest.mark.parametrize("mode", ["none", "threshold", "threshold+block"])
def test_changes_in_a_driven_run_stay_within_floor_and_range(mode: str) -> None:
    scheduler = make_scheduler(load_control=mode, admission=False, max_refresh_rows=None)
    for i in range(8):
        s = spec(f"r{i}", deadline=0.02 + 0.01 * i, floor=0.6, canvas=128, block=16,
                 block_range=(16, 64), best_effort=True)
        assert scheduler.submit(s, 0.0).accepted
    engine = FakeEngine(scheduler.limits, jitter=0.2)
    events, _ = drive(scheduler, engine)
    assert len(events) == 8
    changes = [c for plan in engine.history for c in plan.changes]
    admitted = [a.settings for plan in engine.history for a in plan.admit]
    thresholds = [c.threshold for c in changes if c.threshold is not None]
    thresholds += [s.threshold for s in admitted]
    blocks = [c.block_size for c in changes if c.block_size is not None]
    if mode == "none":
        assert not changes and set(thresholds) == {0.9}
    else:
        assert min(thresholds) >= 0.6 and min(thresholds) < 0.9
        assert all(e.threshold >= 0.6 for e in events)
    if mode == "threshold+block":
        assert blocks and all(16 <= b <= 64 for b in blocks)
    else:
        assert not blocks
