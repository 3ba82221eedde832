"""A LLaDA-style bidirectional transformer: RMSNorm, RoPE, SwiGLU, grouped-query attention.

One forward serves every shape the engine needs. Queries are given with their absolute positions;
their keys and values are written into a per-row K/V workspace at those positions, and every query
attends to the whole workspace under a key mask. With all positions as queries this is a full
forward (a cache refresh); with only the current block's positions it is a dual-cache step; with the
block and everything after it, a prefix-cache step. Without a workspace the layer attends to its own
keys only (training, and the reference the cache tests compare against).

Tensor parallelism (worker/parallel) uses this same code: built with `shards` = t, an instance holds
1/t of the attention heads, grouped KV heads and MLP columns (column-parallel q/k/v and gate/up,
row-parallel o and down), and `reduce` sums the ranks' partial outputs after attention and after
the MLP. Embeddings, norms and the LM head stay whole on every rank. With shards = 1 there is no
reduce and the layer math is exactly the single-device one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kernels.dispatch import block_attention, prefix_key_lengths
from worker.models.config import ModelConfig

KVWorkspace = list[tuple[torch.Tensor, torch.Tensor]]
Reduce = Callable[[torch.Tensor], torch.Tensor]  # sums a partial output over tensor-parallel ranks


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


class RotaryTable(nn.Module):
    """cos/sin for every position up to max_seq_len, gathered per query position."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.arange(max_seq_len + 1, dtype=torch.float64)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [B, T] -> [B, 1, T, head_dim/2], broadcast over heads
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half convention (LLaMA/LLaDA layout): the two halves of each head form the pairs."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, shards: int = 1) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads // shards
        self.num_kv_heads = cfg.num_kv_heads // shards
        self.head_dim = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, cfg.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor,
        workspace: tuple[torch.Tensor, torch.Tensor] | None,
        write_index: torch.Tensor | None,
        key_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rotary
        q = apply_rotary(q, cos, sin)
        k = apply_rotary(k, cos, sin)
        if workspace is None:
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=key_mask[:, None, None, :],
                enable_gqa=self.num_kv_heads != self.num_heads,
            )
        else:
            k_ws, v_ws = workspace
            index = write_index[:, None, :, None].expand(-1, self.num_kv_heads, -1, self.head_dim)
            k_ws.scatter_(2, index, k.to(k_ws.dtype))
            v_ws.scatter_(2, index, v.to(v_ws.dtype))
            # Triton block attention over the ragged cache on CUDA; the same SDPA call elsewhere
            out = block_attention(q, k_ws, v_ws, key_mask, key_lengths)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig, shards: int = 1) -> None:
        super().__init__()
        width = cfg.intermediate_size // shards
        self.gate_proj = nn.Linear(cfg.hidden_size, width, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, width, bias=False)
        self.down_proj = nn.Linear(width, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, shards: int = 1, reduce: Reduce | None = None) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg, shards)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg, shards)
        self.reduce = reduce

    def forward(self, x, rotary, key_mask, workspace, write_index, key_lengths=None):
        x = x + self._sum(
            self.attn(self.attn_norm(x), rotary, key_mask, workspace, write_index, key_lengths)
        )
        return x + self._sum(self.mlp(self.mlp_norm(x)))

    def _sum(self, partial: torch.Tensor) -> torch.Tensor:
        return partial if self.reduce is None else self.reduce(partial)


class DiffusionTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig, shards: int = 1, reduce: Reduce | None = None) -> None:
        super().__init__()
        check_shardable(cfg, shards)
        if shards > 1 and reduce is None:
            raise ValueError("a tensor-parallel slice (shards > 1) needs a reduce across ranks")
        self.config = cfg
        self.shards = shards
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(Block(cfg, shards, reduce) for _ in range(cfg.num_layers))
        self.final_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rotary = RotaryTable(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)

    def hidden_states(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        key_mask: torch.Tensor,
        workspace: KVWorkspace | None = None,
    ) -> torch.Tensor:
        """Final-normed hidden states of the query tokens [B, T, D].

        tokens, positions: [B, T]. key_mask: [B, K] bool, True where a key may be attended;
        K = T without a workspace, else the workspace length. With a workspace, each layer's new
        K/V are scattered into it at `positions` before attention (in place).
        """
        key_lengths = prefix_key_lengths(key_mask) if workspace is not None else None
        rotary = self.rotary(positions)
        x = self.embed(tokens)
        for layer, block in enumerate(self.blocks):
            ws = workspace[layer] if workspace is not None else None
            write_index = positions if ws is not None else None
            x = block(x, rotary, key_mask, ws, write_index, key_lengths)
        return self.final_norm(x)

    @property
    def kv_heads(self) -> int:
        """KV heads this instance holds (all of them unless it is a tensor-parallel slice)."""
        return self.config.num_kv_heads // self.shards

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def forward(self, tokens: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Full logits over every position (training and reference checks only)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        return self.logits(self.hidden_states(tokens, positions, key_mask))


def check_shardable(cfg: ModelConfig, shards: int) -> None:
    """Heads, KV heads and MLP columns must split evenly over `shards` tensor-parallel ranks."""
    if shards < 1:
        raise ValueError(f"tensor-parallel degree must be >= 1, got {shards}")
    for name in ("num_heads", "num_kv_heads", "intermediate_size"):
        if getattr(cfg, name) % shards:
            raise ValueError(
                f"tensor-parallel degree {shards} does not divide the model's {name} "
                f"({getattr(cfg, name)})"
            )
