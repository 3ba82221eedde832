"""Tile sizes of the fused masked LM head and the memory they imply (no triton import).

The vocabulary is cut into `splits` contiguous ranges so that even a handful of masked rows keeps
every SM busy; each (row tile, split) program streams its range in BLOCK_V tiles and leaves one
(max, sum of exp, argmax) triple per row, which a second kernel combines. Those triples are the
only transient memory: n x splits x 12 bytes, instead of the torch path's [n, V] logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PARTIAL_BYTES = 4 + 4 + 4  # float32 running max, float32 sum of exp, int32 argmax
OUTPUT_BYTES = 8 + 4  # int64 token, float32 confidence


@dataclass(frozen=True)
class HeadPlan:
    rows: int
    vocab: int
    dim: int
    block_n: int
    block_v: int
    block_d: int
    vocab_per_split: int

    @property
    def row_tiles(self) -> int:
        return math.ceil(self.rows / self.block_n)

    @property
    def splits(self) -> int:
        return math.ceil(self.vocab / self.vocab_per_split)

    @property
    def transient_bytes(self) -> int:
        """Device memory the fused head allocates beyond its inputs and outputs."""
        return self.rows * self.splits * PARTIAL_BYTES

    @property
    def register_tile_bytes(self) -> int:
        """The float32 logits tile each program holds on chip (never written to memory)."""
        return self.block_n * self.block_v * 4


def plan_head(rows: int, vocab: int, dim: int, target_programs: int) -> HeadPlan:
    """Tiles for `rows` masked rows; target_programs: a few per SM (a handful when interpreted)."""
    if rows < 0 or vocab <= 0 or dim <= 0 or target_programs <= 0:
        raise ValueError(
            f"plan_head: rows {rows}, vocab {vocab}, dim {dim}, "
            f"target_programs {target_programs} must be positive"
        )
    # tl.dot needs every tile dim >= 16
    block_n = 16 if rows <= 16 else 32 if rows <= 32 else 64 if rows <= 256 else 128
    block_v = 128
    block_d = 64 if dim >= 64 else max(16, 1 << (dim - 1).bit_length())
    row_tiles = max(1, math.ceil(rows / block_n))
    vocab_tiles = math.ceil(vocab / block_v)
    splits = max(1, min(vocab_tiles, math.ceil(target_programs / row_tiles)))
    vocab_per_split = math.ceil(vocab_tiles / splits) * block_v
    return HeadPlan(rows, vocab, dim, block_n, block_v, block_d, vocab_per_split)


def torch_path_transient_bytes(rows: int, vocab: int, model_dtype_bytes: int) -> int:
    """The mask-only torch path's peak beyond inputs: the float32 logits and their float32 softmax
    alive at once (a half-precision model's logits, freed once copied to float32, peak lower)."""
    return rows * vocab * max(model_dtype_bytes + 4 if model_dtype_bytes != 4 else 0, 8)
