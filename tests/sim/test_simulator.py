from __future__ import annotations

import contextlib
import io
from dataclasses import replace

import numpy as np
import pytest

import worker.scheduler.scheduler as real_scheduler
from orchestrator.controller import ControllerConfig
from orchestrator.load import Arrival
from sim.metrics import Outcome
from sim.policies import POLICIES, Layout, parse_policies
from sim.simulator import SimOptions, Simulation
from sim.workload import SimClass, build_workload
from solver.profile_set import resolve_profiles
from solver.types import Cluster
from traces import LogNormal, Trace, synthetic_trace

PROFILES = resolve_profiles("llada-8b")
CLUSTER = Cluster.from_spec("1x8:A100")


def workload(rate: float = 6.0, duration: float = 60.0, slo: float = 5.0, seed: int = 0):
    trace = synthetic_trace(rate, duration_s=duration, prompt=LogNormal(500, 0.8),
                            output=LogNormal(150, 0.8), seed=seed)
    return build_workload(trace, (SimClass(slo_scale=slo),), PROFILES, seed=seed)


def runnable(name: str):
    policy = POLICIES[name]
    return policy.with_layout(Layout(2, 0.8)) if policy.hindsight else policy


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_request_ends_exactly_once(name):
    wl = workload()
    sim = Simulation(wl, CLUSTER, PROFILES, runnable(name))
    summary = sim.run()
    outcomes = sim.records.outcome
    assert (outcomes != Outcome.PENDING).all()
    assert summary.met + summary.late + summary.expired + summary.rejected + summary.shed \
        == len(wl.jobs)
    finished = (outcomes == Outcome.MET) | (outcomes == Outcome.LATE)
    assert not np.isnan(sim.records.accuracy[finished]).any()
    assert 0 <= summary.attainment <= 1
    for replica in sim.fleet.live:  # nothing left anywhere
        assert replica.active == 0 and not replica.busy and not replica.engine.rows


def test_replicas_run_the_real_scheduler_classes():
    sim = Simulation(workload(duration=5.0), CLUSTER, PROFILES, POLICIES["static+edf"])
    sim.run()
    for replica in sim.fleet.live:
        assert type(replica.scheduler) is real_scheduler.Scheduler
        expected = POLICIES["static+edf"].scheduler_config(PROFILES.max_rows)
        assert replica.scheduler.config == expected


def test_deterministic_under_seed():
    a = Simulation(workload(), CLUSTER, PROFILES, POLICIES["dilaserve"], SimOptions(seed=3)).run()
    b = Simulation(workload(), CLUSTER, PROFILES, POLICIES["dilaserve"], SimOptions(seed=3)).run()
    keys = ("attainment", "met", "late", "expired", "rejected", "latency_p99_s",
            "mean_accuracy", "replica_steps", "reconfigurations")
    assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys]


def test_policies_differ_as_defined_under_overload():
    wl = workload(rate=14.0, duration=90.0)
    results = {name: Simulation(wl, CLUSTER, PROFILES, runnable(name)).run()
               for name in ("static", "static+edf", "static+edf+threshold")}
    assert results["static"].rejected == 0  # no admission control
    assert results["static+edf"].rejected > 0
    assert results["static"].mean_threshold == pytest.approx(0.9)
    assert results["static+edf+threshold"].mean_threshold < 0.9  # threshold control acted
    floor = SimClass().floor(PROFILES.quality, 32)
    assert min(float(k) for k in results["static+edf+threshold"].thresholds) >= floor - 0.025


class SurgePlanner:
    """Stands in for the solver: TP1 replicas while the load is light, TP2 once it surges, so
    that a re-plan must reload (the solver's own choice depends on its capacity model)."""

    def __init__(self, cluster, profiles, policy, alternatives=False) -> None:
        self.node = cluster.nodes[0]

    def __call__(self, workload, current):
        from solver.plan import Plan, ReplicaGroup, Route

        rate = workload.classes[0].rate
        tp = 2 if rate > 5.0 else 1
        group = ReplicaGroup(self.node.name, self.node.gpu_type, tp, 0.9, 0.9, 32,
                             self.node.gpus_per_node // tp)
        return [Plan((group,), (Route(workload.classes[0].name, 0, rate, 1.0, 0.9),), (),
                     "optimal", "fake", 0.0, 0.0, 1.0, 0.0, 0.0, group.gpus, group.gpus, 0.0)]


def test_reconfiguration_takes_the_modelled_reload_time(monkeypatch):
    import sim.simulator

    monkeypatch.setattr(sim.simulator, "CandidatePlanner", SurgePlanner)
    quiet = synthetic_trace(1.0, duration_s=60.0, prompt=LogNormal(500, 0.8),
                            output=LogNormal(150, 0.8), seed=0)
    surge = synthetic_trace(14.0, duration_s=120.0, prompt=LogNormal(500, 0.8),
                            output=LogNormal(150, 0.8), seed=1)
    moved = tuple(replace(r, arrival_s=r.arrival_s + 60.0) for r in surge.requests)
    trace = Trace("step", quiet.requests + moved, duration_s=180.0)
    wl = build_workload(trace, (SimClass(slo_scale=8.0),), PROFILES)
    policy = replace(POLICIES["dilaserve"], evaluate_plans=False,  # the planner's plan as is
                     controller=ControllerConfig(tick_s=5.0, window_s=30.0, min_interval_s=10.0))
    profiles = replace(PROFILES, reload_s=30.0)
    sim = Simulation(wl, CLUSTER, profiles, policy)
    summary = sim.run()
    assert summary.reconfigurations["plans"] >= 2
    assert summary.reconfigurations.get("replicas_added", 0) >= 1
    late_starters = {rid: t for rid, t in sim.fleet.ready_at.items() if t > 0}
    assert late_starters and min(late_starters.values()) >= 60.0 + 30.0 - 5.0
    for rid, ready in late_starters.items():  # nothing reached a replica before it was ready
        served = np.nonzero(sim.records.replica == rid)[0]
        assert all(wl.jobs[i].arrival_s >= ready for i in served)


def test_parse_policies():
    assert [p.name for p in parse_policies("static,dilaserve")] == ["static", "dilaserve"]
    with pytest.raises(ValueError, match="unknown"):
        parse_policies("static,fast")


def test_planner_candidates_and_evaluator():
    from orchestrator.planning import CandidatePlanner
    from sim.planning import SimEvaluator
    from solver.profile_set import solver_policy
    from solver.types import LengthDist, Workload

    cls = SimClass(slo_scale=5.0).to_workload_class()
    wl = Workload((replace(cls, rate=8.0, prompt=LengthDist(500, 1200),
                           output=LengthDist(160, 320)),))
    planner = CandidatePlanner(CLUSTER, PROFILES, solver_policy(PROFILES, CLUSTER))
    plans = planner(wl, None)
    layouts = [sorted({g.tp for g in p.groups}) for p in plans]
    assert len(plans) >= 2 and [1] in layouts  # the solver's own, then single-TP layouts
    evaluator = SimEvaluator(CLUSTER, PROFILES, (SimClass(slo_scale=5.0),), POLICIES["dilaserve"])
    recent = [Arrival(float(t), "default", 500, 160) for t in range(30)]
    score = evaluator(plans[0], recent, 30.0)
    assert 0.0 <= score <= 1.0 and evaluator.runs == 1


def test_progress_counts_the_steps_of_stopped_replicas():
    sim = Simulation(workload(duration=10.0), CLUSTER, PROFILES, POLICIES["static"])
    summary = sim.run()
    stepped = next(r for r in sim.fleet.live if r.steps > 0)
    sim.fleet.stop(stepped)  # as the controller's removals do
    progress = io.StringIO()
    with contextlib.redirect_stderr(progress):
        sim._progress(summary.sim_s, summary.wall_s, final=True)
    assert f" {summary.replica_steps} steps" in progress.getvalue()
