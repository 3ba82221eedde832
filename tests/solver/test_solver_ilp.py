"""The MILP against exhaustive enumeration, and CBC against HiGHS."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.bruteforce import brute_force, packs
from solver.instance import build_instance
from solver.plan import Plan
from solver.solve import current_counts, solve
from solver.types import Cluster, NodeType, Workload
from tests.solver.solver_helpers import cluster, policy, profiles, slo

LEVELS = (0.5, 0.7, 0.9, 0.99)


@st.composite
def instances(draw):
    shapes = draw(st.sampled_from([((1, 2),), ((1, 3),), ((2, 2),), ((1, 4),), ((2, 3),),
                                   ((1, 2), (1, 3))]))
    nodes = tuple(NodeType(c, g, "H100", name=f"pool{i}") for i, (c, g) in enumerate(shapes))
    taus = tuple(sorted(draw(st.sets(st.sampled_from(LEVELS), min_size=1, max_size=2))))
    tps = (1, 2) if max(g for _, g in shapes) < 4 else (1, 2, 4)
    classes = []
    for i in range(draw(st.integers(1, 3))):
        floor = draw(st.sampled_from([{}, {"min_threshold": taus[-1]},
                                      {"max_accuracy_drop": 0.05}]))
        if "max_accuracy_drop" in floor and taus[-1] < 0.7:
            floor = {}
        classes.append(slo(f"c{i}", rate=draw(st.one_of(st.just(0.0), st.floats(0.01, 60.0))),
                           deadline_s=draw(st.floats(0.12, 1.0)),
                           priority=draw(st.integers(0, 2)),
                           best_effort=draw(st.booleans()) and i > 0,
                           target_attainment=draw(st.sampled_from([0.9, 0.95, 0.99])), **floor))
    pol = policy(draw(st.sampled_from(["cbc", "highs"])), thresholds=taus, tp_degrees=tps)
    current = None
    if draw(st.booleans()):
        current = {(p, t): draw(st.integers(0, 2)) for p in range(len(nodes)) for t in tps}
    return Cluster(nodes), Workload(tuple(classes)), pol, current


def as_plan(cl: Cluster, counts: dict[tuple[int, int], int]) -> Plan:
    from solver.plan import ReplicaGroup
    groups = tuple(ReplicaGroup(cl.nodes[p].name, "H100", t, 0.9, 0.9, 32, n)
                   for (p, t), n in counts.items() if n > 0)
    return Plan(groups, (), (), "optimal", "cbc", 0.0, 0.0, 0.0, 0.0, 0.0, 0, cl.gpus, 0.0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_milp_matches_brute_force(case):
    cl, wl, pol, cur_counts = case
    prof = profiles((1,))
    current = as_plan(cl, cur_counts) if cur_counts is not None else None
    plan = solve(cl, wl, prof, pol, current)
    inst = build_instance(cl, wl, prof, pol)
    cur, _ = current_counts(inst, current)
    ref = brute_force(inst, cur)
    assert plan.status == "optimal"
    assert plan.objective == pytest.approx(ref.objective, abs=1e-6)
    assert plan.served_norm == pytest.approx(ref.served_norm, abs=2e-3)
    # the plan itself is feasible: it packs, respects capacity, demand and quality floors
    counts = tuple(next((g.count for g in plan.groups if (g.node_type, g.tp, g.threshold_min)
                         == (k.node_type, k.tp, k.threshold)), 0) for k in inst.configs)
    assert packs(inst, counts)
    load = [0.0] * len(plan.groups)
    for r in plan.routes:
        g = plan.groups[r.group]
        c = next(i for i, cls in enumerate(wl.classes) if cls.name == r.class_name)
        k = next(i for i, cfg in enumerate(inst.configs) if (cfg.node_type, cfg.tp, cfg.threshold)
                 == (g.node_type, g.tp, g.threshold_min))
        assert inst.allowed[k][c], "a route breaks the class's quality floor"
        load[r.group] += r.rate / (g.count * inst.cap(k, c))
    assert all(u <= 1 + 1e-6 for u in load)
    for o in plan.classes:
        assert o.served_rate <= o.offered_rate * (1 + 1e-6) + 1e-9


def test_packing_rows_are_exact_for_odd_node_sizes():
    # two 6-GPU nodes hold two TP=4 groups (one each), not three, although 12 >= 3 x 4
    cl = Cluster((NodeType(2, 6, "H100"),))
    wl = Workload((slo("tight", rate=200.0, deadline_s=0.12),))
    pol = policy(tp_degrees=(4,), thresholds=(0.5,))
    plan = solve(cl, wl, profiles((1,)), pol)
    assert plan.replicas() == {("H100x6", 4): 2}
    inst = build_instance(cl, wl, profiles((1,)), pol)
    assert brute_force(inst).counts == (2,)


def test_cbc_and_highs_agree():
    cl = cluster(2, 4)
    wl = Workload((slo("a", 30.0), slo("b", 25.0, min_threshold=0.8, priority=1),
                   slo("c", 10.0, deadline_s=0.25), slo("d", 20.0, best_effort=True)))
    prof = profiles((1, 2))
    a = solve(cl, wl, prof, policy("cbc"))
    b = solve(cl, wl, prof, policy("highs"))
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, abs=1e-7)
    assert a.served_norm == pytest.approx(b.served_norm, abs=1e-6)
    assert b.gap is not None and b.gap <= 1e-6
