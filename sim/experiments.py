"""Experiments over the simulator: policies at (rate scale, SLO scale) points, the best-static
sweep, the highest rate sustained at a target attainment, and a capacity upper bound.

A point's workload is the base trace scaled to the rate, with deadlines at the SLO scale; every
policy at a point sees the same requests, lengths, deadlines and per-request draws. Points run in
parallel processes with `jobs` > 1 (each simulation is single-threaded and deterministic, so the
results do not depend on `jobs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context

import numpy as np

from sim.metrics import RunSummary
from sim.policies import TP_SWEEP, Layout, PolicySpec
from sim.simulator import SimOptions, Simulation
from sim.workload import DEFAULT_SPEED_CV, SimClass, SimWorkload, build_workload
from solver.capacity import service_affine
from solver.profile_set import ProfileSet
from solver.types import Cluster
from traces.jobs import CanvasPolicy
from traces.records import Trace
from traces.transform import scale_rate
from worker.scheduler import SchedulerConfig


@dataclass(frozen=True)
class BenchSetup:
    trace: Trace  # before rate scaling
    classes: tuple[SimClass, ...]  # their slo_scale is replaced at each point
    cluster: Cluster
    profiles: ProfileSet
    canvas: CanvasPolicy | None = None
    seed: int = 0
    scale_mode: str = "count"
    speed_cv: float = DEFAULT_SPEED_CV
    options: SimOptions = SimOptions()


@dataclass(frozen=True)
class PointResult:
    rate_scale: float
    slo_scale: float
    summary: RunSummary
    sweep: tuple[tuple[str, float, float], ...] = ()  # best-static: (layout, attainment, acc)

    @property
    def policy(self) -> str:
        return self.summary.policy


_WORKLOADS: dict[tuple[int, float, float], tuple[BenchSetup, SimWorkload]] = {}
_SETUP: BenchSetup | None = None  # what forked workers run on (inherited, never pickled)


def workload_at(setup: BenchSetup, rate_scale: float, slo_scale: float) -> SimWorkload:
    """The workload at a point, cached per process (a few seconds to build for a long trace).
    The cache holds the setup itself, so its id cannot be reused by another setup meanwhile."""
    key = (id(setup), rate_scale, slo_scale)
    hit = _WORKLOADS.get(key)
    if hit is None or hit[0] is not setup:
        if len(_WORKLOADS) >= 8:
            _WORKLOADS.clear()
        hit = _WORKLOADS[key] = (setup, _build_workload(setup, rate_scale, slo_scale))
    return hit[1]


def _build_workload(setup: BenchSetup, rate_scale: float, slo_scale: float) -> SimWorkload:
    trace = scale_rate(setup.trace, rate_scale, mode=setup.scale_mode, seed=setup.seed)
    classes = tuple(replace(c, slo_scale=c.slo_scale * slo_scale) for c in setup.classes)
    return build_workload(trace, classes, setup.profiles, setup.canvas, setup.seed,
                          setup.speed_cv)


def static_layouts(setup: BenchSetup) -> list[Layout]:
    """Every fixed layout best-static may pick: TP degrees that fit a node x the range tops from
    the strictest class floor up to the quality reference (above the reference a tenth of a point
    costs several times the steps: never the best for attainment); each layout's range runs from
    the floor to its top. Without an accuracy budget the tops are the profiled thresholds; with
    one, every top on the load-control ladder (measured or interpolated) whose own drop fits the
    tightest budget (a top that does not could only overspend)."""
    quality = setup.profiles.quality
    block = setup.profiles.reference_block
    floor = max(c.floor(quality, block) for c in setup.classes)
    ref = quality.reference.threshold
    budgets = [c.accuracy_budget for c in setup.classes if c.accuracy_budget is not None]
    if budgets:
        step = SchedulerConfig().threshold_step
        taus = [p.threshold for p in quality.grid(block, step) if floor <= p.threshold <= ref
                and quality.accuracy_drop(p.threshold, block) <= min(budgets) + 1e-9]
    else:
        taus = [p.threshold for p in quality.threshold_points(block)
                if floor <= p.threshold <= ref]
    widest = max(n.gpus_per_node for n in setup.cluster.nodes)
    return [Layout(tp, tau) for tp in TP_SWEEP if tp <= widest for tau in taus]


def run_one(setup: BenchSetup, policy: PolicySpec, rate_scale: float, slo_scale: float,
            label: str) -> RunSummary:
    """One policy (a fixed layout for best-static) at one point."""
    return _run((setup, policy, rate_scale, slo_scale, label))


def _run(args: tuple[BenchSetup | None, PolicySpec, float, float, str]) -> RunSummary:
    setup, policy, rate_scale, slo_scale, label = args
    setup = setup or _SETUP
    assert setup is not None
    workload = workload_at(setup, rate_scale, slo_scale)
    options = replace(setup.options, label=label)
    return Simulation(workload, setup.cluster, setup.profiles, policy, options).run()


def run_grid(setup: BenchSetup, policies: Iterable[PolicySpec], rate_scales: Iterable[float],
             slo_scales: Iterable[float], jobs: int = 1,
             on_result: Callable[[PointResult], None] | None = None) -> list[PointResult]:
    """Every policy at every (rate scale, SLO scale); best-static runs its whole sweep at each
    point and reports the best layout (ties: the more accurate, then the fewer GPUs per replica)."""
    tasks, owners = [], []
    points = [(r, s) for s in slo_scales for r in rate_scales]
    for rate, slo in points:
        for policy in policies:
            if policy.hindsight:
                for layout in static_layouts(setup):
                    tasks.append((setup, policy.with_layout(layout), rate, slo,
                                  f"{policy.name} {layout.describe()} x{rate:g}/{slo:g}"))
                    owners.append((policy.name, rate, slo))
            else:
                tasks.append((setup, policy, rate, slo, f"{policy.name} x{rate:g}/{slo:g}"))
                owners.append((policy.name, rate, slo))
    summaries = _map(tasks, jobs)
    grouped: dict[tuple[str, float, float], list[RunSummary]] = {}
    for owner, summary in zip(owners, summaries):
        grouped.setdefault(owner, []).append(summary)
    results = []
    for rate, slo in points:
        for policy in policies:
            runs = grouped[(policy.name, rate, slo)]
            if policy.hindsight:
                best = best_of_sweep(runs)
                sweep = tuple((s.layout, s.attainment, s.mean_accuracy) for s in runs)
                result = PointResult(rate, slo, replace(best, policy=policy.name), sweep)
            else:
                result = PointResult(rate, slo, runs[0])
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def best_of_sweep(runs: list[RunSummary]) -> RunSummary:
    """best-static's pick: among the layouts whose spent accuracy budget fits (all when none
    does), the highest attainment; ties: the more accurate, then the fewer GPUs per replica."""
    fits = [s for s in runs if s.within_budget] or runs
    return max(fits, key=lambda s: (round(s.attainment, 6), s.mean_accuracy, -_tp_of(s.layout)))


def _tp_of(layout: str) -> int:
    head = layout.split()[0]
    return int(head[2:]) if head.startswith("TP") and head[2:].isdigit() else 0


def _map(tasks: list, jobs: int) -> list[RunSummary]:
    if jobs <= 1 or len(tasks) <= 1:
        return [_run(t) for t in tasks]
    global _SETUP
    _SETUP = tasks[0][0]
    light = [(None, *t[1:]) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        return list(pool.map(_run, light))


def sustained_rate(results: list[PointResult], policy: str, slo_scale: float,
                   target: float = 0.9) -> float | None:
    """The highest request rate (req/s) at which `policy` attains >= target at this SLO scale,
    interpolated linearly between the swept rates; None if it never does, the highest swept rate
    if it always does (a lower bound then)."""
    pts = sorted((r.summary.request_rate, r.summary.attainment) for r in results
                 if r.policy == policy and r.slo_scale == slo_scale)
    best = None
    for (r0, a0), (r1, a1) in zip(pts, pts[1:]):
        if a0 >= target > a1:
            best = r0 + (r1 - r0) * (a0 - target) / (a0 - a1)
    if pts and pts[-1][1] >= target:
        best = pts[-1][0]
    if best is None and pts and pts[0][1] >= target:
        best = pts[0][0]
    return best


def _lockstep_gpu_s(profiles: ProfileSet, hardware: str, job, tau: float, tp: int = 1) -> float:
    """GPU-seconds of one request in a full lockstep batch of `max_rows` identical rows: the
    cheapest the cost model allows (no padding, one forward per phase per step)."""
    block = profiles.reference_block
    prof = profiles.step_profile(hardware, tp)
    tps = profiles.quality.at(tau, block).tokens_per_step
    s0, s1 = service_affine(prof.cost, prof.cache_mode, job.prompt_len, job.canvas_len, block,
                            tps)
    return tp * (s0 / profiles.max_rows + s1) * job.decoded_len / job.canvas_len


def offered_load(workload: SimWorkload, profiles: ProfileSet, cluster: Cluster) -> float:
    """The fluid load: GPU-seconds the requests need at the quality reference threshold, each at
    the cheapest batching the cost model allows, over the GPU-seconds of the trace's span. 1.0
    means no policy could keep up at the reference threshold even with perfect batching."""
    if not workload.jobs or workload.duration_s <= 0:
        return math.nan
    hardware = cluster.nodes[0].gpu_type
    tau = profiles.quality.reference.threshold
    need = sum(_lockstep_gpu_s(profiles, hardware, j, tau) for j in workload.jobs)
    return need / (cluster.gpus * workload.duration_s)


BOUND_BATCHES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
BOUND_WINDOW_S = 300.0


def upper_bound(workload: SimWorkload, profiles: ProfileSet, cluster: Cluster) -> float:
    """An upper bound on SLO attainment under the step-cost model's lockstep batching (the
    solver's latency model): each request costs the fewest GPU-seconds of any TP degree and
    batch of identical rows (up to `max_rows`) at its class floor's threshold whose lockstep
    latency meets its deadline (none: it cannot be met); per window of arrivals
    (`BOUND_WINDOW_S`), the cheapest requests are served first with the cluster's GPU-seconds
    over the window plus the longest deadline budget in it (work may finish after the window;
    the overlap is counted twice, which only loosens the bound). Not a bound on every schedule:
    a long request in a batch of short ones finishes faster than in a batch of its own copies."""
    jobs = workload.jobs
    if not jobs:
        return math.nan
    block = profiles.reference_block
    hardware = cluster.nodes[0].gpu_type
    widest = max(n.gpus_per_node for n in cluster.nodes)
    steps = [(tp, profiles.step_profile(hardware, tp)) for tp in TP_SWEEP if tp <= widest]
    batches = np.array([b for b in BOUND_BATCHES if b <= profiles.max_rows], dtype=float)
    costs = np.full(len(jobs), np.inf)
    for i, job in enumerate(jobs):
        tau = workload.slo_class(job.slo_class).floor(profiles.quality, block)
        tps = profiles.quality.at(tau, block).tokens_per_step
        share = job.decoded_len / job.canvas_len
        budget = job.deadline_s - job.arrival_s
        for tp, prof in steps:
            s0, s1 = service_affine(prof.cost, prof.cache_mode, job.prompt_len,
                                    job.canvas_len, block, tps)
            ok = (s0 + s1 * batches) * share <= budget
            if ok.any():
                b = batches[ok].max()
                costs[i] = min(costs[i], tp * (s0 / b + s1) * share)
    arrivals = np.array([j.arrival_s for j in jobs])
    budgets = np.array([j.deadline_s - j.arrival_s for j in jobs])
    served = 0
    for start in np.arange(0.0, max(workload.duration_s, arrivals.max()) + 1e-9,
                           BOUND_WINDOW_S):
        inside = (arrivals >= start) & (arrivals < start + BOUND_WINDOW_S)
        if not inside.any():
            continue
        gpu_s = cluster.gpus * (BOUND_WINDOW_S + budgets[inside].max())
        cost = np.sort(costs[inside])
        cost = cost[np.isfinite(cost)]
        served += int(np.searchsorted(np.cumsum(cost), gpu_s, side="right"))
    return served / len(jobs)
