"""`dilaserve demo`: the main job on the embedded default.

Starts `dilaserve serve` in this process on a local Ray (CPU replicas of the shipped model,
deploy/policies/default.yaml), sends a short open-loop client workload through the router
(Poisson arrivals of held-out task prompts, each with its class's SLO deadline), prints SLO
attainment, latency, accuracy and a few answers, shows the cluster's status, and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

from dilaserve.cli.serve import DEFAULT_POLICY


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve on the embedded default and run a client workload",
                       description=__doc__)
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                   help="cluster policy (default: deploy/policies/default.yaml)")
    p.add_argument("--rate", type=float, default=6.0, help="requests per second (default 6)")
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds of arrivals (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, help="router port (default: the policy's; 0: any free)")
    p.set_defaults(func=run)


def make_jobs(rate: float, duration: float, seed: int):
    """Held-out prompts of the shipped model's tasks, each with its task's canvas."""
    from worker.client.loadgen import Job, arrival_times
    from worker.models.task_suites import suite_of

    suite = suite_of()
    rng = random.Random(seed)
    count = max(1, int(rate * duration))
    examples = suite.heldout_set(max(1, count // len(suite.tasks) + 1), seed=1234 + seed)
    rng.shuffle(examples)
    times = arrival_times(rate, count, "poisson", rng)
    return [Job(t, ex.task, ex.prompt, ex.answer, None, suite.canvas_of(ex.task))
            for t, ex in zip(times, examples)]


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from dilaserve.cli.preflight import check_ports_free
    from dilaserve.cli.status import format_summary
    from dilaserve.policy.cluster_loader import load_cluster_policy
    from orchestrator.runtime.cluster import start_cluster
    from worker.client.loadgen import replay

    if args.rate <= 0 or args.duration <= 0:
        raise ValueError("--rate and --duration: must be > 0")
    if args.port is not None and not 0 <= args.port < 65536:
        raise ValueError(f"--port: must be in [0, 65535], got {args.port}")
    cluster_policy = load_cluster_policy(args.policy)
    overrides = {"router_port": args.port} if args.port is not None else {}
    cluster_policy = dataclasses.replace(cluster_policy, cluster=dataclasses.replace(
        cluster_policy.cluster, **overrides))
    check_ports_free(cluster_policy.cluster, {"router_port": "--port"})
    policy = cluster_policy.policy
    print(f"dilaserve demo: starting the embedded cluster ({args.policy})", flush=True)
    t0 = time.monotonic()
    handle = start_cluster(cluster_policy, None, str(args.policy), overrides=overrides)
    try:
        if not handle.wait_ready(300):
            raise RuntimeError("the replicas did not become ready within 300 s; "
                               f"status:\n{format_summary(handle.summary())}")
        summary = handle.summary()
        print(f"router on {handle.target}; {len(summary['replicas'])} replicas ready in "
              f"{time.monotonic() - t0:.1f} s\n{summary['plan']}\n", flush=True)
        jobs = make_jobs(args.rate, args.duration, args.seed)
        klass = policy.slo_class("")
        canvases = sorted({job.max_new_tokens for job in jobs})
        deadlines = ", ".join(f"{klass.deadline_s(c) * 1e3:.0f} ms at {c}" for c in canvases)
        print(f"client: {len(jobs)} requests, Poisson {args.rate:g} req/s for "
              f"{args.duration:g} s, class {klass.name!r} (deadline {deadlines} new tokens)",
              flush=True)
        outcomes = asyncio.run(replay(handle.target, jobs, None))
        report(outcomes, args.rate)
        print("\ncluster status:\n" + format_summary(handle.summary()))
    finally:
        print("\ndilaserve demo: stopping the cluster", flush=True)
        handle.stop(5.0)
    return 0


def report(outcomes, rate: float) -> None:
    from worker.client.bench_metrics import summarize

    s = summarize(rate, outcomes)
    restarts = sum(o.restarts for o in outcomes)
    print(f"SLO attainment {s.attainment:.1%} ({s.requests} requests: "
          f"{sum(o.status == 'met' for o in outcomes)} met, {s.late} late or expired, "
          f"{s.rejected} shed/rejected, {s.errors} other errors, {restarts} restarts)")
    print(f"latency P50 {s.p50_ms:.0f} ms, P99 {s.p99_ms:.0f} ms; exact-match accuracy "
          f"{s.accuracy:.1%} " + " ".join(f"{t} {a:.0%}" for t, a in s.per_task.items()) +
          f"; mean threshold {s.mean_threshold:.2f}")
    shown: dict[str, int] = {}  # a few answers of every task
    for o in outcomes:
        if o.finished and shown.get(o.task, 0) < 2:
            prompt = o.prompt if len(o.prompt) < 44 else o.prompt[:20] + "..." + o.prompt[-20:]
            text = o.text if len(o.text) < 44 else o.text[:20] + "..." + o.text[-20:]
            print(f"  [{'ok ' if o.correct else 'BAD'}] {prompt:46s} -> {text}  "
                  f"({o.e2e_ms:.0f} ms, {o.status})")
            shown[o.task] = shown.get(o.task, 0) + 1
    if s.errors:
        print(f"dilaserve demo: {s.errors} requests ended with an unexpected error",
              file=sys.stderr)
