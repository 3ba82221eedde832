"""From (cluster, workload, profiles, policy) to the numbers the ILP needs: the candidate replica
configurations, each class's deadline and quality floor, and a capacity per configuration x class.

Cross-input validation lives here (a node type with no profiled hardware, a floor no profiled
threshold meets, a policy threshold outside the profiled range); errors name the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dilaserve.profiles.step_cost import StepCostProfile
from solver.batch_model import alone_s, rows_of
from solver.capacity import Capacity, CapacityQuery, capacity_table
from solver.length_mix import LengthMix
from solver.tp_extrapolation import extrapolate, link_overhead
from solver.types import Cluster, NodeType, Profiles, SolverPolicy, Workload, WorkloadClass

# Below these the solver treats a class as idle / a configuration as unable to serve it: tiny
# positive values would only put huge coefficients (1 / rate, 1 / capacity) into the MILP.
MIN_RATE = 1e-6  # requests/s offered (one request in 11 days)
MIN_CAPACITY = 1e-6  # requests/s per replica


@dataclass(frozen=True)
class Config:
    """One kind of replica: TP degree x threshold x block size on one node type."""

    pool: int  # index into cluster.nodes
    node_type: str
    tp: int
    threshold: float
    block_size: int
    accuracy: float
    accuracy_drop: float  # against the quality profile's reference setting
    extrapolated: bool  # the step-cost profile at this TP was extrapolated


@dataclass(frozen=True)
class Instance:
    cluster: Cluster
    workload: Workload
    policy: SolverPolicy
    configs: tuple[Config, ...]
    deadlines: tuple[float | None, ...]  # per class, mean seconds over its mix (None: best effort)
    mixes: tuple[LengthMix, ...]  # per class: the lengths the capacities were computed for
    allowed: tuple[tuple[bool, ...], ...]  # [config][class]: the config meets the class's floor
    capacity: tuple[tuple[Capacity, ...], ...]  # [config][class], rate 0 when not allowed
    weights: tuple[float, ...]  # per class, weight of a served request/s in the primary tier
    reference_threshold: float
    notes: tuple[str, ...]

    @property
    def classes(self) -> tuple[WorkloadClass, ...]:
        return self.workload.classes

    def cap(self, k: int, c: int) -> float:
        rate = self.capacity[k][c].rate if self.allowed[k][c] else 0.0
        return rate if rate >= MIN_CAPACITY else 0.0

    def spare_value(self, k: int) -> float:
        """What one replica of k is worth as headroom, in GPUs: its GPUs x its capacity per GPU
        against the best per GPU, averaged over the classes by offered rate (all alike when
        nothing is offered). The lowest tier of the objective: among plans equal in everything
        else, the one with the most capacity to spare for bursts and growth."""
        configs, classes = self.configs, self.classes
        total = sum(c.rate for c in classes)
        value = 0.0
        for c, cls in enumerate(classes):
            best = max(self.cap(j, c) / configs[j].tp for j in range(len(configs)))
            if best > 0:
                share = cls.rate / total if total > 0 else 1.0 / len(classes)
                value += share * self.cap(k, c) / best
        return value


def step_profiles(cluster: Cluster, profiles: Profiles, policy: SolverPolicy,
                  ) -> tuple[dict[tuple[int, int], StepCostProfile], list[str]]:
    """The step-cost profile for each (pool, TP degree) the policy allows; notes what was
    extrapolated or skipped."""
    by_hw: dict[str, dict[int, StepCostProfile]] = {}
    for p in profiles.step_costs:
        by_hw.setdefault(p.hardware.lower(), {})[p.tp] = p
    out: dict[tuple[int, int], StepCostProfile] = {}
    notes: list[str] = []
    for i, node in enumerate(cluster.nodes):
        have = by_hw.get(node.gpu_type.lower())
        if not have:
            raise ValueError(f"cluster.nodes[{i}].gpu_type {node.gpu_type!r}: no step-cost "
                             f"profile for this hardware (profiled: {profiles.hardware()})")
        extrapolated, skipped = [], []
        # the TP model is NVLink's all-reduce: a CPU's TP cost is only what was measured there
        # (docs/parallel.md: TP=2 on two shared cores is ~2x slower than TP=1, not faster)
        may_extrapolate = policy.extrapolate_tp and not node.gpu_type.lower().startswith("cpu")
        for tp in sorted(policy.tp_degrees):
            if tp > node.gpus_per_node:
                continue
            if tp in have:
                out[i, tp] = have[tp]
                continue
            base = max((t for t in have if t < tp), default=None)
            if base is None or not may_extrapolate:
                skipped.append(tp)
                continue
            overhead = link_overhead(have[base], profiles.tp_overhead)
            out[i, tp] = extrapolate(have[base], tp, overhead)
            extrapolated.append(f"TP={tp} from TP={base}")
        if extrapolated:
            notes.append(f"{node.name}: step cost extrapolated for {', '.join(extrapolated)}: "
                         f"{overhead.describe()}")
        if skipped:
            why = ("no profile to extrapolate from" if may_extrapolate or base is None
                   else "not profiled: measure with dilaserve profile --tp N")
            notes.append(f"{node.name}: TP={skipped} not considered ({why})")
        if not any(key[0] == i for key in out):
            raise ValueError(f"cluster.nodes[{i}] ({node.name}): no allowed TP degree fits "
                             f"{node.gpus_per_node} GPUs per node with a profile "
                             f"(policy.tp_degrees {policy.tp_degrees}, profiled {sorted(have)})")
    return out, notes


def threshold_levels(profiles: Profiles, policy: SolverPolicy) -> dict[int, list[float]]:
    quality = profiles.quality
    blocks = policy.block_sizes or tuple(quality.block_sizes())
    levels: dict[int, list[float]] = {}
    for b in blocks:
        pts = [p.threshold for p in quality.threshold_points(b)]
        if not pts:
            raise ValueError(f"policy.block_sizes: block size {b} is not in the quality profile "
                             f"(profiled: {quality.block_sizes()})")
        if policy.thresholds is None:
            levels[b] = sorted(set(pts))
            continue
        for t in policy.thresholds:
            if not pts[0] - 1e-12 <= t <= pts[-1] + 1e-12:
                raise ValueError(f"policy.thresholds: {t} is outside the profiled range "
                                 f"[{pts[0]}, {pts[-1]}] at block size {b}")
        levels[b] = sorted(set(policy.thresholds))
    return levels


def _floor_ok(cls: WorkloadClass, threshold: float, drop: float) -> bool:
    if cls.min_threshold is not None and threshold < cls.min_threshold - 1e-12:
        return False
    return cls.max_accuracy_drop is None or drop <= cls.max_accuracy_drop + 1e-12


def _weights(workload: Workload, policy: SolverPolicy) -> tuple[float, ...]:
    prios = sorted({c.priority for c in workload.classes})
    span = max(1, len(prios) - 1)
    w = policy.weights
    return tuple((w.best_effort if c.best_effort else 1.0)
                 * (1 + w.priority * prios.index(c.priority) / span) for c in workload.classes)


def build_instance(cluster: Cluster, workload: Workload, profiles: Profiles,
                   policy: SolverPolicy) -> Instance:
    for name, obj, typ in (("cluster", cluster, Cluster), ("workload", workload, Workload),
                           ("profiles", profiles, Profiles), ("policy", policy, SolverPolicy)):
        if not isinstance(obj, typ):
            raise ValueError(f"{name} must be a {typ.__name__}, got {type(obj).__name__}")
    quality = profiles.quality
    steps, notes = step_profiles(cluster, profiles, policy)
    levels = threshold_levels(profiles, policy)
    configs = []
    for (pool, tp), _prof in sorted(steps.items()):
        node: NodeType = cluster.nodes[pool]
        for block, taus in sorted(levels.items()):
            for tau in taus:
                point = quality.at(tau, block)
                configs.append(Config(pool, node.name, tp, tau, block, point.accuracy,
                                      quality.reference.accuracy - point.accuracy,
                                      "extrapolated_from_tp" in steps[pool, tp].provenance))
    allowed = [[_floor_ok(c, k.threshold, k.accuracy_drop) for c in workload.classes]
               for k in configs]
    for ci, cls in enumerate(workload.classes):
        if not any(row[ci] for row in allowed):
            field = "min_threshold" if cls.min_threshold is not None else "max_accuracy_drop"
            raise ValueError(
                f"workload.classes[{ci}] ({cls.name}).{field}: no profiled setting meets the "
                f"floor (min_threshold {cls.min_threshold}, max_accuracy_drop "
                f"{cls.max_accuracy_drop}; thresholds {sorted({k.threshold for k in configs})}, "
                f"best accuracy drop {min(k.accuracy_drop for k in configs):.4f})")
    mixes = tuple(c.lengths or LengthMix.from_dists(c.prompt, c.output, _reference_block(
        profiles)) for c in workload.classes)
    per_point = _deadlines(cluster, workload, profiles, steps, mixes, notes)
    deadlines = tuple(None if d is None else float(np.dot(m.weight, d))
                      for d, m in zip(per_point, mixes))
    tries = min(policy.serving.router_tries, _most_replicas(cluster, configs))
    queries: dict[tuple[int, int], CapacityQuery] = {}
    for ki, k in enumerate(configs):
        prof = steps[k.pool, k.tp]
        tps = quality.at(k.threshold, k.block_size).tokens_per_step
        for ci, cls in enumerate(workload.classes):
            if allowed[ki][ci]:  # below the class's floor the ILP never uses it
                queries[ki, ci] = CapacityQuery(
                    prof.cost, prof.cache_mode, mixes[ci], k.block_size, tps, per_point[ci],
                    cls.target_attainment, policy.max_batch, policy.serving, tries,
                    policy.best_effort_utilization)
    caps = dict(zip(queries, capacity_table(list(queries.values()))))
    below = Capacity(0.0, 0.0, 0.0, 0.0, 0.0, "below the class's quality floor")
    capacity = tuple(tuple(caps.get((ki, ci), below) for ci in range(len(workload.classes)))
                     for ki in range(len(configs)))
    return Instance(cluster, workload, policy, tuple(configs), deadlines, mixes,
                    tuple(tuple(r) for r in allowed), capacity, _weights(workload, policy),
                    quality.reference.threshold, tuple(notes))


def _most_replicas(cluster: Cluster, configs: list[Config]) -> int:
    """Replicas the cluster holds at its smallest TP degree: how many a request can be tried on."""
    smallest = min(k.tp for k in configs)
    return max(1, sum(n.count * (n.gpus_per_node // smallest) for n in cluster.nodes))


def _reference_block(profiles: Profiles) -> int:
    quality = profiles.quality
    ref = quality.reference
    return ref.block_size if ref.block_size in quality.block_sizes() else quality.block_sizes()[0]


def _deadlines(cluster: Cluster, workload: Workload, profiles: Profiles,
               steps: dict[tuple[int, int], StepCostProfile], mixes: tuple[LengthMix, ...],
               notes: list[str]) -> tuple[tuple[float, ...] | None, ...]:
    """Per class, a deadline per point of its length mix: `deadline_s` for all, or `slo_scale` x
    the point's time alone (batch 1) at the quality reference setting on the smallest profiled
    TP of the first node type's hardware: each request's own deadline, as `traces.jobs` gives it
    (`ProfileSet.unloaded_latency`)."""
    quality = profiles.quality
    ref = quality.reference
    block = _reference_block(profiles)
    hardware = cluster.nodes[0].gpu_type.lower()
    prof = min((p for p in profiles.step_costs if p.hardware.lower() == hardware),
               key=lambda p: p.tp)  # the smallest profiled degree, whatever the policy allows
    tp = prof.tp
    tps = quality.at(ref.threshold, block).tokens_per_step
    out: list[tuple[float, ...] | None] = []
    for cls, mix in zip(workload.classes, mixes):
        if cls.best_effort:
            out.append(None)
            continue
        if cls.deadline_s is not None:
            out.append((float(cls.deadline_s),) * len(mix))
            continue
        alone = alone_s(prof.cost.coef, rows_of(mix, block, tps, prof.cache_mode, 0.0),
                        prof.cache_mode)
        deadline = cls.slo_scale * alone
        out.append(tuple(float(d) for d in deadline))
        mean = float(np.dot(mix.weight, deadline))
        notes.append(f"class {cls.name}: each request's deadline is {cls.slo_scale:g} x its time "
                     f"alone (tau={ref.threshold:g}, block {block}, TP={tp} on "
                     f"{cluster.nodes[0].name}): {mean:.3g} s on average, "
                     f"{float(deadline.min()):.3g}-{float(deadline.max()):.3g} s over its "
                     f"length mix")
    return tuple(out)
