"""Fused masked LM head + confidence (Triton): argmax token and max-softmax probability per row.

For hidden [n, d] of the still-masked positions and the LM head weight [V, d], each program takes
a tile of rows and one contiguous vocabulary range, computes [BLOCK_N, BLOCK_V] logit tiles on
chip, and keeps an online softmax over them (running max, rescaled sum of exp, argmax). A second
kernel merges the per-range triples: confidence = 1 / sum_j exp(max_j - max) * sum_j. The [n, V]
logits never reach memory. Ties pick the lowest token id, like torch's max.

Importing this module imports triton; set TRITON_INTERPRET=1 before importing it to run on CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.checks import check_masked_head
from kernels.head_plan import HeadPlan, plan_head


@triton.jit
def _head_partials_kernel(
    hidden_ptr,
    weight_ptr,
    part_max_ptr,
    part_sum_ptr,
    part_idx_ptr,
    n_rows,
    vocab,
    dim,
    suppress_token,
    stride_h,
    stride_w,
    vocab_per_split,
    splits,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    row_tile = tl.program_id(0)
    split = tl.program_id(1)
    rows = row_tile * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    run_max = tl.full([BLOCK_N], float("-inf"), tl.float32)
    run_sum = tl.zeros([BLOCK_N], tl.float32)
    run_idx = tl.zeros([BLOCK_N], tl.int32)
    v_begin = split * vocab_per_split
    v_end = tl.minimum(v_begin + vocab_per_split, vocab)
    for v0 in range(v_begin, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_ok = cols < v_end
        logits = tl.zeros([BLOCK_N, BLOCK_V], tl.float32)
        for d0 in range(0, dim, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < dim
            h = tl.load(
                hidden_ptr + rows[:, None] * stride_h + ds[None, :],
                mask=row_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            w = tl.load(
                weight_ptr + cols[:, None] * stride_w + ds[None, :],
                mask=col_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            logits = tl.dot(h, tl.trans(w), logits, input_precision=INPUT_PRECISION)
        keep = col_ok & (cols != suppress_token)
        logits = tl.where(keep[None, :], logits, float("-inf"))
        tile_max = tl.max(logits, axis=1)
        tile_arg = tl.argmax(logits, axis=1, tie_break_left=True)
        new_max = tl.maximum(run_max, tile_max)
        # a tile (or range) holding only the suppressed token keeps max -inf: exp(-inf - 0) = 0
        safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
        run_sum = run_sum * tl.exp(run_max - safe_max) + tl.sum(
            tl.exp(logits - safe_max[:, None]), axis=1
        )
        # strictly greater: an equal max in a later tile keeps the earlier (lower) token id
        run_idx = tl.where(tile_max > run_max, v0 + tile_arg, run_idx)
        run_max = new_max
    out = rows * splits + split
    tl.store(part_max_ptr + out, run_max, mask=row_ok)
    tl.store(part_sum_ptr + out, run_sum, mask=row_ok)
    tl.store(part_idx_ptr + out, run_idx, mask=row_ok)


@triton.jit
def _head_combine_kernel(
    part_max_ptr,
    part_sum_ptr,
    part_idx_ptr,
    token_ptr,
    confidence_ptr,
    splits,
    SPLITS_P2: tl.constexpr,
):
    row = tl.program_id(0)
    s = tl.arange(0, SPLITS_P2)
    ok = s < splits
    m = tl.load(part_max_ptr + row * splits + s, mask=ok, other=float("-inf"))
    total = tl.load(part_sum_ptr + row * splits + s, mask=ok, other=0.0)
    idx = tl.load(part_idx_ptr + row * splits + s, mask=ok, other=0)
    best = tl.max(m, axis=0)
    scaled = tl.where(m == float("-inf"), 0.0, total * tl.exp(m - best))
    first = tl.argmax(m, axis=0, tie_break_left=True)  # ranges are in vocab order
    token = tl.sum(tl.where(s == first, idx, 0), axis=0)
    tl.store(token_ptr + row, token.to(tl.int64))
    tl.store(confidence_ptr + row, 1.0 / tl.sum(scaled, axis=0))


def target_programs(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter runs programs one by one; a few still exercise the split merge


def masked_head_triton(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    suppress_token: int,
    plan: HeadPlan | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax token [n] int64, max-softmax probability [n] float32) per row of hidden [n, d]."""
    check_masked_head(hidden, weight, suppress_token)
    n, dim = hidden.shape
    vocab = weight.shape[0]
    plan = plan or plan_head(n, vocab, dim, target_programs(hidden.device))
    if (plan.rows, plan.vocab, plan.dim) != (n, vocab, dim):
        made_for = (plan.rows, plan.vocab, plan.dim)
        raise ValueError(f"plan: made for {made_for}, not {(n, vocab, dim)}")
    token = torch.empty(n, dtype=torch.int64, device=hidden.device)
    confidence = torch.empty(n, dtype=torch.float32, device=hidden.device)
    if n == 0:
        return token, confidence
    splits = plan.splits
    part_max = torch.empty((n, splits), dtype=torch.float32, device=hidden.device)
    part_sum = torch.empty_like(part_max)
    part_idx = torch.empty((n, splits), dtype=torch.int32, device=hidden.device)
    _head_partials_kernel[(plan.row_tiles, splits)](
        hidden,
        weight,
        part_max,
        part_sum,
        part_idx,
        n,
        vocab,
        dim,
        suppress_token,
        hidden.stride(0),
        weight.stride(0),
        plan.vocab_per_split,
        splits,
        BLOCK_N=plan.block_n,
        BLOCK_V=plan.block_v,
        BLOCK_D=plan.block_d,
        # float32 must not silently drop to TF32: the argmax would differ from the torch path
        INPUT_PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32",
        num_warps=8 if plan.block_n * plan.block_v >= 128 * 128 else 4,  # the fp32 logits tile
    )
    _head_combine_kernel[(n,)](
        part_max,
        part_sum,
        part_idx,
        token,
        confidence,
        splits,
        SPLITS_P2=max(2, triton.next_power_of_2(splits)),
    )
    return token, confidence


def compiled_for_interpreter() -> bool:
    """True when this module was imported with TRITON_INTERPRET=1 (the kernels run on CPU)."""
    return type(_head_partials_kernel).__name__ == "InterpretedFunction"
