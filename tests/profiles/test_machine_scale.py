"""The machine factor: a median of measured / profile-predicted step times, a 10% dead band, and
the step-cost model it scales (fake timings throughout)."""

from __future__ import annotations

import math

import pytest

from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.machine_scale import (
    MachineScale,
    ScaledStepCost,
    ScaleSettings,
    outside_dead_band,
    step_ratio,
)
from dilaserve.profiles.online import OnlineStepCost
from dilaserve.profiles.step_cost import StepCostModel

PROFILE = StepCostModel((2e-3, 3e-5, 3e-5, 8e-8))
REFRESH = StepFeatures(1, 128, 0, 128 * 129)
REUSE = StepFeatures(1, 0, 32, 32 * 129)
MIXED = StepFeatures(2, 64, 32, 64 * 65 + 32 * 129)


def test_dead_band_is_relative_and_ignores_nonsense():
    assert not outside_dead_band(1.0, 1.09)
    assert outside_dead_band(1.0, 1.11)
    assert outside_dead_band(1.0, 0.89)
    assert not outside_dead_band(2.0, 2.15)  # 7.5% of 2
    assert outside_dead_band(2.0, 1.7)
    assert not outside_dead_band(1.0, math.nan)
    assert not outside_dead_band(1.0, 0.0)


def test_step_ratio_against_the_profile():
    t = PROFILE.predict(REFRESH)
    assert step_ratio(PROFILE, REFRESH, 2 * t) == pytest.approx(2.0)
    assert step_ratio(PROFILE, StepFeatures(0, 0, 0, 0), 0.01) is None
    assert step_ratio(PROFILE, REFRESH, 0.0) is None
    assert step_ratio(PROFILE, REFRESH, math.inf) is None


def test_calibration_takes_the_median_and_applies_past_the_band():
    scale = MachineScale()
    # one outlier (a collection mid-step) does not move a median
    assert scale.calibrate([1.9, 2.0, 2.1, 2.0, 9.0])
    assert scale.calibration == pytest.approx(2.0)
    assert scale.applied == pytest.approx(2.0)
    assert scale.calibration_steps == 5


def test_calibration_within_the_band_keeps_the_profile():
    scale = MachineScale()
    assert not scale.calibrate([1.05, 0.97, 1.08])
    assert scale.applied == 1.0
    assert scale.measured == pytest.approx(1.05)


def test_calibration_with_nothing_usable_is_an_error():
    with pytest.raises(ValueError, match="no usable step"):
        MachineScale().calibrate([0.0, math.nan])


def test_online_steps_move_the_factor_only_past_the_band_and_at_checks():
    scale = MachineScale(ScaleSettings(window=40, check_every=10))
    scale.calibrate([2.0] * 10)
    # the machine speeds up 5%: inside the band around 2, nothing changes
    changes = [scale.observe(1.9) for _ in range(40)]
    assert not any(changes) and scale.applied == 2.0
    # it slows to 3x: the window's median crosses 2.2 within a check or two, not at once
    changes = [scale.observe(3.0) for _ in range(40)]
    assert changes.index(True) >= 19
    assert scale.applied == pytest.approx(3.0)
    assert scale.observed == 80


def test_online_median_shrugs_off_spikes():
    scale = MachineScale(ScaleSettings(window=50, check_every=5))
    scale.calibrate([1.0] * 5)
    for i in range(200):
        scale.observe(20.0 if i % 5 == 0 else 1.02)  # one step in five is 20x slower
    assert scale.applied == 1.0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="dead_band"):
        ScaleSettings(dead_band=1.5)
    with pytest.raises(ValueError, match="window"):
        ScaleSettings(window=0)


def test_fixed_profile_scaled_by_the_applied_factor():
    cost = ScaledStepCost(PROFILE, MachineScale())
    cost.calibrate([2.0, 2.0, 2.0])
    assert cost.coef == pytest.approx(tuple(2 * c for c in PROFILE.coef))
    assert cost.predict(MIXED) == pytest.approx(2 * PROFILE.predict(MIXED))
    assert cost.prior is PROFILE  # what Stats compare measured steps with: the committed profile
    assert cost.update(MIXED, 2 * PROFILE.predict(MIXED)) is None
    assert math.isnan(cost.median_abs_rel_error()) and cost.error_count() == 0


def test_live_steps_rescale_the_fixed_profile():
    cost = ScaledStepCost(PROFILE, MachineScale(ScaleSettings(window=20, check_every=5)))
    cost.calibrate([1.0] * 4)
    for _ in range(20):
        for features in (REFRESH, REUSE):
            cost.update(features, 1.5 * PROFILE.predict(features))
    assert cost.machine.applied == pytest.approx(1.5)
    assert cost.predict(REFRESH) == pytest.approx(1.5 * PROFILE.predict(REFRESH))


def test_online_model_starts_from_the_scaled_profile():
    online = OnlineStepCost(PROFILE)
    cost = ScaledStepCost(PROFILE, MachineScale(), online)
    cost.calibrate([2.0] * 8)
    # before any live step the admission's model is the profile x 2
    assert cost.coef == pytest.approx(tuple(2 * c for c in PROFILE.coef))
    assert online.prior.coef == pytest.approx(tuple(2 * c for c in PROFILE.coef))
    assert cost.prior is PROFILE


def test_rescaling_the_prior_keeps_the_evidence():
    """Steps 2x the profile: the online fit tracks them whether its prior was rescaled or not,
    and a prior rescaled mid-way moves only the directions the steps did not pin."""
    plain, rescaled = OnlineStepCost(PROFILE), OnlineStepCost(PROFILE)
    for i in range(300):
        features = (REFRESH, REUSE, MIXED)[i % 3]
        for model in (plain, rescaled):
            model.update(features, 2 * PROFILE.predict(features))
        if i == 150:
            rescaled.rescale_prior(StepCostModel(tuple(2 * c for c in PROFILE.coef)))
    for features in (REFRESH, REUSE, MIXED):
        truth = 2 * PROFILE.predict(features)
        assert plain.predict(features) == pytest.approx(truth, rel=0.05)
        assert rescaled.predict(features) == pytest.approx(truth, rel=0.02)


def test_rescaling_the_prior_before_any_step_is_the_new_prior():
    online = OnlineStepCost(PROFILE)
    online.rescale_prior(StepCostModel((1.0, 0.0, -1.0, 2.0)))
    assert online.coef == (1.0, 0.0, 0.0, 2.0)  # kept >= 0 as the constructor does
