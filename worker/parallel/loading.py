"""Load one tensor-parallel rank's slice of a checkpoint, reading only that slice from disk.

Megatron's split: q/k/v and gate/up are column-parallel (each rank holds a contiguous block of
output rows: whole heads, whole KV heads, 1/t of the MLP columns), o and down are row-parallel
(the matching block of input columns). Everything else (embeddings, norms, LM head) is read whole.
Both checkpoint formats go through the same loader (worker/models/checkpoint.py: no random
initialisation, each tensor read, moved to the rank's device and cast before the next);
`get_slice` reads just the requested rows or columns.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from worker.models.checkpoint import empty_model, load_into, read_config, weight_files
from worker.models.transformer import DiffusionTransformer, Reduce

COLUMN_PARALLEL = (
    "attn.q_proj.weight",
    "attn.k_proj.weight",
    "attn.v_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
)
ROW_PARALLEL = ("attn.o_proj.weight", "mlp.down_proj.weight")


def split_dim(name: str) -> int | None:
    """The dimension of our tensor `name` that is split over ranks (None: read whole)."""
    if not name.startswith("blocks."):
        return None
    suffix = name.split(".", 2)[2]
    if suffix in COLUMN_PARALLEL:
        return 0
    if suffix in ROW_PARALLEL:
        return 1
    return None


def rank_range(length: int, rank: int, size: int) -> tuple[int, int]:
    if length % size:
        raise ValueError(f"tp: a dimension of {length} does not split into {size} equal parts")
    part = length // size
    return rank * part, (rank + 1) * part


def read_slice(rank: int, size: int, f: Any, key: str, ours: str) -> torch.Tensor:
    dim = split_dim(ours)
    if dim is None or size == 1:
        return f.get_tensor(key)
    handle = f.get_slice(key)
    lo, hi = rank_range(handle.get_shape()[dim], rank, size)
    return handle[lo:hi] if dim == 0 else handle[:, lo:hi]


def load_shard(
    directory: Path | str,
    rank: int,
    size: int,
    reduce: Reduce | None,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device = "cpu",
) -> DiffusionTransformer:
    """Rank `rank` of `size`'s model: its slices of the weights, summing over ranks by `reduce`."""
    directory = Path(directory)
    cfg, fmt = read_config(directory)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    weight_files(directory)
    model = empty_model(cfg, shards=size, reduce=reduce if size > 1 else None)
    return load_into(model, directory, fmt, dtype, device, read=partial(read_slice, rank, size))
