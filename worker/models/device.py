"""Where a replica runs and in what precision: one decision for the worker, generate, serve and
every replica the cluster places.

`choose_device` is pure (no torch): a replica placed on a GPU runs on "cuda" in the checkpoint's
precision (config.json's `torch_dtype` when it has one, else bfloat16, LLaDA's: its config has
none); one placed on a CPU runs in float32 (what the shipped model's profiles were measured in).
An explicit device or dtype (command line, the policy's `cluster.device` / `cluster.dtype`)
overrides either half. `require_device` turns a cuda request on a machine without CUDA into an
error that says so, before anything is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dilaserve.policy.cluster import DEVICES, DTYPES

GPU_DEFAULT_DTYPE = "bfloat16"
CPU_DEFAULT_DTYPE = "float32"


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu" or "cuda" (a Ray actor's own GPU; "cuda:N" where a caller numbers them)
    dtype: str  # "float32", "bfloat16" or "float16"
    why: str  # how the dtype was chosen, for logs and status

    def describe(self) -> str:
        return f"{self.device} {self.dtype} ({self.why})"


def choose_device(on_gpu: bool, device: str = "auto", dtype: str = "auto",
                  checkpoint_dtype: str | None = None) -> DeviceChoice:
    """on_gpu: the plan put this replica on a GPU (a GPU bundle, or `--device cuda`)."""
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    chosen = device if device != "auto" else ("cuda" if on_gpu else "cpu")
    if dtype != "auto":
        return DeviceChoice(chosen, dtype, "as asked")
    if chosen == "cpu":
        return DeviceChoice(chosen, CPU_DEFAULT_DTYPE, "CPU default")
    if checkpoint_dtype in DTYPES[1:]:
        return DeviceChoice(chosen, checkpoint_dtype, "the checkpoint's torch_dtype")
    return DeviceChoice(chosen, GPU_DEFAULT_DTYPE, "GPU default: no torch_dtype in config.json")


def checkpoint_dtype(directory: Path | str | None) -> str | None:
    """config.json's `torch_dtype` (Hugging Face's key), if the directory has one."""
    if directory is None:
        return None
    path = Path(directory) / "config.json"
    try:
        value = json.loads(path.read_text()).get("torch_dtype")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def require_device(device: str, what: str = "device") -> None:
    """A cuda device must exist here; the error names what asked for it (`what`: the flag or
    field) and what torch sees."""
    import torch

    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise ValueError(f"{what} {device}: torch {torch.__version__} sees no CUDA device here "
                         f"(torch.cuda.is_available() is False: a CPU-only torch build, no GPU, "
                         f"or CUDA_VISIBLE_DEVICES hides it); run on a GPU node or ask for cpu")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"{what} {device}: only {torch.cuda.device_count()} CUDA device(s) here")


def torch_dtype(name: str):
    import torch

    if name not in DTYPES[1:]:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES[1:])}, got {name!r}")
    return getattr(torch, name)
