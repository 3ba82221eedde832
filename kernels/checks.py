"""Argument checks shared by the Triton launchers and the dispatch: clear ValueErrors naming the
argument, raised before anything is launched, so both paths reject the same inputs."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_float(name: str, tensor: torch.Tensor, ndim: int) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dims, got shape {tuple(tensor.shape)}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name}: dtype {tensor.dtype} not supported (float32/float16/bfloat16)")
    # the kernels address rows by their strides but read each row's last dim as one vector
    if tensor.shape[-1] > 1 and tensor.stride(-1) != 1:
        raise ValueError(
            f"{name}: last dim must be contiguous (stride 1), got strides {tensor.stride()}"
        )


def check_same(names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    first_name, first = names[0], tensors[0]
    for name, tensor in zip(names[1:], tensors[1:]):
        if tensor.dtype != first.dtype:
            raise ValueError(
                f"{name}: dtype {tensor.dtype} differs from {first_name}'s {first.dtype}"
            )
        if tensor.device != first.device:
            raise ValueError(f"{name}: on {tensor.device}, but {first_name} is on {first.device}")


def check_masked_head(hidden: torch.Tensor, weight: torch.Tensor, suppress_token: int) -> None:
    """hidden [n, d] and LM head weight [V, d], same dtype and device; suppress_token in [-1, V)."""
    check_float("hidden", hidden, 2)
    check_float("weight", weight, 2)
    check_same(("hidden", "weight"), (hidden, weight))
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"weight: hidden size {weight.shape[1]} differs from hidden's {hidden.shape[1]}"
        )
    vocab = weight.shape[0]
    if not -1 <= suppress_token < vocab:
        raise ValueError(f"suppress_token: {suppress_token} outside [-1, {vocab})")
    if vocab - (suppress_token >= 0) < 1:
        raise ValueError("weight: the vocabulary has no token left to choose")


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """q [B, H, T, D]; k, v [B, Hkv, K, D] with H a multiple of Hkv; one dtype and device."""
    check_float("q", q, 4)
    check_float("k", k, 4)
    check_float("v", v, 4)
    check_same(("q", "k", "v"), (q, k, v))
    batch, heads, _, head_dim = q.shape
    if k.shape[0] != batch:
        raise ValueError(f"k: batch {k.shape[0]} differs from q's {batch}")
    if k.shape[3] != head_dim:
        raise ValueError(f"k: head dim {k.shape[3]} differs from q's {head_dim}")
    if k.shape[1] == 0 or heads % k.shape[1]:
        raise ValueError(f"k: {k.shape[1]} KV heads do not divide q's {heads} heads")
    if k.shape != v.shape:
        raise ValueError(f"v: shape {tuple(v.shape)} differs from k's {tuple(k.shape)}")


def check_block_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_lengths: torch.Tensor
) -> None:
    """check_attention_inputs, and key_lengths [B] int32/int64 on q's device.

    Length values (1..K) are not checked here: that would wait on the device every call."""
    check_attention_inputs(q, k, v)
    batch = q.shape[0]
    if not isinstance(key_lengths, torch.Tensor) or key_lengths.shape != (batch,):
        shape = getattr(key_lengths, "shape", None)
        raise ValueError(f"key_lengths: expected shape ({batch},), got {shape}")
    if key_lengths.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"key_lengths: dtype {key_lengths.dtype} must be int32 or int64")
    if key_lengths.device != q.device:
        raise ValueError(f"key_lengths: on {key_lengths.device}, but q is on {q.device}")


def check_key_mask(key_mask: torch.Tensor, batch: int, keys: int) -> None:
    if not isinstance(key_mask, torch.Tensor) or key_mask.dtype != torch.bool:
        dtype = getattr(key_mask, "dtype", type(key_mask).__name__)
        raise ValueError(f"key_mask: expected a bool tensor, got {dtype}")
    if key_mask.shape != (batch, keys):
        raise ValueError(f"key_mask: expected shape {(batch, keys)}, got {tuple(key_mask.shape)}")
