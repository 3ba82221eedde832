from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dilaserve.core.locations import PUBLISHED_PROFILES_DIR
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostProfile
from solver.profile_set import load_profile_set
from solver.published import (
    THRESHOLD_SWEEP,
    TIMINGS_S,
    LladaAssumptions,
    published_samples,
    quality_profile,
    step_cost_profile,
    write,
)


def test_files_are_current(tmp_path):
    """The shipped JSON files are what the builder makes (rerun `python -m solver.published`)."""
    for path in write(tmp_path):
        shipped = PUBLISHED_PROFILES_DIR / path.name
        assert json.loads(shipped.read_text()) == json.loads(path.read_text()), path.name


def test_fit_reproduces_the_published_timings():
    profile = StepCostProfile.load(PUBLISHED_PROFILES_DIR / "step_cost.a100.bfloat16.tp1.dual.json")
    for sample, (kind, seconds) in zip(published_samples(700), TIMINGS_S.items()):
        assert profile.cost.predict(sample.features) == pytest.approx(seconds, rel=0.01), kind


def test_quality_points_are_the_published_ones():
    quality = QualityProfile.load(PUBLISHED_PROFILES_DIR / "quality.json")
    assert quality.reference.threshold == 0.9
    for tau, (tps, acc) in THRESHOLD_SWEEP.items():
        point = quality.at(tau, 32)
        assert (point.tokens_per_step, point.accuracy) == (tps, acc)


def test_provenance_lists_every_assumption():
    provenance = step_cost_profile().provenance
    assumed = provenance["assumed"]
    for name in ("batch_token_scale", "tp_overhead", "reload_s", "prompt_len", "max_rows"):
        assert name in assumed
    for name in ("batch_token_scale", "tp_overhead", "reload_s", "engine_limits"):
        assert name in provenance["assumption_notes"]
    assert "Fast-dLLM" in provenance["source"]
    assert "assumed" in quality_profile().provenance


def test_batch_scaling_keeps_the_batch1_dual_step():
    dual = published_samples(700)[2].features
    for scale in (0.5, 2.0):
        cost = step_cost_profile(replace(LladaAssumptions(), batch_token_scale=scale)).cost
        assert cost.predict(dual) == pytest.approx(0.09, rel=0.01)
        base = step_cost_profile().cost
        assert cost.coef[1] == pytest.approx(base.coef[1] * scale)


def test_sim_profiles_read_the_deployment_figures():
    profiles = load_profile_set(PUBLISHED_PROFILES_DIR)
    assert profiles.reload_s == LladaAssumptions().reload_s
    assert profiles.max_seq_len == 4096
    assert profiles.limits(2).max_tokens > 2 * profiles.limits(1).max_tokens - 1
    tp2 = profiles.step_profile("A100", 2)
    assert "extrapolated_from_tp" in tp2.provenance
    assert profiles.unloaded_latency(700, 1024, 1024) > profiles.unloaded_latency(700, 1024, 512)
