"""The live bench's pure parts: a simulator PolicySpec as the live cluster runs it, the fixed
layout planner, and the trace -> live requests mapping (no Ray, no gRPC)."""

from __future__ import annotations

import math

import pytest

from dilaserve.cli.serve import DEFAULT_POLICY
from dilaserve.livebench.mapping import (
    ClassDeadlines,
    MeanDeadlinePlanner,
    class_floor,
    live_policy,
)
from dilaserve.livebench.setup import embedded_cluster, measured_tp_only, served_profiles
from dilaserve.livebench.workload import build_live_workload
from dilaserve.policy.cluster_loader import load_cluster_policy
from orchestrator.planning import FixedLayout
from sim.policies import POLICIES, Layout
from sim.workload import SimClass
from solver.types import LengthDist, Workload, WorkloadClass
from traces import Fixed, LogNormal, synthetic_trace
from worker.models import tasks
from worker.models.task_suites import suite_of

BASE = load_cluster_policy(DEFAULT_POLICY)
PROFILES = served_profiles(BASE)
CLASSES = (SimClass("default", 5.0, 0.03, None, 0.9),)


def mapped(name: str, layout: Layout | None = None):
    spec = POLICIES[name] if layout is None else POLICIES[name].with_layout(layout)
    return spec, live_policy(spec, BASE, CLASSES, {"default": ClassDeadlines(40.0, 90.0)},
                             PROFILES, router_port=0)


@pytest.mark.parametrize("name", ["static", "static+edf", "static+edf+threshold", "dilaserve"])
def test_each_policy_runs_its_own_scheduler_settings_and_router(name):
    spec, live = mapped(name)
    worker = live.cluster_policy.policy.worker
    rows = PROFILES.limits(1).max_rows
    assert worker.scheduler == spec.scheduler_config(rows)  # the simulated replicas' config
    assert (worker.max_rows, worker.max_tokens) == (rows, PROFILES.limits(1).max_tokens)
    assert worker.block_size == PROFILES.reference_block
    cluster = live.cluster_policy.cluster
    assert cluster.router_kind == spec.router
    assert cluster.router_port == 0 and cluster.metrics_port is None
    assert cluster.cpu_slots == BASE.cluster.cpu_slots  # the embedded default's shape kept
    klass = live.cluster_policy.policy.slo_class("default")
    # served: the longest of the requests' deadlines, so that none of theirs is cut (a request's
    # effective deadline is the earliest of its own and its class's)
    assert klass.deadline_ms == 90.0 and klass.max_accuracy_drop == 0.03


def test_fixed_layouts_get_the_fixed_planner_with_the_simulators_threshold_range():
    _, live = mapped("static")
    floor = class_floor(CLASSES, PROFILES)
    assert live.planner_factory == FixedLayout(1, min(floor, 0.9), 0.9, 32)
    _, best = mapped("best-static", Layout(1, 0.7))
    assert best.planner_factory == FixedLayout(1, min(floor, 0.7), 0.7, 32)
    assert best.layout == "TP1 x tau 0.7"


def test_dilaserve_keeps_the_live_planner_planning_for_the_mean_deadline():
    _, live = mapped("dilaserve")
    assert live.planner_factory == MeanDeadlinePlanner((("default", 40.0),))
    assert not live.fixed and "live planner" in live.describe()
    cluster = embedded_cluster(BASE, PROFILES)
    policy = live.cluster_policy.policy
    planner = live.planner_factory(cluster, PROFILES, policy, live.cluster_policy.cluster)
    assert planner.policy.slo_class("default").deadline_ms == 40.0  # planned: the mean
    assert policy.slo_class("default").deadline_ms == 90.0  # served: the longest


def test_class_deadlines_are_the_mean_and_the_longest():
    assert ClassDeadlines.of([10.0, 20.0, 60.0]) == ClassDeadlines(30.0, 60.0)
    assert ClassDeadlines.fixed(5.0) == ClassDeadlines(5.0, 5.0)


def test_best_static_needs_its_layout_first():
    with pytest.raises(ValueError, match="best-static"):
        live_policy(POLICIES["best-static"], BASE, CLASSES,
                    {"default": ClassDeadlines.fixed(40.0)}, PROFILES)


def test_fixed_layout_planner_fills_every_slot_and_never_changes():
    cluster = embedded_cluster(BASE, PROFILES)
    planner = FixedLayout(1, 0.5, 0.9, 32)(cluster, PROFILES, BASE.policy, BASE.cluster)
    workload = Workload((WorkloadClass("default", 3.0, LengthDist(40), LengthDist(64),
                                       deadline_s=0.05),))
    first = planner(workload, None)[0]
    again = planner(workload, first)[0]
    assert first.groups == again.groups
    (group,) = first.groups
    assert (group.tp, group.count, group.threshold_min, group.threshold_max) == \
        (1, BASE.cluster.cpu_slots, 0.5, 0.9)
    assert sum(r.fraction for r in first.routes) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="TP4"):
        FixedLayout(4, 0.5, 0.9, 32)(cluster, PROFILES, BASE.policy, BASE.cluster)
    with pytest.raises(ValueError, match="threshold_min"):
        FixedLayout(1, 0.95, 0.9, 32)


def test_cpu_replicas_plan_only_the_measured_tp_degrees():
    import dataclasses

    wide = dataclasses.replace(BASE, cluster=dataclasses.replace(BASE.cluster, max_tp=8))
    capped, note = measured_tp_only(wide, PROFILES)
    measured = max(p.tp for p in PROFILES.step_costs)
    assert capped.cluster.max_tp == measured < 8
    assert f"TP up to {measured}" in note
    same, quiet = measured_tp_only(capped, PROFILES)  # already capped: nothing to say
    assert same.cluster.max_tp == measured and quiet == ""


def workload(seed: int = 0, slo: float = 5.0):
    trace = synthetic_trace(20.0, duration_s=5.0, prompt=LogNormal(48, 1.0),
                            output=LogNormal(60, 1.0), seed=seed)
    classes = (SimClass("default", slo, 0.03, None, 0.9),)
    return build_live_workload(trace, classes, PROFILES, 128, seed)


def test_requests_are_held_out_task_prompts_with_block_canvases_and_simulator_deadlines():
    w = workload()
    assert len(w.requests) == len(w.sim.jobs) > 50
    for r, job in zip(w.requests, w.sim.jobs):
        assert tasks.is_heldout(r.prompt) and suite_of().task_of(r.prompt) == r.task
        assert r.canvas % 32 == 0 and 32 <= r.canvas <= 128
        assert (job.arrival_s, job.prompt_len, job.canvas_len) == (r.at_s, len(r.prompt),
                                                                   r.canvas)
        # the blocks its answer and EOS take: one for a short task, three for a long one
        assert job.decoded_len == 32 * math.ceil((len(r.answer) + 1) / 32)
        unloaded = PROFILES.unloaded_latency(len(r.prompt), r.canvas, job.decoded_len)
        assert r.deadline_ms == pytest.approx(5.0 * unloaded * 1e3)
    suite = suite_of()
    assert {r.task for r in w.requests} == set(suite.tasks)
    long = [r for r in w.requests if r.task in suite.long_tasks]
    assert long and all(len(r.prompt) > 60 for r in long)


def test_the_mapping_is_deterministic_under_the_seed_and_scales_deadlines():
    a, b, c = workload(1), workload(1), workload(2)
    assert a.requests == b.requests and a.requests != c.requests
    tighter = workload(1, slo=2.5)
    assert all(math.isclose(t.deadline_ms * 2, r.deadline_ms)
               for t, r in zip(tighter.requests, a.requests))


def test_a_canvas_too_small_for_the_answers_is_refused():
    trace = synthetic_trace(5.0, count=4, prompt=Fixed(10), output=Fixed(10), seed=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        build_live_workload(trace, CLASSES, PROFILES, 16, 0)
