"""Where profiles live beside a model, and their names (model, hardware, dtype, TP, cache)."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

QUALITY_FILE = "quality.json"


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def step_cost_file(hardware: str, dtype: str, tp: int, cache_mode: str) -> str:
    return f"step_cost.{_slug(hardware)}.{dtype}.tp{tp}.{cache_mode}.json"


def profiles_dir(model_dir: Path) -> Path:
    return model_dir / "profiles"


def find_step_cost(
    directory: Path,
    cache_mode: str,
    tp: int = 1,
    dtype: str = "float32",
    hardware: str | None = None,
) -> Path:
    """The step-cost profile for this key; any hardware if none is named (first match)."""
    pattern = (
        step_cost_file(hardware, dtype, tp, cache_mode)
        if hardware
        else f"step_cost.*.{dtype}.tp{tp}.{cache_mode}.json"
    )
    matches = sorted(directory.glob(pattern))
    if not matches:
        raise FileNotFoundError(
            f"no step-cost profile {pattern} in {directory}; run `dilaserve profile` to measure one"
        )
    return matches[0]
