from __future__ import annotations

import pytest

from dilaserve.core.steps import (
    AdmitRow,
    DecodeSettings,
    EngineLimits,
    FinishReason,
    Phase,
    SettingsChange,
    StepPlan,
)
from sim.engine import QualityTable, RequestTruth, SimulatedEngine
from solver.published import quality_profile, step_cost_profile

LIMITS = EngineLimits(max_rows=64, max_tokens=200_000, max_seq_len=4096)
QUALITY = QualityTable(quality_profile())
COST = step_cost_profile().cost


def admit(rid: str, canvas: int = 256, tau: float = 0.9, prompt: int = 100) -> AdmitRow:
    return AdmitRow(rid, (1,) * prompt, canvas, DecodeSettings(threshold=tau, block_size=32))


def engine(truths: dict[str, RequestTruth], seed: int = 0, jitter: float = 0.0):
    return SimulatedEngine(COST, QUALITY, LIMITS, truths, seed, jitter)


def run_to_end(eng: SimulatedEngine, rows: list[AdmitRow]) -> tuple[int, list, float]:
    plan = StepPlan(admit=tuple(rows), run=tuple(r.request_id for r in rows))
    steps, outcomes, elapsed = 0, [], 0.0
    while plan.run:
        result = eng.step(plan)
        steps += 1
        elapsed += result.elapsed_s
        outcomes.extend(result.outcomes)
        plan = StepPlan(run=tuple(o.request_id for o in result.outcomes if not o.done))
    return steps, outcomes, elapsed


@pytest.mark.parametrize("tau", [0.5, 0.7, 0.9, 1.0])
def test_tokens_per_step_match_the_quality_profile(tau):
    rows = [admit(f"r{i}", 512, tau) for i in range(40)]
    eng = engine({r.request_id: RequestTruth(512) for r in rows}, seed=1)
    _, outcomes, _ = run_to_end(eng, rows)
    committed = sum(o.committed for o in outcomes)
    per_row_steps = len(outcomes) / len(rows)
    assert committed == 40 * 512
    expected = quality_profile().at(tau, 32).tokens_per_step
    assert 512 / per_row_steps == pytest.approx(expected, rel=0.04)


def test_refresh_at_each_block_start_and_finish_reasons():
    rows = [admit("known", 64), admit("eos", 256)]
    truths = {"known": RequestTruth(64), "eos": RequestTruth(96)}
    eng = engine(truths)
    _, outcomes, _ = run_to_end(eng, rows)
    known = [o for o in outcomes if o.request_id == "known"]
    eos = [o for o in outcomes if o.request_id == "eos"]
    assert sum(o.phase is Phase.REFRESH for o in known) == 2  # two blocks of 32
    assert known[-1].finish_reason is FinishReason.LENGTH
    assert eos[-1].finish_reason is FinishReason.EOS and eos[-1].masked_left == 0
    assert sum(o.committed for o in eos) == 96  # stops when the block holding EOS completes
    assert eng.finished["eos"][0] == pytest.approx(quality_profile().at(0.9, 32).accuracy)
    assert eng.rows == {} and eng.tokens_in_use == 0


def test_step_time_is_the_cost_model_and_deterministic():
    rows = [admit(f"r{i}", 128) for i in range(8)]
    truths = {r.request_id: RequestTruth(128, 0.8 + 0.05 * i) for i, r in enumerate(rows)}
    a = run_to_end(engine(truths, seed=5, jitter=0.05), rows)
    b = run_to_end(engine(truths, seed=5, jitter=0.05), rows)
    assert a == b
    plain = engine(truths)
    first = plain.step(StepPlan(admit=tuple(rows), run=tuple(r.request_id for r in rows)))
    assert first.elapsed_s == pytest.approx(COST.predict(first.features))
    assert first.features.forwards == 1 and first.features.refresh_tokens == 8 * 228


def test_threshold_change_speeds_up_the_rest_of_the_block():
    truths = {"r": RequestTruth(256)}
    eng = engine(truths)
    eng.step(StepPlan(admit=(admit("r", 256, 1.0),), run=("r",)))
    slow = eng.step(StepPlan(run=("r",))).outcomes[0].committed
    fast = eng.step(StepPlan(run=("r",), changes=(SettingsChange("r", threshold=0.5),)))
    assert slow == 1 and fast.outcomes[0].committed > 1


def test_limits_and_unknown_rows_are_errors():
    eng = engine({"r": RequestTruth(64)})
    with pytest.raises(ValueError, match="unknown row"):
        eng.step(StepPlan(evict=("nope",)))
    small = SimulatedEngine(COST, QUALITY, EngineLimits(1, 10_000, 4096),
                            {"a": RequestTruth(64), "b": RequestTruth(64)})
    with pytest.raises(ValueError, match="exceed"):
        small.step(StepPlan(admit=(admit("a", 64), admit("b", 64)), run=("a", "b")))
