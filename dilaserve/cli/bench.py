"""`dilaserve bench`: SLO attainment of serving policies on a trace (simulated mode).

dilaserve bench --trace PATH|poisson|gamma --rate-scale X[,X..] --slo-scale Y[,Y..] --mode sim
                --policies static,static+edf,static+edf+threshold,best-static,dilaserve
                [--gpus N] [--json FILE] [--plot FILE] [--sensitivity] [--capacity-check]

Flags follow vLLM's and SGLang's serving benchmarks where they fit (--request-rate, --burstiness,
--num-prompts, --seed, percentiles, goodput).

--mode live runs the same policies on the embedded cluster (one cluster per policy), or replays
against a running router with --target HOST:PORT; --mode compare runs one request list live and
simulated over seeds (dilaserve/livebench, docs/live-bench.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from dilaserve.cli.bench_setup import (
    find_rate_for,
    load_base_trace,
    make_setup,
    number_list,
    seed_list,
)

HELP = "SLO attainment of serving policies on a trace (simulated or live cluster)"
POLICY_LIST = "static,static+edf,static+edf+threshold,best-static,dilaserve"
# defaults that differ by mode: the simulated LLaDA-8B cluster vs the shipped tiny model live
MODE_DEFAULTS = {
    "sim": {"duration": 600.0, "prompt_len": "lognormal:1000:1.0",
            "output_len": "lognormal:200:0.8", "profiles": "llada-8b"},
    "live": {"duration": 40.0, "prompt_len": "lognormal:48:1.0", "output_len": "lognormal:48:1.0",
             "profiles": None},
}
MODE_DEFAULTS["compare"] = MODE_DEFAULTS["live"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help=HELP, description=HELP)
    p.add_argument("--mode", choices=("sim", "live", "compare"), default="sim",
                   help="sim: simulated cluster; live: the embedded cluster (or --target); "
                        "compare: the same requests live and simulated, over --seeds")
    p.add_argument("--trace", metavar="PATH|poisson|gamma",
                   help="an Azure CSV / Mooncake JSONL trace, or synthetic arrivals (required "
                        "but with --sweep)")
    p.add_argument("--window", metavar="START:END", help="seconds of the trace to replay")
    p.add_argument("--request-rate", type=float, default=4.0, metavar="R",
                   help="synthetic: requests per second (default 4)")
    p.add_argument("--burstiness", type=float, default=None, metavar="K",
                   help="gamma: shape k (vLLM's burstiness; cv = 1/sqrt(k))")
    p.add_argument("--cv", type=float, default=None, help="gamma: coefficient of variation")
    p.add_argument("--num-prompts", type=int, default=None, metavar="N",
                   help="synthetic: number of requests (default: --duration)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="synthetic: seconds of arrivals (default 600; live 40)")
    p.add_argument("--prompt-len", default=None, metavar="SPEC",
                   help="synthetic prompt lengths: N, uniform:LO:HI, lognormal:MEAN:CV "
                        "(default lognormal:1000:1.0; live lognormal:48:1.0)")
    p.add_argument("--output-len", default=None, metavar="SPEC",
                   help="(default lognormal:200:0.8; live lognormal:48:1.0)")
    p.add_argument("--rate-scale", default="1", metavar="X[,X..]",
                   help="multiply the trace's request rate (a list sweeps)")
    p.add_argument("--scale-mode", choices=("count", "time"), default="count",
                   help="count: more requests over the same span; time: compress time")
    p.add_argument("--slo-scale", default="5", metavar="Y[,Y..]",
                   help="deadline = arrival + Y x the request's unloaded latency (a list sweeps)")
    p.add_argument("--policies", default=POLICY_LIST)
    p.add_argument("--gpus", type=int, default=32, help="GPUs (nodes of --gpus-per-node)")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--cluster", metavar="SPEC", help="instead of --gpus: e.g. 4x8:A100")
    p.add_argument("--profiles", default=None,
                   help="llada-8b (published figures, the default), shipped (measured), or a "
                        "directory; live: the served model's")
    p.add_argument("--max-accuracy-drop", type=float, default=0.03, metavar="F",
                   help="the class's quality floor vs the reference threshold (fraction)")
    p.add_argument("--accuracy-budget", type=float, default=None, metavar="F",
                   help="the class's accuracy budget: the mean drop (fraction, 0.01 = 1 point) "
                        "its finished requests may take; --max-accuracy-drop stays the hard "
                        "per-request floor (default: no budget)")
    p.add_argument("--target-attainment", type=float, default=0.9)
    p.add_argument("--canvas", default="known", metavar="known|fixed:N",
                   help="known: output length rounded up (an oracle); fixed:N: canvas N with "
                        "early stop at EOS")
    p.add_argument("--find-static", type=float, default=None, metavar="A",
                   help="first find the rate scale at which static attains A (e.g. 0.4)")
    p.add_argument("--sensitivity", action="store_true",
                   help="halve and double each assumed parameter at one point")
    p.add_argument("--sensitivity-rate", type=float, default=None, metavar="X",
                   help="the rate scale of that point (default: the first --rate-scale)")
    p.add_argument("--sensitivity-policies", default="static,best-static,dilaserve",
                   help="policies rerun under each changed assumption")
    p.add_argument("--capacity-check", action="store_true",
                   help="solver capacity model vs the simulator per layout (TP x tau 0.7/0.9): "
                        "one replica, and replicas filling the cluster")
    p.add_argument("--capacity-requests", type=int, default=5000, metavar="N",
                   help="requests per simulated probe of --capacity-check (default 5000)")
    p.add_argument("--target", metavar="HOST:PORT",
                   help="live: replay against this running router as one policy, 'target'")
    p.add_argument("--policy", type=Path, default=None, metavar="FILE",
                   help="live: the cluster policy the runs start from (default "
                        "deploy/policies/default.yaml)")
    p.add_argument("--port", type=int, default=0,
                   help="live: the embedded router's port (default 0: any free port)")
    p.add_argument("--find-capacity", type=float, default=None, metavar="F",
                   help="live: first find the rate scale up to which static attains 90%% "
                        "live, then run at F x it (e.g. 1.5)")
    p.add_argument("--warmup", type=float, default=20.0, metavar="S",
                   help="live: a planned policy (dilaserve) first serves S seconds of the "
                        "workload unscored, so its controller has planned for the load "
                        "(default 20)")
    p.add_argument("--seeds", default=None, metavar="S[,S..]",
                   help="compare: seeds of the request lists (default 0,1,2)")
    p.add_argument("--sweep", metavar="NAME",
                   help="sim: a named sweep instead of one trace: accuracy-budget (every policy "
                        "at budgets 0.5/1/2 points on the Azure conversation and code traces; "
                        "docs/simulator.md)")
    p.add_argument("--traces-dir", default="../shared/traces", metavar="DIR",
                   help="--sweep: where the Azure 2023 traces are (default ../shared/traces)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="--sweep: where each run's result is written as it ends, and read back "
                        "on a rerun (default runs/NAME)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="parallel simulation processes")
    p.add_argument("--json", metavar="FILE", help="write every number to this JSON file")
    p.add_argument("--plot", metavar="FILE", help="attainment curves (PNG)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def _fill_mode_defaults(args: argparse.Namespace) -> None:
    for name, value in MODE_DEFAULTS[args.mode].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.mode == "sim":
        for flag in ("target", "find_capacity", "seeds", "policy"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')}: only with --mode live or compare")
    elif args.policy is None:
        from dilaserve.cli.serve import DEFAULT_POLICY

        args.policy = DEFAULT_POLICY
    if not 0 <= args.port < 65536:
        raise ValueError(f"--port: must be in [0, 65535], got {args.port}")


def run(args: argparse.Namespace) -> int:
    _fill_mode_defaults(args)
    if args.sweep is not None:
        if args.mode != "sim":
            raise ValueError("--sweep: only with --mode sim")
        from dilaserve.cli.bench_sweep import run_sweep

        return run_sweep(args, lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.trace is None:
        raise ValueError("--trace: required (a trace file, poisson or gamma), but with --sweep")
    if args.mode != "sim":
        return _run_live(args)
    from sim.experiments import (
        offered_load,
        run_grid,
        sustained_rate,
        upper_bound,
        workload_at,
    )
    from sim.policies import POLICIES, parse_policies
    from sim.report import legend, point_table, result_json, sweep_lines

    t0 = time.perf_counter()
    policies = parse_policies(args.policies)
    rates = number_list(args.rate_scale, "--rate-scale")
    slos = number_list(args.slo_scale, "--slo-scale")
    setup = make_setup(args)

    def log(msg: str) -> None:
        if not args.no_progress:
            print(msg, file=sys.stderr, flush=True)

    print(f"trace: {setup.trace.summary()}")
    for note in setup.trace.notes:
        print(f"  {note}")
    nodes = ", ".join(f"{n.count}x{n.gpus_per_node} {n.gpu_type}" for n in setup.cluster.nodes)
    print(f"cluster: {setup.cluster.gpus} GPUs ({nodes}); profiles: {setup.profiles.name} "
          f"({'; '.join(setup.profiles.notes)})")
    if args.find_static is not None:
        found = find_rate_for(setup, POLICIES["static"], args.find_static, slos[0], log)
        print(f"rate scale where static attains ~{args.find_static:.0%}: x{found:g}")
        rates = [found]
    done = [0]
    total = len(rates) * len(slos) * len(policies)

    def on_result(result) -> None:
        done[0] += 1
        s = result.summary
        log(f"[{done[0]}/{total}] {s.policy} x{result.rate_scale:g}/{result.slo_scale:g}: "
            f"{s.attainment:.1%} ({s.replica_steps} steps in {s.wall_s:.1f} s, "
            f"{s.steps_per_s:,.0f} steps/s)")

    results = run_grid(setup, policies, rates, slos, args.jobs, on_result)
    out: dict = {"setup": _setup_json(setup, args), "points": []}
    for slo in slos:
        for rate in rates:
            point = [r for r in results if r.rate_scale == rate and r.slo_scale == slo]
            workload = workload_at(setup, rate, slo)
            bound = upper_bound(workload, setup.profiles, setup.cluster)
            load = offered_load(workload, setup.profiles, setup.cluster)
            print(f"\n== rate x{rate:g} ({workload.rate:.2f} req/s, {len(workload.jobs)} "
                  f"requests, fluid load {load:.0%}), SLO scale {slo:g} ==")
            if rate == rates[0] and slo == slos[0]:
                for note in workload.description[len(setup.trace.notes):]:
                    print(f"  {note}")
            print(point_table(point, bound))
            for line in sweep_lines(point):
                print(line)
            out["points"].append({"rate_scale": rate, "slo_scale": slo,
                                  "request_rate": workload.rate, "requests": len(workload.jobs),
                                  "fluid_load": load, "upper_bound": bound,
                                  "results": [result_json(r) for r in point]})
    print(f"\n{legend()}")
    if len(rates) > 1:
        out["sustained_rate_at_90"] = {}
        for slo in slos:
            rates_at = {p.name: sustained_rate(results, p.name, slo) for p in policies}
            out["sustained_rate_at_90"][str(slo)] = rates_at
            cells = ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}"
                              for k, v in rates_at.items())
            print(f"highest rate at >= 90% attainment (req/s), SLO scale {slo:g}: {cells}")
    _speed(results)
    if args.sensitivity:
        at = rates[0] if args.sensitivity_rate is None else args.sensitivity_rate
        chosen = parse_policies(args.sensitivity_policies)
        names = {p.name for p in chosen}
        base = [r for r in results if r.rate_scale == at and r.slo_scale == slos[0]
                and r.policy in names]
        if {r.policy for r in base} != names:
            base = None
        out["sensitivity"] = _sensitivity(setup, chosen, at, slos[0], args.jobs, base)
    if args.capacity_check:
        out["capacity_check"] = _capacity(setup, slos[0], args.capacity_requests, log)
    if args.plot:
        from sim.plot import plot_attainment

        title = (f"{setup.trace.name}, {setup.cluster.gpus} GPUs, profiles "
                 f"{setup.profiles.name}, seed {setup.seed}")
        path = plot_attainment(results, args.plot, title)
        print(f"plot: {path}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"json: {args.json}")
    print(f"bench wall time {time.perf_counter() - t0:.0f} s")
    return 0


def _run_live(args: argparse.Namespace) -> int:
    from dilaserve.livebench.command import parse_target, stderr_log
    from sim.policies import parse_policies

    if args.target:
        parse_target(args.target)  # a bad address fails before anything starts
    if args.warmup < 0:
        raise ValueError(f"--warmup: must be >= 0, got {args.warmup}")
    if args.find_capacity is not None and args.find_capacity <= 0:
        raise ValueError(f"--find-capacity: must be > 0, got {args.find_capacity}")
    policies = parse_policies(args.policies)
    rates = number_list(args.rate_scale, "--rate-scale")
    slos = number_list(args.slo_scale, "--slo-scale")
    trace = load_base_trace(args)
    log = stderr_log(args.no_progress)
    if args.mode == "compare":
        from dilaserve.livebench.compare import run_compare

        if args.target:
            raise ValueError("--target: compare mode starts its own cluster per policy")
        seeds = seed_list(args.seeds or "0,1,2")

        def trace_for(seed: int):
            return load_base_trace(argparse.Namespace(**{**vars(args), "seed": seed}))

        return run_compare(args, trace_for, policies, rates, slos, seeds, log)
    from dilaserve.livebench.command import run_live

    return run_live(args, trace, policies, rates, slos, log)


def _speed(results) -> None:
    steps = sum(r.summary.replica_steps for r in results)
    wall = sum(r.summary.wall_s - r.summary.planning_s for r in results)
    sched = sum(r.summary.scheduler_s for r in results)
    planning = sum(r.summary.planning_s for r in results)
    if wall > 0:
        print(f"speed: {steps:,} simulated replica steps in {wall:.1f} s of simulation wall time "
              f"= {steps / wall:,.0f} steps/s ({sched / wall:.0%} of it inside the worker "
              f"scheduler's calls); planning (solver + plan evaluations) {planning:.1f} s more")


def _sensitivity(setup, policies, rate: float, slo: float, jobs: int, base) -> list[dict]:
    from sim.report import result_json, sensitivity_table
    from sim.sensitivity import sensitivity

    rows = sensitivity(setup, policies, rate, slo, jobs=jobs, base=base)
    print(f"\n== sensitivity at rate x{rate:g}, SLO scale {slo:g} (attainment) ==")
    print(sensitivity_table(rows, [p.name for p in policies]))
    return [{"assumption": r.assumption, "factor": r.factor, "value": r.value,
             "results": [result_json(x) for x in r.results]} for r in rows]


def _capacity(setup, slo: float, requests: int, log) -> list[dict]:
    from sim.capacity_check import capacity_check
    from sim.report import capacity_table, ranking_line

    gpus = setup.cluster.gpus
    out = []
    for name, replicas_of in (("one replica", lambda tp: 1),
                              (f"replicas filling the {gpus} GPUs", lambda tp: gpus // tp)):
        widest = max(n.gpus_per_node for n in setup.cluster.nodes)
        tps = tuple(t for t in (1, 2, 4, 8) if t <= widest and gpus // t >= 1)
        cells = capacity_check(setup.profiles, setup.trace, slo, replicas_of, tps,
                               requests=requests, seed=setup.seed, log=log)
        print(f"\n== capacity model (solver/capacity.py) vs the simulator, {name}, SLO scale "
              f"{slo:g}: capacity in req/s per replica at {cells[0].requests} requests ==")
        print(capacity_table(cells))
        print(ranking_line(cells))
        out += [{**asdict(c), "error": c.error} for c in cells]
    return out


def _setup_json(setup, args: argparse.Namespace) -> dict:
    return {"trace": setup.trace.summary(), "trace_notes": list(setup.trace.notes),
            "cluster": [asdict(n) for n in setup.cluster.nodes],
            "profiles": setup.profiles.name, "profile_notes": list(setup.profiles.notes),
            "classes": [asdict(c) for c in setup.classes], "seed": setup.seed,
            "canvas": args.canvas, "scale_mode": setup.scale_mode,
            "speed_cv": setup.speed_cv, "options": asdict(replace(setup.options))}
