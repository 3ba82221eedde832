"""Model hyper-parameters, shared by the native and the LLaDA checkpoint formats."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_seq_len: int
    mask_token_id: int
    eos_token_id: int
    pad_token_id: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = False
    name: str = "unnamed"

    def __post_init__(self) -> None:
        for field in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "max_seq_len",
        ):
            if getattr(self, field) <= 0:
                raise ValueError(
                    f"model config: {field} must be positive, got {getattr(self, field)}"
                )
        if self.hidden_size % self.num_heads:
            raise ValueError("model config: hidden_size must be a multiple of num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("model config: num_heads must be a multiple of num_kv_heads")
        if self.head_dim % 2:
            raise ValueError("model config: head_dim must be even for rotary embeddings")
        for field in ("mask_token_id", "eos_token_id", "pad_token_id"):
            if not 0 <= getattr(self, field) < self.vocab_size:
                raise ValueError(f"model config: {field} outside the vocabulary")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def num_parameters(self) -> int:
        attn = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.hidden_size * self.intermediate_size
        norms = 2 * self.hidden_size
        head = 0 if self.tie_embeddings else self.vocab_size * self.hidden_size
        return self.num_layers * (attn + mlp + norms) + self.vocab_size * self.hidden_size + head

    def to_dict(self) -> dict:
        return {"format": "dilaserve", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
