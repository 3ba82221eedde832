"""`dilaserve bench-router`: what the router costs. A null-engine worker (no model compute) serves
the same closed-loop load twice in one run: from the client directly, and through a router;
client, router and worker are separate processes on 127.0.0.1. Rounds alternate the two ways.

Three loads, each both ways: closed loop at --concurrency (throughput at saturation, where
latency is concurrency / throughput by Little's law), closed loop at concurrency 1 (the hop alone),
and open-loop Poisson arrivals at one fixed rate both ways carry (default: half the router's
warm-up throughput): latency under load without saturation. Goals: router throughput
>= 0.6x direct; <= 2 ms added p99.

By default the processes share every CPU, so on a small machine the router's work is taken from
the client's and the worker's. --pin puts the client and the worker on CPU 0 and the router on
CPU 1, both ways: the router then has a core of its own, as when it runs on its own host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from orchestrator.service.overhead import LoadResult, closed_loop, measured, open_loop, pooled
from orchestrator.service.standalone import READY_MARK
from worker.client.worker_process import ServerProcess, WorkerProcess

PROMPT = "sort:3141>"
KINDS = ("concurrent", "sequential", "open")
WARMUP = 300  # requests each way before measuring (fewer if --requests is smaller)
THROUGHPUT_GOAL = 0.6
ADDED_P99_GOAL_MS = 2.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-router", help="the router's overhead vs calling a worker directly",
                       description=__doc__)
    p.add_argument("--requests", type=int, default=2000, help="per way per round (default 2000)")
    p.add_argument("--concurrency", type=int, default=16, help="clients in flight (default 16)")
    p.add_argument("--latency-requests", type=int, default=500,
                   help="per way per round at concurrency 1 (default 500)")
    p.add_argument("--open-requests", type=int, default=1000,
                   help="per way per round, open loop (default 1000)")
    p.add_argument("--open-rate", type=float,
                   help="open-loop rate, req/s (default: half the router's warm-up throughput)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--max-new-tokens", type=int, default=32,
                   help="per request (default 32: one block, one Partial and the Final)")
    p.add_argument("--quick", action="store_true", help="300 requests, 100 at concurrency 1, "
                   "200 open loop, 1 round")
    p.add_argument("--pin", action="store_true",
                   help="client and worker on CPU 0, router on CPU 1 (Linux, >= 2 CPUs)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.requests, args.latency_requests, args.open_requests, args.rounds = 300, 100, 200, 1
    for name in ("requests", "concurrency", "latency_requests", "open_requests", "rounds",
                 "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be >= 1")
    if args.open_rate is not None and not args.open_rate > 0:
        raise ValueError("--open-rate: must be > 0")
    if args.pin and (not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2):
        raise ValueError("--pin: needs Linux and at least 2 CPUs")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dilaserve-bench-router-") as scratch:
        log = Path(scratch) / "processes.log"
        with WorkerProcess(["--engine", "null"], log) as worker, \
                router_process([worker.target], log) as router:
            if args.pin:
                for pid, cpu in ((os.getpid(), 0), (worker.pid, 0), (router.pid, 1)):
                    pin(pid, {cpu})
            targets = {"direct": worker.target, "router": router.target}
            pids = {"client": None, "router": router.pid, "worker": worker.pid}
            results = asyncio.run(_measure(args, targets, pids))
    report = {"command": _command(args), **vars_of(args), **results}
    report["open_rate"] = results["open_rate"]
    report["load_average"] = (load_before, os.getloadavg()[0])  # other work on the machine
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


async def _measure(args: argparse.Namespace, targets: dict[str, str],
                   pids: dict[str, int | None]) -> dict:
    load = {"prompt": PROMPT, "max_new_tokens": args.max_new_tokens, "deadline_ms": 10_000.0}
    warm = {}
    for way, target in targets.items():  # warm up: channels, caches, the step-cost model
        warm[way] = await closed_loop(target, min(WARMUP, args.requests), args.concurrency,
                                      **load)
    rate = args.open_rate or round(0.5 * warm["router"].throughput)
    runs: dict[str, dict[str, list[LoadResult]]] = {
        kind: {way: [] for way in targets} for kind in KINDS}
    for round_index in range(args.rounds):
        ways = list(targets) if round_index % 2 == 0 else list(reversed(targets))
        for way in ways:
            target = targets[way]
            runs["concurrent"][way].append(await measured(closed_loop(
                target, args.requests, args.concurrency, **load), pids))
            runs["sequential"][way].append(await measured(closed_loop(
                target, args.latency_requests, 1, **load), pids))
            runs["open"][way].append(await measured(open_loop(
                target, args.open_requests, rate, round_index, **load), pids))
    results: dict = {kind: {way: pooled(r) for way, r in by_way.items()}
                     for kind, by_way in runs.items()}
    results["open_rate"] = rate
    return results


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of the process onto these CPUs (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


def vars_of(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("requests", "concurrency", "latency_requests",
                                          "open_requests", "rounds", "max_new_tokens", "pin")}


def _command(args: argparse.Namespace) -> str:
    rate = f" --open-rate {args.open_rate:g}" if args.open_rate else ""
    return (f"dilaserve bench-router --requests {args.requests} --concurrency {args.concurrency}"
            f" --latency-requests {args.latency_requests} --open-requests {args.open_requests}"
            f"{rate} --rounds {args.rounds} --max-new-tokens {args.max_new_tokens}"
            f"{' --pin' if args.pin else ''}")


def format_report(r: dict) -> str:
    lines = [
        f"reproduce: {r['command']}",
        f"client -> worker (null engine) vs client -> router -> worker, separate processes on "
        f"127.0.0.1; {r['rounds']} alternating round(s); {r['max_new_tokens']} new tokens a "
        f"request; {os.cpu_count()} CPUs, "
        + ("client and worker pinned to CPU 0, router to CPU 1" if r["pin"]
           else "shared by all three processes"),
        "machine load average (1 min) before / after: {:.1f} / {:.1f} (other work competes for "
        "the same CPUs)".format(*r["load_average"]),
        "",
        f"{'way':8s} {'load':22s} {'requests':>8s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}"
        f" {'errors':>7s}   CPU ms per request: client / router / worker",
    ]
    label = _labels(r)
    for kind in KINDS:
        for way, p in r[kind].items():
            cpu = p["cpu_ms_per_request"]
            lines.append(f"{way:8s} {label[kind]:22s} {p['finished']:8d} {p['throughput']:9.1f}"
                         f" {p['p50_ms']:8.2f} {p['p99_ms']:8.2f} {sum(p['errors'].values()):7d}"
                         f"   {cpu['client']:.3f} / {cpu['router']:.3f} / {cpu['worker']:.3f}")
    lines += ["", "goals:"]
    lines += [f"  [{'met' if ok else 'NOT met'}] {text}" for text, ok in evaluate_goals(r)]
    return "\n".join(lines)


def evaluate_goals(r: dict) -> list[tuple[str, bool]]:
    c = r["concurrent"]
    ratio = c["router"]["throughput"] / c["direct"]["throughput"]
    goals = [(f"throughput through the router {ratio:.2f}x direct at {r['concurrency']} in "
              f"flight (goal >= {THROUGHPUT_GOAL})", ratio >= THROUGHPUT_GOAL)]
    labels = _labels(r)
    for kind in ("sequential", "open", "concurrent"):
        added = r[kind]["router"]["p99_ms"] - r[kind]["direct"]["p99_ms"]
        goals.append((f"added p99 at {labels[kind]}: {added:.2f} ms "
                      f"(goal <= {ADDED_P99_GOAL_MS:g} ms)", added <= ADDED_P99_GOAL_MS))
    errors = sum(sum(p["errors"].values()) for kind in KINDS for p in r[kind].values())
    goals.append((f"{errors} requests ended with an error (goal 0)", errors == 0))
    return goals


def _labels(r: dict) -> dict[str, str]:
    return {"concurrent": f"{r['concurrency']} in flight", "sequential": "1 in flight",
            "open": f"Poisson {r['open_rate']:g}/s"}


def router_process(replicas: list[str], log_path: Path) -> ServerProcess:
    """`python -m orchestrator.service.standalone` over these workers, in a subprocess."""
    command = [sys.executable, "-m", "orchestrator.service.standalone"]
    for target in replicas:
        command += ["--replica", target]
    return ServerProcess(command, READY_MARK, lambda line: line.split(READY_MARK, 1)[1].strip(),
                         log_path, "router")
