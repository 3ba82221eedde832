"""Tokenizers of a model directory: the shipped model's character tokenizer (its tokenizer.json
has `"type": "char"`), or the checkpoint's own Hugging Face tokenizer (tokenizer.json +
tokenizer_config.json, `worker.models.hf_tokenizer`). `load_tokenizer` picks by the files.

Imports no torch: the router reads a model's tokenizer to count prompt tokens.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dilaserve.core.tokenizer import ChatMessage, Tokenizer, TokenizerError

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
    def stop_ids(self) -> frozenset[int]:
        return frozenset((self.eos_id,))

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.chars)

    @property
    def has_chat_template(self) -> bool:
        return False

    def encode(self, text: str) -> list[int]:
        index = self._index()
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(
                f"prompt: characters outside the model's vocabulary: {''.join(unknown)!r}"
            )
        return [index[c] for c in text]

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        raise ValueError("this model has no chat template; send prompt_text or prompt_ids")

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            if i == self.eos_id:
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


def read_json_object(path: Path, what: str = "readable JSON") -> dict:
    """A JSON object from a model directory's file ({} when the file is not there); a
    TokenizerError naming the file when it is not one."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerError(f"{path}: not {what} ({err})") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: not {what} (a JSON object was expected)")
    return data


def load_tokenizer(directory: Path | str) -> Tokenizer | None:
    """The model directory's tokenizer: the char tokenizer, or the checkpoint's own Hugging Face
    tokenizer; None when the directory has no tokenizer.json (prompts then come as ids).
    TokenizerError naming the file when one is there but cannot be used."""
    directory = Path(directory)
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    if read_json_object(path, "a readable tokenizer file").get("type") == "char":
        try:
            return CharTokenizer.load(path)
        except (ValueError, KeyError) as err:
            raise TokenizerError(f"{path}: {err}") from None
    from worker.models.hf_tokenizer import HFTokenizer

    return HFTokenizer.load(directory)
