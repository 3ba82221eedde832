"""The engine through the Triton kernels (interpreted) decodes what it decodes through torch."""

from __future__ import annotations

import random

import torch

from dilaserve.core.steps import AdmitRow, DecodeSettings
from tests.conftest import make_random_model
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.runner import run_to_completion


def _requests(seed: int) -> list[AdmitRow]:
    rng = random.Random(seed)
    out = []
    for i, mode in enumerate(["dual", "prefix", "none", "dual", "dual"]):
        settings = DecodeSettings(
            threshold=rng.choice([0.3, 0.6]), block_size=8, cache_mode=mode, seed=i
        )
        prompt = tuple(rng.randrange(3, 40) for _ in range(rng.randint(3, 40)))  # ragged rows
        out.append(AdmitRow(f"r{i}", prompt, 8 * rng.randint(1, 2), settings))
    return out


def _decode(model, requests):
    engine = DenoisingEngine(model, EngineConfig(max_rows=4))
    report = run_to_completion(engine, requests, batch_size=4)
    return {rid: c.output_ids for rid, c in report.completions.items()}


def test_engine_outputs_match_between_triton_and_torch_paths(force_triton, monkeypatch):
    calls = {"head": 0, "attention": 0}
    head, attention = force_triton.head, force_triton.attention
    real_head, real_attention = head.masked_head_triton, attention.block_attention_triton

    def counted(name, fn):
        def wrapper(*args):
            calls[name] += 1
            return fn(*args)

        return wrapper

    monkeypatch.setattr(head, "masked_head_triton", counted("head", real_head))
    monkeypatch.setattr(attention, "block_attention_triton", counted("attention", real_attention))
    model = make_random_model(num_kv_heads=2, seed=3)
    requests = _requests(seed=1)
    fused = _decode(model, requests)
    assert calls["head"] > 0 and calls["attention"] > 0
    monkeypatch.setenv("DILASERVE_KERNELS", "torch")
    before = dict(calls)
    plain = _decode(model, requests)
    assert calls == before  # the torch run touched no kernel
    assert fused == plain


def test_cached_block_step_hidden_states_match(force_triton, monkeypatch):
    model = make_random_model(num_kv_heads=1, seed=4)
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    lengths = [30, 17, 24]
    tokens = torch.randint(3, cfg.vocab_size, (3, 30), generator=g)
    positions = torch.arange(30).expand(3, 30)
    key_mask = torch.arange(31)[None, :] < torch.tensor(lengths)[:, None]
    shape = (3, cfg.num_kv_heads, 31, cfg.head_dim)

    def step(mode: str) -> torch.Tensor:
        monkeypatch.setenv("DILASERVE_KERNELS", mode)
        ws = [(torch.zeros(shape), torch.zeros(shape)) for _ in range(cfg.num_layers)]
        with torch.inference_mode():
            model.hidden_states(tokens, positions, key_mask, ws)  # refresh
            block = slice(8, 16)
            return model.hidden_states(tokens[:, block], positions[:, block], key_mask, ws)

    torch.testing.assert_close(step("triton"), step("torch"), rtol=1e-5, atol=1e-5)
