"""The task mix of tiny-dlm-long: exactly verifiable tasks whose answers span one to three blocks.

Every example is a (prompt, answer) pair of plain text; a fixed hash of the prompt splits train
from held-out (`tasks.is_heldout`), so no held-out prompt is ever trained on.

Long tasks (answers of 64 tokens: two blocks of 32, in a canvas of 128):
- xor: running parity of 64 bits ("xor:1011...>" -> "1101..."). Answer bit i is answer bit i-1
       xor prompt bit i: certain once bit i-1 is committed, a coin toss while it is masked. A high
       threshold decodes it nearly one bit per step; a low one commits the tosses (the threshold's
       price in answers).
- sft: shift each of 64 letters one place on in the alphabet (z -> a): every answer token
       depends on one prompt token only, so it decodes in a few steps per block at any threshold.
Short tasks (one block):
- rev:  reverse 4-16 lowercase letters (tiny-dlm's generator).
- sort: sort 4-10 digits.

Fixed lengths keep answer token i at a fixed distance from the prompt token it reads (RoPE
positions are relative), which a small model learns within a CPU budget.
"""

from __future__ import annotations

import random
import string
from functools import partial

from worker.models.tasks import Generator, TaskMix, reverse_letters, running_parity, sort_digits

XOR_BITS = 64
SHIFT_LETTERS = 64
LONG_CANVAS = 128  # four blocks of 32: the answer, then EOS
SHORT_CANVAS = 32
MODEL_NAME = "tiny-dlm-long"  # the model trained on this mix


def _xor(rng: random.Random) -> tuple[str, str]:
    return running_parity([rng.randrange(2) for _ in range(XOR_BITS)])


def _shift(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(SHIFT_LETTERS))
    shifted = "".join(chr((ord(c) - ord("a") + 1) % 26 + ord("a")) for c in s)
    return f"sft:{s}>", shifted


GENERATORS: dict[str, Generator] = {
    "xor": _xor, "sft": _shift, "rev": reverse_letters,
    "sort": partial(sort_digits, lengths=(4, 10)),
}
MIX = TaskMix(GENERATORS)
TASKS = MIX.tasks
LONG_TASKS = ("xor", "sft")
SHORT_TASKS = ("rev", "sort")
# every character a prompt or answer of the mix can hold
ALPHABET = string.digits + string.ascii_lowercase + ":>"
sample = MIX.sample
heldout_set = MIX.heldout_set
task_of = MIX.task_of


def canvas_for(task: str) -> int:
    """The canvas evaluation and serving give a task's prompts."""
    return LONG_CANVAS if task in LONG_TASKS else SHORT_CANVAS
