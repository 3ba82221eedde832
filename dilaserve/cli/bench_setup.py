"""What `dilaserve bench` runs on: the base trace (a file, or synthetic Poisson/Gamma arrivals),
the simulated cluster and profiles with the SLO classes (`BenchSetup`), the flags' number lists,
and the search for the rate at which a policy reaches a target attainment."""

from __future__ import annotations

import argparse


def number_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected numbers like 1,2,4, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{flag}: expected positive numbers, got {text!r}")
    return values


def seed_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--seeds: expected whole numbers like 0,1,2, got {text!r}") from None
    if not values or len(set(values)) != len(values):
        raise ValueError(f"--seeds: expected distinct whole numbers like 0,1,2, got {text!r}")
    return values


def load_base_trace(args: argparse.Namespace):
    from traces import load_trace, parse_lengths, synthetic_trace, window

    if args.trace in ("poisson", "gamma"):
        cv = 1.0
        if args.trace == "gamma":
            if args.burstiness is not None and args.cv is not None:
                raise ValueError("give --burstiness or --cv, not both")
            if args.burstiness is not None:
                if args.burstiness <= 0:
                    raise ValueError("--burstiness must be > 0")
                cv = args.burstiness ** -0.5
            elif args.cv is not None:
                cv = args.cv
            else:
                raise ValueError("--trace gamma needs --burstiness K or --cv C")
        count = args.num_prompts
        trace = synthetic_trace(args.request_rate, duration_s=None if count else args.duration,
                                count=count, cv=cv, prompt=parse_lengths(args.prompt_len),
                                output=parse_lengths(args.output_len), seed=args.seed)
    else:
        trace = load_trace(args.trace)
    if args.window:
        start, _, end = args.window.partition(":")
        try:
            trace = window(trace, float(start or 0), float(end) if end else None)
        except ValueError as err:
            raise ValueError(f"--window: {err}") from None
    return trace


def make_setup(args: argparse.Namespace):
    from sim.experiments import BenchSetup
    from sim.simulator import SimOptions
    from sim.workload import SimClass
    from solver.profile_set import resolve_profiles
    from solver.types import Cluster
    from traces.jobs import CanvasPolicy

    profiles = resolve_profiles(args.profiles)
    if args.cluster:
        cluster = Cluster.from_spec(args.cluster)
    else:
        if args.gpus < 1 or args.gpus % args.gpus_per_node and args.gpus > args.gpus_per_node:
            raise ValueError(f"--gpus {args.gpus}: must fill whole nodes of "
                             f"{args.gpus_per_node} (or be at most one node)")
        per = min(args.gpus, args.gpus_per_node)
        cluster = Cluster.from_spec(f"{args.gpus // per}x{per}:{profiles.hardware[0]}")
    block = profiles.reference_block
    if args.canvas == "known":
        canvas = CanvasPolicy(block_size=block)
    elif args.canvas.startswith("fixed:") and args.canvas[6:].isdigit():
        canvas = CanvasPolicy(block_size=block, fixed_default=int(args.canvas[6:]))
    else:
        raise ValueError(f"--canvas: expected known or fixed:N, got {args.canvas!r}")
    trace = load_base_trace(args)
    budget = getattr(args, "accuracy_budget", None)
    if budget is not None and not 0 <= budget <= 1:
        raise ValueError(f"--accuracy-budget: a fraction in [0, 1] (0.01 = 1 point), got {budget}")
    classes = tuple(SimClass(name, 1.0, args.max_accuracy_drop, None, args.target_attainment,
                             accuracy_budget=budget)
                    for name in trace.classes())
    options = SimOptions(seed=args.seed, progress=not args.no_progress and args.jobs <= 1)
    return BenchSetup(trace, classes, cluster, profiles, canvas, args.seed, args.scale_mode,
                      options=options)


def find_rate_for(setup, policy, target: float, slo_scale: float, log) -> float:
    """Bisection on the rate scale for `policy`'s attainment to come within 2 points of
    `target` (attainment falls as the rate grows)."""
    from sim.experiments import run_grid

    lo, hi, best = 0.25, 64.0, None
    for _ in range(12):
        mid = (lo * hi) ** 0.5
        att = run_grid(setup, [policy], [round(mid, 3)], [slo_scale])[0].summary.attainment
        log(f"  find: rate x{mid:.3f} -> {policy.name} {att:.1%}")
        best = round(mid, 3)
        if abs(att - target) <= 0.02:
            break
        lo, hi = (mid, hi) if att > target else (lo, mid)
    return best
