from __future__ import annotations

import pytest
import torch

from worker.models.config import ModelConfig
from worker.models.transformer import DiffusionTransformer


def make_random_model(
    num_kv_heads: int = 2, seed: int = 0, sharpen: float = 3.0, max_seq_len: int = 160
) -> DiffusionTransformer:
    """A small random model; `sharpen` scales the LM head so confidences spread over (0, 1)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=40,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=num_kv_heads,
        intermediate_size=128,
        max_seq_len=max_seq_len,
        mask_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        name="random-test",
    )
    model = DiffusionTransformer(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model


@pytest.fixture(scope="session")
def random_model() -> DiffusionTransformer:
    return make_random_model()
