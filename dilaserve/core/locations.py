"""Where the model and profile data that ship with dilaserve live (paths only: no loading).

The files sit in the `worker.models` package (package data), but planners, the simulator and the
router find them without importing the model code (and torch) that lives there.
"""

from __future__ import annotations

from pathlib import Path

_MODELS = Path(__file__).resolve().parent.parent.parent / "worker" / "models"

SHIPPED_MODEL_DIR = _MODELS / "shipped" / "tiny-dlm-long"
SHIPPED_PROFILES_DIR = SHIPPED_MODEL_DIR / "profiles"
PUBLISHED_PROFILES_DIR = _MODELS / "profiles_published" / "llada-8b"


def resolve_model_dir(path: str | Path | None) -> Path:
    """A model directory (`--model`, the policy's `cluster.model`), or the shipped model's."""
    directory = Path(path) if path else SHIPPED_MODEL_DIR
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"--model: {directory} is not a model directory (no config.json)")
    return directory
