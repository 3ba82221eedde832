"""The shipped model's synthetic, exactly verifiable task mix.

Every example is a (prompt, answer) pair of plain text. A fixed hash of the prompt splits examples
into train and held-out, so no held-out prompt is ever trained on, whatever seed either side uses.

- rev:  reverse a lowercase string.
- sort: sort a string of digits (4-12); where digits repeat, which digit sits at a position
        depends on how many of each came before it.
- xor:  running parity of 16 bits ("xor:1011...>" -> "1101..."): answer bit i is bit i-1 xor
        prompt bit i, certain once bit i-1 is committed and a coin toss while it and too many
        before it are masked. The task that shows the threshold trade-off: a low threshold commits
        the tosses. A fixed length keeps bit i of the answer at a fixed distance from bit i of the
        prompt (positions are relative, RoPE); stage 2 of the recipe used 8-16 bits and the model
        did not learn it.
- head: the first 8 characters of a 150-character string: a copy across 150 positions, the long
        prompt (156 tokens) of the mix.

`add` (fixed-width 4-digit addition, most significant digit first) and `psum` (running sums mod
10) were in the first stage of the recipe and did not learn within its budget; their generators
stay, for training only, so that the recipe replays exactly.
"""

from __future__ import annotations

import random
import string
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

HELDOUT_BUCKETS = 16  # one prompt hash bucket in 16 is held out


@dataclass(frozen=True)
class Example:
    task: str
    prompt: str
    answer: str


Generator = Callable[..., tuple[str, str]]  # (rng, **options) -> (prompt, answer)


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randrange(10_000), rng.randrange(10_000)
    return f"add:{a:04d}+{b:04d}=", f"{a + b:05d}"


def reverse_letters(rng: random.Random, lengths: tuple[int, int] = (4, 16)) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(*lengths)))
    return f"rev:{s}>", s[::-1]


def sort_digits(rng: random.Random, lengths: tuple[int, int] = (4, 12)) -> tuple[str, str]:
    s = "".join(rng.choice(string.digits) for _ in range(rng.randint(*lengths)))
    return f"sort:{s}>", "".join(sorted(s))


def _psum(rng: random.Random) -> tuple[str, str]:
    digits = [rng.randrange(10) for _ in range(rng.randint(6, 14))]
    sums, total = [], 0
    for d in digits:
        total = (total + d) % 10
        sums.append(str(total))
    return f"psum:{''.join(map(str, digits))}>", "".join(sums)


HEAD_STRING = 150
HEAD_CHARS = 8


XOR_BITS = 16


def running_parity(bits: list[int]) -> tuple[str, str]:
    """The xor task's prompt for `bits` and its answer, the running parity."""
    prefix, acc = [], 0
    for b in bits:
        acc ^= b
        prefix.append(str(acc))
    return f"xor:{''.join(map(str, bits))}>", "".join(prefix)


def _xor(rng: random.Random, lengths: tuple[int, int] = (XOR_BITS, XOR_BITS)) -> tuple[str, str]:
    return running_parity([rng.randrange(2) for _ in range(rng.randint(*lengths))])


def _head(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(HEAD_STRING))
    return f"head:{s}>", s[:HEAD_CHARS]


GENERATORS: dict[str, Generator] = {
    "rev": reverse_letters, "sort": sort_digits, "xor": _xor, "head": _head,
}
TASKS = tuple(GENERATORS)
# in the first stage of the shipped model's recipe only (they did not learn within its budget);
# kept so that the recipe replays exactly
TRAINING_ONLY: dict[str, Generator] = {"add": _add, "psum": _psum}
MAX_ANSWER_CHARS = 16  # every task's answer fits a 32-token canvas with room for EOS


def is_heldout(prompt: str) -> bool:
    return zlib.crc32(prompt.encode()) % HELDOUT_BUCKETS == 0


@dataclass(frozen=True)
class TaskMix:
    """A model's tasks by name, split into train and held-out by the prompt's hash."""

    generators: Mapping[str, Generator]
    # sampled for training only, never held out or named by `tasks`
    training_only: Mapping[str, Generator] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.generators)

    def sample(self, task: str, rng: random.Random, heldout: bool, **options) -> Example:
        """One example; `options` vary a generator (only training's recipe uses them)."""
        generator = self.generators.get(task) or self.training_only.get(task)
        if generator is None:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(self.tasks)}")
        while True:
            prompt, answer = generator(rng, **options)
            if is_heldout(prompt) == heldout:
                return Example(task, prompt, answer)

    def heldout_set(self, per_task: int, seed: int = 1234,
                    tasks: tuple[str, ...] | None = None) -> list[Example]:
        """A deterministic held-out evaluation set, `per_task` distinct prompts per task."""
        rng = random.Random(seed)
        out: list[Example] = []
        for task in self.tasks if tasks is None else tasks:
            seen: set[str] = set()
            while len(seen) < per_task:
                ex = self.sample(task, rng, heldout=True)
                if ex.prompt not in seen:
                    seen.add(ex.prompt)
                    out.append(ex)
        return out

    def task_of(self, prompt: str) -> str | None:
        head = prompt.split(":", 1)[0]
        return head if head in self.generators else None


MIX = TaskMix(GENERATORS, TRAINING_ONLY)
sample = MIX.sample
heldout_set = MIX.heldout_set
task_of = MIX.task_of
