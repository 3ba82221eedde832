from __future__ import annotations

import math
import random

import pytest

from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.online import OnlineStepCost
from dilaserve.profiles.step_cost import StepCostModel

TRUE = (8e-4, 3e-6, 5e-6, 2e-9)


def steps(n: int, noise: float, coef=TRUE, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        rows, length, refresh = rng.randint(1, 16), rng.randint(40, 200), rng.randint(0, 3)
        refresh_tokens, reuse_tokens = refresh * length, rows * 16
        features = StepFeatures(1 + (refresh > 0), refresh_tokens, reuse_tokens,
                                (refresh_tokens + reuse_tokens) * (length + 1))
        truth = sum(c * x for c, x in zip(coef, features.as_vector(), strict=True))
        yield features, truth * (1 + rng.gauss(0, noise))


@pytest.mark.parametrize("prior", [(4e-4, 0.0, 1e-5, 1e-9), (1e-3, 1e-6, 1e-6, 1e-8)])
def test_converges_to_the_true_coefficients(prior) -> None:
    model = OnlineStepCost(StepCostModel(prior), forgetting=1.0)
    for features, elapsed in steps(1500, noise=0.01):
        model.update(features, elapsed)
    for got, want in zip(model.coef, TRUE, strict=True):
        assert got == pytest.approx(want, rel=0.1)


def test_reports_held_out_error_near_the_noise_floor() -> None:
    model = OnlineStepCost(StepCostModel((4e-4, 0.0, 1e-5, 1e-9)), error_window=200)
    first_error = None
    for features, elapsed in steps(800, noise=0.02):
        error = model.update(features, elapsed)
        first_error = error if first_error is None else first_error
    assert first_error > 0.2  # the prior is off: the first, unfitted prediction shows it
    assert model.error_count() == 200
    assert model.median_abs_rel_error() < 0.03  # |N(0, 2%)| has a median of 1.35%
    assert model.model.coef == model.coef


def test_follows_drift_within_the_forgetting_window() -> None:
    model = OnlineStepCost(StepCostModel(TRUE), forgetting=0.98, error_window=50)
    for features, elapsed in steps(300, noise=0.01):
        model.update(features, elapsed)
    slower = tuple(1.5 * c for c in TRUE)
    for features, elapsed in steps(400, noise=0.01, coef=slower, seed=1):
        model.update(features, elapsed)
    assert model.median_abs_rel_error() < 0.03


def test_coefficients_stay_non_negative() -> None:
    model = OnlineStepCost(StepCostModel(TRUE))
    for features, elapsed in steps(300, noise=0.01, coef=(2e-3, -2e-6, 5e-6, 2e-9)):
        if elapsed > 0:
            model.update(features, elapsed)
    assert min(model.coef) >= 0


def test_unusable_samples_are_ignored_and_arguments_checked() -> None:
    model = OnlineStepCost(StepCostModel(TRUE))
    assert model.update(StepFeatures(1, 10, 0, 100), 0.0) is None
    assert model.update(StepFeatures(1, 10, 0, 100), math.nan) is None
    assert model.update(StepFeatures(), 0.01) is None
    assert model.updates == 0 and math.isnan(model.median_abs_rel_error())
    with pytest.raises(ValueError, match="forgetting"):
        OnlineStepCost(StepCostModel(TRUE), forgetting=0.0)
    with pytest.raises(ValueError, match="prior_weight"):
        OnlineStepCost(StepCostModel(TRUE), prior_weight=0.0)
