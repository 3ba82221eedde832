"""What the worker, the router and the benches ask of a tokenizer.

Two implementations: the shipped model's character tokenizer (`worker.models.tokenizer`) and a
checkpoint's own Hugging Face tokenizer (`worker.models.hf_tokenizer`); `load_tokenizer` in
`worker.models.tokenizer` picks by the files in the model directory. The special ids come from
the checkpoint's files (config.json first, then the tokenizer's own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class TokenizerError(ValueError):
    """A model directory's tokenizer files are missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user", "assistant", ...: what the checkpoint's chat template accepts
    content: str


@runtime_checkable
class Tokenizer(Protocol):
    @property
    def pad_id(self) -> int: ...

    @property
    def mask_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def stop_ids(self) -> frozenset[int]:
        """Tokens that end an answer: EOS and, for chat models, the end-of-turn token(s)."""
        ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def has_chat_template(self) -> bool: ...

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (with the special tokens the checkpoint adds to a plain text);
        ValueError naming what the vocabulary cannot hold."""
        ...

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of a conversation through the checkpoint's chat template, ending with the
        prompt for the assistant's turn; ValueError when the template rejects it or there is
        none."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`, special tokens left out, up to the first stop token."""
        ...


def cut_at_stop(ids: Sequence[int], stop_ids: frozenset[int]) -> tuple[int, ...]:
    """`ids` up to (not including) the first stop token."""
    for i, token in enumerate(ids):
        if token in stop_ids:
            return tuple(ids[:i])
    return tuple(ids)
