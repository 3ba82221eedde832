"""Each rank loads exactly its slices (read as slices) in both checkpoint formats, and the
slices' summed partial outputs equal the full model's."""

from __future__ import annotations

import threading

import pytest
import torch
from safetensors import safe_open

from dilaserve.core.locations import SHIPPED_MODEL_DIR
from tests.conftest import make_random_model
from worker.models.checkpoint import load_model, save_llada_format, save_model
from worker.models.transformer import DiffusionTransformer
from worker.parallel.loading import load_shard, read_slice
from worker.parallel.rank0 import start_rank0

ROWS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")  # output rows split
COLUMNS = ("o_proj", "down_proj")  # input columns split


def _expected_slice(name: str, full: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    part = name.split(".")[-2] if name.startswith("blocks.") else ""
    if part in ROWS:
        n = full.shape[0] // size
        return full[rank * n : (rank + 1) * n]
    if part in COLUMNS:
        n = full.shape[1] // size
        return full[:, rank * n : (rank + 1) * n]
    return full


def _assert_is_slice_of(shard: DiffusionTransformer, full: DiffusionTransformer, rank, size):
    full_state = full.state_dict()
    state = shard.state_dict()
    assert set(state) == set(full_state)
    for name, tensor in state.items():
        torch.testing.assert_close(
            tensor, _expected_slice(name, full_state[name], rank, size), rtol=0, atol=0
        )


def _keep(t: torch.Tensor) -> torch.Tensor:
    return t


@pytest.mark.parametrize("rank", [0, 1])
def test_native_shards_are_the_full_weights_sliced(rank):
    full = load_model(SHIPPED_MODEL_DIR)
    shard = load_shard(SHIPPED_MODEL_DIR, rank, 2, _keep)
    assert shard.blocks[0].attn.num_heads == full.config.num_heads // 2
    _assert_is_slice_of(shard, full, rank, 2)


@pytest.mark.parametrize("rank", [0, 1])
def test_llada_format_shards_with_grouped_kv_heads_are_sliced(tmp_path, rank):
    model = make_random_model(num_kv_heads=2, seed=11)
    save_llada_format(model, tmp_path)
    shard = load_shard(tmp_path, rank, 2, _keep)
    assert shard.kv_heads == 1 and shard.blocks[0].attn.num_heads == 2
    _assert_is_slice_of(shard, load_model(tmp_path), rank, 2)


def test_split_tensors_are_read_as_slices_and_the_rest_whole(tmp_path):
    save_model(make_random_model(), tmp_path)
    calls = []

    class Recording:  # the real file handle, recording how it is read
        def __init__(self, f):
            self.f = f

        def get_tensor(self, key):
            calls.append(("whole", key))
            return self.f.get_tensor(key)

        def get_slice(self, key):
            calls.append(("slice", key))
            return self.f.get_slice(key)

    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        q, down, embed = (
            read_slice(1, 2, Recording(f), name, name)
            for name in (
                "blocks.0.attn.q_proj.weight", "blocks.1.mlp.down_proj.weight", "embed.weight"
            )
        )
    assert calls == [
        ("slice", "blocks.0.attn.q_proj.weight"),
        ("slice", "blocks.1.mlp.down_proj.weight"),
        ("whole", "embed.weight"),
    ]
    assert q.shape == (32, 64) and down.shape == (64, 64) and embed.shape == (40, 64)


class ThreadSum:
    """An all-reduce between threads in one process, one thread per shard."""

    def __init__(self, size: int) -> None:
        self.barrier = threading.Barrier(size)
        self.parts: list[torch.Tensor | None] = [None] * size

    def for_rank(self, rank: int):
        def reduce(partial: torch.Tensor) -> torch.Tensor:
            self.parts[rank] = partial.clone()
            self.barrier.wait()
            total = torch.stack(self.parts).sum(0)
            self.barrier.wait()
            return partial.copy_(total)

        return reduce


@pytest.mark.parametrize(("kv_heads", "size"), [(2, 2), (4, 4)])
def test_summed_shard_outputs_equal_the_full_model(tmp_path, kv_heads, size):
    full = make_random_model(num_kv_heads=kv_heads, seed=3)
    save_model(full, tmp_path)
    adder = ThreadSum(size)
    shards = [load_shard(tmp_path, r, size, adder.for_rank(r)) for r in range(size)]
    tokens = torch.randint(3, 40, (2, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    outputs: list[torch.Tensor | None] = [None] * size

    def run(rank: int) -> None:
        with torch.no_grad():
            outputs[rank] = shards[rank](tokens, mask)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with torch.no_grad():
        expected = full(tokens, mask)
    for out in outputs:
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_a_degree_that_does_not_divide_the_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="does not divide the model's num_heads"):
        load_shard(SHIPPED_MODEL_DIR, 0, 3, _keep)
    with pytest.raises(ValueError, match="does not divide"):  # before joining any group
        start_rank0(3, "tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="needs a reduce"):
        DiffusionTransformer(make_random_model().config, shards=2)
