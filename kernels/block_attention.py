"""Block attention over cached K/V (Triton): each row's block queries against that row's cache.

q [B, H, T, D] are the queries of each row's current block (dual cache) or block + suffix (prefix
cache); k, v [B, Hkv, K, D] are views of the engine's K/V workspace (slot pool columns, any row and
head strides); key_lengths [B] says how many leading keys each row may attend (prompt + canvas:
ragged across the batch). Bidirectional: no causal mask. Query head h reads KV head h // (H / Hkv).
One program per (query tile, row, head) streams only its row's keys, with an online softmax in
float32, so keys past a row's length are neither read nor computed.

Importing this module imports triton; set TRITON_INTERPRET=1 before importing it to run on CPU.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels.checks import check_block_attention

LOG2_E = 1.4426950408889634


@triton.jit
def _block_attention_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    lengths_ptr,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kk,
    stride_vb,
    stride_vh,
    stride_vk,
    stride_ob,
    stride_oh,
    stride_ot,
    num_heads,
    group,
    queries,
    head_dim,
    scale_log2,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM_P2: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    tile = tl.program_id(0)
    row_head = tl.program_id(1)
    row = row_head // num_heads
    head = row_head % num_heads
    kv_head = head // group
    n_keys = tl.load(lengths_ptr + row)
    offs_m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM_P2)
    m_ok = offs_m < queries
    d_ok = offs_d < head_dim
    q = tl.load(
        q_ptr + row * stride_qb + head * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
        mask=m_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    k_base = k_ptr + row * stride_kb + kv_head * stride_kh
    v_base = v_ptr + row * stride_vb + kv_head * stride_vh
    run_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    run_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM_P2], tl.float32)
    for start in range(0, n_keys, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_keys
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + offs_n[:, None] * stride_kk + offs_d[None, :], mask=kv_mask, other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision=INPUT_PRECISION) * scale_log2
        scores = tl.where(n_ok[None, :], scores, float("-inf"))
        # the first tile always holds key 0 (lengths >= 1), so new_max is finite from then on
        new_max = tl.maximum(run_max, tl.max(scores, axis=1))
        p = tl.exp2(scores - new_max[:, None])
        alpha = tl.exp2(run_max - new_max)
        run_sum = run_sum * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + offs_n[:, None] * stride_vk + offs_d[None, :], mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=INPUT_PRECISION)
        run_max = new_max
    out = acc / run_sum[:, None]
    tl.store(
        o_ptr + row * stride_ob + head * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=m_ok[:, None] & d_ok[None, :],
    )


def block_attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_lengths: torch.Tensor
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v over each row's first key_lengths[b] keys -> [B, H, T, D].

    The result is a [B, H, T, D] view of a [B, T, H, D] tensor, so the model's transpose and
    reshape back to [B, T, H*D] copy nothing. key_lengths must lie in 1..K (not checked here)."""
    check_block_attention(q, k, v, key_lengths)
    batch, heads, queries, head_dim = q.shape
    out = torch.empty((batch, queries, heads, head_dim), dtype=q.dtype, device=q.device)
    out = out.transpose(1, 2)
    if batch == 0 or queries == 0:
        return out
    block_m = 16 if queries <= 16 else 32 if queries <= 32 else 64
    block_n = 64 if head_dim <= 64 else 32 if q.dtype == torch.float32 else 64
    lengths = key_lengths.to(torch.int32)
    _block_attention_kernel[(triton.cdiv(queries, block_m), batch * heads)](
        q,
        k,
        v,
        out,
        lengths,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        heads,
        heads // k.shape[1],
        queries,
        head_dim,
        LOG2_E / math.sqrt(head_dim),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        HEAD_DIM_P2=max(16, triton.next_power_of_2(head_dim)),
        INPUT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
    )
    return out


def compiled_for_interpreter() -> bool:
    """True when this module was imported with TRITON_INTERPRET=1 (the kernel runs on CPU)."""
    return type(_block_attention_kernel).__name__ == "InterpretedFunction"
