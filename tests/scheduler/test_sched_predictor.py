from __future__ import annotations

import pytest
from sched_fakes import LIMITS, TRUE_COST, FakeEngine, drive, make_quality, make_scheduler, spec

from dilaserve.core.steps import Phase, RowShape, step_features
from worker.scheduler import RequestState, SchedulerConfig
from worker.scheduler.load_control import ladders
from worker.scheduler.predictor import BatchShape, Predictor


def fresh(predictor: Predictor, **spec_args) -> RequestState:
    s = spec("a", **spec_args)
    state = RequestState(s, *ladders(s, SchedulerConfig()))
    predictor.update(state)
    return state


def test_fresh_request_needs_a_refresh_per_block_and_its_blocks_worth_of_steps() -> None:
    predictor = Predictor(make_quality(), TRUE_COST)
    state = fresh(predictor, canvas=64, block=16, threshold=0.7)
    rate = predictor.prior_rate(0.7, 16)
    assert state.steps_left == pytest.approx(64 / rate)
    assert state.refresh_left == 4
    no_cache = fresh(predictor, canvas=64, block=16, threshold=0.7, cache_mode="none")
    assert no_cache.refresh_left == no_cache.steps_left


def test_mid_block_work_counts_the_block_remainder_and_the_blocks_after() -> None:
    predictor = Predictor(make_quality(), TRUE_COST)
    state = fresh(predictor, canvas=64, block=16, threshold=1.0)  # one token per step
    state.block_start, state.at_block_start, state.masked_left = 16, False, 40
    steps, refresh = predictor.work(state)
    assert steps == pytest.approx(40) and refresh == 2  # 8 left here, two blocks of 16 after
    steps_bigger, refresh_bigger = predictor.work(state, next_block=32)
    assert refresh_bigger == 1 and steps_bigger <= steps


def test_the_request_own_rate_corrects_the_profile_prior() -> None:
    predictor = Predictor(make_quality(), TRUE_COST, rate_prior_tokens=16)
    state = fresh(predictor, canvas=128, block=32, threshold=0.8)
    before = state.steps_left
    prior = predictor.prior_rate(0.8, 32)
    state.steps, state.expected_committed, state.committed = 8, 8 * prior, int(16 * prior)
    state.masked_left -= state.committed
    assert predictor.correction(state) > 1.5
    predictor.update(state)
    assert state.steps_left < before * (128 - state.committed) / 128


def test_batch_shape_prices_certain_phases_like_the_cost_model() -> None:
    reuse_only = BatchShape().with_row(0.0, 16, 96).with_row(0.0, 16, 80)
    features = step_features([RowShape(96, 16, Phase.REUSE), RowShape(80, 16, Phase.REUSE)])
    assert reuse_only.step_seconds(TRUE_COST.coef) == pytest.approx(TRUE_COST.predict(features))
    mixed = reuse_only.with_row(1.0, 0, 96)
    features = step_features([RowShape(96, 16, Phase.REUSE), RowShape(80, 16, Phase.REUSE),
                              RowShape(96, 96, Phase.REFRESH)])
    assert mixed.step_seconds(TRUE_COST.coef) == pytest.approx(TRUE_COST.predict(features))
    assert BatchShape().step_seconds(TRUE_COST.coef) == 0.0
    assert mixed.filled_to(6).rows == pytest.approx(6)


def test_predicted_remaining_time_tracks_a_fake_engine_run() -> None:
    """A closed loop of four rows (each finished request replaced): predict request r10's
    finish at its third step, then let it run."""
    scheduler = make_scheduler(load_control="none", admission=False)
    engine = FakeEngine(scheduler.limits, seed=5)
    now, made, predicted = 0.0, 0, None
    while True:
        while scheduler.active_count < 4:
            scheduler.submit(spec(f"r{made}", now, canvas=128, block=32, threshold=0.8), now)
            made += 1
        result = engine.step(scheduler.plan(now))
        now += result.elapsed_s
        events = scheduler.observe(result, now)
        state = scheduler.state("r10")
        if predicted is None and state is not None and state.steps == 3:
            shape = scheduler.predictor.shape_of(scheduler.state(r) for r in scheduler.resident_ids)
            predicted = now + state.steps_left * scheduler.predictor.step_seconds(shape)
        if any(e.request_id == "r10" for e in events):
            assert now == pytest.approx(predicted, rel=0.15)
            return


@pytest.mark.parametrize("speed", [3.0, 0.5])
def test_the_replica_learns_its_workload_speed_and_predicts_new_requests_with_it(speed) -> None:
    """A workload that commits `speed` times the profile's tokens per step: after a few
    requests the prior a new request is predicted with has moved to it, with memory on; with
    it off (speed_memory_steps 0) the profile stays the prior."""
    learned = make_scheduler(speed_memory_steps=512)
    fixed = make_scheduler(speed_memory_steps=0)
    for scheduler in (learned, fixed):
        engine = FakeEngine(LIMITS, seed=1, speed=speed)
        for i in range(12):
            scheduler.submit(spec(f"r{i}", canvas=64, block=16, threshold=0.8), 0.0)
        events, _ = drive(scheduler, engine)
    profile = fixed.predictor.prior_rate(0.8, 16)
    # what the engine did: the same mix in both runs (a block's last step commits what is left)
    measured = sum(e.committed for e in events) / sum(e.steps for e in events) / profile
    assert abs(measured - 1.0) > 0.4  # really unlike the profile
    assert learned.predictor.speed == pytest.approx(measured, rel=0.1)
    assert fixed.predictor.speed == 1.0
    assert learned.predictor.prior_rate(0.8, 16) == pytest.approx(profile * measured, rel=0.1)
    new = fresh(learned.predictor, canvas=64, block=16, threshold=0.8)
    assert new.steps_left == pytest.approx(64 / learned.predictor.prior_rate(0.8, 16))
