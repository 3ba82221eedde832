"""The solver's capacity model (solver/capacity.py) against the simulator, per layout.

A cell is a layout (TP degree x threshold) and a number of replicas: one replica alone, or as
many as fill the bench's cluster (what a fixed layout runs, and what the planner's capacities
stand for: a replica among others, behind the router). Predicted: the capacity the planner
uses, from the solver's own instance (`solver.instance.build_instance`) for one SLO class whose
length mix is the requests' and whose deadlines are the requests' own (SLO scale x their time
alone). Simulated: the highest rate per replica at which the simulated attainment still reaches
the target, found by bisection (each probe one simulation): Poisson arrivals (the same draws at
every probe, scaled), lengths drawn jointly from the trace, the dilaserve policy's scheduler
(least slack first, admission, threshold control within the layout's range), its deadline-aware
router, deadlines as client timeouts. The first `warmup` share of requests is left out (the
model is a steady state; the simulation starts empty).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from sim.metrics import Outcome
from sim.planning import serving_model
from sim.policies import POLICIES, PolicySpec
from sim.simulator import SimOptions, Simulation
from sim.workload import SimClass, SimWorkload, build_workload
from solver.instance import build_instance
from solver.length_mix import LengthMix
from solver.plan import Plan, ReplicaGroup, Route
from solver.profile_set import ProfileSet, solver_policy
from solver.types import Cluster, LengthDist, NodeType, Workload, WorkloadClass
from traces.records import Trace, TraceRequest

STEP = 1.15  # bracketing step of the bisection (x rate)
BISECTIONS = 4  # then halvings of the bracket: the rate to within STEP ** (1 / 16) = 0.9%


@dataclass(frozen=True)
class CapacityCell:
    tp: int
    threshold: float
    replicas: int
    predicted: float  # req/s per replica
    simulated: float  # req/s per replica
    predicted_batch: float  # mean rows held at the predicted capacity
    probes: tuple[tuple[float, float], ...]  # (req/s per replica, simulated attainment)
    requests: int

    @property
    def error(self) -> float:
        return self.predicted / self.simulated - 1 if self.simulated > 0 else math.inf


def capacity_check(profiles: ProfileSet, trace: Trace, slo_scale: float,
                   replicas_of: Callable[[int], int], tps: tuple[int, ...] = (1, 2, 4, 8),
                   taus: tuple[float, ...] = (0.7, 0.9), requests: int = 5000,
                   target: float = 0.9, seed: int = 0, warmup: float = 0.1,
                   log: Callable[[str], None] | None = None) -> list[CapacityCell]:
    """`replicas_of(tp)`: how many replicas of that degree a cell runs."""
    policy = replace(POLICIES["dilaserve"], controller=None, evaluate_plans=False)
    rng = np.random.default_rng([seed, 0xCA9])
    picks = rng.integers(0, len(trace.requests), requests)
    unit_gaps = np.cumsum(rng.exponential(1.0, requests))  # arrivals at 1 req/s, scaled later
    base = _workload(trace, picks, unit_gaps, 1.0, slo_scale, profiles, seed)
    pairs = [(j.prompt_len, j.canvas_len) for j in base.jobs]
    cells = []
    for tp in tps:
        replicas = replicas_of(tp)
        cluster = _cluster(profiles, tp, replicas)
        for tau in taus:
            predicted, batch = _predicted(profiles, cluster, tp, tau, pairs, slo_scale, target,
                                          policy)
            attain = partial(_attainment, trace, picks, unit_gaps, slo_scale, profiles, seed,
                             cluster, policy, tp, tau, replicas, warmup)
            simulated, probes = _bisect(attain, predicted, target)
            cell = CapacityCell(tp, tau, replicas, predicted, simulated, batch, probes, requests)
            cells.append(cell)
            if log is not None:
                log(f"  capacity check TP{tp} x tau {tau:g} x {replicas} replica(s): predicted "
                    f"{predicted:.3f}, simulated {simulated:.3f} req/s per replica "
                    f"({cell.error:+.1%})")
    return cells


def _attainment(trace: Trace, picks: np.ndarray, unit_gaps: np.ndarray, slo_scale: float,
                profiles: ProfileSet, seed: int, cluster: Cluster, policy: PolicySpec, tp: int,
                tau: float, replicas: int, warmup: float, rate: float) -> float:
    """Simulated attainment of the layout at `rate` req/s per replica."""
    wl = _workload(trace, picks, unit_gaps, rate * replicas, slo_scale, profiles, seed)
    return _simulate(wl, cluster, profiles, policy, tp, tau, replicas, warmup, seed)


def _cluster(profiles: ProfileSet, tp: int, replicas: int) -> Cluster:
    gpus = tp * replicas
    per = min(gpus, max(8, tp))
    return Cluster((NodeType(max(1, gpus // per), per, profiles.hardware[0]),))


def _predicted(profiles: ProfileSet, cluster: Cluster, tp: int, tau: float,
               pairs: list[tuple[int, int]], slo_scale: float, target: float,
               policy: PolicySpec) -> tuple[float, float]:
    """The planner's capacity for this layout: the solver's instance, restricted to it."""
    mean_prompt = float(np.mean([p for p, _ in pairs]))
    mean_canvas = float(np.mean([c for _, c in pairs]))
    cls = WorkloadClass("default", 1.0, LengthDist(mean_prompt), LengthDist(mean_canvas),
                        slo_scale=slo_scale, target_attainment=target,
                        lengths=LengthMix.from_pairs(pairs))
    solver = replace(solver_policy(profiles, cluster), tp_degrees=(tp,), thresholds=(tau,),
                     serving=serving_model(policy, profiles.max_rows))
    inst = build_instance(cluster, Workload((cls,)), profiles.solver_profiles(), solver)
    cap = inst.capacity[0][0]
    return cap.rate, cap.batch


def _workload(trace: Trace, picks: np.ndarray, unit_gaps: np.ndarray, rate: float,
              slo_scale: float, profiles: ProfileSet, seed: int) -> SimWorkload:
    times = unit_gaps / rate
    reqs = tuple(TraceRequest(float(t), trace.requests[k].prompt_len,
                              trace.requests[k].output_len) for t, k in zip(times, picks))
    scaled = Trace("capacity", reqs, duration_s=float(times[-1]))
    return build_workload(scaled, (SimClass(slo_scale=slo_scale, max_accuracy_drop=None),),
                          profiles, seed=seed)


def _simulate(workload: SimWorkload, cluster: Cluster, profiles: ProfileSet,
              policy: PolicySpec, tp: int, tau: float, replicas: int, warmup: float,
              seed: int) -> float:
    node = cluster.nodes[0]
    group = ReplicaGroup(node.name, node.gpu_type, tp, tau, tau, profiles.reference_block,
                         replicas)
    plan = Plan((group,), (Route("default", 0, workload.rate, 1.0, math.nan),), (), "optimal",
                "fixed", 0.0, 0.0, 1.0, 0.0, 0.0, group.gpus, cluster.gpus, 0.0, ())
    sim = Simulation(workload, cluster, profiles, policy, SimOptions(seed=seed), plan=plan)
    sim.run()
    skip = int(warmup * len(workload.jobs))
    return float((sim.records.outcome[skip:] == Outcome.MET).mean())


def _bisect(attain: Callable[[float], float], start: float, target: float,
            ) -> tuple[float, tuple[tuple[float, float], ...]]:
    """The highest rate with attain(rate) >= target, attainment falling with the rate."""
    probes: list[tuple[float, float]] = []

    def probe(rate: float) -> bool:
        value = attain(rate)
        probes.append((rate, value))
        return value >= target

    rate = max(start, 1e-6)
    if probe(rate):
        lo = rate
        while probe(hi := lo * STEP):
            lo = hi
    else:
        hi = rate
        while not probe(lo := hi / STEP):
            hi = lo
            if lo < start * 1e-3:
                return 0.0, tuple(probes)
    for _ in range(BISECTIONS):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if probe(mid) else (lo, mid)
    return math.sqrt(lo * hi), tuple(probes)


def ranking(cells: list[CapacityCell], field: str) -> list[int]:
    """TP degrees from the most to the least capacity per GPU (best threshold per degree)."""
    best: dict[int, float] = {}
    for c in cells:
        best[c.tp] = max(best.get(c.tp, 0.0), getattr(c, field) / c.tp)
    return sorted(best, key=lambda tp: -best[tp])
