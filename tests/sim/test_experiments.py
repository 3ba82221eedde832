from __future__ import annotations

import math
from dataclasses import replace

import pytest

from sim.experiments import (
    BenchSetup,
    PointResult,
    best_of_sweep,
    run_grid,
    static_layouts,
    sustained_rate,
    upper_bound,
    workload_at,
)
from sim.metrics import RunSummary
from sim.policies import POLICIES, Layout
from sim.sensitivity import perturb
from sim.workload import SimClass
from solver.profile_set import resolve_profiles
from solver.types import Cluster
from traces import LogNormal, synthetic_trace

PROFILES = resolve_profiles("llada-8b")


def setup(duration: float = 40.0) -> BenchSetup:
    trace = synthetic_trace(3.0, duration_s=duration, prompt=LogNormal(400, 0.8),
                            output=LogNormal(120, 0.8), seed=0)
    return BenchSetup(trace, (SimClass(slo_scale=1.0),), Cluster.from_spec("1x4:A100"), PROFILES)


def summary(policy: str, rate: float, attainment: float) -> RunSummary:
    return RunSummary(policy, "-", 100, 10.0, rate, attainment, 0.0, 0, 0, 0, 0, 0, math.nan,
                      math.nan, math.nan, math.nan, math.nan, 0.79, math.nan, {}, {}, 0, 1.0,
                      1.0, 0.0)


def test_sustained_rate_interpolates_the_crossing():
    results = [PointResult(1.0, 5.0, summary("p", r, a))
               for r, a in ((1.0, 1.0), (2.0, 0.95), (3.0, 0.85), (4.0, 0.5))]
    assert sustained_rate(results, "p", 5.0) == pytest.approx(2.5)
    assert sustained_rate(results, "p", 4.0) is None
    low = [PointResult(1.0, 5.0, summary("q", 1.0, 0.5))]
    assert sustained_rate(low, "q", 5.0) is None


def test_static_layouts_respect_the_floor_and_node_size():
    layouts = static_layouts(setup())
    assert {lay.tp for lay in layouts} == {1, 2, 4}
    assert {lay.threshold for lay in layouts} == {0.7, 0.8, 0.9}  # floor: 3 points of accuracy


def test_with_a_budget_best_static_tops_its_ranges_where_the_budget_fits():
    s = setup()
    budgeted = replace(s, classes=(SimClass(slo_scale=1.0, accuracy_budget=0.01),))
    # LLaDA-8B: 0.85 (interpolated) costs 0.75 points, 0.8 costs 1.5
    assert {lay.threshold for lay in static_layouts(budgeted)} == {0.85, 0.9}


def test_best_static_picks_among_the_runs_that_kept_the_budget():
    kept = replace(summary("best-static", 1.0, 0.8), mean_accuracy=0.785, accuracy_budget=0.01)
    overspent = replace(kept, attainment=0.9, mean_accuracy=0.77)
    assert not overspent.within_budget and kept.within_budget
    assert best_of_sweep([overspent, kept]) is kept
    assert best_of_sweep([overspent]) is overspent  # none kept it: the best, shown as overspent


def test_best_static_is_the_best_of_its_sweep_and_bound_holds():
    s = setup()
    results = run_grid(s, [POLICIES["static"], POLICIES["best-static"]], [1.0], [4.0])
    best = next(r for r in results if r.policy == "best-static")
    assert len(best.sweep) == len(static_layouts(s))
    assert best.summary.attainment == max(a for _, a, _ in best.sweep)
    bound = upper_bound(workload_at(s, 1.0, 4.0), s.profiles, s.cluster)
    assert all(r.summary.attainment <= bound + 1e-9 for r in results)


def test_perturbations_change_what_they_name():
    s = setup()
    halved, text = perturb(s, "reload_s", 0.5)
    assert halved.profiles.reload_s == PROFILES.reload_s / 2 and "s" in text
    doubled, _ = perturb(s, "tp_overhead", 2.0)
    assert doubled.profiles.tp_overhead.efficiency_loss == 2 * PROFILES.tp_overhead.efficiency_loss
    batch, _ = perturb(s, "batch_scaling", 2.0)
    assert batch.profiles.step_costs[0].cost.coef[1] == pytest.approx(
        2 * PROFILES.step_costs[0].cost.coef[1])
    with pytest.raises(ValueError, match="unknown assumption"):
        perturb(s, "weather", 2.0)


def test_layout_describe():
    assert Layout(2, 0.8).describe() == "TP2 x tau 0.8"
