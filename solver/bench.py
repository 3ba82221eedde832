"""`dilaserve plan --bench`: wall time of the whole `solve()` and the gap of its primary objective.

Instances: 8, 32, 256 and 1,024 A100s (8 per node), TP degrees 1/2/4/8 (2-8 extrapolated from a
profiled TP=1), 6 thresholds at block size 32, 8 SLO classes whose offered load grows with the
cluster (about 1.1x what it can serve, so the primary objective is not trivially "serve all").

Synthetic profiles (built in code): an LLaDA-8B-like step cost on an A100 (a refresh step of
prompt 256 + canvas 1024 at batch 1 takes ~0.26 s, a dual-cache reuse step of a 32-token block
~0.09 s; batch scaling is the linear model's assumption), and the Fast-dLLM GSM8K figures for
tokens per step / accuracy at tau = 0.5 .. 1.0.

Primary gap: (P* - P) / P*, where P is the served-weighted tier of the timed plan and P* that of a
reference solve with HiGHS, gap 0 and a long time limit (not timed).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from dilaserve.profiles.quality import QualityPoint, QualityProfile
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile
from solver.capacity import clear_cache
from solver.solve import solve
from solver.types import (
    Cluster,
    LengthDist,
    NodeType,
    Profiles,
    SolverOptions,
    SolverPolicy,
    Workload,
    WorkloadClass,
)

SIZES = (8, 32, 256, 1024)
SOLVERS = ("cbc", "highs")
GOALS_S = {32: 0.3, 1024: 1.0}
GAP_GOAL = 0.01

# (threshold, tokens per step, accuracy): Fast-dLLM, LLaDA-8B GSM8K, block 32, canvas 256
FAST_DLLM = ((0.5, 7.01, 0.665), (0.6, 6.17, 0.723), (0.7, 5.12, 0.763), (0.8, 4.24, 0.777),
             (0.9, 3.25, 0.792), (1.0, 1.00, 0.793))
# a*forwards + b*refresh_tokens + c*reuse_tokens + d*attended_kv, seconds (A100, bf16)
LLADA_8B_A100 = (0.085, 1.0e-4, 1.0e-4, 3.2e-8)


def llada_like_profiles(hardware: str = "A100") -> Profiles:
    step = StepCostProfile(model="llada-8b-synthetic", hardware=hardware, dtype="bf16", tp=1,
                           cache_mode="dual", cost=StepCostModel(LLADA_8B_A100),
                           median_rel_error=float("nan"), provenance={"synthetic": True})
    points = tuple(QualityPoint("threshold", tau, 32, acc, {"gsm8k": acc}, tps * 0.9, tps,
                                256 / tps) for tau, tps, acc in FAST_DLLM)
    ref = next(p for p in points if p.threshold == 0.9)
    quality = QualityProfile("llada-8b-synthetic", ref, points, provenance={"synthetic": True})
    return Profiles((step,), quality)


def bench_workload(gpus: int, load: float = 1.1) -> Workload:
    """8 SLO classes; rates sum to about `load` x what `gpus` A100s can serve."""
    per_gpu = 1.3 * load  # req/s per GPU: about what the 256-GPU instance serves in full
    specs = [  # name, share, prompt, output, deadline kwargs, floor kwargs, target, prio, BE
        ("chat-short", .20, (128, 256), (128, 128), {"slo_scale": 3}, {"max_accuracy_drop": .02},
         .95, 2, False),
        ("chat", .20, (256, 512), (256, 256), {"slo_scale": 4}, {"max_accuracy_drop": .03},
         .95, 1, False),
        ("code", .10, (512, 1024), (256, 512), {"slo_scale": 5}, {"min_threshold": .8},
         .95, 1, False),
        ("math-strict", .05, (256, 384), (256, 256), {"deadline_s": 40.0},
         {"max_accuracy_drop": .005}, .99, 2, False),
        ("summarize", .10, (1024, 2048), (128, 256), {"slo_scale": 6},
         {"max_accuracy_drop": .05}, .95, 0, False),
        ("long-gen", .10, (128, 256), (512, 512), {"slo_scale": 10}, {}, .9, 0, False),
        ("interactive", .15, (64, 128), (64, 64), {"slo_scale": 2},
         {"max_accuracy_drop": .13}, .9, 3, False),
        ("bulk", .10, (256, 512), (256, 512), {}, {}, .95, 0, True),
    ]
    classes = [WorkloadClass(name, share * per_gpu * gpus, LengthDist(*p), LengthDist(*o),
                             **dl, **fl, target_attainment=tgt, priority=prio, best_effort=be)
               for name, share, p, o, dl, fl, tgt, prio, be in specs]
    return Workload(tuple(classes))


def bench_instance(gpus: int) -> tuple[Cluster, Workload, Profiles]:
    return (Cluster((NodeType(gpus // 8, 8, "A100"),)), bench_workload(gpus),
            llada_like_profiles())


def run_bench(sizes: tuple[int, ...] = SIZES, solvers: tuple[str, ...] = SOLVERS,
              repeats: int = 3, options: SolverOptions | None = None) -> list[dict]:
    """Timed solves use `options` (default SolverOptions()) with each solver in turn."""
    options = SolverOptions() if options is None else options
    rows = []
    for gpus in sizes:
        cluster, workload, profiles = bench_instance(gpus)
        ref_policy = SolverPolicy(solver=SolverOptions("highs", time_limit_s=60.0, gap_rel=0.0))
        ref = solve(cluster, workload, profiles, ref_policy)
        for name in solvers:
            policy = replace(ref_policy, solver=replace(options, solver=name))
            times, plan = [], None
            clear_cache()  # the first run is cold; the others reuse the cache
            for _ in range(repeats):
                t0 = time.perf_counter()
                plan = solve(cluster, workload, profiles, policy)
                times.append(time.perf_counter() - t0)
            assert plan is not None
            gap = (ref.served_norm - plan.served_norm) / ref.served_norm if ref.served_norm else 0
            rows.append({
                "gpus": gpus, "solver": name, "status": plan.status,
                "wall_s_first": times[0], "wall_s_median": statistics.median(times),
                "primary_gap": max(0.0, gap), "solver_gap": plan.gap,
                "served_norm": plan.served_norm, "reference_served_norm": ref.served_norm,
                "replicas": sum(g.count for g in plan.groups), "gpus_used": plan.gpus_used,
                "short_classes": plan.short_classes(),
                "goal_s": GOALS_S.get(gpus),
            })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'GPUs':>5} {'solver':<6} {'status':<9} {'first s':>8} {'median s':>9} "
             f"{'goal s':>7} {'primary gap':>12} {'solver gap':>11} {'replicas':>9} "
             f"{'GPUs used':>10}  short"]
    for r in rows:
        goal = "-" if r["goal_s"] is None else f"{r['goal_s']:g}"
        sgap = "n/a" if r["solver_gap"] is None else f"{r['solver_gap']:.1e}"
        lines.append(f"{r['gpus']:>5} {r['solver']:<6} {r['status']:<9} "
                     f"{r['wall_s_first']:>8.3f} {r['wall_s_median']:>9.3f} {goal:>7} "
                     f"{r['primary_gap']:>12.3%} {sgap:>11} {r['replicas']:>9} "
                     f"{r['gpus_used']:>10}  {','.join(r['short_classes']) or '-'}")
    lines.append(f"(4 TP degrees x 6 thresholds x 8 SLO classes; goals: <= 0.3 s at 32 GPUs, "
                 f"<= 1 s at 1,024, primary gap <= {GAP_GOAL:.0%})")
    return "\n".join(lines)
