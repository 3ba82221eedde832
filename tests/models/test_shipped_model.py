"""The shipped model and its committed profiles: what the README states of them."""

import pytest

from dilaserve.core.steps import DecodeSettings
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostProfile
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.measure.profile_files import QUALITY_FILE, find_step_cost, profiles_dir
from worker.measure.quality_eval import evaluate
from worker.models.shipped import SHIPPED_MODEL_DIR, load
from worker.models.task_suites import suite_of


@pytest.fixture(scope="module")
def quality() -> QualityProfile:
    return QualityProfile.load(profiles_dir(SHIPPED_MODEL_DIR) / QUALITY_FILE)


def test_checkpoint_is_small_and_supports_long_prompts_and_canvases():
    size = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.glob("*.safetensors"))
    model, tok, _ = load()
    assert size <= 20 * 2**20
    assert model.config.max_seq_len >= 256 + 128 and tok is not None


def test_reference_accuracy_is_what_the_readme_states(quality):
    """The tasks it learned decode at the reference; running parity did not learn within the
    recipe's budget (README, "The shipped model")."""
    ref = quality.reference
    assert (ref.rule, ref.threshold, ref.block_size) == ("threshold", 0.9, 32)
    learned = {task: acc for task, acc in ref.per_task.items() if task != "xor"}
    assert min(learned.values()) >= 0.80, ref.per_task
    assert ref.accuracy >= 0.65


@pytest.mark.xfail(strict=True, reason="not met: the shipped model's running parity is at 0% "
                   "and its other tasks lose < 10 points at 0.5 (README, 'The shipped model')")
def test_some_task_loses_ten_points_at_threshold_half(quality):
    ref = quality.reference
    low = quality.at(0.5, ref.block_size)
    losses = {task: ref.per_task[task] - low.per_task[task] for task in ref.per_task}
    assert max(losses.values()) >= 0.10, losses


def test_lower_threshold_takes_at_most_half_the_steps_on_the_long_tasks(quality):
    ref = quality.reference
    low = quality.at(0.5, ref.block_size)
    assert low.answer_tokens_per_step > ref.answer_tokens_per_step
    long_tasks = suite_of().long_tasks
    steps = [sum(p.per_task_forwards[t] for t in long_tasks) for p in (ref, low)]
    assert steps[1] <= steps[0] / 2, steps


def test_step_cost_profiles_exist_for_every_cache_mode():
    for mode in ("none", "prefix", "dual"):
        profile = StepCostProfile.load(find_step_cost(profiles_dir(SHIPPED_MODEL_DIR), mode))
        assert profile.model == SHIPPED_MODEL_DIR.name and max(profile.cost.coef) > 0


def test_live_decoding_agrees_with_the_profile(quality):
    """A fresh sample of held-out prompts decodes about as accurately as the profile says."""
    model, tok, _ = load()
    suite = suite_of()
    examples = suite.heldout_set(8, seed=99)
    ref = quality.reference
    result = evaluate(DenoisingEngine(model, EngineConfig(max_rows=16)), tok, examples,
                      DecodeSettings(threshold=ref.threshold, block_size=ref.block_size),
                      suite.canvases(), 16)
    assert result.point.accuracy >= ref.accuracy - 0.10
