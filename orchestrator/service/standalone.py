"""A router in front of a fixed list of workers, without Ray or a controller (benchmarks, manual
use): `python -m orchestrator.service.standalone --replica HOST:PORT [--replica ...]`.

Each worker is one ACTIVE replica (ids 0, 1, ... in order) with the policy's worker settings as
its configuration. Prints `dilaserve router: serving on HOST:PORT` when it listens (and, with
--http-port, where the OpenAI-compatible API is); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from dilaserve.core.locations import SHIPPED_MODEL_DIR
from dilaserve.policy import Policy, default_policy, load_policy
from dilaserve.policy.cluster import CPU_NODE_TYPE
from orchestrator.service.replica_pool import ReplicaEndpoint
from orchestrator.service.router_server import RouterServer
from orchestrator.types import ReplicaConfig, ReplicaState
from worker.models.tokenizer import load_tokenizer

READY_MARK = "dilaserve router: serving on "


def endpoints_for(targets: list[str], policy: Policy) -> list[ReplicaEndpoint]:
    w = policy.worker
    config = ReplicaConfig(CPU_NODE_TYPE, 1, w.block_size, w.threshold_range.min,
                           w.threshold_range.max)
    return [ReplicaEndpoint(i, t, config, 0, ReplicaState.ACTIVE) for i, t in enumerate(targets)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replica", action="append", required=True, help="a worker's host:port")
    parser.add_argument("--policy", type=Path, help="SLO policy YAML (default: the worker's)")
    parser.add_argument("--model", type=Path, help="model directory, for its tokenizer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stats-period-s", type=float, default=0.5)
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--http-port", type=int, help="the OpenAI-compatible HTTP API (0: any)")
    args = parser.parse_args(argv)
    policy = load_policy(args.policy) if args.policy else default_policy()
    server = RouterServer(policy, load_tokenizer(args.model or SHIPPED_MODEL_DIR),
                          host=args.host, port=args.port, stats_period_s=args.stats_period_s,
                          metrics_port=args.metrics_port, http_port=args.http_port)
    server.start()
    server.set_replicas(endpoints_for(args.replica, policy))
    print(f"{READY_MARK}{server.target}", flush=True)
    if server.http_url:
        print(f"dilaserve router: OpenAI-compatible HTTP API on {server.http_url}", flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    server.stop(grace_s=1.0)
    print("dilaserve router: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
