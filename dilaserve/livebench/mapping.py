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

The SLO classes: one per trace class, with the bench's accuracy floor and target. Every request
carries its own deadline (`deadline_ms`). A request's effective deadline is the earliest of its
own and its class's (`worker.service.validation.relative_deadline_s`), so the served class's
deadline is the longest of its requests' (it cuts none of them); the live planner plans each
class for the mean of its requests' deadlines (`MeanDeadlinePlanner`), as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dilaserve.policy import Policy, SloClass
from dilaserve.policy.cluster import ClusterPolicy
from orchestrator.planning import FixedLayout, LivePlanner
from sim.policies import PolicySpec
from sim.workload import SimClass
from solver.profile_set import ProfileSet


@dataclass(frozen=True)
class LivePolicy:
    """What one live run starts: the cluster policy and the planner factory (None: LivePlanner)."""

    name: str
    cluster_policy: ClusterPolicy
    planner_factory: FixedLayout | MeanDeadlinePlanner
    layout: str  # what the table's layout column says

    @property
    def fixed(self) -> bool:
        """A fixed layout (the static baselines), not the live planner."""
        return isinstance(self.planner_factory, FixedLayout)

    def describe(self) -> str:
        c = self.cluster_policy
        s = c.policy.worker.scheduler
        planner = self.planner_factory.describe() if self.fixed else \
            "live planner (solver, re-planned by the controller)"
        return (f"{planner}; {s.ordering}, admission {'on' if s.admission else 'off'}, load "
                f"control {s.load_control}, {c.cluster.router_kind.replace('_', ' ')} routing")


def class_floor(classes: tuple[SimClass, ...], profiles: ProfileSet) -> float:
    """The lowest threshold any class allows (the simulator's `_place` uses the same)."""
    block = profiles.reference_block
    return min(c.floor(profiles.quality, block) for c in classes)


@dataclass(frozen=True)
class ClassDeadlines:
    """One class's requests' deadlines (ms): the mean (planned for) and the longest (served)."""

    mean_ms: float
    longest_ms: float

    @classmethod
    def of(cls, deadlines_ms: list[float]) -> ClassDeadlines:
        return cls(sum(deadlines_ms) / len(deadlines_ms), max(deadlines_ms))

    @classmethod
    def fixed(cls, ms: float) -> ClassDeadlines:
        return cls(ms, ms)


def live_classes(classes: tuple[SimClass, ...], deadlines_ms: dict[str, float]) -> tuple:
    return tuple(
        SloClass(c.name, deadline_ms=deadlines_ms[c.name], target_attainment=c.target_attainment,
                 min_threshold=c.min_threshold, max_accuracy_drop=c.max_accuracy_drop,
                 priority=c.priority)
        for c in classes)


@dataclass(frozen=True)
class MeanDeadlinePlanner:
    """A planner factory (`start_cluster(planner_factory=...)`): the live planner as `dilaserve
    serve` runs it (`LivePlanner`), planning each class for the mean of its requests' deadlines
    rather than the served class's deadline (the longest of them)."""

    mean_ms: tuple[tuple[str, float], ...]

    def __call__(self, cluster, profiles: ProfileSet, policy: Policy, settings) -> LivePlanner:
        mean = dict(self.mean_ms)
        classes = tuple(dataclasses.replace(c, deadline_ms=mean[c.name],
                                            deadline_per_token_ms=None)
                        if c.name in mean else c for c in policy.classes)
        return LivePlanner(cluster, profiles, dataclasses.replace(policy, classes=classes),
                           settings)


def live_policy(spec: PolicySpec, base: ClusterPolicy, classes: tuple[SimClass, ...],
                deadlines: dict[str, ClassDeadlines], profiles: ProfileSet,
                router_port: int = 0) -> LivePolicy:
    """`base`: the cluster policy the bench starts from (the embedded default's), whose worker
    cache mode and max_new_tokens and cluster settings are kept. `deadlines`: per class, its
    requests' mean and longest deadline."""
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
    served = {name: d.longest_ms for name, d in deadlines.items()}
    policy = Policy(live_classes(classes, served), names[0], worker)
    cluster = dataclasses.replace(base.cluster, router_port=router_port, metrics_port=None,
                                  router_kind=spec.router)
    factory: FixedLayout | MeanDeadlinePlanner = MeanDeadlinePlanner(
        tuple((name, d.mean_ms) for name, d in sorted(deadlines.items())))
    layout = "live planner"
    if spec.layout is not None:
        tau = spec.layout.threshold
        factory = FixedLayout(spec.layout.tp, min(class_floor(classes, profiles), tau), tau,
                              block)
        layout = spec.layout.describe()
    return LivePolicy(spec.name, ClusterPolicy(policy, cluster, f"bench:{spec.name}"), factory,
                      layout)
