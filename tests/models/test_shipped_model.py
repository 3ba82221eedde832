"""The shipped model and its committed profiles meet the bar the project promises."""

import pytest

from dilaserve.core.steps import DecodeSettings
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostProfile
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.measure.profile_files import QUALITY_FILE, find_step_cost, profiles_dir
from worker.measure.quality_eval import evaluate
from worker.models import tasks
from worker.models.shipped import SHIPPED_MODEL_DIR, load


@pytest.fixture(scope="module")
def quality() -> QualityProfile:
    return QualityProfile.load(profiles_dir(SHIPPED_MODEL_DIR) / QUALITY_FILE)


def test_checkpoint_is_small_and_supports_long_prompts_and_canvases():
    size = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.glob("*.safetensors"))
    model, tok, _ = load()
    assert size <= 20 * 2**20
    assert model.config.max_seq_len >= 256 + 128 and tok is not None


def test_reference_accuracy_meets_the_bar(quality):
    ref = quality.reference
    assert (ref.rule, ref.threshold) == ("threshold", 0.9)
    assert ref.accuracy >= 0.90
    assert min(ref.per_task.values()) >= 0.80, ref.per_task


def test_lower_threshold_commits_more_per_forward(quality):
    block = quality.reference.block_size
    low, ref = quality.at(0.5, block), quality.reference
    assert low.answer_tokens_per_step > ref.answer_tokens_per_step
    assert low.forwards_per_request < ref.forwards_per_request
    assert low.accuracy <= ref.accuracy + 0.01


def test_some_task_shows_the_threshold_trade_off(quality):
    """Lowering the threshold from the reference 0.9 to 0.5 costs at least one task 5 points:
    the trade-off load control exploits and the quality policy bounds."""
    ref = quality.reference
    low = quality.at(0.5, ref.block_size)
    losses = {task: ref.per_task[task] - low.per_task[task] for task in ref.per_task}
    assert max(losses.values()) >= 0.05, losses


def test_step_cost_profiles_exist_for_every_cache_mode():
    for mode in ("none", "prefix", "dual"):
        profile = StepCostProfile.load(find_step_cost(profiles_dir(SHIPPED_MODEL_DIR), mode))
        assert profile.model == "tiny-dlm" and profile.cost.coef[0] > 0


def test_live_decoding_agrees_with_the_profile(quality):
    """A fresh sample of held-out prompts decodes about as accurately as the profile says."""
    model, tok, _ = load()
    examples = tasks.heldout_set(12, seed=99)
    ref = quality.reference
    result = evaluate(DenoisingEngine(model, EngineConfig(max_rows=16)), tok, examples,
                      DecodeSettings(threshold=ref.threshold, block_size=ref.block_size), 32, 16)
    assert result.point.accuracy >= ref.accuracy - 0.10
