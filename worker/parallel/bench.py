"""Step time of one decoding workload at TP=1 and TP=N, measured side by side in one run.

The same requests (the held-out prompts with the longest prompts) run to completion with FCFS
continuous batching on: TP=1 with one torch thread, TP=1 with N threads (the same cores as the
TP=N replica), and TP=N with one thread per rank (rank 0 here, the others spawned). The
configurations alternate for `repeats` rounds so that load from other processes hits them alike;
each reports the median round. Step time is what the engine measures (rank 0's, including the
step's command broadcast); the outputs of every configuration are compared with TP=1's.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from dilaserve.core.steps import AdmitRow, DecodeSettings, StepFeatures
from dilaserve.profiles.step_cost import StepCostProfile
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.runner import RunReport, run_to_completion
from worker.models.shipped import load
from worker.models.task_suites import suite_of
from worker.parallel.engine import TensorParallelEngine
from worker.parallel.group import init_tp_group, leave_tp_group, local_init_method
from worker.parallel.local import LocalRanks, join_followers, local_rank0

PUBLISHED_LLADA = (
    Path(__file__).resolve().parents[1]
    / "models/profiles_published/llada-8b/step_cost.a100.bfloat16.tp1.dual.json"
)


@dataclass(frozen=True)
class TpBenchConfig:
    tp: int = 2
    requests: int = 32
    batch: int = 8
    canvas: int = 32
    block_size: int = 8
    topk: int = 1  # tokens committed per step (the shipped model clears tau=0.9 in one step)
    cache_mode: str = "dual"
    repeats: int = 3

    def __post_init__(self) -> None:
        if self.tp < 2:
            raise ValueError(f"--tp: compare against 2 or more ranks, got {self.tp}")
        for name in ("requests", "batch", "canvas", "block_size", "topk", "repeats"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')}: must be positive")
        if self.canvas % self.block_size:
            raise ValueError(f"--canvas {self.canvas} is not a multiple of --block-size")


@dataclass(frozen=True)
class RoundResult:
    step_s: float  # summed engine step times
    wall_s: float
    steps: int
    median_step_ms: float
    median_reuse_step_ms: float  # steps whose rows all reused the cache
    median_refresh_step_ms: float  # steps with at least one refreshing row
    outputs: dict[str, tuple[int, ...]]


def _round(engine: DenoisingEngine, requests: list[AdmitRow], batch: int) -> RoundResult:
    report: RunReport = run_to_completion(engine, requests, batch, keep_steps=True)
    times = [s.elapsed_s * 1e3 for s in report.steps]
    reuse = [s.elapsed_s * 1e3 for s in report.steps if s.features.refresh_tokens == 0]
    refresh = [s.elapsed_s * 1e3 for s in report.steps if s.features.refresh_tokens > 0]
    return RoundResult(
        report.step_time_s,
        report.wall_s,
        len(report.steps),
        statistics.median(times),
        statistics.median(reuse) if reuse else float("nan"),
        statistics.median(refresh) if refresh else float("nan"),
        {rid: c.output_ids for rid, c in report.completions.items()},
    )


def workload(cfg: TpBenchConfig) -> list[AdmitRow]:
    _, tok, _ = load()
    if tok is None:
        raise ValueError("the TP benchmark needs the shipped model's tokenizer")
    pool = suite_of().heldout_set(max(cfg.requests, 64))
    longest = sorted(pool, key=lambda ex: (-len(ex.prompt), ex.prompt))[: cfg.requests]
    settings = DecodeSettings(
        block_size=cfg.block_size, rule="topk", rule_param=cfg.topk, cache_mode=cfg.cache_mode
    )
    return [
        AdmitRow(f"r{i}", tuple(tok.encode(ex.prompt)), cfg.canvas, settings)
        for i, ex in enumerate(longest)
    ]


def run_bench(cfg: TpBenchConfig) -> dict:
    requests = workload(cfg)
    model, _, _ = load()
    limits = EngineConfig(max_rows=cfg.batch)
    names = ("tp1 x 1 thread", f"tp1 x {cfg.tp} threads", f"tp{cfg.tp} x 1 thread per rank")
    rounds: dict[str, list[RoundResult]] = {n: [] for n in names}
    with local_rank0(cfg.tp, None, LocalRanks(threads=1)) as rank0:
        tp_engine = TensorParallelEngine(rank0.model, limits, rank0.leader)
        engines = {names[0]: DenoisingEngine(model, limits), names[2]: tp_engine}
        engines[names[1]] = engines[names[0]]
        threads = {names[0]: 1, names[1]: cfg.tp, names[2]: 1}
        for name in names:  # warm-up, discarded
            torch.set_num_threads(threads[name])
            _round(engines[name], requests[:2], cfg.batch)
        for _ in range(cfg.repeats):
            for name in names:
                torch.set_num_threads(threads[name])
                rounds[name].append(_round(engines[name], requests, cfg.batch))
        torch.set_num_threads(1)
    reference = rounds[names[0]][0].outputs
    rows = []
    for name in names:
        by_time = sorted(rounds[name], key=lambda r: r.step_s)
        mid = by_time[len(by_time) // 2]
        rows.append(
            {
                "name": name,
                "step_s": mid.step_s,
                "step_s_rounds": [r.step_s for r in rounds[name]],
                "wall_s": mid.wall_s,
                "steps": mid.steps,
                "median_step_ms": mid.median_step_ms,
                "median_reuse_step_ms": mid.median_reuse_step_ms,
                "median_refresh_step_ms": mid.median_refresh_step_ms,
                "same_outputs_as_tp1": all(r.outputs == reference for r in rounds[name]),
            }
        )
    base = rows[0]["step_s"]
    return {
        "config": cfg.__dict__,
        "model": model.config.name,
        "rows": rows,
        "speedup_vs_tp1_1thread": {r["name"]: base / r["step_s"] for r in rows},
    }


def modelled_gpu_steps(degrees: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    """What the solver assumes for TP > 1 on GPUs (modelled, not measured): the published LLaDA-8B
    A100 TP=1 profile extrapolated by solver.tp_extrapolation with TpOverhead's defaults."""
    from solver.tp_extrapolation import TpOverhead, extrapolate

    base = StepCostProfile.load(PUBLISHED_LLADA)
    overhead = TpOverhead()
    prompt, canvas, block = 700, 256, 32
    seq = prompt + canvas
    shapes = {
        f"refresh, batch {b}": StepFeatures(1, b * seq, 0, b * seq * (seq + 1)) for b in (1, 16)
    } | {
        f"dual reuse, batch {b}": StepFeatures(1, 0, b * block, b * block * (seq + 1))
        for b in (1, 16)
    }
    table = {}
    for name, features in shapes.items():
        row = {}
        for t in degrees:
            cost = base.cost if t == 1 else extrapolate(base, t, overhead).cost
            per_forward, per_token = overhead.comm_coef(t)
            tokens = features.refresh_tokens + features.reuse_tokens
            row[f"tp{t}"] = {
                "step_ms": cost.predict(features) * 1e3,
                "allreduce_ms": (features.forwards * per_forward + tokens * per_token) * 1e3,
            }
        table[name] = row
    return {
        "source": "modelled",
        "profile": f"{base.model} on {base.hardware}, TP=1 (seq {seq} = prompt {prompt} + canvas "
        f"{canvas}, block {block})",
        "tp_overhead": asdict(overhead),
        "model": overhead.describe(),
        "steps": table,
    }


def _allreduce_rank(rank: int, size: int, init_method: str, shapes, iters: int, results) -> None:
    torch.set_num_threads(1)
    group = init_tp_group(rank, size, init_method, "cpu", timeout_s=60.0, start_timeout_s=60.0)
    try:
        timings = {}
        for shape in shapes:
            tensor = torch.ones(shape)
            for _ in range(5):
                group.all_reduce(tensor)
            dist.barrier(group=group.compute)
            started = time.perf_counter()
            for _ in range(iters):
                group.all_reduce(tensor)
            timings[str(shape)] = (time.perf_counter() - started) / iters * 1e6
        if rank == 0:
            results.put(timings)
    finally:
        leave_tp_group()


def measure_allreduce(
    size: int, hidden: int, tokens: tuple[int, ...] = (8, 256, 1536), iters: int = 200
) -> dict[str, float]:
    """Microseconds per gloo all-reduce of a [tokens, hidden] float32 activation between `size`
    local processes (one thread each): what each of a TP forward's 2 x layers sums costs here."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    init_method = local_init_method()
    shapes = [(n, hidden) for n in tokens]
    ranks = [
        context.Process(
            target=_allreduce_rank, args=(r, size, init_method, shapes, iters, results), daemon=True
        )
        for r in range(size)
    ]
    for process in ranks:
        process.start()
    try:
        return results.get(timeout=120.0)
    finally:
        join_followers(ranks, 30.0)
