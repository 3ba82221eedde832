"""`dilaserve plan`: what-if placement of a workload on a cluster, or the solver's benchmark.

dilaserve plan --cluster 4x8:H100 --workload workload.yaml --profiles profiles/ [--json]
dilaserve plan --bench [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

HELP = "split a cluster into dLLM replicas for a workload (what-if), or benchmark the solver"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help=HELP, description=HELP)
    p.add_argument(
        "--cluster",
        metavar="FILE_OR_SPEC",
        help="YAML/JSON file, or a spec like 4x8:H100 (4 nodes of 8 GPUs)",
    )
    p.add_argument("--workload", metavar="FILE", help="YAML/JSON: SLO classes (+ policy)")
    p.add_argument(
        "--profiles",
        metavar="DIR_OR_FILE",
        nargs="+",
        help="a directory of profile JSONs, or the files",
    )
    p.add_argument(
        "--current",
        metavar="FILE",
        help="the running plan (a --json output), so that reconfiguration cost is weighed",
    )
    p.add_argument("--solver", choices=("cbc", "highs"), default="cbc")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="S",
        help="solver time limit in seconds (default 2)",
    )
    p.add_argument(
        "--gap",
        type=float,
        default=None,
        metavar="REL",
        help="relative optimality gap at which the solver may stop",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--bench", action="store_true", help="time solve() at 8/32/256/1024 GPUs with CBC and HiGHS"
    )
    p.add_argument(
        "--bench-sizes",
        default=None,
        metavar="N,N,...",
        help="GPU counts for --bench (multiples of 8)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _bench(args) if args.bench else _plan(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"dilaserve plan: error: {err}", file=sys.stderr)
        return 2


def _plan(args: argparse.Namespace) -> int:
    from solver.loaders import load_cluster, load_profiles, load_workload, make_policy, read_data
    from solver.plan import Plan
    from solver.solve import solve
    from solver.types import SolverOptions

    for name in ("cluster", "workload", "profiles"):
        if not getattr(args, name):
            raise ValueError(f"--{name} is required (or use --bench)")
    cluster = load_cluster(args.cluster)
    workload, section = load_workload(args.workload)
    opts = {"solver": args.solver}
    if args.time_limit is not None:
        opts["time_limit_s"] = args.time_limit
    if args.gap is not None:
        opts["gap_rel"] = args.gap
    policy, overhead = make_policy(section)
    policy = replace(policy, solver=SolverOptions(**opts))
    profiles = load_profiles(args.profiles, overhead)
    current = None
    if args.current:
        data = read_data(args.current, "current")
        if not isinstance(data, dict):
            raise ValueError("current: expected a plan (the output of dilaserve plan --json)")
        current = Plan.from_dict(data)
    plan = solve(cluster, workload, profiles, policy, current)
    print(json.dumps(plan.to_dict(), indent=1) if args.json else plan.summary())
    return 0


def _bench(args: argparse.Namespace) -> int:
    from solver.bench import SIZES, format_table, run_bench

    sizes = SIZES
    if args.bench_sizes:
        try:
            sizes = tuple(int(s) for s in args.bench_sizes.split(","))
        except ValueError:
            raise ValueError(
                f"--bench-sizes: expected GPU counts like 8,32, got {args.bench_sizes!r}"
            ) from None
        if any(s < 8 or s % 8 for s in sizes):
            raise ValueError(f"--bench-sizes: each must be a multiple of 8, got {sizes}")
    rows = run_bench(sizes)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0
