"""The solver's inputs: cluster, workload, profiles and policy. Frozen, validated on construction.

Every validation error is a ValueError whose message names the offending field, so the CLI can
print it as is. Checks that need two inputs at once (a quality floor against the profiled
thresholds, a node type against the profiled hardware) run in `solver.instance.build_instance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dilaserve.core.checks import check_unique
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostProfile
from solver.tp_extrapolation import TpOverhead

if TYPE_CHECKING:
    from solver.length_mix import LengthMix

SOLVERS = ("cbc", "highs")
KNOWN_TP = (1, 2, 4, 8, 16, 32, 64)


def _finite(value: object, name: str, *, lo: float | None = None, lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")


def _unit(value: object, name: str) -> None:
    """A threshold: in (0, 1]."""
    _finite(value, name)
    if not 0 < value <= 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


@dataclass(frozen=True)
class NodeType:
    """`count` nodes of `gpus_per_node` devices each. gpu_type "cpu" means CPU slots (embedded)."""

    count: int
    gpus_per_node: int
    gpu_type: str
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"node count must be a whole number >= 1, got {self.count!r}")
        if not isinstance(self.gpus_per_node, int) or self.gpus_per_node < 1:
            raise ValueError(f"gpus_per_node must be a whole number >= 1, "
                             f"got {self.gpus_per_node!r}")
        if not isinstance(self.gpu_type, str) or not self.gpu_type.strip():
            raise ValueError(f"gpu_type must be a non-empty string, got {self.gpu_type!r}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.gpu_type}x{self.gpus_per_node}")

    @property
    def gpus(self) -> int:
        return self.count * self.gpus_per_node


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[NodeType, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes:
            raise ValueError("cluster.nodes is empty: a cluster needs at least one node type")
        check_unique([n.name for n in self.nodes],
                     "cluster.nodes: node type names must be unique")

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    @classmethod
    def from_spec(cls, spec: str) -> Cluster:
        """`4x8:H100` (4 nodes of 8 GPUs), several joined by commas: `4x8:H100,2x4:A100`."""
        nodes = []
        for i, part in enumerate(p.strip() for p in spec.split(",")):
            shape, _, gpu = part.partition(":")
            count, x, per = shape.lower().partition("x")
            if not x or not count.strip().isdigit() or not per.strip().isdigit() or not gpu.strip():
                raise ValueError(f"cluster spec part {i} {part!r}: expected COUNTxGPUS:TYPE, "
                                 f"e.g. 4x8:H100")
            try:
                nodes.append(NodeType(int(count), int(per), gpu.strip()))
            except ValueError as err:
                raise ValueError(f"cluster spec part {i} {part!r}: {err}") from None
        return cls(tuple(nodes))


@dataclass(frozen=True)
class LengthDist:
    """Token lengths: the mean (throughput) and the p90 (latency against the deadline)."""

    mean: float
    p90: float | None = None

    def __post_init__(self) -> None:
        _finite(self.mean, "mean", lo=0, lo_open=True)
        if self.p90 is None:
            object.__setattr__(self, "p90", float(self.mean))
        _finite(self.p90, "p90", lo=0, lo_open=True)
        if self.p90 < self.mean:  # type: ignore[operator]
            raise ValueError(f"p90 ({self.p90}) must be >= mean ({self.mean})")


@dataclass(frozen=True)
class WorkloadClass:
    """One SLO class. Deadline: `deadline_s` (absolute) or `slo_scale` x unloaded latency.

    Quality floor: `min_threshold` and/or `max_accuracy_drop` (0..1, vs the quality profile's
    reference setting); a configuration below the floor never serves this class. Best-effort
    classes have no deadline and are served only with capacity no SLO class can use.

    `lengths`: the joint (prompt, canvas) distribution when known (`solver.length_mix`; the
    controller passes its recent arrivals'); without it the capacity model assumes `prompt` and
    `output` lognormal through their mean and p90. With `slo_scale`, each request's deadline is
    the scale x its own time alone, as the requests carry it.
    """

    name: str
    rate: float
    prompt: LengthDist
    output: LengthDist
    deadline_s: float | None = None
    slo_scale: float | None = None
    min_threshold: float | None = None
    max_accuracy_drop: float | None = None
    target_attainment: float = 0.95
    priority: int = 0
    best_effort: bool = False
    lengths: LengthMix | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        try:
            self._validate()
        except ValueError as err:
            raise ValueError(f"class {self.name!r}: {err}") from None

    def _validate(self) -> None:
        _finite(self.rate, "rate", lo=0)
        for fname in ("prompt", "output"):
            if not isinstance(getattr(self, fname), LengthDist):
                raise ValueError(f"{fname} must be a LengthDist, got {getattr(self, fname)!r}")
        from solver.length_mix import LengthMix  # it builds on LengthDist

        if self.lengths is not None and not isinstance(self.lengths, LengthMix):
            raise ValueError(f"lengths must be a LengthMix, got {type(self.lengths).__name__}")
        if self.deadline_s is not None and self.slo_scale is not None:
            raise ValueError("give deadline_s or slo_scale, not both")
        if self.deadline_s is None and self.slo_scale is None and not self.best_effort:
            raise ValueError("deadline_s or slo_scale is required (or best_effort: true)")
        if self.deadline_s is not None:
            _finite(self.deadline_s, "deadline_s", lo=0, lo_open=True)
        if self.slo_scale is not None:
            _finite(self.slo_scale, "slo_scale", lo=0, lo_open=True)
        if self.min_threshold is not None:
            _unit(self.min_threshold, "min_threshold")
        if self.max_accuracy_drop is not None:
            _finite(self.max_accuracy_drop, "max_accuracy_drop", lo=0)
            if self.max_accuracy_drop > 1:
                raise ValueError(f"max_accuracy_drop is a fraction in [0, 1], "
                                 f"got {self.max_accuracy_drop}")
        _finite(self.target_attainment, "target_attainment")
        if not 0 < self.target_attainment < 1:
            raise ValueError(f"target_attainment must be in (0, 1), got {self.target_attainment}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"priority must be a whole number, got {self.priority!r}")
        if not isinstance(self.best_effort, bool):
            raise ValueError(f"best_effort must be true or false, got {self.best_effort!r}")


@dataclass(frozen=True)
class Workload:
    classes: tuple[WorkloadClass, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ValueError("workload.classes is empty: give at least one SLO class")
        check_unique([c.name for c in self.classes],
                     "workload.classes: class names must be unique")


@dataclass(frozen=True)
class Profiles:
    """Step-cost profiles (one per hardware x TP degree) and the model's quality profile."""

    step_costs: tuple[StepCostProfile, ...]
    quality: QualityProfile
    tp_overhead: TpOverhead = field(default_factory=TpOverhead)

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_costs", tuple(self.step_costs))
        if not self.step_costs:
            raise ValueError("profiles.step_costs is empty: need at least one step-cost profile")
        seen = set()
        for i, p in enumerate(self.step_costs):
            if p.tp not in KNOWN_TP:
                raise ValueError(f"profiles.step_costs[{i}].tp: unknown TP degree {p.tp!r}; "
                                 f"known: {KNOWN_TP}")
            if any((not math.isfinite(c)) or c < 0 for c in p.cost.coef):
                raise ValueError(f"profiles.step_costs[{i}].cost: coefficients must be finite "
                                 f"and >= 0, got {p.cost.coef}")
            key = (p.hardware.lower(), p.tp)
            if key in seen:
                raise ValueError(f"profiles.step_costs[{i}]: two profiles for hardware "
                                 f"{p.hardware!r} at TP={p.tp}")
            seen.add(key)
        if not self.quality.block_sizes():
            raise ValueError("profiles.quality has no threshold-rule points")
        for i, p in enumerate(self.quality.points):
            if p.rule == "threshold":
                _unit(p.threshold, f"profiles.quality.points[{i}].threshold")
                _finite(p.tokens_per_step, f"profiles.quality.points[{i}].tokens_per_step",
                        lo=0, lo_open=True)

    def hardware(self) -> list[str]:
        return sorted({p.hardware for p in self.step_costs})


@dataclass(frozen=True)
class SolverOptions:
    """Which MILP solver and when it may stop. Gaps are on the whole objective (normalised, about
    1 when everything is served): the lower tiers of the objective are worth at most their weights
    (1e-3, 1e-5, 1e-7), so they are only optimised down to these gaps. `gap_abs` is also CBC's
    cutoff increment (its default, 1e-5, would hide the lower tiers)."""

    solver: str = "cbc"
    time_limit_s: float = 2.0
    gap_rel: float = 1e-6
    gap_abs: float = 1e-9
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        _finite(self.time_limit_s, "time_limit_s", lo=0, lo_open=True)
        _finite(self.gap_rel, "gap_rel", lo=0)
        _finite(self.gap_abs, "gap_abs", lo=0)
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a whole number >= 1, got {self.threads!r}")


@dataclass(frozen=True)
class ObjectiveWeights:
    """Tier weights of the weighted-sum objective (see docs/solver.md). Each tier is normalised to
    [0, 1], so a whole tier can move the objective by at most its weight: keep each weight well
    below the one before it so the lexicographic order holds."""

    accuracy: float = 1e-3  # rate-weighted accuracy drop
    reconfig: float = 1e-5  # GPU-seconds of reload and drain against the current plan
    spare: float = 1e-7  # reward for GPUs in replicas (headroom) when nothing else differs
    priority: float = 1e-3  # served weight of a class: 1 + priority * (its priority rank in [0, 1])
    best_effort: float = 1e-2  # served weight of a best-effort class, relative to an SLO class

    def __post_init__(self) -> None:
        for name in ("accuracy", "reconfig", "spare", "priority", "best_effort"):
            _finite(getattr(self, name), f"weights.{name}", lo=0)


@dataclass(frozen=True)
class ServingModel:
    """How the replicas the plan runs serve, as far as their capacity depends on it (the
    capacity model in `solver.capacity` predicts what these settings do).

    `max_refresh_rows`: the scheduler's per-step bound on refresh rows (None: a quarter of
    `SolverPolicy.max_batch`, at least 4, what the simulated policies run). `admission` and
    `admission_headroom`: the workers refuse at arrival what is predicted to miss its deadline
    with this margin. `router_tries`: replicas a request is offered to before it is lost (the
    deadline-aware router's first choice and its fallbacks). `speed_cv`: the spread of tokens
    per step between requests (sim.workload's default, assumed)."""

    max_refresh_rows: int | None = None
    admission: bool = True
    admission_headroom: float = 0.1
    router_tries: int = 3
    speed_cv: float = 0.15

    def __post_init__(self) -> None:
        if self.max_refresh_rows is not None and (not isinstance(self.max_refresh_rows, int)
                                                  or self.max_refresh_rows < 1):
            raise ValueError(f"serving.max_refresh_rows must be a whole number >= 1, "
                             f"got {self.max_refresh_rows!r}")
        _finite(self.admission_headroom, "serving.admission_headroom", lo=0)
        if not isinstance(self.router_tries, int) or self.router_tries < 1:
            raise ValueError(f"serving.router_tries must be a whole number >= 1, "
                             f"got {self.router_tries!r}")
        _finite(self.speed_cv, "serving.speed_cv", lo=0)

    def refresh_rows(self, max_batch: int) -> int:
        return self.max_refresh_rows or max(4, max_batch // 4)


@dataclass(frozen=True)
class SolverPolicy:
    """What the solver may choose from and what reconfiguring costs.

    `thresholds` / `block_sizes`: None means every profiled value. `reload_s` / `drain_s`: seconds
    a GPU spends loading weights into a new replica / draining one that goes; a threshold or
    block-size change is a per-request setting and costs nothing."""

    tp_degrees: tuple[int, ...] = (1, 2, 4, 8)
    thresholds: tuple[float, ...] | None = None
    block_sizes: tuple[int, ...] | None = None
    max_batch: int = 64
    reload_s: float = 60.0
    drain_s: float = 10.0
    best_effort_utilization: float = 0.9
    extrapolate_tp: bool = True
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    solver: SolverOptions = field(default_factory=SolverOptions)
    serving: ServingModel = field(default_factory=ServingModel)
    layout_first: bool = False  # choose the TP layout for capacity, then thresholds (solve.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tp_degrees", tuple(self.tp_degrees))
        if not self.tp_degrees:
            raise ValueError("policy.tp_degrees is empty")
        for t in self.tp_degrees:
            if t not in KNOWN_TP:
                raise ValueError(f"policy.tp_degrees: unknown TP degree {t!r}; known: {KNOWN_TP}")
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", tuple(self.thresholds))
            if not self.thresholds:
                raise ValueError("policy.thresholds is empty (use None for every profiled one)")
            for t in self.thresholds:
                _unit(t, "policy.thresholds")
        if self.block_sizes is not None:
            object.__setattr__(self, "block_sizes", tuple(self.block_sizes))
            if not self.block_sizes or any(not isinstance(b, int) or b < 1
                                           for b in self.block_sizes):
                raise ValueError(f"policy.block_sizes must be whole numbers >= 1, "
                                 f"got {self.block_sizes!r}")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"policy.max_batch must be a whole number >= 1, "
                             f"got {self.max_batch!r}")
        _finite(self.reload_s, "policy.reload_s", lo=0)
        _finite(self.drain_s, "policy.drain_s", lo=0)
        _finite(self.best_effort_utilization, "policy.best_effort_utilization", lo=0, lo_open=True)
        if self.best_effort_utilization >= 1:
            raise ValueError(f"policy.best_effort_utilization must be < 1, "
                             f"got {self.best_effort_utilization}")
