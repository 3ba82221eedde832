"""Character-level tokenizer of the shipped model, stored as tokenizer.json beside the weights.

Imports no torch: the router reads it to count prompt tokens.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

SPECIALS = ("<pad>", "<mask>", "<eos>")
DEFAULT_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz+=:;,?#> |-"


@dataclass(frozen=True)
class CharTokenizer:
    chars: str = DEFAULT_CHARS

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def mask_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        index = self._index()
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(
                f"prompt: characters outside the model's vocabulary: {''.join(unknown)!r}"
            )
        return [index[c] for c in text]

    def decode(self, ids: list[int] | tuple[int, ...], stop_at_eos: bool = True) -> str:
        out = []
        for i in ids:
            if i == self.eos_id and stop_at_eos:
                break
            if i >= len(SPECIALS):
                out.append(self.chars[i - len(SPECIALS)])
        return "".join(out)

    def _index(self) -> dict[str, int]:
        return _char_index(self.chars)

    def save(self, path: Path) -> None:
        data = {"type": "char", "specials": list(SPECIALS), "chars": self.chars}
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> CharTokenizer:
        data = json.loads(path.read_text())
        if data.get("type") != "char" or tuple(data.get("specials", ())) != SPECIALS:
            raise ValueError(f"{path}: not a dilaserve character tokenizer")
        return cls(chars=data["chars"])


@functools.lru_cache(maxsize=8)
def _char_index(chars: str) -> dict[str, int]:
    """Built once per character set: encode runs for every request a worker or router takes.
    Callers only read it."""
    return {c: i + len(SPECIALS) for i, c in enumerate(chars)}


def load_tokenizer(directory: Path | str) -> CharTokenizer | None:
    """The shipped char tokenizer; None for checkpoints without one (prompts then come as ids)."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        return CharTokenizer.load(path)
    except (ValueError, KeyError):
        return None
