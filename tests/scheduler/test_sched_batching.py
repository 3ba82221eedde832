from __future__ import annotations

import pytest
from sched_fakes import TRUE_COST, FakeEngine, drive, make_scheduler, spec

from dilaserve.core.steps import EngineLimits, Phase, RowShape, query_len, step_features
from worker.scheduler.batching import features_of


def submit_all(scheduler, n: int, **kwargs) -> None:
    for i in range(n):
        assert scheduler.submit(spec(f"r{i}", **kwargs), 0.0).accepted


@pytest.mark.parametrize("ordering", ["fcfs", "edf"])
def test_row_limit_is_respected_and_everything_finishes(ordering: str) -> None:
    limits = EngineLimits(max_rows=3, max_tokens=4096, max_seq_len=256)
    scheduler = make_scheduler(limits, ordering=ordering, max_refresh_rows=None)
    submit_all(scheduler, 10)
    first = scheduler.plan(0.0)
    assert len(first.admit) == 3 and set(first.run) == {a.request_id for a in first.admit}
    engine = FakeEngine(limits)  # asserts max_rows and max_tokens on every step
    events, _ = drive(scheduler, engine, now=engine_step(scheduler, engine, first))
    assert len(events) == 10 and all(e.kind.value == "finished" for e in events)


def engine_step(scheduler, engine, plan) -> float:
    result = engine.step(plan)
    assert not scheduler.observe(result, result.elapsed_s)
    return result.elapsed_s


def test_token_limit_is_respected() -> None:
    limits = EngineLimits(max_rows=8, max_tokens=200, max_seq_len=256)  # two rows of 96 fit
    scheduler = make_scheduler(limits, max_refresh_rows=None)
    submit_all(scheduler, 5)
    engine = FakeEngine(limits)
    events, _ = drive(scheduler, engine)
    assert len(events) == 5
    assert max(len(p.admit) for p in engine.history) == 2


@pytest.mark.parametrize("bound", [1, 2, 3])
def test_refresh_rows_per_step_stay_within_the_bound(bound: int) -> None:
    scheduler = make_scheduler(max_refresh_rows=bound, max_refresh_deferrals=100)
    submit_all(scheduler, 8, block=8)
    engine = FakeEngine(scheduler.limits, seed=bound)
    now, refresh_counts = 0.0, []
    while scheduler.active_count:
        plan = scheduler.plan(now)
        result = engine.step(plan)
        refresh_counts.append(sum(o.phase is Phase.REFRESH for o in result.outcomes))
        now += result.elapsed_s
        scheduler.observe(result, now)
    assert max(refresh_counts) == bound
    assert engine.admitted_total == 8


def test_refresh_token_budget_bounds_padded_refresh_tokens() -> None:
    scheduler = make_scheduler(max_refresh_rows=None, refresh_token_budget=300)
    submit_all(scheduler, 8)  # rows of 96 tokens: three fit in 300
    engine = FakeEngine(scheduler.limits)
    now = 0.0
    while scheduler.active_count:
        result = engine.step(scheduler.plan(now))
        assert result.features.refresh_tokens <= 300
        now += result.elapsed_s
        scheduler.observe(result, now)


def test_deferred_refresh_rows_are_not_starved() -> None:
    scheduler = make_scheduler(max_refresh_rows=1, max_refresh_deferrals=2, ordering="edf")
    for i in range(6):  # the later ones are ever more urgent: edf alone would keep them first
        assert scheduler.submit(spec(f"r{i}", deadline=10.0 - i, block=8), 0.0).accepted
    engine = FakeEngine(scheduler.limits)
    now, waited = 0.0, {}
    while scheduler.active_count:
        plan = scheduler.plan(now)
        for rid in scheduler.resident_ids:
            waited[rid] = 0 if rid in plan.run else waited.get(rid, 0) + 1
            # at most the deferral cap, then behind the other rows that reached it too
            assert waited[rid] <= 2 + 5
        result = engine.step(plan)
        now += result.elapsed_s
        scheduler.observe(result, now)


def test_rows_without_cache_run_every_step_outside_the_bound() -> None:
    scheduler = make_scheduler(max_refresh_rows=1)
    submit_all(scheduler, 4, cache_mode="none")
    engine = FakeEngine(scheduler.limits)
    now = 0.0
    plan = scheduler.plan(now)
    assert len(plan.run) == 1  # admissions are refreshes and count against the bound
    while scheduler.active_count:
        result = engine.step(plan)
        now += result.elapsed_s
        scheduler.observe(result, now)
        plan = scheduler.plan(now)
        assert set(scheduler.resident_ids) <= set(plan.run)


def test_planned_features_match_the_contract_and_the_engine() -> None:
    scheduler = make_scheduler(max_refresh_rows=2)
    submit_all(scheduler, 3, block=8)
    assert scheduler.submit(spec("p", cache_mode="prefix", prompt=48, block=8), 0.0).accepted
    engine = FakeEngine(scheduler.limits)
    now = 0.0
    while scheduler.active_count:
        plan = scheduler.plan(now)
        rows = [scheduler.state(rid) for rid in plan.run]
        shapes = []
        for s in rows:
            prompt = len(s.spec.prompt_ids)
            start = prompt + s.block_start
            shapes.append(RowShape(s.seq_len, query_len(s.next_phase, s.spec.settings.cache_mode,
                                                        s.seq_len, start, start + s.block_size),
                                   s.next_phase))
        assert features_of(rows) == step_features(shapes)
        result = engine.step(plan)
        assert result.features == step_features(shapes)
        assert scheduler.last_predicted_step_s == pytest.approx(TRUE_COST.predict(result.features))
        now += result.elapsed_s
        scheduler.observe(result, now)
