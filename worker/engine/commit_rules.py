"""Commit rules: which still-masked positions of the current block a step commits, chosen by name.

Each rule takes a [rows, width] matrix of confidences (max-softmax probability of the chosen token;
-inf where a row has no masked position) and a per-row parameter, and returns a bool matrix of the
positions to commit. Every rule commits at least one position per row that has any.
- threshold (Fast-dLLM): every position with confidence >= tau, and always the top-1.
- factor (Fast-dLLM): the longest prefix of confidences sorted descending with c_i >= 1 - f/(i+1).
- topk: the k most confident positions (k=1 without a cache is the LLaDA baseline).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CommitRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _rank_descending(conf: torch.Tensor) -> torch.Tensor:
    """rank[r, j] = how many positions of row r are more confident than j (ties by index)."""
    order = conf.argsort(dim=1, descending=True, stable=True)
    return order.argsort(dim=1)


def _top1(conf: torch.Tensor) -> torch.Tensor:
    top = torch.zeros_like(conf, dtype=torch.bool)
    top.scatter_(1, conf.argmax(dim=1, keepdim=True), True)
    return top


def threshold_rule(conf: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    valid = conf > float("-inf")
    return ((conf >= tau[:, None]) | _top1(conf)) & valid


def factor_rule(conf: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    valid = conf > float("-inf")
    ordered, _ = conf.sort(dim=1, descending=True)
    i = torch.arange(conf.shape[1], dtype=conf.dtype, device=conf.device)
    bound = 1.0 - factor[:, None] / (i[None, :] + 1.0)
    prefix = (ordered >= bound).to(torch.int64).cumprod(dim=1).sum(dim=1).clamp(min=1)
    return (_rank_descending(conf) < prefix[:, None]) & valid


def topk_rule(conf: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    valid = conf > float("-inf")
    # clamped before the cast: a huge k (or inf, in fp32) casts to a negative integer
    k = k.clamp(1, conf.shape[1]).to(torch.int64)
    return (_rank_descending(conf) < k[:, None]) & valid


RULES: dict[str, CommitRule] = {
    "threshold": threshold_rule,
    "factor": factor_rule,
    "topk": topk_rule,
}


def get_rule(name: str) -> CommitRule:
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown commit rule {name!r}; known: {', '.join(RULES)}") from None
