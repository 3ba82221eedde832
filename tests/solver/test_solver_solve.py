"""solve(): quality floors, over-subscription, reconfiguration, extrapolation, the plan's report."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from solver.plan import Plan
from solver.solve import _cbc_gap, solve
from solver.types import ObjectiveWeights, Workload
from tests.solver.solver_helpers import cluster, policy, profiles, slo


def test_quality_floors_are_respected():
    wl = Workload((slo("strict", 20.0, min_threshold=0.9),
                   slo("drop", 20.0, max_accuracy_drop=0.02), slo("loose", 20.0)))
    prof = profiles((1,))
    plan = solve(cluster(1, 8), wl, prof, policy())
    assert plan.status == "optimal"
    q = prof.quality
    for r in plan.routes:
        g = plan.groups[r.group]
        if r.class_name == "strict":
            assert g.threshold_min >= 0.9
        if r.class_name == "drop":
            assert q.accuracy_drop(g.threshold_min, g.block_size) <= 0.02 + 1e-12
    # the loose class rides the fast low thresholds when load is high
    loose = {plan.groups[r.group].threshold_min for r in plan.routes if r.class_name == "loose"}
    assert min(loose) < 0.9


def test_underloaded_classes_get_the_best_accuracy():
    wl = Workload((slo("a", 1.0, deadline_s=2.0),))
    plan = solve(cluster(1, 4), wl, profiles((1,)), policy())
    assert not plan.short_classes()
    assert {plan.groups[r.group].threshold_min for r in plan.routes if r.rate > 0} == {0.99}
    assert plan.accuracy_drop < 0  # tau 0.99 is slightly better than the 0.9 reference
    assert plan.gpus_used == 4  # spare GPUs still become replicas (headroom)


def test_oversubscription_serves_what_it_can_and_names_the_short_class():
    wl = Workload((slo("small", 5.0, priority=1), slo("huge", 5000.0)))
    plan = solve(cluster(1, 4), wl, profiles((1,)), policy())
    assert plan.status == "optimal"
    assert plan.short_classes() == ["huge"]
    huge = plan.outcome("huge")
    assert 0 < huge.served_rate < huge.offered_rate
    assert "cluster full" in huge.reason and "more GPUs" in huge.reason
    assert any(r.startswith("class huge is short") for r in plan.reasons)
    assert plan.outcome("small").served_rate == pytest.approx(5.0)
    assert plan.outcome("small").predicted_attainment >= 0.95 - 1e-6


def test_priority_breaks_ties_between_equal_classes():
    wl = Workload((slo("low", 500.0, priority=0), slo("high", 500.0, priority=5)))
    plan = solve(cluster(1, 2), wl, profiles((1,)), policy())
    assert plan.outcome("high").served_rate > plan.outcome("low").served_rate


def test_best_effort_only_gets_leftovers():
    wl = Workload((slo("slo", 500.0), slo("be", 500.0, best_effort=True)))
    plan = solve(cluster(1, 2), wl, profiles((1,)), policy())
    assert plan.outcome("be").served_rate == pytest.approx(0.0, abs=1e-6)
    assert "best effort" in plan.outcome("be").reason


def test_impossible_deadline_is_explained():
    wl = Workload((slo("ok", 1.0), slo("tight", 1.0, deadline_s=0.01)))
    plan = solve(cluster(1, 2), wl, profiles((1,)), policy())
    assert plan.short_classes() == ["tight"]
    assert "no configuration meets its deadline" in plan.outcome("tight").reason
    assert plan.outcome("tight").served_rate == 0


def test_slo_scale_resolves_against_each_requests_unloaded_latency():
    plan = solve(cluster(1, 2), Workload((slo("s", 1.0, slo_scale=3.0, deadline_s=None),)),
                 profiles((1,)), policy())
    dl = plan.outcome("s").deadline_s  # the mean over the class's length mix
    assert dl is not None and 0.3 < dl < 1.0  # 3 x ~0.19 s at tau 0.9
    assert any("deadline is 3 x its time alone" in r for r in plan.reasons)


def test_extrapolated_tp_is_flagged_and_profiled_tp_is_not():
    wl = Workload((slo("tight", 40.0, deadline_s=0.12),))
    plan = solve(cluster(1, 4), wl, profiles((1,)), policy(tp_degrees=(2,)))
    assert plan.groups and all(g.extrapolated for g in plan.groups)
    assert any("extrapolated for TP=2 from TP=1" in r for r in plan.reasons)
    plan = solve(cluster(1, 4), wl, profiles((1, 2)), policy(tp_degrees=(2,)))
    assert plan.groups and not any(g.extrapolated for g in plan.groups)
    assert not any("extrapolated" in r for r in plan.reasons)


def _underloaded():
    # only tau=0.99 meets the floor and load is light: TP=1 x4 and TP=2 x2 tie on every tier
    return cluster(1, 4), Workload((slo("a", 0.5, deadline_s=2.0, min_threshold=0.99),))


@pytest.mark.parametrize("tp", [1, 2])
def test_reconfiguration_cost_breaks_a_tie_towards_the_current_plan(tp):
    cl, wl = _underloaded()
    prof = profiles((1, 2))
    base = solve(cl, wl, prof, policy(tp_degrees=(1, 2)))
    current = replace(base, groups=tuple(replace(g, tp=tp, count=4 // tp) for g in base.groups[:1]))
    plan = solve(cl, wl, prof, policy(tp_degrees=(1, 2)), current)
    assert plan.replicas() == {("H100x4", tp): 4 // tp}
    assert plan.reconfig_gpu_s == 0


def test_a_real_gain_is_worth_a_reload():
    # only TP=2 meets this deadline: the current TP=1 layout is drained and TP=2 loaded
    cl = cluster(1, 4)
    wl = Workload((slo("tight", 20.0, deadline_s=0.075),))
    prof = profiles((1, 2))
    pol = policy(tp_degrees=(1, 2), thresholds=(0.5, 0.9))
    first = solve(cl, wl, prof, policy(tp_degrees=(1,), thresholds=(0.5, 0.9)))
    assert first.short_classes() == ["tight"]
    cur = replace(first, groups=(replace(first.groups[0], tp=1, count=4),) if first.groups else
                  ())
    plan = solve(cl, wl, prof, pol, cur)
    assert plan.replicas().get(("H100x4", 2), 0) >= 1
    assert plan.outcome("tight").served_rate > 0
    assert plan.reconfig_gpu_s > 0
    assert any("reconfiguration against the current plan" in r for r in plan.reasons)


def test_a_small_accuracy_gain_is_not_worth_a_reload_when_reloads_are_expensive():
    cl = cluster(1, 4)
    wl = Workload((slo("a", 30.0, deadline_s=0.5),))
    prof = profiles((1, 2))
    pol = policy(tp_degrees=(1, 2))
    fresh = solve(cl, wl, prof, pol)
    # the current plan: the same GPUs as one TP size only, chosen to differ from the fresh plan
    other = 2 if fresh.replicas().get(("H100x4", 1)) else 1
    cur = replace(fresh, groups=(replace(fresh.groups[0], tp=other, count=4 // other),))
    kept = solve(cl, wl, prof, replace(pol, weights=ObjectiveWeights(reconfig=1.0)), cur)
    moved = solve(cl, wl, prof, replace(pol, weights=ObjectiveWeights(reconfig=0.0)), cur)
    assert kept.served_norm == pytest.approx(moved.served_norm, abs=1e-6)  # served is first
    assert kept.replicas() == {("H100x4", other): 4 // other}
    assert kept.reconfig_gpu_s == 0
    assert moved.replicas() == fresh.replicas()
    assert moved.accuracy_drop <= kept.accuracy_drop + 1e-9


def test_plan_round_trips_through_json():
    wl = Workload((slo("a", 10.0), slo("b", 3.0, best_effort=True)))
    plan = solve(cluster(1, 4), wl, profiles((1,)), policy())
    back = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert back == plan
    text = plan.summary()
    assert "replica groups" in text and "a" in text


def test_cbc_gap_parsing():
    log = "Result - Stopped on time limit\nObjective value: 5\nUpper bound:   5.1\nGap: 0.02\n"
    assert _cbc_gap(log, 5.0, "feasible") == pytest.approx(0.02)
    assert _cbc_gap("Cbc0011I Exiting as integer gap of 0.5 less than", 100, "optimal") == 0.005
    assert _cbc_gap("Search completed", 1.0, "optimal") == 0.0
    assert _cbc_gap("", 1.0, "feasible") is None


def test_time_limit_and_no_solution_are_reported_not_raised(monkeypatch):
    import importlib

    solve_mod = importlib.import_module("solver.solve")  # the module, not the function
    wl = Workload((slo("a", 10.0),))
    real = solve_mod.run_solver

    def stopped(prob, opts):
        real(prob, opts)
        return "feasible", 0.03

    monkeypatch.setattr(solve_mod, "run_solver", stopped)
    plan = solve(cluster(1, 4), wl, profiles((1,)), policy())
    assert plan.status == "feasible" and plan.gap == 0.03
    assert any("time limit" in r and "3.00%" in r for r in plan.reasons)
    assert plan.groups  # the incumbent is still a plan

    monkeypatch.setattr(solve_mod, "run_solver", lambda prob, opts: ("no solution", None))
    plan = solve(cluster(1, 4), wl, profiles((1,)), policy())
    assert plan.status == "no solution" and not plan.groups
    assert plan.short_classes() == ["a"]
    assert "time_limit_s" in plan.reasons[0]


def test_heterogeneous_cluster_and_cpu_slots():
    from solver.types import Cluster, NodeType, Profiles
    from tests.solver.solver_helpers import quality_profile, step_profile

    slow = [c * 20 for c in (2e-3, 1e-5, 4e-5, 1e-8)]
    prof = Profiles((step_profile(1, "H100"), step_profile(1, "cpu", coef=slow)),
                    quality_profile())
    cl = Cluster((NodeType(1, 2, "H100"), NodeType(1, 4, "cpu", name="embedded")))
    wl = Workload((slo("a", 40.0, deadline_s=3.0),))
    plan = solve(cl, wl, prof, policy(tp_degrees=(1,)))
    assert {g.node_type for g in plan.groups} == {"H100x2", "embedded"}
    assert plan.gpus_used == 6


def test_notes_give_each_layouts_capacity_and_why_a_group_was_chosen():
    plan = solve(cluster(1, 8), Workload((slo("chat", 3.0, deadline_s=2.0),)),
                 profiles((1, 2)), policy(tp_degrees=(1, 2)))
    capacities = [r for r in plan.reasons if "predicted capacity per replica" in r]
    assert len(capacities) == 1 and "TP=1" in capacities[0] and "TP=2" in capacities[0]
    serving = [plan.groups[r.group] for r in plan.routes if r.class_name == "chat"]
    assert serving
    for g in serving:
        assert any(f"class chat on TP={g.tp} tau={g.threshold_min:g} x {g.count}:" in r
                   for r in plan.reasons)


def test_layout_first_keeps_the_capacity_layout_and_picks_thresholds_within_it():
    from dataclasses import replace

    from solver.types import ObjectiveWeights

    wl = Workload((slo("a", 20.0, deadline_s=1.0), slo("b", 6.0, deadline_s=3.0)))
    prof, pol = profiles((1, 2, 4)), policy(tp_degrees=(1, 2, 4))
    blind = solve(cluster(1, 8), wl, prof, replace(pol, weights=ObjectiveWeights(accuracy=0.0)))
    first = solve(cluster(1, 8), wl, prof, replace(pol, layout_first=True))
    assert first.replicas() == blind.replicas()  # the layout of the accuracy-blind solve
    assert first.served_norm >= blind.served_norm - 1e-9
    assert first.accuracy_drop <= blind.accuracy_drop + 1e-9  # thresholds chosen within it
