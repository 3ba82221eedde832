import random

import pytest

from worker.models import tasks
from worker.models.tokenizer import CharTokenizer


def test_answers_are_correct_by_construction():
    rng = random.Random(0)
    for _ in range(200):
        ex = tasks.sample("add", rng, heldout=False)
        a, b = ex.prompt[4:-1].split("+")
        assert int(ex.answer) == int(a) + int(b) and len(ex.answer) == 5
        ex = tasks.sample("psum", rng, heldout=False)
        digits = [int(d) for d in ex.prompt[len("psum:"):-1]]
        assert [int(d) for d in ex.answer] == [sum(digits[: i + 1]) % 10
                                               for i in range(len(digits))]
        ex = tasks.sample("xor", rng, heldout=False)
        bits = [int(b) for b in ex.prompt[len("xor:"):-1]]
        assert [int(b) for b in ex.answer] == [sum(bits[: i + 1]) % 2 for i in range(len(bits))]
        ex = tasks.sample("head", rng, heldout=False)
        assert ex.prompt[len("head:"):][:8] == ex.answer and len(ex.prompt) == 156


def test_heldout_never_overlaps_training():
    heldout = {ex.prompt for ex in tasks.heldout_set(50)}
    rng = random.Random(7)
    train = {tasks.sample(t, rng, heldout=False).prompt for t in tasks.TASKS for _ in range(400)}
    assert not heldout & train
    assert all(tasks.is_heldout(p) for p in heldout)


def test_long_prompts_exist_and_everything_tokenizes():
    tok = CharTokenizer()
    examples = tasks.heldout_set(30)
    assert max(len(ex.prompt) for ex in examples) >= 128
    assert max(len(ex.prompt) for ex in examples) <= 256
    for ex in examples:
        assert tok.decode(tok.encode(ex.answer)) == ex.answer
        assert len(ex.answer) <= tasks.MAX_ANSWER_CHARS


def test_unknown_task_and_characters_are_clear_errors():
    with pytest.raises(ValueError, match="unknown task"):
        tasks.sample("multiply", random.Random(0), heldout=True)
    assert tasks.TASKS == ("rev", "sort", "xor", "head")
    assert "add" not in tasks.TASKS and "add" in tasks.TRAINING_ONLY  # kept so the recipe replays
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        CharTokenizer().encode("ADD:1+1=")
