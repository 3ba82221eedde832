"""Loading straight into the target dtype and device: no random initialisation, one tensor at a
time, read without mapping the file; the slices a tensor-parallel rank reads; clear errors for a
directory without weights or with a broken file."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

from tests.conftest import make_random_model
from worker.models import checkpoint
from worker.models.checkpoint import load_model, save_llada_format, save_model
from worker.models.safetensors_file import SafetensorsFile
from worker.models.transformer import DiffusionTransformer


def _file_tensors(directory) -> dict[str, torch.Tensor]:
    out = {}
    for shard in sorted(directory.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            out |= {k: f.get_tensor(k) for k in f.keys()}
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_every_weight_is_the_file_tensor_cast_once(tmp_path, dtype):
    model = make_random_model(seed=2)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, dtype=dtype)
    stored = _file_tensors(tmp_path)
    for name, param in loaded.named_parameters():
        assert param.dtype == dtype and param.device.type == "cpu", name
        torch.testing.assert_close(param.data, stored[name].to(dtype), rtol=0, atol=0)
    # rotary embeddings are built in full precision on the target device (LLaDA's
    # rope_full_precision) and cast per use; the outputs match the float32 model's
    assert loaded.rotary.cos.dtype == torch.float32 and not loaded.training
    tokens = torch.randint(3, 40, (2, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens, mask).float(), model(tokens, mask),
                                   rtol=0.05, atol=0.05)


def test_the_model_is_built_without_storage_and_never_randomly_initialised(tmp_path, monkeypatch):
    save_llada_format(make_random_model(seed=3), tmp_path)
    initialised = []
    for name in ("kaiming_uniform_", "normal_", "uniform_"):
        real = getattr(torch.nn.init, name)

        def record(tensor, *args, _real=real, **kwargs):
            initialised.append(tensor.device.type)
            return _real(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.nn.init, name, record)
    loaded = load_model(tmp_path, dtype=torch.bfloat16)
    assert initialised and set(initialised) == {"meta"}  # nn.Linear's init ran on meta only
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_tied_embeddings_share_one_tensor(tmp_path):
    model = make_random_model(seed=4)
    cfg = dataclasses.replace(model.config, tie_embeddings=True)
    tied = DiffusionTransformer(cfg)
    save_model(tied, tmp_path)
    loaded = load_model(tmp_path, dtype=torch.bfloat16)
    assert loaded.lm_head.weight is loaded.embed.weight
    assert loaded.embed.weight.dtype == torch.bfloat16


def test_no_weights_is_named_before_anything_is_allocated(tmp_path, monkeypatch):
    save_llada_format(make_random_model(), tmp_path)
    for shard in tmp_path.glob("*.safetensors"):
        shard.unlink()

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was built before the weights were found")

    monkeypatch.setattr(checkpoint, "empty_model", refuse)
    with pytest.raises(FileNotFoundError, match=f"no \\*.safetensors in {tmp_path}"):
        load_model(tmp_path)


def test_a_truncated_shard_is_a_clear_error(tmp_path):
    save_model(make_random_model(), tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated or misdescribed"):
        load_model(tmp_path)
    path.write_bytes(b"\x00" * 4)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_model(tmp_path)


def test_reader_matches_safetensors_whole_and_sliced(tmp_path):
    save_model(make_random_model(seed=5), tmp_path)
    path = str(tmp_path / "model.safetensors")
    with safe_open(path, framework="pt") as ref, SafetensorsFile(path) as f:
        assert sorted(f.keys()) == sorted(ref.keys())
        for key in ref.keys():
            torch.testing.assert_close(f.get_tensor(key), ref.get_tensor(key), rtol=0, atol=0)
        key = "blocks.0.mlp.down_proj.weight"  # [64, 128]
        ours, theirs = f.get_slice(key), ref.get_slice(key)
        assert ours.get_shape() == list(theirs.get_shape())
        for index in (slice(16, 48), (slice(None), slice(64, 128)), (slice(None), slice(0, 1))):
            torch.testing.assert_close(ours[index], theirs[index], rtol=0, atol=0)
        with pytest.raises(TypeError, match="only"):
            ours[0, 1]


def test_an_index_without_a_weight_map_is_named(tmp_path):
    save_llada_format(make_random_model(), tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match="has no weight_map"):
        load_model(tmp_path)
