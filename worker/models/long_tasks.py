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
- rev:  reverse 4-16 lowercase letters.
- sort: sort 4-10 digits.

Fixed lengths keep answer token i at a fixed distance from the prompt token it reads (RoPE
positions are relative), which a small model learns within a CPU budget.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from worker.models.tasks import Example, is_heldout

XOR_BITS = 64
SHIFT_LETTERS = 64
LONG_CANVAS = 128  # four blocks of 32: the answer, then EOS
SHORT_CANVAS = 32
MODEL_NAME = "tiny-dlm-long"  # the model trained on this mix


def _xor(rng: random.Random) -> tuple[str, str]:
    bits = [rng.randrange(2) for _ in range(XOR_BITS)]
    prefix, acc = [], 0
    for b in bits:
        acc ^= b
        prefix.append(str(acc))
    return f"xor:{''.join(map(str, bits))}>", "".join(prefix)


def _shift(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(SHIFT_LETTERS))
    shifted = "".join(chr((ord(c) - ord("a") + 1) % 26 + ord("a")) for c in s)
    return f"sft:{s}>", shifted


def _rev(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 16)))
    return f"rev:{s}>", s[::-1]


def _sort(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.digits) for _ in range(rng.randint(4, 10)))
    return f"sort:{s}>", "".join(sorted(s))


GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "xor": _xor, "sft": _shift, "rev": _rev, "sort": _sort,
}
TASKS = tuple(GENERATORS)
LONG_TASKS = ("xor", "sft")
SHORT_TASKS = ("rev", "sort")
# every character a prompt or answer of the mix can hold
ALPHABET = string.digits + string.ascii_lowercase + ":>"


def canvas_for(task: str) -> int:
    """The canvas evaluation and serving give a task's prompts."""
    return LONG_CANVAS if task in LONG_TASKS else SHORT_CANVAS


def sample(task: str, rng: random.Random, heldout: bool) -> Example:
    generator = GENERATORS.get(task)
    if generator is None:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    while True:
        prompt, answer = generator(rng)
        if is_heldout(prompt) == heldout:
            return Example(task, prompt, answer)


def heldout_set(per_task: int, seed: int = 1234, tasks: tuple[str, ...] = TASKS) -> list[Example]:
    """A deterministic held-out evaluation set, `per_task` distinct prompts per task."""
    rng = random.Random(seed)
    out: list[Example] = []
    for task in tasks:
        seen: set[str] = set()
        while len(seen) < per_task:
            ex = sample(task, rng, heldout=True)
            if ex.prompt not in seen:
                seen.add(ex.prompt)
                out.append(ex)
    return out


def task_of(prompt: str) -> str | None:
    head = prompt.split(":", 1)[0]
    return head if head in GENERATORS else None
