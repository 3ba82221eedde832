import json
import random

import pytest

from dilaserve.core.steps import Phase, RowShape, StepFeatures, step_features
from dilaserve.profiles.quality import QualityPoint, QualityProfile
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile, StepSample


def test_step_features_pad_each_phase_group():
    rows = [
        RowShape(100, 100, Phase.REFRESH),
        RowShape(60, 60, Phase.REFRESH),
        RowShape(80, 8, Phase.REUSE),
        RowShape(120, 4, Phase.REUSE),
    ]
    f = step_features(rows)
    assert f == StepFeatures(
        forwards=2, refresh_tokens=200, reuse_tokens=16, attended_kv=200 * 101 + 16 * 121
    )


def test_fit_recovers_coefficients_from_noisy_steps():
    true = StepCostModel((2e-3, 1e-5, 4e-5, 2e-8))
    rng = random.Random(0)
    samples = []
    for _ in range(200):
        f = StepFeatures(
            rng.randint(1, 2), rng.randint(0, 4000), rng.randint(0, 500), rng.randint(0, 2_000_000)
        )
        samples.append(StepSample(f, true.predict(f) * rng.uniform(0.97, 1.03)))
    fitted = StepCostModel.fit(samples)
    for got, want in zip(fitted.coef, true.coef):
        assert got == pytest.approx(want, rel=0.15)


def test_fit_keeps_coefficients_non_negative():
    samples = [StepSample(StepFeatures(1, n, 0, 0), 1e-3) for n in range(1, 20)]
    assert min(StepCostModel.fit(samples).coef) >= 0


def _point(tau, acc, tps):
    return QualityPoint("threshold", tau, 32, acc, {"add": acc}, tps, tps + 1, 32 / tps)


def _three_point_profile() -> QualityProfile:
    """Measured at thresholds 0.5, 0.7 and 0.9 (the reference), block 32."""
    return QualityProfile(
        "m",
        _point(0.9, 0.95, 2.0),
        (_point(0.5, 0.85, 6.0), _point(0.7, 0.93, 4.0), _point(0.9, 0.95, 2.0)),
    )


def test_quality_interpolates_and_maps_drop_to_threshold():
    profile = _three_point_profile()
    mid = profile.at(0.8, 32)
    assert mid.accuracy == pytest.approx(0.94) and mid.answer_tokens_per_step == pytest.approx(3.0)
    assert profile.at(0.3, 32).threshold == 0.5
    assert profile.lowest_threshold(0.03, 32) == 0.7
    assert profile.lowest_threshold(0.0, 32) == 0.9
    with pytest.raises(ValueError, match="no block size 8"):
        profile.at(0.8, 8)


def test_profiles_round_trip_and_reject_other_schemas(tmp_path):
    profile = StepCostProfile(
        "m",
        "cpu",
        "float32",
        1,
        "dual",
        StepCostModel((1.0, 2.0, 3.0, 4.0)),
        0.05,
        {"source": "measured"},
    )
    profile.save(tmp_path / "s.json")
    assert StepCostProfile.load(tmp_path / "s.json") == profile
    data = json.loads((tmp_path / "s.json").read_text())
    data["schema"] = "something/v9"
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="schema"):
        StepCostProfile.load(tmp_path / "s.json")


def test_the_ladder_grid_marks_the_points_it_interpolates():
    profile = _three_point_profile()
    grid = profile.grid(32, 0.05)
    assert [p.threshold for p in grid] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    assert [p.interpolated for p in grid] == [False, True, True, True, False, True, True, True,
                                              False]
    assert grid[7].accuracy == pytest.approx(0.945)  # between 0.93 and 0.95
    # measured points keep the file format; an interpolated one says so
    assert "interpolated" not in profile.to_json()["points"][0]
    assert profile.at(0.8, 32).interpolated and not profile.at(0.7, 32).interpolated
