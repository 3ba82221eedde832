"""Torch references: exactly what the engine computed before the kernels, and the CPU path.

masked_head_reference materialises the [n, V] logits (in the model dtype, then a float32 copy and
its softmax): the transient memory the fused head avoids. block_attention_reference is the SDPA
call the model makes over its K/V workspace.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def masked_head_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    suppress_token: int,
    logits_fn: LogitsFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of hidden [n, d]: (argmax token [n] int64, its softmax probability [n] float32),
    with suppress_token's logit at -inf (-1: none). logits_fn must compute F.linear(h, weight)."""
    logits = (logits_fn(hidden) if logits_fn is not None else F.linear(hidden, weight)).float()
    if suppress_token >= 0:
        logits[:, suppress_token] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    confidence, token = probs.max(dim=-1)
    return token, confidence


def key_mask_from_lengths(key_lengths: torch.Tensor, keys: int) -> torch.Tensor:
    """[B] lengths -> [B, keys] bool, True for the first length keys of each row."""
    return torch.arange(keys, device=key_lengths.device)[None, :] < key_lengths[:, None]


def block_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor
) -> torch.Tensor:
    """Bidirectional attention of q [B, H, T, D] over k, v [B, Hkv, K, D] under key_mask [B, K]."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=key_mask[:, None, None, :], enable_gqa=k.shape[1] != q.shape[1]
    )
