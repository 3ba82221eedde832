"""`dilaserve plan`: what-if placement of a workload on a cluster, or the solver's benchmark.

dilaserve plan --cluster 4x8:H100 --workload deploy/workloads/llada-8b-chat.yaml [--json]
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
        metavar="NAME_OR_DIR",
        default="llada-8b",
        help="llada-8b (default: LLaDA-8B's published A100 profile and those derived from it for "
        "H100, H200, L40S), shipped (the shipped model's, measured on CPU), or a directory of "
        "profile JSONs (one quality profile, step-cost profiles per GPU and TP degree)",
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
    from dilaserve.profiles.roofline import provenance_line
    from solver.loaders import load_cluster, load_workload, make_policy, read_data
    from solver.plan import Plan
    from solver.profile_set import resolve_profiles, solver_policy
    from solver.solve import solve
    from solver.types import SolverOptions

    for name in ("cluster", "workload"):
        if not getattr(args, name):
            raise ValueError(f"--{name} is required (or use --bench)")
    profile_set = resolve_profiles(args.profiles)
    cluster = _on_profiled_hardware(load_cluster(args.cluster), profile_set.hardware,
                                    args.profiles)
    workload, section = load_workload(args.workload)
    opts = {"solver": args.solver}
    if args.time_limit is not None:
        opts["time_limit_s"] = args.time_limit
    if args.gap is not None:
        opts["gap_rel"] = args.gap
    # what the live controller plans with (solver_policy), then the workload file's overrides
    policy, overhead = make_policy(section, solver_policy(profile_set, cluster))
    policy = replace(policy, solver=SolverOptions(**opts))
    profiles = profile_set.solver_profiles()
    if overhead is not None:
        profiles = replace(profiles, tp_overhead=overhead)
    current = None
    if args.current:
        data = read_data(args.current, "current")
        if not isinstance(data, dict):
            raise ValueError("current: expected a plan (the output of dilaserve plan --json)")
        data.pop("profiles", None)  # what this command adds to the plan's own fields
        current = Plan.from_dict(data)
    plan = solve(cluster, workload, profiles, policy, current)
    used = {n.gpu_type.lower() for n in cluster.nodes}
    sources = {p.hardware: provenance_line(p) for p in profile_set.step_costs
               if p.hardware.lower() in used}
    if args.json:
        print(json.dumps({**plan.to_dict(), "profiles": {"name": profile_set.name,
                                                         "provenance": sources}}, indent=1))
    else:
        print(plan.summary())
        for hardware, line in sorted(sources.items()):
            print(f"profile {profile_set.name} {hardware}: {line}")
    return 0


def _on_profiled_hardware(cluster, profiled: tuple[str, ...], name: str):
    """`cluster` with `cpu` node types named as the profiles' CPU (`cpu-x86-64-1threads`); a
    GPU type without a profile is an error that says how to make one."""
    from dilaserve.profiles.roofline import GPUS

    cpus = [h for h in profiled if h.lower().startswith("cpu")]
    nodes = []
    for node in cluster.nodes:
        kind = node.gpu_type
        if kind.lower() == "cpu" and len(cpus) == 1:
            node = replace(node, gpu_type=cpus[0])
        elif kind.lower() not in {h.lower() for h in profiled}:
            hint = (f"; derive one by roofline: dilaserve profile --derive {kind} --from DIR"
                    if kind.upper() in GPUS else "")
            raise ValueError(f"--cluster: no step-cost profile for {kind!r} in profiles "
                             f"{name!r} (profiled: {', '.join(profiled)}){hint}")
        nodes.append(node)
    return replace(cluster, nodes=tuple(nodes))


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
