"""Which implementation runs: the Triton kernels on CUDA when triton imports, torch elsewhere.

DILASERVE_KERNELS (read at each call) overrides the choice:
- auto (default): Triton for CUDA tensors when triton is installed, torch otherwise.
- torch: always the torch path.
- triton: always Triton; on CPU only when the kernel modules were imported with TRITON_INTERPRET=1
  (the interpreter: for tests, slow).
Both paths reject bad arguments with the same ValueErrors (kernels.checks).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from types import ModuleType

import torch

from kernels.checks import check_attention_inputs, check_key_mask, check_masked_head
from kernels.reference import (
    LogitsFn,
    block_attention_reference,
    key_mask_from_lengths,
    masked_head_reference,
)

MODE_ENV = "DILASERVE_KERNELS"
MODES = ("auto", "torch", "triton")


def kernel_mode() -> str:
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}: {mode!r} is not one of {', '.join(MODES)}")
    return mode


@functools.cache
def triton_installed() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as none
        return False


def _kernel_module(name: str) -> ModuleType:
    return importlib.import_module(f"kernels.{name}")


def use_triton(device: torch.device, module: str) -> bool:
    """Whether the Triton kernel in kernels.<module> runs for tensors on `device`."""
    mode = kernel_mode()
    if mode == "torch":
        return False
    if mode == "auto":
        return device.type == "cuda" and triton_installed()
    if not triton_installed():
        raise ValueError(f"{MODE_ENV}=triton: triton is not installed (pip install '.[kernels]')")
    if device.type != "cuda" and not _kernel_module(module).compiled_for_interpreter():
        raise ValueError(
            f"{MODE_ENV}=triton on {device}: set TRITON_INTERPRET=1 before kernels.{module} "
            "is imported (CPU runs only in Triton's interpreter)"
        )
    return True


def masked_head(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    suppress_token: int,
    logits_fn: LogitsFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of hidden [n, d]: (argmax token [n] int64, max-softmax probability [n] float32)
    under the LM head weight [V, d], with suppress_token never chosen (-1: none).

    The torch path computes logits_fn(hidden) (default F.linear(hidden, weight)); the Triton path
    computes the same product tile by tile and never holds the [n, V] logits."""
    check_masked_head(hidden, weight, suppress_token)
    if use_triton(hidden.device, "masked_head"):
        return _kernel_module("masked_head").masked_head_triton(hidden, weight, suppress_token)
    return masked_head_reference(hidden, weight, suppress_token, logits_fn)


def prefix_key_lengths(key_mask: torch.Tensor) -> torch.Tensor | None:
    """[B] int32 key counts for the Triton attention, or None where the torch path runs.

    The kernel reads keys 0..length-1 of each row, so it is used only when every row's mask is a
    non-empty prefix (the engine's always are); checking that waits on the device once per call,
    so call this once per forward, not per layer."""
    if not isinstance(key_mask, torch.Tensor) or key_mask.dim() != 2:
        shape = getattr(key_mask, "shape", type(key_mask).__name__)
        raise ValueError(f"key_mask: expected a [B, K] tensor, got {shape}")
    check_key_mask(key_mask, key_mask.shape[0], key_mask.shape[1])
    if not use_triton(key_mask.device, "block_attention"):
        return None
    lengths = key_mask.sum(dim=1, dtype=torch.int32)
    prefix = key_mask_from_lengths(lengths, key_mask.shape[1])
    if not bool((key_mask == prefix).all() & (lengths > 0).all()):  # one wait, not two
        return None
    return lengths


def block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    key_lengths: torch.Tensor | None,
) -> torch.Tensor:
    """Attention of q [B, H, T, D] over a K/V workspace k, v [B, Hkv, K, D] under key_mask [B, K].

    key_lengths is prefix_key_lengths(key_mask): given, the Triton kernel runs; None, torch's."""
    if key_lengths is not None:
        return _kernel_module("block_attention").block_attention_triton(q, k, v, key_lengths)
    check_attention_inputs(q, k, v)
    check_key_mask(key_mask, q.shape[0], k.shape[2])
    return block_attention_reference(q, k, v, key_mask)
