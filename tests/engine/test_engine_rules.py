"""The engine's contract: limits, early stop, settings changes, eviction, bad input."""

import pytest

from dilaserve.core.steps import (
    AdmitRow,
    DecodeSettings,
    FinishReason,
    Phase,
    SettingsChange,
    StepPlan,
)
from worker.engine.engine import DenoisingEngine, EngineConfig, EngineFullError


def admit(rid, prompt_len=10, canvas=16, **settings):
    settings.setdefault("block_size", 8)
    return AdmitRow(
        rid, tuple(3 + i % 30 for i in range(prompt_len)), canvas, DecodeSettings(**settings)
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": 0.0}, "threshold must be in"),
        ({"threshold": 1.5}, "threshold must be in"),
        ({"rule": "greedy"}, "unknown commit rule"),
        ({"cache_mode": "paged"}, "unknown cache mode"),
        ({"rule": "topk", "rule_param": 0}, "topk needs"),
        ({"block_size": 0}, "block_size must be positive"),
    ],
)
def test_bad_settings_are_clear_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecodeSettings(**kwargs)


def test_bad_requests_are_clear_value_errors():
    with pytest.raises(ValueError, match="prompt is empty"):
        AdmitRow("x", (), 16)
    with pytest.raises(ValueError, match="not a multiple of block size"):
        AdmitRow("x", (5,), 20, DecodeSettings(block_size=8))
    with pytest.raises(ValueError, match="canvas length must be positive"):
        AdmitRow("x", (5,), 0)


def test_engine_refuses_beyond_row_and_token_limits(random_model):
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=2, max_tokens=60))
    engine.step(StepPlan(admit=(admit("a", block_size=8),)))
    with pytest.raises(EngineFullError, match="engine full"):
        engine.step(StepPlan(admit=(admit("b", prompt_len=40, block_size=8),)))
    engine.step(StepPlan(admit=(admit("c", block_size=8),)))
    with pytest.raises(EngineFullError, match="2/2 rows"):
        engine.step(StepPlan(admit=(admit("d", block_size=8),)))
    assert engine.limits.max_rows == 2 and engine.rows_in_flight == 2


def test_engine_rejects_unknown_rows_long_prompts_and_bad_ids(random_model):
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=2))
    with pytest.raises(ValueError, match="no row 'ghost'"):
        engine.step(StepPlan(run=("ghost",)))
    with pytest.raises(ValueError, match="exceeds the engine's limit"):
        engine.step(StepPlan(admit=(admit("a", prompt_len=200, block_size=8),)))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.step(StepPlan(admit=(AdmitRow("b", (3, 999), 8, DecodeSettings(block_size=8)),)))


def test_phases_and_early_stop_at_eos(random_model):
    eos = random_model.config.eos_token_id
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=1))
    engine.step(StepPlan(admit=(admit("a", canvas=32, block_size=8, threshold=0.05),)))
    phases, out = [], None
    while out is None or not out.done:
        out = engine.step(StepPlan(run=("a",))).outcomes[0]
        phases.append(out.phase)
    assert phases[0] is Phase.REFRESH
    assert engine.rows_in_flight == 0  # done rows are freed
    if out.finish_reason is FinishReason.EOS:
        assert eos not in out.output_ids
    assert len(out.output_ids) <= 32


def test_threshold_change_applies_now_and_block_change_at_next_block(random_model):
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=1))
    engine.step(StepPlan(admit=(admit("a", canvas=32, block_size=8, rule="topk"),)))
    engine.step(StepPlan(run=("a",), changes=(SettingsChange("a", block_size=16),)))
    row = engine._rows["a"]
    assert (row.block_start, row.block_end) == (10, 18)  # the current block keeps its size
    while engine._rows["a"].block_start == 10:
        engine.step(StepPlan(run=("a",)))
    assert (row.block_start, row.block_end) == (18, 34)
    engine.step(StepPlan(run=("a",), changes=(SettingsChange("a", threshold=0.5),)))
    assert row.threshold == 0.5


def test_evicting_a_row_frees_its_slot_and_keeps_others_intact(random_model):
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=3))
    engine.step(
        StepPlan(
            admit=(admit("a"), admit("b", prompt_len=20), admit("c", prompt_len=5)),
            run=("a", "b", "c"),
        )
    )
    engine.step(StepPlan(evict=("a", "missing-is-fine")))
    assert engine.rows_in_flight == 2 and engine.tokens_in_flight == 36 + 21
    assert sorted(r.slot for r in engine._rows.values()) == [0, 1]


def _drive(engine: DenoisingEngine, rows: list[AdmitRow]) -> dict:
    """Step every row to its end; each row's final outcome."""
    ends, running = {}, [r.request_id for r in rows]
    plan = StepPlan(admit=tuple(rows), run=tuple(running))
    while running:
        result = engine.step(plan)
        for outcome in result.outcomes:
            if outcome.done:
                ends[outcome.request_id] = outcome
        running = [rid for rid in running if rid not in ends]
        plan = StepPlan(run=tuple(running))
    return ends


@pytest.mark.parametrize("temperature", [1e-300, 1e-45])
def test_a_row_whose_probabilities_are_not_finite_ends_alone(random_model, temperature):
    """Temperatures the service refuses (the guard behind that check): the broken row ends with
    an error and nothing committed; its batch-mates finish exactly as they do alone."""
    normal = [admit("a", seed=1), admit("b", prompt_len=14, temperature=0.7, seed=2)]
    alone = _drive(DenoisingEngine(random_model, EngineConfig(max_rows=3)), normal)
    broken = admit("x", temperature=temperature)
    together = _drive(DenoisingEngine(random_model, EngineConfig(max_rows=3)), [*normal, broken])
    assert together["x"].error.startswith("the model's token probabilities for this request "
                                          "were not finite") and together["x"].committed == 0
    for rid in ("a", "b"):
        assert not together[rid].error
        assert together[rid].output_ids == alone[rid].output_ids
