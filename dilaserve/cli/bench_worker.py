"""`dilaserve bench-worker`: replay Poisson and Gamma arrivals against live workers and compare
scheduling configurations (ordering + load control) on SLO attainment, goodput, latency, accuracy.

Prompts are the model's held-out tasks; each request's deadline is --slo-scale times its unloaded
latency (measured first, one request at a time, at the reference setting). Capacity is the highest
Poisson rate at which fcfs + none keeps >= 90% attainment. Every configuration is then replayed at
multiples of capacity (the same traces for each) and its own sustained rate (goodput) searched.
Rejected, expired and late requests are misses; accuracy is exact match over finished requests.
Each configuration runs in its own `dilaserve worker` subprocess on 127.0.0.1 (or use --target).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

from dilaserve.core.locations import resolve_model_dir
from dilaserve.profiles.quality import QualityProfile
from worker.client.bench_metrics import TrialSummary, highest_sustained_rate, summarize
from worker.client.bench_report import format_report
from worker.client.loadgen import Job, ReplayOutcome, arrival_times, replay
from worker.client.sync_client import WorkerClient
from worker.client.worker_process import WorkerProcess
from worker.measure.profile_files import QUALITY_FILE, profiles_dir
from worker.models import tasks
from worker.models.task_suites import TaskSuite, suite_of

BASELINE = "fcfs+none"
CONFIGS = (BASELINE, "edf+none", "edf+threshold")
TARGET = 0.9
WARMUP_REQUESTS = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-worker", help="SLO attainment of scheduling configurations", description=__doc__
    )
    p.add_argument("--target", help="HOST:PORT of a running worker (one configuration)")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--profiles", type=Path, help="profile directory (default: MODEL/profiles)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="ordering+load_control list")
    p.add_argument(
        "--admission", choices=("on", "off"), default="on", help="admission control, every config"
    )
    p.add_argument("--worker-flags", default="", help="more `dilaserve worker` flags, quoted")
    p.add_argument("--slo-scale", type=float, default=4.0, help="deadline / unloaded latency")
    p.add_argument("--per-task", type=int, default=20, help="held-out prompts per task")
    p.add_argument("--requests", type=int, default=200, help="requests per trial")
    p.add_argument("--processes", default="poisson,gamma", help="arrival processes")
    p.add_argument("--gamma-cv", type=float, default=3.0, help="CV of Gamma arrivals (2-4)")
    p.add_argument("--multipliers", default="0.5,1,1.5,2", help="offered load x capacity")
    p.add_argument("--refinements", type=int, default=3, help="bisection steps of rate searches")
    p.add_argument("--max-new-tokens", type=int,
                   help="every request's canvas (default: each task's, from the model's suite)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a sub-minute smoke run")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=run)


@dataclasses.dataclass
class Bench:
    args: argparse.Namespace
    examples: list[tasks.Example]
    suite: TaskSuite
    unloaded_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    reference_correct: dict[str, bool] = dataclasses.field(default_factory=dict)

    def jobs(self, rate: float, process: str) -> list[Job]:
        """The same trace for every configuration at this rate and process."""
        rng = random.Random(f"{self.args.seed}/{process}/{rate:.6f}")
        times = arrival_times(rate, self.args.requests, process, rng, self.args.gamma_cv)
        chosen = [rng.choice(self.examples) for _ in times]
        scale = self.args.slo_scale
        return [
            Job(t, ex.task, ex.prompt, ex.answer, scale * self.unloaded_ms[ex.prompt],
                self.canvas(ex))
            for t, ex in zip(times, chosen)
        ]

    def canvas(self, ex: tasks.Example) -> int:
        return self.args.max_new_tokens or self.suite.canvas_of(ex.task)

    def trial(self, target: str, rate: float,
              process: str) -> tuple[TrialSummary, list[ReplayOutcome]]:
        outcomes = asyncio.run(replay(target, self.jobs(rate, process), None))
        return summarize(rate, outcomes), outcomes


def run(args: argparse.Namespace) -> int:
    if args.quick:  # one trial per configuration and a short capacity search
        args.per_task, args.requests, args.refinements = 4, 30, 0
        args.multipliers, args.processes = "1.5", "poisson"
    configs = ["target"] if args.target else args.configs.split(",")
    for name in configs:
        if name != "target" and name.count("+") != 1:
            raise ValueError(f"--configs: {name!r} is not ordering+load_control")
    if not args.target and configs[0] != BASELINE:
        raise ValueError(f"--configs: the first must be {BASELINE} (it defines capacity)")
    multipliers = [float(m) for m in args.multipliers.split(",")]
    processes = args.processes.split(",")
    if not set(processes) <= {"poisson", "gamma"}:
        raise ValueError("--processes: poisson and/or gamma")
    if args.per_task <= 0 or args.requests <= 0 or args.slo_scale <= 0:
        raise ValueError("--per-task, --requests and --slo-scale must be positive")
    if args.max_new_tokens is not None and args.max_new_tokens <= 0:
        raise ValueError("--max-new-tokens: must be positive")
    suite = suite_of(args.model)
    bench = Bench(args, suite.heldout_set(args.per_task), suite)
    workdir = Path(tempfile.mkdtemp(prefix="dilaserve-bench-"))
    policy = None if args.target else write_policy(args, workdir, suite)
    result: dict = {
        "command": "dilaserve " + " ".join(sys.argv[1:]),
        "prompts": len(bench.examples),
        "slo_scale": args.slo_scale,
        "admission": "target's" if args.target else args.admission,
        "multipliers": multipliers,
        "processes": processes,
        "gamma_cv": args.gamma_cv,
        "configs": {},
    }
    capacity = 0.0
    for name in configs:
        flags = [] if args.target else worker_flags(args, policy, name)
        with _worker(args, flags, workdir) as target:
            _log(f"{name}: worker at {target}")
            warm_up(target, bench)
            if not bench.unloaded_ms:
                result["unloaded"] = measure_unloaded(target, bench)
                capacity, tried = search(bench, target, result["unloaded"]["serial_rate"])
                result["capacity"], result["capacity_tried"] = capacity, tried
                _log(f"capacity {capacity:.1f} req/s")
            result["configs"][name] = run_config(bench, target, name, capacity, multipliers)
    result["scheduler"] = scheduler_cost()
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0


def run_config(bench: Bench, target: str, name: str, capacity: float, multipliers) -> dict:
    trials: dict = {}
    finished: list[ReplayOutcome] = []
    for process in bench.args.processes.split(","):
        for m in multipliers:
            summary, outcomes = bench.trial(target, m * capacity, process)
            trials.setdefault(process, {})[str(m)] = dataclasses.asdict(summary)
            finished += [o for o in outcomes if o.finished]
            _log(f"{name} {process} {m}x: attainment {summary.attainment:.1%}")
    if name in (BASELINE, "target"):
        goodput, tried = capacity, []
    elif bench.args.quick:
        goodput, tried = float("nan"), []
    else:
        goodput, tried = search(bench, target, capacity)
    stats = WorkerClient(target).stats()
    return {
        "trials": trials,
        "goodput": goodput,
        "goodput_tried": tried,
        "pooled": pooled_accuracy(finished, bench.reference_correct),
        "stats": {
            "step_cost_error": stats.step_cost_error,
            "step_cost_samples": stats.step_cost_samples,
            "step_cost_prior_error": stats.step_cost_prior_error,
            "median_step_ms": stats.median_step_ms,
            "steps": stats.steps,
        },
    }


def search(bench: Bench, target: str, start: float) -> tuple[float, list]:
    def attainment(rate: float) -> float:
        summary, _ = bench.trial(target, rate, "poisson")
        _log(f"  search {rate:.1f} req/s: attainment {summary.attainment:.1%}")
        return summary.attainment

    return highest_sustained_rate(attainment, start, TARGET, bench.args.refinements)


def warm_up(target: str, bench: Bench) -> None:
    with WorkerClient(target) as client:
        client.wait_ready()
        for ex in bench.examples[:WARMUP_REQUESTS]:
            client.generate(ex.prompt, bench.canvas(ex))


def measure_unloaded(target: str, bench: Bench) -> dict:
    """Each prompt alone (the worker's own arrival-to-final time) at the reference setting."""
    with WorkerClient(target) as client:
        for ex in bench.examples:
            result = client.generate(ex.prompt, bench.canvas(ex))
            bench.unloaded_ms[ex.prompt] = result.e2e_ms
            bench.reference_correct[ex.prompt] = result.text == ex.answer
    latencies = sorted(bench.unloaded_ms.values())
    per_task = {
        t: statistics.fmean(
            bench.reference_correct[e.prompt] for e in bench.examples if e.task == t
        )
        for t in sorted({e.task for e in bench.examples})
    }
    median = statistics.median(latencies)
    return {
        "median_ms": median,
        "p90_ms": latencies[int(0.9 * (len(latencies) - 1))],
        "reference_accuracy": statistics.fmean(bench.reference_correct.values()),
        "reference_per_task": per_task,
        "serial_rate": 1e3 / statistics.fmean(latencies),
    }


def pooled_accuracy(finished: list[ReplayOutcome], reference: dict[str, bool]) -> dict:
    """Accuracy over every finished request, against the reference setting's on the same prompts
    (a paired comparison: each prompt weighs the same on both sides)."""
    if not finished:
        return {"accuracy": float("nan"), "reference": float("nan"), "per_task": {}}
    tasks_seen = sorted({o.task for o in finished})
    return {
        "accuracy": statistics.fmean(o.correct for o in finished),
        "reference": statistics.fmean(reference[o.prompt] for o in finished),
        "per_task": {
            t: statistics.fmean(o.correct for o in finished if o.task == t) for t in tasks_seen
        },
        "mean_threshold": statistics.fmean(o.threshold_mean for o in finished),
        "finished": len(finished),
    }


def scheduler_cost(depths: tuple[int, ...] = (16, 64, 256), steps: int = 500) -> list[dict]:
    from worker.scheduler.bench import run_depth

    return [run_depth(depth, steps, online=True) for depth in depths]


def write_policy(args: argparse.Namespace, workdir: Path, suite: TaskSuite) -> Path:
    """One class: each request brings its deadline; the floor is a 1-point accuracy drop."""
    directory = args.profiles or profiles_dir(resolve_model_dir(args.model))
    reference = QualityProfile.load(directory / QUALITY_FILE).reference
    text = f"""default_class: bench
classes:
  - name: bench
    deadline: {{ms: 600000}}
    quality_floor: {{max_accuracy_drop: 0.01}}
worker:
  threshold_range: {{min: 0.05, max: {reference.threshold}}}
  block_size: {reference.block_size}
  max_new_tokens: {max(args.max_new_tokens or max(suite.canvases().values()),
                        reference.block_size)}
"""
    path = workdir / "policy.yaml"
    path.write_text(text)
    return path


def worker_flags(args: argparse.Namespace, policy: Path, config: str) -> list[str]:
    ordering, load_control = config.split("+")
    flags = ["--policy", str(policy), "--ordering", ordering, "--load-control", load_control]
    flags += ["--admission", args.admission, *args.worker_flags.split()]
    if args.model:
        flags += ["--model", args.model]
    if args.profiles:
        flags += ["--profiles", str(args.profiles)]
    return flags


class _worker:
    """The target given, or a worker subprocess for one configuration."""

    def __init__(self, args: argparse.Namespace, flags: list[str], workdir: Path) -> None:
        self.process = None if args.target else WorkerProcess(flags, workdir / "worker.log")
        self.target = args.target

    def __enter__(self) -> str:
        return self.process.__enter__().target if self.process else self.target

    def __exit__(self, *exc: object) -> None:
        if self.process:
            self.process.__exit__(*exc)


def _log(message: str) -> None:
    print(f"[bench-worker] {message}", file=sys.stderr, flush=True)
