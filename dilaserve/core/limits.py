"""What one request may ask of a replica, stated once (docs/router.md, "Request limits").

A worker derives its limits from its model and policy and reports them in Stats; the router
checks requests against the tightest limits of the replicas it routes to, with the same checks
(`worker.service.validation`), so a request is refused the same way wherever it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dilaserve.core.steps import EngineLimits


@dataclass(frozen=True)
class RequestLimits:
    max_new_tokens: int  # max_new_tokens in [1, this]; the canvas is it rounded up to the block
    max_block_size: int  # block sizes in [1, this]
    context_tokens: int  # prompt + canvas
    vocab_size: int  # prompt ids in [0, this), the mask token excluded
    mask_token_id: int

    def __post_init__(self) -> None:
        if min(self.max_new_tokens, self.max_block_size, self.context_tokens,
               self.vocab_size) < 1:
            raise ValueError(f"request limits must be positive: {self}")

    @classmethod
    def of(cls, policy_max_new_tokens: int, engine: EngineLimits, vocab_size: int,
           mask_token_id: int) -> RequestLimits:
        """A worker's: its policy's largest canvas, within its engine's sequence and token
        limits (a prompt needs at least one token)."""
        context = min(engine.max_seq_len, engine.max_tokens)
        max_new = max(1, min(policy_max_new_tokens, context - 1))
        return cls(max_new, max_new, context, vocab_size, mask_token_id)

    @property
    def max_prompt_tokens(self) -> int:
        """The longest prompt that still leaves room for the smallest canvas (one token)."""
        return self.context_tokens - 1


def tightest(limits: Iterable[RequestLimits]) -> RequestLimits | None:
    """What every one of these replicas accepts; None for none. Replicas of one cluster serve
    one model, so vocabulary and mask token agree (the first one's are kept)."""
    limits = list(limits)
    if not limits:
        return None
    return RequestLimits(
        max_new_tokens=min(x.max_new_tokens for x in limits),
        max_block_size=min(x.max_block_size for x in limits),
        context_tokens=min(x.context_tokens for x in limits),
        vocab_size=min(x.vocab_size for x in limits),
        mask_token_id=limits[0].mask_token_id,
    )
