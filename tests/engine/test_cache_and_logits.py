"""Cache refresh equals a full forward; cached block steps equal it while nothing changed;
the LM head only ever sees still-masked positions of current blocks, with the full values."""

import torch

from dilaserve.core.steps import AdmitRow, DecodeSettings, StepPlan
from worker.engine.engine import DenoisingEngine, EngineConfig


def _inputs(model, length: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, model.config.vocab_size, (1, length), generator=g)
    tokens[0, length // 2 :] = model.config.mask_token_id
    positions = torch.arange(length)[None]
    return tokens, positions, torch.ones(1, length, dtype=torch.bool)


def _workspace(model, keys: int):
    cfg = model.config
    shape = (1, cfg.num_kv_heads, keys, cfg.head_dim)
    return [(torch.zeros(shape), torch.zeros(shape)) for _ in range(cfg.num_layers)]


def test_refresh_through_workspace_equals_plain_full_forward(random_model):
    tokens, positions, mask = _inputs(random_model, 48)
    with torch.no_grad():
        plain = random_model.hidden_states(tokens, positions, mask)
        ws = _workspace(random_model, 49)
        key_mask = torch.zeros(1, 49, dtype=torch.bool)
        key_mask[0, :48] = True
        cached = random_model.hidden_states(tokens, positions, key_mask, ws)
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-5)


def test_block_steps_equal_full_forward_when_nothing_changed(random_model):
    tokens, positions, mask = _inputs(random_model, 48)
    key_mask = torch.zeros(1, 49, dtype=torch.bool)
    key_mask[0, :48] = True
    block = slice(24, 32)
    with torch.no_grad():
        full = random_model.hidden_states(tokens, positions, mask)
        ws = _workspace(random_model, 49)
        random_model.hidden_states(tokens, positions, key_mask, ws)  # refresh
        dual = random_model.hidden_states(tokens[:, block], positions[:, block], key_mask, ws)
        suffix = slice(24, 48)  # prefix cache: the block and everything after it are queries
        prefix = random_model.hidden_states(tokens[:, suffix], positions[:, suffix], key_mask, ws)
    torch.testing.assert_close(dual, full[:, block], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(prefix, full[:, suffix], rtol=1e-5, atol=1e-5)


def test_engine_refresh_fills_pool_with_full_forward_kv(random_model):
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=2))
    prompt = tuple(range(3, 23))
    engine.step(StepPlan(admit=(AdmitRow("a", prompt, 16, DecodeSettings(block_size=8)),)))
    tokens = torch.tensor([list(prompt) + [random_model.config.mask_token_id] * 16])
    ws = _workspace(random_model, 37)
    key_mask = torch.zeros(1, 37, dtype=torch.bool)
    key_mask[0, :36] = True
    with torch.no_grad():
        random_model.hidden_states(tokens, torch.arange(36)[None], key_mask, ws)
    engine.step(StepPlan(run=("a",)))
    for layer, (k, v) in enumerate(ws):
        torch.testing.assert_close(engine.pool.k[layer, 0, :, :20], k[0, :, :20])
        torch.testing.assert_close(engine.pool.v[layer, 0, :, :20], v[0, :, :20])


class LogitsSpy:
    def __init__(self, model):
        self.model, self.calls = model, []
        self.inner = model.logits

    def __call__(self, hidden):
        out = self.inner(hidden)
        self.calls.append((hidden.detach().clone(), out.detach().clone()))
        return out


def test_logits_only_for_masked_block_positions_and_equal_full_logits(random_model, monkeypatch):
    spy = LogitsSpy(random_model)
    monkeypatch.setattr(random_model, "logits", spy)
    engine = DenoisingEngine(random_model, EngineConfig(max_rows=2))
    prompts = {"a": tuple(range(3, 20)), "b": tuple(range(5, 40))}
    admits = tuple(
        AdmitRow(rid, p, 32, DecodeSettings(block_size=8, threshold=0.3))
        for rid, p in prompts.items()
    )
    mask_id = random_model.config.mask_token_id
    full_inputs = {rid: torch.tensor(list(p) + [mask_id] * 32) for rid, p in prompts.items()}
    engine.step(StepPlan(admit=admits, run=("a", "b")))
    ((hidden, logits),) = spy.calls
    assert logits.shape == (16, random_model.config.vocab_size)  # 8 masked rows per block, 2 rows
    with torch.no_grad():
        expected = []
        for rid, p in prompts.items():
            seq = full_inputs[rid][None]
            full = spy.inner(
                random_model.hidden_states(
                    seq, torch.arange(seq.shape[1])[None], torch.ones_like(seq, dtype=torch.bool)
                )
            )
            expected.append(full[0, len(p) : len(p) + 8])
    torch.testing.assert_close(logits, torch.cat(expected), rtol=1e-4, atol=1e-4)
    # the next step sees exactly the positions its rows still have masked in their blocks
    rows = [engine._rows[r] for r in ("a", "b")]
    masked = sum(int((r.tokens[r.block_start : r.block_end] == mask_id).sum()) for r in rows)
    engine.step(StepPlan(run=("a", "b")))
    assert sum(out.shape[0] for _, out in spy.calls[1:]) == masked  # one call per phase group
