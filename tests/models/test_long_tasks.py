"""tiny-dlm-long's task mix, its character tokenizer (Hugging Face files) and the task suites."""

from __future__ import annotations

import json
import random

import pytest

from worker.models import char_hf_tokenizer, long_tasks
from worker.models.task_suites import TINY_DLM, TINY_DLM_LONG, suite_for
from worker.models.tasks import is_heldout
from worker.models.tokenizer import load_tokenizer


def test_long_answers_span_two_to_three_blocks_and_short_ones_one():
    rng = random.Random(0)
    for task, (lo, hi) in {"xor": (64, 64), "sft": (64, 64), "rev": (4, 16),
                           "sort": (4, 10)}.items():
        for _ in range(20):
            ex = long_tasks.sample(task, rng, heldout=False)
            assert lo <= len(ex.answer) <= hi
            assert set(ex.prompt + ex.answer) <= set(long_tasks.ALPHABET)
            assert len(ex.answer) < long_tasks.canvas_for(task)  # room for EOS


def test_xor_answers_depend_on_the_previous_answer_bit():
    ex = long_tasks.sample("xor", random.Random(3), heldout=False)
    bits = ex.prompt[len("xor:"):-1]
    for i in range(1, len(bits)):
        assert int(ex.answer[i]) == int(ex.answer[i - 1]) ^ int(bits[i])


def test_sft_shifts_every_letter_and_wraps():
    ex = long_tasks.sample("sft", random.Random(1), heldout=True)
    letters = ex.prompt[len("sft:"):-1]
    assert all((ord(b) - ord(a)) % 26 == 1 for a, b in zip(letters, ex.answer))


def test_heldout_prompts_are_split_off_by_hash():
    heldout = long_tasks.heldout_set(10)
    assert len(heldout) == 10 * len(long_tasks.TASKS)
    assert all(is_heldout(ex.prompt) for ex in heldout)
    rng = random.Random(5)
    assert not any(is_heldout(long_tasks.sample("rev", rng, heldout=False).prompt)
                   for _ in range(200))
    with pytest.raises(ValueError, match="unknown task"):
        long_tasks.sample("add", rng, heldout=False)


def test_the_character_tokenizer_loads_through_the_hugging_face_path(tmp_path):
    char_hf_tokenizer.write(tmp_path, long_tasks.ALPHABET, 384)
    ids = char_hf_tokenizer.special_ids()
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "llada", "mask_token_id": ids["mask"], "eos_token_id": ids["eos"],
         "pad_token_id": ids["pad"]}))
    tok = load_tokenizer(tmp_path)
    assert (tok.mask_id, tok.eos_id, tok.pad_id) == (ids["mask"], ids["eos"], ids["pad"])
    text = "xor:0110>abcz"
    encoded = tok.encode(text)
    assert len(encoded) == len(text)  # one token per character
    assert tok.decode(encoded + [tok.eos_id] + encoded) == text  # the answer ends at EOS
    assert tok.vocab_size == 3 + len(long_tasks.ALPHABET)


def test_a_repeated_character_is_refused():
    with pytest.raises(ValueError, match="repeat"):
        char_hf_tokenizer.build("abca")


def test_suites_are_found_by_model_name():
    assert suite_for("tiny-dlm-long") is TINY_DLM_LONG
    assert suite_for("tiny-dlm") is TINY_DLM
    assert suite_for("some-llada-checkpoint") is TINY_DLM
    assert TINY_DLM_LONG.canvases() == {"xor": 128, "sft": 128, "rev": 32, "sort": 32}
    assert TINY_DLM_LONG.task_of("xor:0101>") == "xor"
