"""Per-row decoding state, owned by the engine."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dilaserve.core.steps import DecodeSettings, Phase, query_len


@dataclass
class RowState:
    request_id: str
    slot: int
    tokens: torch.Tensor  # [seq_len] prompt + canvas, MASK where undecided
    prompt_len: int
    settings: DecodeSettings
    threshold: float
    block_size: int
    block_start: int
    block_end: int
    masked_left: int
    needs_refresh: bool = True
    pending_block_size: int | None = None
    generator: torch.Generator | None = None

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[0]

    @property
    def phase(self) -> Phase:
        if self.needs_refresh or self.settings.cache_mode == "none":
            return Phase.REFRESH
        return Phase.REUSE

    def query_span(self) -> tuple[int, int]:
        """Positions this row queries in its next step."""
        n = query_len(
            self.phase, self.settings.cache_mode, self.seq_len, self.block_start, self.block_end
        )
        start = 0 if self.phase is Phase.REFRESH else self.block_start
        return start, start + n

    def advance_block(self) -> None:
        if self.pending_block_size is not None:
            self.block_size, self.pending_block_size = self.pending_block_size, None
        self.block_start = self.block_end
        self.block_end = min(self.block_start + self.block_size, self.seq_len)
        self.needs_refresh = True
