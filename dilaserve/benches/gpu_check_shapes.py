"""What `dilaserve gpu-check` runs: the model shape, its step grid, and the GPU's known bandwidth.

Two shapes go through the same code. `llada-8b` is LLaDA-8B-Instruct's config.json (committed as
`worker/models/profiles_published/llada-8b-instruct.config.json`, because ../shared does not
travel to a GPU machine) with the grid the issue asks for; `tiny` is the same config with small
sizes and a grid that runs on a CPU in seconds, so CI runs the command and it cannot rot.
Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from dilaserve.core.locations import PUBLISHED_PROFILES_DIR

LLADA_CONFIG = PUBLISHED_PROFILES_DIR.parent / "llada-8b-instruct.config.json"

# LLaDA-8B-Instruct's special tokens and their ids (../shared/llada-8b-instruct/README.md);
# config.json names only mask, eos and pad, the rest come from its tokenizer_config.json
LLADA_SPECIAL_IDS = {
    "<|startoftext|>": 126080,
    "<|endoftext|>": 126081,
    "<|mdm_mask|>": 126336,
    "<|start_header_id|>": 126346,
    "<|end_header_id|>": 126347,
    "<|eot_id|>": 126348,
}
TINY_SPECIAL_IDS = dict(zip(LLADA_SPECIAL_IDS, (448, 449, 450, 451, 452, 453)))
TINY_SIZES = {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4,
              "mlp_hidden_size": 128, "embedding_size": 512, "vocab_size": 512,
              "max_sequence_length": 256, "mask_token_id": 450, "eos_token_id": 449,
              "pad_token_id": 449}

# Peak memory bandwidth, TB/s, from NVIDIA's product datasheets (H200: 4.8 TB/s HBM3e; H100 SXM:
# 3.35 TB/s HBM3; A100 80GB: 2,039 GB/s SXM, 1,935 GB/s PCIe, taken as 2.0; L40S: 864 GB/s GDDR6).
# Each entry: the words a torch device name must contain (upper case, "-" read as a space).
BANDWIDTH_SOURCE = "NVIDIA datasheets: H200, H100 SXM, A100 80GB, L40S"
BANDWIDTH_TBS = (
    (("H200",), 4.8, "H200"),
    (("H100", "HBM3"), 3.35, "H100 SXM"),
    (("H100", "SXM"), 3.35, "H100 SXM"),
    (("A100", "80GB"), 2.0, "A100 80GB"),
    (("L40S",), 0.864, "L40S"),
)


def known_bandwidth(device_name: str) -> tuple[float, str] | None:
    """(TB/s, the table's row) for a GPU named as torch names it; None when not in the table."""
    words = device_name.upper().replace("-", " ").split()
    for needed, tbs, label in BANDWIDTH_TBS:
        if all(w in words for w in needed):
            return tbs, label
    return None


@dataclass(frozen=True)
class StepGrid:
    """Pure-phase steps at every batch x prompt (the fit), plus held-out steps that mix rows
    already decoding with newly admitted ones: (rows decoding, rows admitted, prompt)."""

    batches: tuple[int, ...]
    prompts: tuple[int, ...]
    canvas: int
    block: int
    cache_modes: tuple[str, ...] = ("dual", "prefix", "none")
    repeats: int = 3  # the median of this many steps is a sample
    reuse_steps: int = 2  # reuse steps timed after each refresh
    heldout: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.canvas % self.block:
            raise ValueError(f"step grid: canvas {self.canvas} is not a multiple of block "
                             f"{self.block}")
        if self.repeats + 1 >= self.block or self.reuse_steps + 1 >= self.block:
            raise ValueError("step grid: each timed row commits one token a step and must stay "
                             "in its first block")

    @property
    def max_seq_len(self) -> int:
        return max(self.prompts + tuple(p for _, _, p in self.heldout)) + self.canvas

    @property
    def max_rows(self) -> int:
        return max(self.batches + tuple(old + new for old, new, _ in self.heldout))


@dataclass(frozen=True)
class CheckShape:
    name: str
    model_name: str  # the profiles' "model" field
    config: dict  # config.json in LLaDA's Hugging Face layout
    special_ids: dict[str, int]
    grid: StepGrid
    serve_requests: int = 4
    serve_new_tokens: int = 64
    serve_rows: int = 4  # the serving engine's rows (its KV pool is rows x the model's context)
    kernel_batches: tuple[int, ...] = (1, 8, 32)

    @property
    def kernel_canvases(self) -> tuple[int, ...]:
        """Keys per row in the attention bench: each prompt with its canvas, as the engine runs."""
        return tuple(p + self.grid.canvas for p in self.grid.prompts)


@cache
def llada_config() -> dict:
    data = json.loads(LLADA_CONFIG.read_text())
    data.pop("_source", None)
    return data


def llada_8b() -> CheckShape:
    grid = StepGrid(batches=(1, 4, 16, 32), prompts=(512, 1024), canvas=256, block=32,
                    heldout=((8, 2, 768), (2, 1, 512)))
    return CheckShape("llada-8b", "LLaDA-8B-Instruct shape (random weights, dilaserve gpu-check)",
                      llada_config(), dict(LLADA_SPECIAL_IDS), grid)


def tiny() -> CheckShape:
    grid = StepGrid(batches=(1, 2, 4), prompts=(32, 64), canvas=64, block=32, repeats=2,
                    heldout=((2, 1, 48),))
    return CheckShape("tiny", "tiny LLaDA-layout shape (random weights, dilaserve gpu-check)",
                      {**llada_config(), **TINY_SIZES}, dict(TINY_SPECIAL_IDS), grid,
                      serve_requests=3, kernel_batches=(1, 4))


SHAPES = {"llada-8b": llada_8b, "tiny": tiny}
