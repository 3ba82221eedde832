"""TP extrapolation from a profiled smaller degree."""

from __future__ import annotations

import pytest

from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.step_cost import StepCostModel
from solver.tp_extrapolation import TpOverhead, extrapolate, extrapolate_cost
from tests.solver.solver_helpers import COEF, step_profile


def test_formula():
    oh = TpOverhead(efficiency_loss=0.1, layers=2, hidden_size=4, bytes_per_elem=2,
                    allreduce_latency_s=1e-5, link_gbytes_per_s=1e-9)  # 1 B/s: easy numbers
    base = StepCostModel(COEF)
    m = extrapolate_cost(base, 1, 4, oh)
    f = StepFeatures(forwards=2, refresh_tokens=100, reuse_tokens=10, attended_kv=1000)
    comm = 2 * (2 * 2 * 1e-5) + 110 * (2 * 2 * 4 * 2 * (2 * 3 / 4))
    assert m.predict(f) == pytest.approx(base.predict(f) / 4 * 1.1 + comm)


def test_same_degree_is_unchanged_and_smaller_is_refused():
    base = StepCostModel(COEF)
    assert extrapolate_cost(base, 2, 2, TpOverhead()).coef == pytest.approx(base.coef)
    with pytest.raises(ValueError, match="larger TP"):
        extrapolate_cost(base, 4, 2, TpOverhead())


def test_faster_with_more_gpus_on_big_steps():
    base = step_profile(1)
    f = StepFeatures(1, 4096, 0, 4096 * 4097)
    times = [extrapolate(base, t, TpOverhead()).cost.predict(f) for t in (1, 2, 4, 8)]
    assert times == sorted(times, reverse=True)


def test_provenance_says_extrapolated():
    p = extrapolate(step_profile(1), 4, TpOverhead())
    assert p.tp == 4 and p.provenance["extrapolated_from_tp"] == 1
