import json

import pytest
import torch

from tests.conftest import make_random_model
from worker.models.checkpoint import load_model, read_config, save_llada_format, save_model
from worker.models.tokenizer import CharTokenizer


def _same_outputs(a, b):
    tokens = torch.randint(
        3, a.config.vocab_size, (2, 30), generator=torch.Generator().manual_seed(1)
    )
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(a(tokens, mask), b(tokens, mask))


def test_native_round_trip(tmp_path):
    model = make_random_model(seed=5)
    save_model(model, tmp_path, CharTokenizer())
    assert read_config(tmp_path)[1] == "dilaserve"
    _same_outputs(model, load_model(tmp_path))


def test_llada_format_loads_with_llada_names_and_config_keys(tmp_path):
    model = make_random_model(num_kv_heads=2, seed=6)
    save_llada_format(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llada" and "d_model" in config and "n_kv_heads" in config
    from safetensors import safe_open

    names = set()
    for shard in tmp_path.glob("*.safetensors"):
        with safe_open(str(shard), framework="pt") as f:
            names |= set(f.keys())
    assert "model.transformer.blocks.0.attn_out.weight" in names
    assert "model.transformer.blocks.1.up_proj.weight" in names
    assert "model.transformer.wte.weight" in names and "model.transformer.ff_out.weight" in names
    loaded = load_model(tmp_path)
    assert read_config(tmp_path)[1] == "llada"
    assert loaded.config.num_kv_heads == 2
    _same_outputs(model, loaded)


def test_a_shard_the_index_names_missing_is_named(tmp_path):
    save_llada_format(make_random_model(), tmp_path)
    (tmp_path / "model-00001-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks 1 of the 2 shards .* "
                                                "model-00001-of-00002.safetensors"):
        load_model(tmp_path)


def test_missing_tensor_is_a_clear_error(tmp_path):
    model = make_random_model()
    save_llada_format(model, tmp_path)
    next(iter(sorted(tmp_path.glob("*.safetensors")))).unlink()
    (tmp_path / "model.safetensors.index.json").unlink()  # no index to name the shard
    with pytest.raises(ValueError, match="lacks .* tensors"):
        load_model(tmp_path)


def test_shape_mismatch_and_missing_config_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path)
    model = make_random_model()
    save_model(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["hidden_size"] = 32
    cfg["intermediate_size"] = 64
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="shape"):
        load_model(tmp_path)


def test_bad_config_values_name_the_field():
    from worker.models.config import ModelConfig

    with pytest.raises(ValueError, match="num_heads must be a multiple of num_kv_heads"):
        ModelConfig(
            vocab_size=10,
            hidden_size=32,
            num_layers=1,
            num_heads=4,
            num_kv_heads=3,
            intermediate_size=8,
            max_seq_len=8,
            mask_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
