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
        ex = tasks.sample("lookup", rng, heldout=False)
        table, queries = ex.prompt[len("lookup:"):-1].split("?")
        values = dict(kv.split("=") for kv in table.split(";"))
        assert "".join(values[q] for q in queries) == ex.answer and len(queries) == 8
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
    assert "count" not in tasks.TASKS  # training-only: kept so the recipe replays
    assert tasks.TASKS == ("add", "rev", "sort", "head")
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        CharTokenizer().encode("ADD:1+1=")
