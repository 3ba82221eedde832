"""The live controller's planner: the solver, bound to the cluster, the model's profiles and the
policy, exactly as the simulator's `dilaserve` policy binds it (`sim.planning.SimPlanner`,
`sim.simulator.solver_policy`), so that a plan made live is the plan the simulator would make.

Two live-only translations, both from the operator's policy: the solver's SLO classes come from
the policy's classes (a deadline with a per-token part is taken at the class's current mean
canvas), and the threshold levels are the policy's `cluster.thresholds` that the quality profile
measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dilaserve.policy import Policy
from orchestrator.config import ClusterSettings
from sim.planning import SimPlanner
from sim.profiles import SimProfiles
from sim.simulator import solver_policy
from solver.plan import Plan
from solver.types import Cluster, LengthDist, SloClass, Workload

NOMINAL_PROMPT = 64.0  # lengths a class is planned with before any request of it was seen
MAX_TARGET = 0.999  # the solver plans for attainment strictly below 1


def class_templates(policy: Policy) -> list[SloClass]:
    out = []
    for c in policy.classes:
        nominal = float(policy.worker.max_new_tokens) / 2
        deadline = c.deadline_s(int(nominal)) if c.has_deadline else None
        out.append(SloClass(
            c.name, 0.0, LengthDist(NOMINAL_PROMPT), LengthDist(nominal), deadline_s=deadline,
            min_threshold=c.min_threshold, max_accuracy_drop=c.max_accuracy_drop,
            target_attainment=min(MAX_TARGET, c.target_attainment), priority=c.priority,
            best_effort=c.best_effort or not c.has_deadline))
    return out


class LivePlanner:
    """`planner(workload, current) -> [plans]`, the controller's Planner."""

    def __init__(self, cluster: Cluster, profiles: SimProfiles, policy: Policy,
                 settings: ClusterSettings) -> None:
        self.policy = policy
        base = solver_policy(profiles, cluster)
        levels = tuple(t for t in base.thresholds if any(abs(t - s) < 1e-9
                                                          for s in settings.thresholds))
        if not levels:
            raise ValueError(f"cluster.thresholds {list(settings.thresholds)}: none of them is "
                             f"in the quality profile (measured: {list(base.thresholds)})")
        tps = tuple(t for t in base.tp_degrees if t <= settings.max_tp)
        self.solver = SimPlanner(cluster, profiles,
                                 dataclasses.replace(base, thresholds=levels, tp_degrees=tps))

    def __call__(self, workload: Workload, current: Plan | None) -> Sequence[Plan]:
        return self.solver(self._deadlines(workload), current)

    def _deadlines(self, workload: Workload) -> Workload:
        classes = []
        for c in workload.classes:
            try:
                spec = self.policy.slo_class(c.name)
            except ValueError:
                classes.append(c)
                continue
            if spec.has_deadline:
                c = dataclasses.replace(c, deadline_s=spec.deadline_s(int(c.output.mean)))
            classes.append(c)
        return Workload(tuple(classes))
