"""dilaserve's planner and plan evaluator in the simulator: the solver offers candidate plans, and
each is scored by simulating it on the recent arrivals (AlpaServe scores placements the same way).

Candidates: the solver's plan over every TP degree, then the solver's plan restricted to the TP
degrees running now, and to each TP degree alone (duplicates dropped). The solver's capacity model
is a queueing approximation (solver/capacity.py); `sim.capacity_check` shows where it errs (it
does not see padding or the workers' row limit), and the evaluator guards the layout decision
against those errors with the system's own code: the same simulator, routers and scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from orchestrator.controller import slots
from orchestrator.load import Arrival
from sim.metrics import Outcome
from sim.policies import PolicySpec
from sim.profiles import SimProfiles
from sim.workload import SimClass, build_workload
from solver.plan import Plan
from solver.solve import solve
from solver.types import Cluster, Policy, Workload
from traces.jobs import CanvasPolicy
from traces.records import Trace, TraceRequest
from traces.transform import scale_rate


class SimPlanner:
    def __init__(self, cluster: Cluster, profiles: SimProfiles, policy: Policy) -> None:
        self.cluster = cluster
        self.profiles = profiles.solver_profiles()
        self.policy = policy
        self.solved = 0

    def __call__(self, workload: Workload, current: Plan | None) -> list[Plan]:
        plans = [self._solve(workload, self.policy, current)]
        restricted = [(t,) for t in sorted(self.policy.tp_degrees)]
        if current is not None:
            running = tuple(sorted({g.tp for g in current.groups}))
            if running and running not in restricted:
                restricted.insert(0, running)
        for tps in restricted:
            if tps == tuple(sorted(self.policy.tp_degrees)):
                continue
            plan = self._solve(workload, replace(self.policy, tp_degrees=tps), current)
            if all(slots(plan) != slots(p) or plan.groups != p.groups for p in plans):
                plans.append(plan)
        return plans

    def _solve(self, workload: Workload, policy: Policy, current: Plan | None) -> Plan:
        self.solved += 1
        return solve(self.cluster, workload, self.profiles, policy, current)


class SimEvaluator:
    """The attainment a plan reaches on recent arrivals with `stress` more of them (scaled by
    request count), simulated with the policy's routing and scheduling over the window twice and
    scored on the second pass (lengths as the requests declare them: the canvas; the per-request
    speed spread of the workload model).

    Why the stress: scored at the recent load alone, layouts tie at 100% whenever load is light
    (the trace's first minutes), and the tie went to whichever plan came first, in practice TP8
    replicas, which lose a fifth of the attainment once the load rises; with a quarter more load
    the score also tells which layout has room to grow."""

    def __init__(self, cluster: Cluster, profiles: SimProfiles, classes: tuple[SimClass, ...],
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
