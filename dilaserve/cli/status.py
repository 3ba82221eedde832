"""`dilaserve status`: the running cluster's plan, replicas, per-class attainment and the last
reconfigurations with their reasons (from the controller actor on the Ray cluster at
--address), or, with --target, what the router's Stats RPC reports."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the running cluster", description=__doc__)
    p.add_argument("--address", default="auto", help="Ray cluster (default: auto)")
    p.add_argument("--target", help="router HOST:PORT: ask its Stats RPC instead of the "
                                    "controller")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target:
        return _from_router(args)
    import ray

    from orchestrator.runtime.cluster import find_controller
    from orchestrator.runtime.ray_env import connect

    try:
        connect(args.address)
    except ConnectionError as err:
        raise ValueError(f"--address {args.address}: no Ray cluster there ({err}); is "
                         f"`dilaserve serve` running? (or pass --target ROUTER)") from None
    controller = find_controller()
    if controller is None:
        raise ValueError("no dilaserve controller is running on this Ray cluster")
    summary = ray.get(controller.summary.remote())
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def format_summary(s: dict) -> str:
    lines = [f"policy: {s['policy']}", f"cluster: {s['cluster']}", s["plan"] or "no plan yet",
             "replicas:"]
    router = {r.get("id"): r for r in s.get("router", {}).get("replicas", [])}
    for r in s["replicas"]:
        load = router.get(r["id"], {})
        extra = "".join(f" {k} {load[k]}" for k in ("queued", "running", "healthy") if k in load)
        lines.append(f"  #{r['id']} {r['config']} node {r['node']} {r['phase']} "
                     f"{r['target']}{extra}")
    classes = s.get("router", {}).get("classes", {})
    if classes:
        lines.append("attainment:")
        for name, c in sorted(classes.items()):
            lines.append(f"  {name}: {c}")
    mismatches = s.get("router", {}).get("prompt_token_mismatches", 0)
    if mismatches:
        lines.append(f"warning: {mismatches} final message(s) counted another prompt length than "
                     f"the router did: the router's tokenizer is not the replicas' (check "
                     f"cluster.model)")
    lines.append("last events:")
    lines.extend(f"  {line}" for line in s["log"][-12:])
    if s.get("error"):
        lines.append(f"controller error: {s['error']}")
    return "\n".join(lines)


def _from_router(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from worker.client.messages import WorkerError
    from worker.client.sync_client import WorkerClient

    try:
        with WorkerClient(args.target) as client:
            reply = client.stats(timeout=5.0)
    except WorkerError as err:
        raise ValueError(f"--target {args.target}: {err}") from None
    print(json_format.MessageToJson(reply) if args.json else str(reply))
    return 0
