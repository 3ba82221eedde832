"""Loading a model directory (the shipped model's by default) with its tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

from dilaserve.core.locations import SHIPPED_MODEL_DIR, resolve_model_dir
from worker.models.checkpoint import load_model
from worker.models.tokenizer import CharTokenizer, load_tokenizer
from worker.models.transformer import DiffusionTransformer

__all__ = ["SHIPPED_MODEL_DIR", "load", "resolve_model_dir"]


def load(
    path: str | Path | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> tuple[DiffusionTransformer, CharTokenizer | None, Path]:
    directory = resolve_model_dir(path)
    return load_model(directory, dtype=dtype, device=device), load_tokenizer(directory), directory
