"""The shipped model's synthetic, exactly verifiable task mix.

Every example is a (prompt, answer) pair of plain text. A fixed hash of the prompt splits examples
into train and held-out, so no held-out prompt is ever trained on, whatever seed either side uses.

- add:  fixed-width 4-digit addition with carries ("add:0482+0397=" -> "00879"); answer digits
        depend on each other through the carry chain, so committing many at once can go wrong.
- rev:  reverse a lowercase string.
- sort: sort a string of digits.
- head: the first 8 characters of a 150-character string: a copy across 150 positions, the long
        prompt (156 tokens) of the mix.

`find`, `count` and `lookup` (key lookups in a long table, letter counting) were in the mix of
earlier training stages and did not learn within the budget; their generators stay, for training
only, so the recipe replays exactly.
"""

from __future__ import annotations

import random
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass

HELDOUT_BUCKETS = 16  # one prompt hash bucket in 16 is held out


@dataclass(frozen=True)
class Example:
    task: str
    prompt: str
    answer: str


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randrange(10_000), rng.randrange(10_000)
    return f"add:{a:04d}+{b:04d}=", f"{a + b:05d}"


def _rev(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 16)))
    return f"rev:{s}>", s[::-1]


def _sort(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.digits) for _ in range(rng.randint(4, 12)))
    return f"sort:{s}>", "".join(sorted(s))


def _count(rng: random.Random, lengths: tuple[int, int] = (4, 20)) -> tuple[str, str]:
    s = "".join(rng.choice("abcd") for _ in range(rng.randint(*lengths)))
    target = rng.choice("abcd")
    return f"count:{s}?{target}>", f"{s.count(target):02d}"


def _find(rng: random.Random, keys: tuple[int, int] = (14, 26)) -> tuple[str, str]:
    keys = rng.sample(string.ascii_lowercase, rng.randint(*keys))
    values = {k: f"{rng.randrange(1_000_000):06d}" for k in keys}
    query = rng.choice(keys)
    table = ";".join(f"{k}={values[k]}" for k in keys)
    return f"find:{table}?{query}>", values[query]


LOOKUP_KEYS = string.ascii_lowercase + string.digits
LOOKUP_QUERIES = 8


def _lookup(rng: random.Random) -> tuple[str, str]:
    keys = rng.sample(LOOKUP_KEYS, rng.randint(29, 36))
    values = {k: rng.choice(string.ascii_lowercase) for k in keys}
    queries = [rng.choice(keys) for _ in range(LOOKUP_QUERIES)]
    table = ";".join(f"{k}={values[k]}" for k in keys)
    return f"lookup:{table}?{''.join(queries)}>", "".join(values[q] for q in queries)


HEAD_STRING = 150
HEAD_CHARS = 8


def _head(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(HEAD_STRING))
    return f"head:{s}>", s[:HEAD_CHARS]


GENERATORS: dict[str, Callable[..., tuple[str, str]]] = {
    "add": _add, "rev": _rev, "sort": _sort, "head": _head,
}
TASKS = tuple(GENERATORS)
TRAINING_ONLY: dict[str, Callable[..., tuple[str, str]]] = {
    "count": _count, "find": _find, "lookup": _lookup,
}
MAX_ANSWER_CHARS = 16  # every task's answer fits a 32-token canvas with room for EOS


def is_heldout(prompt: str) -> bool:
    return zlib.crc32(prompt.encode()) % HELDOUT_BUCKETS == 0


def sample(task: str, rng: random.Random, heldout: bool, **options) -> Example:
    """One example; `options` vary a generator (only training's recipe uses them)."""
    generator = GENERATORS.get(task) or TRAINING_ONLY.get(task)
    if generator is None:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    while True:
        prompt, answer = generator(rng, **options)
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
