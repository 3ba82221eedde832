"""The measurements behind `dilaserve bench-kernels`: each kernel against the mask-only torch path
in the same dtype, and the longest canvas a memory budget fits against a LLaDA-style step.

Every figure is measured in this run except where a row says `planned` (the fused head's
transient memory where Triton cannot run: computed from the tiles it would launch) or `formula`
(KV cache bytes: the pool's allocation size).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from kernels.head_plan import OUTPUT_BYTES, plan_head
from kernels.measure import median_ms, peak_transient_bytes, per_token_slope
from kernels.reference import (
    block_attention_reference,
    key_mask_from_lengths,
    masked_head_reference,
)
from worker.models.config import ModelConfig
from worker.models.transformer import Block, RotaryTable

H100_PROGRAMS = 4 * 132  # the head's split count is planned for an H100 where no GPU runs it


@dataclass(frozen=True)
class Shape:
    hidden: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    block: int
    mask_token: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class Run:
    device: torch.device
    dtype: torch.dtype
    triton: bool  # the Triton kernels run (CUDA with triton installed)
    repeats: int

    def randn(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        out = torch.empty(shape, device=self.device, dtype=self.dtype)
        return out.normal_(0.0, scale)


def bench_head(run: Run, shape: Shape, batches: list[int], cpu_dim: int) -> list[dict]:
    """Fused head vs the engine's mask-only torch path for a fully masked block per row.

    On CPU the hidden size is cpu_dim: the torch path's transient ([n, V] logits) does not depend
    on it, and the full LLaDA head would take seconds per call on one core."""
    dim = shape.hidden if run.device.type == "cuda" else cpu_dim
    weight = run.randn(shape.vocab, dim, scale=dim**-0.5)
    rows_out = []
    for batch in batches:
        rows = batch * shape.block
        hidden = run.randn(rows, dim)
        torch_path = partial(masked_head_reference, hidden, weight, shape.mask_token)

        result = {
            "batch": batch,
            "rows": rows,
            "dim": dim,
            "torch_bytes": peak_transient_bytes(torch_path, run.device),
            "torch_ms": median_ms(torch_path, run.device, run.repeats)
            if run.device.type == "cuda"
            else None,
        }
        if run.triton:
            from kernels.masked_head import masked_head_triton

            fused = partial(masked_head_triton, hidden, weight, shape.mask_token)

            token, conf = fused()
            ref_token, ref_conf = torch_path()
            result |= {
                "fused_bytes": peak_transient_bytes(fused, run.device),
                "fused_bytes_source": "measured",
                "fused_ms": median_ms(fused, run.device, run.repeats),
                "token_agreement": float((token == ref_token).float().mean()),
                "max_conf_diff": float((conf - ref_conf).abs().max()),
            }
        else:
            plan = plan_head(rows, shape.vocab, shape.hidden, H100_PROGRAMS)
            result |= {
                "fused_bytes": plan.transient_bytes + rows * OUTPUT_BYTES,
                "fused_bytes_source": "planned",
                "fused_ms": None,
            }
        rows_out.append(result)
    return rows_out


def bench_attention(
    run: Run, shape: Shape, batches: list[int], canvases: list[int], seed: int = 0
) -> list[dict]:
    """Block queries (block positions per row) over a slot-pool K/V view with ragged lengths."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for canvas in canvases:
        for batch in batches:
            keys = canvas + 1  # the pool's scratch column rides along, as in the engine
            pool_k = run.randn(batch, shape.kv_heads, keys + 1, shape.head_dim)
            pool_v = run.randn(batch, shape.kv_heads, keys + 1, shape.head_dim)
            k, v = pool_k[:, :, :keys], pool_v[:, :, :keys]
            q = run.randn(batch, shape.block, shape.heads, shape.head_dim).transpose(1, 2)
            lengths = torch.randint(canvas // 2, canvas + 1, (batch,), generator=g)
            lengths[0] = canvas
            lengths = lengths.to(run.device, torch.int32)
            mask = key_mask_from_lengths(lengths, keys)
            torch_path = partial(block_attention_reference, q, k, v, mask)

            result = {
                "batch": batch,
                "canvas": canvas,
                "torch_bytes": peak_transient_bytes(torch_path, run.device),
                "torch_ms": median_ms(torch_path, run.device, run.repeats),
            }
            if run.triton:
                from kernels.block_attention import block_attention_triton

                fused = partial(block_attention_triton, q, k, v, lengths)

                diff = (fused().float() - torch_path().float()).abs().max()
                result |= {
                    "fused_bytes": peak_transient_bytes(fused, run.device),
                    "fused_ms": median_ms(fused, run.device, run.repeats),
                    "max_abs_diff": float(diff),
                }
            out.append(result)
    return out


def layer_activation_bytes(run: Run, shape: Shape, lengths: tuple[int, int]) -> tuple[float, float]:
    """(bytes per token, fixed bytes) of one transformer layer's forward, measured at two canvas
    lengths on a real layer of this width (the peak of a forward is one layer's: inference frees
    each layer's activations before the next)."""
    cfg = ModelConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_layers=1,
        num_heads=shape.heads,
        num_kv_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        max_seq_len=max(lengths),
        mask_token_id=shape.mask_token,
        eos_token_id=0,
        pad_token_id=0,
    )
    layer = Block(cfg).to(run.device, run.dtype).eval()
    rotary = RotaryTable(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta).to(run.device)

    def measure(length: int) -> int:
        x = run.randn(1, length, shape.hidden)
        positions = torch.arange(length, device=run.device)[None]
        rot = rotary(positions)
        mask = torch.ones(1, length, dtype=torch.bool, device=run.device)
        with torch.inference_mode():
            return peak_transient_bytes(partial(layer, x, rot, mask, None, None), run.device)

    return per_token_slope(measure, *lengths)


def llada_head_bytes(run: Run, shape: Shape, dim: int, rows: int) -> int:
    """A LLaDA-style step's head over `rows` canvas positions: logits for every position in the
    model dtype, argmax, and the float32 softmax it gathers the confidence from."""
    weight = run.randn(shape.vocab, dim, scale=dim**-0.5)
    hidden = run.randn(rows, dim)

    def llada_style():
        logits = torch.nn.functional.linear(hidden, weight)
        chosen = logits.argmax(dim=-1)
        probs = torch.softmax(logits.float(), dim=-1)
        return chosen, probs.gather(-1, chosen[:, None])

    return peak_transient_bytes(llada_style, run.device)


def longest_canvas(budget: int, per_token: float, fixed: float) -> int:
    return max(0, int((budget - fixed) // per_token)) if per_token > 0 else 0
