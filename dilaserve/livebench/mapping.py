"""A simulator `PolicySpec` (sim/policies.py) as the live cluster runs it. Nothing is decided here
that the policy does not say; each setting goes where the live system reads it:

- the worker scheduler's ordering, admission and load control, and the refresh bound:
  `spec.scheduler_config(max_rows)`, the very config the simulated replicas get, into the
  policy's `worker.scheduler`; rows and KV tokens per replica from the profiles the simulator
  runs on, so the live engines have the simulated ones' limits;
- the router: `cluster.router_kind` (round robin, least loaded, deadline-aware);
- a fixed layout (the static baselines, best-static's pick): the `FixedLayout` planner, TP x tau
  on every device slot, threshold range [min(class floor, tau), tau] as the simulator places it;
- `dilaserve`: the live planner (`LivePlanner`, the solver as `dilaserve serve` runs it) with the
  cluster's reconfiguration settings.

The SLO classes: one per trace class, with the bench's accuracy floor and target; a class's
deadline (what the planner plans for) is the mean of its requests' deadlines, and every request
carries its own deadline (`deadline_ms`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dilaserve.policy import Policy, SloClass
from dilaserve.policy.cluster import ClusterPolicy
from orchestrator.planning import FixedLayout
from sim.policies import PolicySpec
from sim.workload import SimClass
from solver.profile_set import ProfileSet


@dataclass(frozen=True)
class LivePolicy:
    """What one live run starts: the cluster policy and the planner factory (None: LivePlanner)."""

    name: str
    cluster_policy: ClusterPolicy
    planner_factory: FixedLayout | None
    layout: str  # what the table's layout column says

    def describe(self) -> str:
        c = self.cluster_policy
        s = c.policy.worker.scheduler
        planner = self.planner_factory.describe() if self.planner_factory else \
            "live planner (solver, re-planned by the controller)"
        return (f"{planner}; {s.ordering}, admission {'on' if s.admission else 'off'}, load "
                f"control {s.load_control}, {c.cluster.router_kind.replace('_', ' ')} routing")


def class_floor(classes: tuple[SimClass, ...], profiles: ProfileSet) -> float:
    """The lowest threshold any class allows (the simulator's `_place` uses the same)."""
    block = profiles.reference_block
    return min(c.floor(profiles.quality, block) for c in classes)


def live_classes(classes: tuple[SimClass, ...], deadlines_ms: dict[str, float]) -> tuple:
    return tuple(
        SloClass(c.name, deadline_ms=deadlines_ms[c.name], target_attainment=c.target_attainment,
                 min_threshold=c.min_threshold, max_accuracy_drop=c.max_accuracy_drop,
                 priority=c.priority)
        for c in classes)


def live_policy(spec: PolicySpec, base: ClusterPolicy, classes: tuple[SimClass, ...],
                deadlines_ms: dict[str, float], profiles: ProfileSet,
                router_port: int = 0) -> LivePolicy:
    """`base`: the cluster policy the bench starts from (the embedded default's), whose worker
    cache mode and max_new_tokens and cluster settings are kept."""
    if spec.layout is None and not spec.planned:
        raise ValueError(f"policy {spec.name}: no layout and no controller (best-static needs "
                         f"its layout chosen first)")
    cache_modes = {p.cache_mode for p in profiles.step_costs}
    block = profiles.reference_block
    limits = profiles.limits(1)
    worker = dataclasses.replace(
        base.policy.worker, block_size=block, cache_mode=next(iter(cache_modes)),
        max_rows=limits.max_rows, max_tokens=limits.max_tokens,
        scheduler=spec.scheduler_config(limits.max_rows))
    names = [c.name for c in classes]
    policy = Policy(live_classes(classes, deadlines_ms), names[0], worker)
    cluster = dataclasses.replace(base.cluster, router_port=router_port, metrics_port=None,
                                  router_kind=spec.router)
    factory, layout = None, "live planner"
    if spec.layout is not None:
        tau = spec.layout.threshold
        factory = FixedLayout(spec.layout.tp, min(class_floor(classes, profiles), tau), tau,
                              block)
        layout = spec.layout.describe()
    return LivePolicy(spec.name, ClusterPolicy(policy, cluster, f"bench:{spec.name}"), factory,
                      layout)
