"""Where the shipped model lives, and loading a model directory with its tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

from worker.models.checkpoint import load_model, load_tokenizer
from worker.models.tokenizer import CharTokenizer
from worker.models.transformer import DiffusionTransformer

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "shipped" / "tiny-dlm"


def resolve_model_dir(path: str | Path | None) -> Path:
    directory = Path(path) if path else SHIPPED_MODEL_DIR
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"--model: {directory} is not a model directory (no config.json)")
    return directory


def load(
    path: str | Path | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> tuple[DiffusionTransformer, CharTokenizer | None, Path]:
    directory = resolve_model_dir(path)
    return load_model(directory, dtype=dtype, device=device), load_tokenizer(directory), directory
