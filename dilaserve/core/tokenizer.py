"""What the worker, the router and the benches ask of a tokenizer.

A model directory's tokenizer satisfies it (the shipped model's character tokenizer today:
`worker.models.tokenizer.CharTokenizer`). The special ids come from the checkpoint's files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    @property
    def pad_id(self) -> int: ...

    @property
    def mask_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; ValueError naming what the vocabulary cannot hold."""
        ...

    def decode(self, ids: Sequence[int], stop_at_eos: bool = True) -> str: ...
