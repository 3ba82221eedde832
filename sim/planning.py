"""What the simulator tells the planner: how its replicas serve (`serving_model`, the inputs of
the solver's capacity model), and optionally a plan scorer that simulates.

The scorer (`SimEvaluator`): each candidate plan of the controller's planner
(`orchestrator.planning.CandidatePlanner`) is scored by simulating it on the recent arrivals
(AlpaServe scores placements the same way). The controller takes it as its `evaluator`; the
simulator wires it in for policies with `evaluate_plans` (`dilaserve+sim`). It is a refinement,
not a need: the capacity model agrees with the simulator within a few percent
(`sim.capacity_check`, docs/simulator.md), and the scorer costs most of such a run's wall time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from orchestrator.load import Arrival
from sim.metrics import Outcome
from sim.policies import PolicySpec
from sim.workload import DEFAULT_SPEED_CV, SimClass, build_workload
from solver.plan import Plan
from solver.profile_set import ProfileSet
from solver.types import Cluster, ServingModel
from traces.jobs import CanvasPolicy
from traces.records import Trace, TraceRequest
from traces.transform import scale_rate


def serving_model(policy: PolicySpec, max_rows: int,
                  speed_cv: float = DEFAULT_SPEED_CV) -> ServingModel:
    """The solver's view of how this policy's replicas serve (its scheduler's refresh bound and
    admission, the deadline-aware router's tries, the workload's speed spread)."""
    config = policy.scheduler_config(max_rows)
    tries = policy.make_router().tries if policy.router == "deadline_aware" else 1
    return ServingModel(max_refresh_rows=config.max_refresh_rows, admission=config.admission,
                        admission_headroom=config.admission_headroom, router_tries=tries,
                        speed_cv=speed_cv)


class SimEvaluator:
    """The attainment a plan reaches on recent arrivals with `stress` more of them (scaled by
    request count), simulated with the policy's routing and scheduling over the window twice and
    scored on the second pass (lengths as the requests declare them: the canvas; the per-request
    speed spread of the workload model).

    Why the stress: scored at the recent load alone, layouts tie at 100% whenever load is light
    (the trace's first minutes), and the tie went to whichever plan came first, in practice TP8
    replicas, which lose a fifth of the attainment once the load rises; with a quarter more load
    the score also tells which layout has room to grow."""

    def __init__(self, cluster: Cluster, profiles: ProfileSet, classes: tuple[SimClass, ...],
                 policy: PolicySpec, seed: int = 0, stress: float = 0.25) -> None:
        self.cluster = cluster
        self.profiles = profiles
        self.classes = classes
        self.policy = replace(policy, controller=None, evaluate_plans=False)
        self.seed = seed
        self.stress = stress
        self.runs = 0

    def __call__(self, plan: Plan, arrivals: Sequence[Arrival], now: float) -> float:
        from sim.simulator import SimOptions, Simulation

        if not arrivals:
            return 1.0
        t0 = arrivals[0].at_s
        span = max(1e-9, now - t0)
        once = [TraceRequest(a.at_s - t0, a.prompt_len, a.canvas_len, a.slo_class)
                for a in arrivals]
        # the window twice over, scored on the second pass: a cluster that starts empty would
        # flatter layouts whose queues only build up after a while
        twice = once + [replace(r, arrival_s=r.arrival_s + span) for r in once]
        trace = Trace("recent", tuple(twice), duration_s=2 * span)
        if self.stress > 0:
            trace = scale_rate(trace, 1.0 + self.stress, seed=self.seed)
        canvas = CanvasPolicy(block_size=self.profiles.reference_block)
        workload = build_workload(trace, self.classes, self.profiles, canvas, self.seed)
        self.runs += 1
        sim = Simulation(workload, self.cluster, self.profiles, self.policy,
                         SimOptions(seed=self.seed), plan=plan)
        sim.run()
        second = np.array([j.arrival_s >= span for j in workload.jobs])
        if not second.any():
            return 1.0
        return float((sim.records.outcome[second] == Outcome.MET).mean())
