"""Batched stepping over heterogeneous rows gives each row exactly what it gets decoded alone."""

import random

import pytest

from dilaserve.core.steps import AdmitRow, DecodeSettings, StepPlan
from tests.conftest import make_random_model
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.runner import run_to_completion


def mixed_requests(n: int, seed: int, temperature: float = 0.0) -> list[AdmitRow]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        block = rng.choice([4, 8, 16])
        rule = rng.choice(["threshold", "threshold", "factor", "topk"])
        settings = DecodeSettings(
            threshold=rng.choice([0.1, 0.3, 0.6, 0.9]),
            block_size=block,
            rule=rule,
            rule_param={"factor": 0.6, "topk": 2}.get(rule),
            cache_mode=rng.choice(["none", "prefix", "dual"]),
            temperature=temperature,
            seed=i,
        )
        prompt = tuple(rng.randrange(3, 40) for _ in range(rng.randint(1, 70)))
        out.append(AdmitRow(f"r{i}", prompt, block * rng.randint(1, 4), settings))
    return out


def decode_alone(model, requests):
    results = {}
    for r in requests:
        engine = DenoisingEngine(model, EngineConfig(max_rows=1))
        results[r.request_id] = run_to_completion(engine, [r], 1).completions[r.request_id]
    return results


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_continuous_batching_equals_alone(random_model, temperature):
    requests = mixed_requests(14, seed=1, temperature=temperature)
    alone = decode_alone(random_model, requests)
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=6))
    batched = run_to_completion(engine, requests, batch_size=5).completions
    for r in requests:
        assert batched[r.request_id].output_ids == alone[r.request_id].output_ids, r
        assert batched[r.request_id].forwards == alone[r.request_id].forwards, r


def test_any_schedule_of_subsets_equals_alone():
    """Rows run in random subsets (non-contiguous slots, mixed phases) still decode as alone."""
    model = make_random_model(num_kv_heads=4, seed=3)
    requests = mixed_requests(8, seed=2)
    alone = decode_alone(model, requests)
    engine = DenoisingEngine(model, EngineConfig(max_rows=8))
    rng = random.Random(0)
    live = [r.request_id for r in requests]
    outputs = {}
    engine.step(StepPlan(admit=tuple(requests)))
    while live:
        subset = tuple(sorted(rng.sample(live, rng.randint(1, len(live)))))
        for out in engine.step(StepPlan(run=subset)).outcomes:
            if out.done:
                outputs[out.request_id] = out.output_ids
                live.remove(out.request_id)
    assert outputs == {rid: c.output_ids for rid, c in alone.items()}
