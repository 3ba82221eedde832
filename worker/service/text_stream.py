"""A request's answer text, released block by block as it becomes final.

Each finished block's tokens are appended and the whole answer so far is decoded again (a block
is tens of tokens: cheap next to a step); the text beyond what was already sent goes out with the
block. A character whose bytes span two blocks (byte-level and byte-fallback tokenizers split
multi-byte characters) decodes to U+FFFD until its last byte arrives: trailing U+FFFD is held back
until the next block, or sent as it is with the last one. The final text is what the partials
carried, concatenated, and no partial carries a broken character.
"""

from __future__ import annotations

from collections.abc import Sequence

from dilaserve.core.tokenizer import Tokenizer

REPLACEMENT = "\ufffd"


class TextStream:
    def __init__(self, tokenizer: Tokenizer | None) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._sent = ""

    def push(self, ids: Sequence[int], last: bool = False) -> str:
        """The new text after `ids` (a block's tokens, up to the answer's end); `last`: the
        answer is complete, send everything."""
        if self._tokenizer is None:
            return ""
        self._ids.extend(ids)
        text = self._tokenizer.decode(self._ids)
        if not last:
            text = text.rstrip(REPLACEMENT)
        # what was sent stands, even if a decoder rewrote earlier text at a join (rare:
        # whitespace clean-up); the final text is what was sent, so the two always agree
        new = text[len(self._sent):]
        self._sent += new
        return new

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self._ids)

    @property
    def text(self) -> str:
        """Everything sent so far."""
        return self._sent
