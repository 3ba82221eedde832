"""The controller's planners: pure, the live controller and the simulator run the same ones.

`CandidatePlanner` is dilaserve's: the solver, bound to a cluster, the model's profiles and a
solver policy (`solver.profile_set.solver_policy`), plans from its capacity model
(`solver.capacity`). With `alternatives` it offers more candidates for a plan scorer to choose
from: its own plan over every TP degree first, then the plan restricted to the TP degrees running
now, and to each TP degree alone (duplicates dropped). The controller takes the first, or the
best under the plan scorer it was given (`orchestrator.controller.Evaluator`; the simulator can
supply one that simulates, `sim.planning.SimEvaluator`).

`LivePlanner` wraps it with two live-only translations, both from the operator's policy: the
solver's SLO classes come from the policy's classes (a deadline with a per-token part is taken at
the class's current mean canvas), and the threshold levels are the policy's `cluster.thresholds`
that the quality profile measured.

`FixedLayout` is the other planner: one layout for good (the static baselines of `dilaserve
bench --mode live`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from dilaserve.policy import Policy
from dilaserve.policy.cluster import ClusterSettings
from orchestrator.controller import slots
from orchestrator.types import check_replica_settings
from solver.plan import Plan, ReplicaGroup, Route
from solver.profile_set import ProfileSet, solver_policy
from solver.solve import solve
from solver.types import Cluster, LengthDist, ServingModel, SolverPolicy, Workload, WorkloadClass

NOMINAL_PROMPT = 64.0  # lengths a class is planned with before any request of it was seen
MAX_TARGET = 0.999  # the solver plans for attainment strictly below 1


def class_templates(policy: Policy) -> list[WorkloadClass]:
    out = []
    for c in policy.classes:
        nominal = float(policy.worker.max_new_tokens) / 2
        deadline = c.deadline_s(int(nominal)) if c.has_deadline else None
        out.append(WorkloadClass(
            c.name, 0.0, LengthDist(NOMINAL_PROMPT), LengthDist(nominal), deadline_s=deadline,
            min_threshold=c.min_threshold, max_accuracy_drop=c.max_accuracy_drop,
            target_attainment=min(MAX_TARGET, c.target_attainment), priority=c.priority,
            best_effort=c.best_effort or not c.has_deadline))
    return out


class CandidatePlanner:
    """`planner(workload, current) -> [plans]`: the solver's plan first, then the alternatives."""

    def __init__(self, cluster: Cluster, profiles: ProfileSet, policy: SolverPolicy,
                 alternatives: bool = True) -> None:
        self.cluster = cluster
        self.profiles = profiles.solver_profiles()
        self.policy = policy
        self.alternatives = alternatives
        self.solved = 0

    def __call__(self, workload: Workload, current: Plan | None) -> list[Plan]:
        plans = [self._solve(workload, self.policy, current)]
        if not self.alternatives:
            return plans
        restricted = [(t,) for t in sorted(self.policy.tp_degrees)]
        if current is not None:
            running = tuple(sorted({g.tp for g in current.groups}))
            if running and running not in restricted:
                restricted.insert(0, running)
        for tps in restricted:
            if tps == tuple(sorted(self.policy.tp_degrees)):
                continue
            plan = self._solve(workload, dataclasses.replace(self.policy, tp_degrees=tps),
                               current)
            if all(slots(plan) != slots(p) or plan.groups != p.groups for p in plans):
                plans.append(plan)
        return plans

    def _solve(self, workload: Workload, policy: SolverPolicy, current: Plan | None) -> Plan:
        self.solved += 1
        return solve(self.cluster, workload, self.profiles, policy, current)


class LivePlanner:
    """`planner(workload, current) -> [plans]`, the controller's Planner."""

    def __init__(self, cluster: Cluster, profiles: ProfileSet, policy: Policy,
                 settings: ClusterSettings) -> None:
        self.policy = policy
        base = solver_policy(profiles, cluster)
        levels = tuple(t for t in base.thresholds if any(abs(t - s) < 1e-9
                                                          for s in settings.thresholds))
        if not levels:
            raise ValueError(f"cluster.thresholds {list(settings.thresholds)}: none of them is "
                             f"in the quality profile (measured: {list(base.thresholds)})")
        tps = tuple(t for t in base.tp_degrees if t <= settings.max_tp)
        sched = policy.worker.scheduler
        serving = ServingModel(max_refresh_rows=sched.max_refresh_rows,
                               admission=sched.admission,
                               admission_headroom=sched.admission_headroom)
        # the live controller has no plan scorer: the solver's own plan is the one it takes
        self.solver = CandidatePlanner(
            cluster, profiles,
            dataclasses.replace(base, thresholds=levels, tp_degrees=tps, serving=serving),
            alternatives=False)

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


@dataclasses.dataclass(frozen=True)
class FixedLayout:
    """A planner factory (`start_cluster(planner_factory=...)`) for a fixed layout: every device
    slot of every node runs TP `tp` replicas with this threshold range, never re-planned.
    Replicas start requests at `threshold_max`; load control (if the workers run it) goes no
    lower than `threshold_min`. What `dilaserve bench --mode live` runs for its static baselines."""

    tp: int
    threshold_min: float
    threshold_max: float
    block_size: int

    def __post_init__(self) -> None:
        check_replica_settings("fixed layout", self.tp, self.block_size, self.threshold_min,
                               self.threshold_max)

    def describe(self) -> str:
        return f"TP{self.tp} x tau {self.threshold_max:g}"

    def __call__(self, cluster: Cluster, profiles: ProfileSet, policy: Policy,
                 settings: ClusterSettings) -> FixedLayoutPlanner:
        return FixedLayoutPlanner(self, cluster)


class FixedLayoutPlanner:
    """The same plan whatever the load: as many TP-`tp` replicas as each node type holds,
    each class routed to them all."""

    def __init__(self, layout: FixedLayout, cluster: Cluster) -> None:
        groups = tuple(
            ReplicaGroup(n.name, n.gpu_type, layout.tp, layout.threshold_min,
                         layout.threshold_max, layout.block_size,
                         n.count * (n.gpus_per_node // layout.tp))
            for n in cluster.nodes if n.gpus_per_node >= layout.tp)
        if not groups:
            widest = max(n.gpus_per_node for n in cluster.nodes)
            raise ValueError(f"fixed layout TP{layout.tp}: no node has {layout.tp} devices "
                             f"(the widest has {widest})")
        self.layout = layout
        self.groups = groups
        self.devices = cluster.gpus

    def __call__(self, workload: Workload, current: Plan | None) -> Sequence[Plan]:
        total = sum(g.count for g in self.groups)
        routes = tuple(Route(c.name, i, c.rate * g.count / total, g.count / total, math.nan)
                       for c in workload.classes for i, g in enumerate(self.groups))
        used = sum(g.gpus for g in self.groups)
        return [Plan(self.groups, routes, (), "optimal", "fixed layout", 0.0, 0.0, 1.0, 0.0,
                     0.0, used, self.devices, 0.0,
                     (f"fixed layout {self.layout.describe()}: never re-planned",))]
