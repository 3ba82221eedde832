"""Block attention over cached K/V matches SDPA under the engine's key masks and pool layout.

K/V are views of a slot pool shaped like the engine's ([rows, Hkv, max_seq + 1, D], first K
columns of some slots) and queries are the model's transposed [B, T, H, D] projections, so the
kernel sees the strides it gets in the engine.
"""

from __future__ import annotations

import random

import pytest
import torch

from kernels import dispatch
from kernels.reference import block_attention_reference, key_mask_from_lengths


def _case(batch, heads, kv_heads, queries, keys, head_dim, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    pool_shape = (batch + 2, kv_heads, keys + 9, head_dim)
    pool_k = torch.randn(pool_shape, generator=g).to(dtype)
    pool_v = torch.randn(pool_shape, generator=g).to(dtype)
    k, v = pool_k[1 : batch + 1, :, :keys], pool_v[1 : batch + 1, :, :keys]
    q = torch.randn(batch, queries, heads, head_dim, generator=g).to(dtype).transpose(1, 2)
    lengths = torch.randint(1, keys + 1, (batch,), generator=g)
    lengths[0] = keys  # one row spans the whole workspace, as the longest row of a batch does
    return q, k, v, lengths


def _reference(q, k, v, lengths):
    mask = key_mask_from_lengths(lengths, k.shape[2])
    return block_attention_reference(q.float(), k.float(), v.float(), mask)


# (batch, heads, kv_heads, queries, keys, head_dim): GQA groups 1/2/4, a block of one query, blocks
# beyond one query tile, head dims that are not powers of two, keys off the key tile
SHAPES = [
    (3, 4, 2, 8, 49, 16),
    (2, 4, 4, 40, 130, 32),
    (1, 2, 1, 5, 7, 24),
    (4, 8, 2, 1, 70, 16),
    (2, 4, 1, 33, 65, 64),
]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float16, 3e-3)])
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_attention_matches_sdpa(triton_kernels, shape, dtype, tol):
    q, k, v, lengths = _case(*shape, dtype, seed=sum(shape))
    out = triton_kernels.attention.block_attention_triton(q, k, v, lengths)
    assert out.shape == q.shape and out.dtype == dtype
    torch.testing.assert_close(out.float(), _reference(q, k, v, lengths), rtol=tol, atol=tol)


def test_triton_attention_random_ragged_batches(triton_kernels):
    rng = random.Random(5)
    for case in range(5):
        kv_heads = rng.choice([1, 2])
        shape = (
            rng.randint(1, 4),
            kv_heads * rng.choice([1, 2, 3]),
            kv_heads,
            rng.randint(1, 20),
            rng.randint(1, 100),
            rng.choice([8, 16, 40]),
        )
        q, k, v, lengths = _case(*shape, torch.float32, seed=case)
        out = triton_kernels.attention.block_attention_triton(q, k, v, lengths)
        torch.testing.assert_close(out, _reference(q, k, v, lengths), rtol=1e-5, atol=1e-5)


def test_keys_past_a_rows_length_are_never_read(triton_kernels):
    q, k, v, lengths = _case(2, 4, 2, 8, 40, 16, torch.float32, seed=1)
    lengths[1] = 9
    before = triton_kernels.attention.block_attention_triton(q, k, v, lengths)
    k[1, :, 9:] = float("nan")
    v[1, :, 9:] = float("nan")
    after = triton_kernels.attention.block_attention_triton(q, k, v, lengths)
    assert torch.equal(before, after)


def test_output_is_laid_out_for_the_models_reshape(triton_kernels):
    q, k, v, lengths = _case(2, 4, 2, 8, 20, 16, torch.float32, seed=2)
    out = triton_kernels.attention.block_attention_triton(q, k, v, lengths)
    assert out.transpose(1, 2).is_contiguous()


def test_prefix_lengths_only_for_prefix_masks_on_the_triton_path(force_triton):
    mask = key_mask_from_lengths(torch.tensor([5, 1, 9]), 9)
    assert dispatch.prefix_key_lengths(mask).tolist() == [5, 1, 9]
    holes = mask.clone()
    holes[0, 2] = False
    assert dispatch.prefix_key_lengths(holes) is None  # SDPA keeps the mask's meaning
    empty = mask.clone()
    empty[1] = False
    assert dispatch.prefix_key_lengths(empty) is None


def test_dispatch_runs_triton_when_forced_and_sdpa_otherwise(force_triton, monkeypatch):
    q, k, v, lengths = _case(3, 4, 2, 8, 30, 16, torch.float32, seed=3)
    mask = key_mask_from_lengths(lengths, 30)
    fused = dispatch.block_attention(q, k, v, mask, dispatch.prefix_key_lengths(mask))
    torch.testing.assert_close(fused, _reference(q, k, v, lengths), rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("DILASERVE_KERNELS", "auto")
    assert dispatch.prefix_key_lengths(mask) is None  # CPU tensors: the torch path
    plain = dispatch.block_attention(q, k, v, mask, None)
    assert torch.equal(plain, block_attention_reference(q, k, v, mask))


def test_no_triton_mode_without_interpreter_or_install_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DILASERVE_KERNELS", "triton")
    monkeypatch.setattr(dispatch, "triton_installed", lambda: False)
    with pytest.raises(ValueError, match="triton is not installed"):
        dispatch.prefix_key_lengths(torch.ones(1, 3, dtype=torch.bool))


def _bad(**change):
    q, k, v, lengths = _case(2, 4, 2, 3, 10, 16, torch.float32, seed=0)
    args = {"q": q, "k": k, "v": v, "key_lengths": lengths, **change}
    return args


@pytest.mark.parametrize(
    "change, message",
    [
        ({"q": torch.zeros(2, 4, 16)}, "q: expected 4 dims"),
        ({"k": torch.zeros(2, 3, 10, 16)}, "k: 3 KV heads do not divide q's 4 heads"),
        ({"v": torch.zeros(2, 2, 11, 16)}, "v: shape"),
        ({"k": torch.zeros(3, 2, 10, 16)}, "k: batch 3 differs"),
        ({"k": torch.zeros(2, 2, 10, 8)}, "k: head dim 8 differs"),
        ({"v": torch.zeros(2, 2, 10, 16).half()}, "v: dtype torch.float16 differs"),
        ({"q": torch.zeros(2, 4, 16, 3).transpose(2, 3)}, "q: last dim must be contiguous"),
        ({"key_lengths": torch.ones(3, dtype=torch.int32)}, r"key_lengths: expected shape \(2,\)"),
        ({"key_lengths": torch.ones(2)}, "key_lengths: dtype torch.float32"),
    ],
)
def test_launcher_rejects_bad_arguments(triton_kernels, change, message):
    with pytest.raises(ValueError, match=message):
        triton_kernels.attention.block_attention_triton(**_bad(**change))


def test_torch_path_rejects_bad_arguments_and_masks():
    args = _bad()
    mask = key_mask_from_lengths(args["key_lengths"], 10)
    with pytest.raises(ValueError, match="k: 3 KV heads"):
        dispatch.block_attention(args["q"], torch.zeros(2, 3, 10, 16), args["v"], mask, None)
    with pytest.raises(ValueError, match=r"key_mask: expected shape \(2, 10\)"):
        dispatch.block_attention(args["q"], args["k"], args["v"], mask[:, :9], None)
    with pytest.raises(ValueError, match="key_mask: expected a bool tensor"):
        dispatch.block_attention(args["q"], args["k"], args["v"], mask.float(), None)
