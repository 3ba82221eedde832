"""The approximate KV cache: one preallocated slot per row in flight, per layer.

Slot columns hold positions 0..max_seq_len-1 plus one scratch column at the end that padded queries
write to and no row ever attends. Rows in flight occupy slots 0..n-1 (freeing a slot moves the last
row into it), so a step over all rows can use a view of the pool instead of copying K/V. A
tensor-parallel rank holds only its own KV heads (`kv_heads`).
"""

from __future__ import annotations

import torch

from worker.models.config import ModelConfig
from worker.models.transformer import KVWorkspace


class KVPool:
    def __init__(
        self,
        cfg: ModelConfig,
        max_rows: int,
        max_seq_len: int,
        dtype: torch.dtype,
        device: torch.device,
        kv_heads: int | None = None,
    ) -> None:
        heads = kv_heads or cfg.num_kv_heads
        shape = (cfg.num_layers, max_rows, heads, max_seq_len + 1, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.num_layers = cfg.num_layers

    @staticmethod
    def bytes_per_row(
        cfg: ModelConfig, max_seq_len: int, dtype: torch.dtype, kv_heads: int | None = None
    ) -> int:
        elem = torch.tensor([], dtype=dtype).element_size()
        heads = kv_heads or cfg.num_kv_heads
        return 2 * cfg.num_layers * heads * (max_seq_len + 1) * cfg.head_dim * elem

    def view(self, lo: int, hi: int, keys: int) -> KVWorkspace:
        """Slots lo..hi-1, first `keys` columns; writes go straight into the pool."""
        return [
            (self.k[layer, lo:hi, :, :keys], self.v[layer, lo:hi, :, :keys])
            for layer in range(self.num_layers)
        ]

    def gather(self, slots: torch.Tensor, keys: int) -> KVWorkspace:
        """A copy of the given slots; writes to it are lost unless written back."""
        return [
            (self.k[layer, slots, :, :keys], self.v[layer, slots, :, :keys])
            for layer in range(self.num_layers)
        ]

    def write_back(self, slots: torch.Tensor, keys: int, workspace: KVWorkspace) -> None:
        for layer, (k, v) in enumerate(workspace):
            self.k[layer, slots, :, :keys] = k
            self.v[layer, slots, :, :keys] = v

    def move(self, src: int, dst: int, length: int) -> None:
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]
