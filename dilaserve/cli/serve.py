"""`dilaserve serve`: run the cluster (controller, replicas in placement groups, the router).

With no --address it starts a local Ray on 127.0.0.1: the embedded default, CPU replicas of the
shipped model. With an address (`auto` on a `ray up` head node, or HOST:PORT) it joins that
cluster and starts the controller there, detached, so that it outlives this command's driver
unless stopped (Ctrl-C here stops it).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from dilaserve.policy.cluster import DEVICES, DTYPES

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the cluster: controller, replicas and the router",
                       description=__doc__)
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                   help="cluster SLO policy YAML (default: deploy/policies/default.yaml); "
                        "edits are picked up while serving (hot reload)")
    p.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: start a "
                                     "local Ray on 127.0.0.1)")
    p.add_argument("--port", type=int, help="router port (default: the policy's router.port)")
    p.add_argument("--http-port", type=int,
                   help="also serve the OpenAI-compatible HTTP API on this port (0: any free "
                        "port; default: the policy's router.http_port, off when null; "
                        "docs/http.md)")
    p.add_argument("--model", help="model directory as every node sees it, with its profiles in "
                                   "MODEL/profiles (default: the policy's cluster.model, else "
                                   "the shipped model)")
    p.add_argument("--device", choices=DEVICES,
                   help="replicas' device (default: the policy's cluster.device; auto: cuda on "
                        "GPU nodes, cpu elsewhere)")
    p.add_argument("--dtype", choices=DTYPES,
                   help="replicas' dtype (default: the policy's cluster.dtype; auto: on cuda the "
                        "checkpoint's torch_dtype, else bfloat16; on cpu float32)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run "
                                                  "until Ctrl-C)")
    p.add_argument("--ready-timeout", type=float, default=300.0,
                   help="seconds to wait for the first replicas to serve (default 300)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from dilaserve.cli.preflight import check_ports_free, check_ray_address, one_line
    from dilaserve.policy.cluster_loader import load_cluster_policy
    from orchestrator.runtime.cluster import start_cluster
    from orchestrator.runtime.controller_actor import secured

    if args.duration is not None and args.duration <= 0:
        raise ValueError("--duration: must be > 0")
    if args.port is not None and not 0 <= args.port < 65536:
        raise ValueError(f"--port: must be in [0, 65535], got {args.port}")
    if args.http_port is not None and not 0 <= args.http_port < 65536:
        raise ValueError(f"--http-port: must be in [0, 65535], got {args.http_port}")
    cluster_policy = load_cluster_policy(args.policy)
    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["router_port"] = args.port
    if args.http_port is not None:
        overrides["router_http_port"] = args.http_port
    if args.model is not None:
        if not (Path(args.model) / "config.json").is_file():
            raise ValueError(f"--model: {args.model} is not a model directory (no config.json)")
        overrides["model"] = str(Path(args.model).resolve())
    for name in ("device", "dtype"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    cluster_policy = dataclasses.replace(cluster_policy, cluster=dataclasses.replace(
        cluster_policy.cluster, **overrides))
    check_ports_free(cluster_policy.cluster, {"router_port": "--port",
                                              "router_http_port": "--http-port"})
    check_ray_address(args.address)
    where = args.address or "a local Ray on 127.0.0.1 (embedded default)"
    print(f"dilaserve serve: starting on {where} with {args.policy}", file=sys.stderr, flush=True)
    try:
        handle = start_cluster(cluster_policy, args.address, str(args.policy),
                               overrides=overrides)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # a Ray task error around the actor's: its cause, in one line
        raise ValueError(f"the cluster did not start: {one_line(err)}") from None
    if handle.attached:
        print("dilaserve serve: a controller was already running on this cluster; serving "
              "with it (its policy file stays the one it watches)", file=sys.stderr, flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        ready = handle.wait_ready(args.ready_timeout)
        print(f"dilaserve serve: router listening on {handle.target}"
              f"{secured(cluster_policy.cluster)}"
              f"{'' if ready else ' (replicas still loading)'}", flush=True)
        if handle.http_url:
            print(f"dilaserve serve: OpenAI-compatible HTTP API on {handle.http_url}",
                  flush=True)
        end = time.monotonic() + args.duration if args.duration else None
        seen = 0
        while not stopping.wait(1.0):
            # what the controller does, as it happens: plans, replicas, policy reloads (applied,
            # needing a restart, or rejected with the file, line and field)
            seen, lines = handle.events(seen)
            for line in lines:
                print(f"dilaserve serve: {line}", file=sys.stderr, flush=True)
            if end is not None and time.monotonic() >= end:
                break
    finally:
        print("dilaserve serve: stopping (in-flight requests get 5 s)", file=sys.stderr,
              flush=True)
        handle.stop(5.0)
    print("dilaserve serve: stopped", file=sys.stderr, flush=True)
    return 0
