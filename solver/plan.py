"""The solver's output: replica groups, how each class's load is split among them, the predicted
attainment per class, the solver's status and gap, and the reasons a person needs to read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

STATUSES = ("optimal", "feasible", "no solution")


@dataclass(frozen=True)
class ReplicaGroup:
    """`count` replicas of TP degree `tp` on `node_type`, decoding with block size `block_size`.

    The plan's capacity is computed at `threshold_min` (the lowest threshold the group needs under
    the planned load); the runtime may raise the threshold up to `threshold_max` (the quality
    reference setting) while load is lighter than planned. A threshold change is a per-request
    setting: moving between levels costs no reload."""

    node_type: str
    gpu_type: str
    tp: int
    threshold_min: float
    threshold_max: float
    block_size: int
    count: int
    extrapolated: bool = False  # this TP's step cost was extrapolated, not profiled

    @property
    def gpus(self) -> int:
        return self.tp * self.count


@dataclass(frozen=True)
class Route:
    class_name: str
    group: int  # index into Plan.groups
    rate: float  # requests/s of the class sent to the group (all its replicas together)
    fraction: float  # of the class's offered rate
    attainment: float  # predicted P(latency <= deadline) for these requests


@dataclass(frozen=True)
class ClassOutcome:
    name: str
    offered_rate: float
    served_rate: float  # routed to some replica
    deadline_s: float | None  # resolved (None: best effort)
    target_attainment: float
    predicted_attainment: float  # over the offered rate: unserved requests count as misses
    goodput: float  # requests/s predicted to finish within the deadline
    short: bool  # some of the class's load is not served
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    groups: tuple[ReplicaGroup, ...]
    routes: tuple[Route, ...]
    classes: tuple[ClassOutcome, ...]
    status: str  # optimal | feasible (stopped before proving optimality) | no solution
    solver: str
    gap: float | None  # relative gap of the whole objective, as the solver reports it
    objective: float
    served_norm: float  # primary tier: weighted served rate / weighted offered rate
    accuracy_drop: float  # rate-weighted mean accuracy drop of served requests (0..1)
    reconfig_gpu_s: float  # reload + drain GPU-seconds against the current plan
    gpus_used: int
    gpus_total: int
    wall_s: float  # solve() wall time: build, solve, extract
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"plan status must be one of {STATUSES}, got {self.status!r}")

    def short_classes(self) -> list[str]:
        return [c.name for c in self.classes if c.short]

    def outcome(self, name: str) -> ClassOutcome:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)

    def replicas(self) -> dict[tuple[str, int], int]:
        """Replica count per (node type, TP degree): what reconfiguration is measured on."""
        out: dict[tuple[str, int], int] = {}
        for g in self.groups:
            out[g.node_type, g.tp] = out.get((g.node_type, g.tp), 0) + g.count
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"plan: unknown fields {unknown}")
        try:
            return cls(**{
                **data,
                "groups": tuple(ReplicaGroup(**g) for g in data.get("groups", ())),
                "routes": tuple(Route(**r) for r in data.get("routes", ())),
                "classes": tuple(ClassOutcome(**c) for c in data.get("classes", ())),
                "reasons": tuple(data.get("reasons", ())),
            })
        except TypeError as err:
            raise ValueError(f"plan: {err}") from None

    def summary(self) -> str:
        gap = "n/a" if self.gap is None else f"{self.gap:.2%}"
        lines = [f"plan: {self.status} ({self.solver}, gap {gap}, {self.wall_s * 1e3:.0f} ms); "
                 f"{self.gpus_used}/{self.gpus_total} GPUs in replicas; reconfiguration "
                 f"{self.reconfig_gpu_s:.0f} GPU-s; mean accuracy drop {self.accuracy_drop:.2%}",
                 "", "replica groups:"]
        lines.append(f"  {'#':>3} {'node type':<12} {'TP':>3} {'tau range':<12} {'block':>5} "
                     f"{'count':>5} {'GPUs':>5}")
        for i, g in enumerate(self.groups):
            tau = f"{g.threshold_min:g}-{g.threshold_max:g}"
            mark = "  (TP extrapolated)" if g.extrapolated else ""
            lines.append(f"  {i:>3} {g.node_type:<12} {g.tp:>3} {tau:<12} {g.block_size:>5} "
                         f"{g.count:>5} {g.gpus:>5}{mark}")
        lines += ["", "classes:"]
        lines.append(f"  {'class':<14} {'offered':>8} {'served':>8} {'deadline':>9} "
                     f"{'attain':>7} {'target':>7} {'goodput':>8}  routes (group: share)")
        for c in self.classes:
            routes = ", ".join(f"{r.group}: {r.fraction:.0%}" for r in self.routes
                               if r.class_name == c.name)
            dl = "best-eff" if c.deadline_s is None else f"{c.deadline_s:.3g}s"
            lines.append(f"  {c.name:<14} {c.offered_rate:>8.3g} {c.served_rate:>8.3g} "
                         f"{dl:>9} {c.predicted_attainment:>7.1%} {c.target_attainment:>7.0%} "
                         f"{c.goodput:>8.3g}  {routes or '-'}")
        if self.reasons:
            lines += ["", "notes:"] + [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)
