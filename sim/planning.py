"""A plan scorer that simulates: each candidate plan of the controller's planner
(`orchestrator.planning.CandidatePlanner`) is scored by simulating it on the recent arrivals
(AlpaServe scores placements the same way). The controller takes it as its `evaluator`; the
simulator's `dilaserve` policy wires it in (`sim.simulator`).

The solver's capacity model is a queueing approximation (solver/capacity.py); `sim.capacity_check`
shows where it errs (it does not see padding or the workers' row limit), and the evaluator guards
the layout decision against those errors with the system's own code: the same simulator, routers
and scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from orchestrator.load import Arrival
from sim.metrics import Outcome
from sim.policies import PolicySpec
from sim.workload import SimClass, build_workload
from solver.plan import Plan
from solver.profile_set import ProfileSet
from solver.types import Cluster
from traces.jobs import CanvasPolicy
from traces.records import Trace, TraceRequest
from traces.transform import scale_rate


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
