"""`dilaserve bench-chaos`: faults and overload against the embedded cluster (loopback only),
every request's end accounted for; one table and a JSON file (docs/reliability.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from dilaserve.cli.serve import DEFAULT_POLICY

READY_S = 300.0
# fuzzed requests are sent open loop at this rate: well within what one Python client sends
# without queueing calls itself (the overload scenario sends more), so that the time between
# the client's clock and the router's is the servers' (docs/reliability.md)
FUZZ_RATE = 400.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-chaos", help="faults and overload on the embedded cluster",
                       description=__doc__)
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                   help="cluster policy (default: deploy/policies/default.yaml; a copy is served, "
                        "the bad-reload scenario edits the copy)")
    p.add_argument("--fuzz", type=int, default=10_000, help="fuzzed requests (default 10000)")
    p.add_argument("--fuzz-rate", type=float, default=FUZZ_RATE,
                   help=f"their Poisson rate, req/s (default {FUZZ_RATE:g}; at most 100 in "
                        f"flight)")
    p.add_argument("--overload", type=float, default=10.0,
                   help="overload as a multiple of the measured capacity (default 10)")
    p.add_argument("--overload-s", type=float, default=20.0, help="its duration (default 20 s)")
    p.add_argument("--overload-open", type=int, default=None,
                   help="calls the overload client holds open at once; an arrival past them "
                        "waits in the client (default: router.max_concurrent_calls, what the "
                        "router takes at once; 0: no limit)")
    p.add_argument("--abandon", type=int, default=1000,
                   help="streams opened and dropped by the client (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the table's rows here")
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace) -> int:
    from dilaserve.benches.chaos import ChaosRun
    from dilaserve.benches.chaos_report import summary_table
    from dilaserve.policy.cluster_loader import load_cluster_policy
    from orchestrator.runtime.cluster import start_cluster

    for name in ("fuzz", "abandon"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name}: must be >= 0")
    if args.overload <= 0 or args.overload_s <= 0:
        raise ValueError("--overload and --overload-s: must be > 0")
    if not args.fuzz_rate > 0:
        raise ValueError("--fuzz-rate: must be > 0")
    if args.overload_open is not None and args.overload_open < 0:
        raise ValueError("--overload-open: must be >= 0 (0: no limit)")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's workers are the service here
    workdir = Path(tempfile.mkdtemp(prefix="dilaserve-chaos-"))
    policy_path = workdir / "policy.yaml"
    shutil.copy(args.policy, policy_path)
    cluster_policy = load_cluster_policy(policy_path)
    open_calls = args.overload_open
    if open_calls is None:
        open_calls = cluster_policy.cluster.router_max_calls
    metrics_port = _free_port()  # the router's metrics: its decision times
    overrides = {"metrics_port": metrics_port, "router_port": 0}
    cluster_policy = dataclasses.replace(cluster_policy, cluster=dataclasses.replace(
        cluster_policy.cluster, **overrides))
    started = time.monotonic()
    handle = start_cluster(cluster_policy, None, str(policy_path), overrides=overrides)
    try:
        if not handle.wait_ready(READY_S):
            raise RuntimeError(f"the replicas did not become ready within {READY_S:g} s")
        log(f"bench-chaos: cluster ready in {time.monotonic() - started:.1f} s, router on "
            f"{handle.target}")
        chaos = ChaosRun(handle, policy_path, cluster_policy.policy, log,
                         f"http://127.0.0.1:{metrics_port}/metrics", args.seed)
        capacity, measured = chaos.capacity()
        scenarios = [measured]
        if args.fuzz:
            scenarios.append(chaos.fuzz(args.fuzz, rate=args.fuzz_rate))
        scenarios.append(chaos.overload(capacity, args.overload, args.overload_s,
                                        open_calls or None))
        scenarios.append(chaos.kill(capacity))
        handle.wait_ready(READY_S)  # the replacement replica serves before the next scenario
        scenarios.append(chaos.bad_reload(capacity))
        if args.abandon:
            scenarios.append(chaos.abandon(args.abandon))
    finally:
        handle.stop(2.0)
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [s.row() for s in scenarios]
    print(summary_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"capacity_req_s": capacity, "rows": rows}, indent=2))
    return 0
