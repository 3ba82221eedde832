"""The training recipe's machinery on a few tiny steps (the full recipe is ~45 minutes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from worker.models import train
from worker.models.checkpoint import load_model


def _tiny_stage(seed: int = 0) -> train.Stage:
    return train.Stage(3, 1e-3, seed, 1, {"xor": 0.5, "sort": 0.5}, {32: 1.0}, threads=1)


def test_a_stage_writes_a_loadable_checkpoint_and_replays_exactly(tmp_path):
    train.train(tmp_path / "a", 4, (_tiny_stage(),), log_every=1)
    train.train(tmp_path / "b", 4, (_tiny_stage(),), log_every=1)
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert a.config.name == "tiny-dlm"
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name  # same seed, same threads: the same weights


def test_the_recipe_trains_only_on_known_tasks():
    from worker.models import tasks

    known = set(tasks.TASKS) | set(tasks.TRAINING_ONLY)
    for stage in train.RECIPE:
        assert set(stage.task_weights) <= known
    assert set(train.RECIPE[-1].task_weights) <= set(tasks.TASKS)


@pytest.mark.slow
def test_cli_names_a_bad_stage(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dilaserve.cli.main", "train",
                          "--out", str(tmp_path), "--stages", "9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--stages" in out.stderr and "Traceback" not in out.stderr
