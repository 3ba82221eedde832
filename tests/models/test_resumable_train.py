"""tiny-dlm-long's resumable training on a few steps: a restart replays exactly what an
uninterrupted run does, and each stage leaves a model in LLaDA's Hugging Face layout."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from worker.models import long_recipe, resumable_train
from worker.models.checkpoint import load_model
from worker.models.tokenizer import load_tokenizer


def _stages() -> tuple[long_recipe.Stage, ...]:
    first, second = long_recipe.RECIPE[:2]  # two stages are enough to test a restart across one
    return (dataclasses.replace(first, steps=3, warmup=1, batch=4, threads=1),
            dataclasses.replace(second, steps=2, batch=4, threads=1))


def _train(run, **kw) -> None:
    resumable_train.train(run, _stages(), save_every=1, log_every=1, curve_prompts=0,
                          **kw)


def _weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / resumable_train.STATE_FILE, weights_only=False)["model"]


def test_a_restart_continues_where_the_run_stopped(tmp_path, monkeypatch):
    _train(tmp_path / "whole")
    real_step, calls = resumable_train._step, []

    def dies_on_the_fourth_step(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(resumable_train, "_step", dies_on_the_fourth_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "resumed")
    monkeypatch.setattr(resumable_train, "_step", real_step)
    _train(tmp_path / "resumed")
    assert "resuming at stage 2 step 0" in (tmp_path / "resumed" / "train.log").read_text()
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name


def test_stages_stop_where_asked_and_leave_a_llada_layout_model(tmp_path):
    _train(tmp_path, until_stage=1)
    assert [p.name for p in tmp_path.glob("stage-*")] == ["stage-1-warm"]
    model_dir = tmp_path / "stage-1-warm"
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llada"
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    assert model.config.name == "stage-1-warm"  # a LLaDA config is named by its directory
    assert tok.mask_id == model.config.mask_token_id and tok.eos_id == model.config.eos_token_id
    assert tok.encode("sft:ab>") and tok.decode(tok.encode("rev:abc>")) == "rev:abc>"
