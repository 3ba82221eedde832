"""`dilaserve worker`: serve one model replica over gRPC with deadline-aware scheduling."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from dilaserve.cli.device_args import add_device_arguments, device_choice
from dilaserve.policy import Policy, default_policy, load_policy
from worker.engine.null_engine import NullEngine
from worker.scheduler import LOAD_CONTROLS, ORDERINGS
from worker.service.metrics import serve_metrics
from worker.service.server import serve
from worker.service.setup import load_worker


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="serve a model replica over gRPC", description=__doc__)
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--policy", type=Path, help="SLO policy YAML (default: one best-effort class)")
    p.add_argument("--profiles", type=Path, help="profile directory (default: MODEL/profiles)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="port (0: any free one)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics (dilaserve_worker_*) at http://HOST:PORT/metrics on the "
        "same host (default 0: off)",
    )
    p.add_argument(
        "--engine",
        choices=("model", "null"),
        default="model",
        help="model (default): decode with the model; null: a benchmarking engine that does no "
        "model compute (fills each block with one token at once) to measure the serving path",
    )
    p.add_argument("--ordering", choices=ORDERINGS, help="override the policy's ordering")
    p.add_argument("--load-control", choices=LOAD_CONTROLS, help="override the policy's")
    p.add_argument("--admission", choices=("on", "off"), help="override admission control")
    p.add_argument(
        "--grace-s", type=float, default=10.0, help="shutdown: time to finish requests in flight"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1, as `dilaserve profile` measures: one core per replica)",
    )
    p.add_argument(
        "--tp",
        type=int,
        default=1,
        help="tensor-parallel degree (default 1): rank 0 serves here, ranks 1..N-1 run in spawned "
        "processes, each with --threads torch threads (docs/parallel.md)",
    )
    add_device_arguments(p)
    p.add_argument(
        "--gil-switch-ms",
        type=float,
        default=0.2,
        help="Python's GIL switch interval (default 0.2 ms; Python's own is 5 ms). The loop "
        "thread retakes the GIL after every torch op; a long interval lets the gRPC thread keep "
        "it for that long each time, which stretches steps unpredictably under load",
    )
    p.set_defaults(func=run)


def with_overrides(policy: Policy, args: argparse.Namespace) -> Policy:
    changes = {}
    if args.ordering:
        changes["ordering"] = args.ordering
    if args.load_control:
        changes["load_control"] = args.load_control
    if args.admission:
        changes["admission"] = args.admission == "on"
    if not changes:
        return policy
    scheduler = dataclasses.replace(policy.worker.scheduler, **changes)
    return dataclasses.replace(
        policy, worker=dataclasses.replace(policy.worker, scheduler=scheduler)
    )


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise ValueError(f"--port: must be in [0, 65535], got {args.port}")
    if not 0 <= args.metrics_port < 65536 or (args.metrics_port and args.metrics_port == args.port):
        raise ValueError(
            f"--metrics-port: must be in [0, 65535] and not --port, got {args.metrics_port}"
        )
    if args.grace_s < 0:
        raise ValueError("--grace-s: must be >= 0")
    if args.threads <= 0:
        raise ValueError("--threads: must be positive")
    if args.gil_switch_ms <= 0:
        raise ValueError("--gil-switch-ms: must be positive")
    sys.setswitchinterval(args.gil_switch_ms / 1e3)
    import torch

    torch.set_num_threads(args.threads)
    policy = load_policy(args.policy) if args.policy else default_policy()
    choice = device_choice(args)
    replica = _start_tp(args, with_overrides(policy, args), choice) if args.tp != 1 else None
    if replica is not None:
        worker = replica.worker
    else:
        # the null engine does no model compute: the profile describes no step of it
        engine = ({"engine_class": NullEngine, "calibrate": False} if args.engine == "null"
                  else {})
        worker = load_worker(args.model, with_overrides(policy, args), args.profiles,
                             device=choice.device, dtype=choice.dtype, **engine)
    sched = worker.policy.worker.scheduler
    metrics = None
    if args.metrics_port:
        try:
            metrics = serve_metrics(worker, args.host, args.metrics_port)
        except OSError as err:
            raise ValueError(
                f"--metrics-port: cannot listen on {args.host}:{args.metrics_port}: "
                f"{err.strerror or err}"
            ) from None

    def ready(port: int) -> None:
        print(
            f"dilaserve worker: serving {worker.model_name} on {args.host}:{port} "
            f"({choice.device} {choice.dtype}, ordering {sched.ordering}, "
            f"load control {sched.load_control}, "
            f"admission {'on' if sched.admission else 'off'}"
            f"{', null engine: no model compute' if args.engine == 'null' else ''})",
            flush=True,
        )
        if metrics is not None:
            print(
                f"dilaserve worker: metrics on http://{args.host}:{metrics.port}/metrics",
                flush=True,
            )

    try:
        asyncio.run(serve(worker, args.host, args.port, args.grace_s, on_ready=ready))
    finally:
        if metrics is not None:
            metrics.stop()
    if replica is not None:
        replica.close()  # Stop to the followers; an error above leaves them to die with us
    print("dilaserve worker: stopped", file=sys.stderr, flush=True)
    return 0


def _start_tp(args: argparse.Namespace, policy: Policy, choice):
    if args.tp < 1:
        raise ValueError(f"--tp: must be >= 1, got {args.tp}")
    if args.engine == "null":
        raise ValueError("--tp: the null engine has no model to split")
    from worker.parallel.local import LocalRanks, start_local_tp_worker

    ranks = LocalRanks(device=choice.device, dtype=choice.dtype, threads=args.threads)
    return start_local_tp_worker(args.model, policy, args.tp, args.profiles, ranks)
