"""`dilaserve status`: the running cluster's plan, replicas, per-class attainment and the last
reconfigurations with their reasons (from the controller actor on the Ray cluster at
--address), or, with --target, what the router's Stats RPC reports."""

from __future__ import annotations

import argparse
import json

from dilaserve.cli.client_args import add_client_arguments, client_options
from dilaserve.cli.tables import CLASS_HEADER, class_rows, num, pct, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the running cluster", description=__doc__)
    p.add_argument("--address", default="auto", help="Ray cluster (default: auto)")
    p.add_argument("--target", help="router HOST:PORT: ask its Stats RPC instead of the "
                                    "controller")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(p)  # with --target
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
    """The controller's summary as tables."""
    lines = [f"policy: {s['policy']}", f"cluster: {s['cluster']}", s["plan"] or "no plan yet"]
    router = s.get("router", {})
    polled = {r.get("id"): r for r in router.get("replicas", [])}
    rows = []
    for r in s["replicas"]:
        load = polled.get(r["id"], {})
        rows.append([f"#{r['id']}", r["config"], str(r["node"]), r["phase"], r["target"] or "-",
                     num(load.get("queued")), num(load.get("running")),
                     num(load.get("healthy")) if "healthy" in load else "-",
                     _factor(load.get("machine_scale"))])
    lines += ["replicas:", *table(("id", "layout", "node", "phase", "target", "queued", "running",
                      "healthy", "x profile"), rows)]
    scales = s.get("machine_scales") or {}
    if scales:
        lines.append("planner's step-cost profiles scaled: "
                     + ", ".join(f"{hw} {_factor(f)}" for hw, f in sorted(scales.items())))
    classes = router.get("classes", {})
    if classes:
        lines += ["attainment (the router's count):", *table(CLASS_HEADER, class_rows(classes))]
    mismatches = router.get("prompt_token_mismatches", 0)
    if mismatches:
        lines.append(f"warning: {mismatches} final message(s) counted another prompt length than "
                     f"the router did: the router's tokenizer is not the replicas' (check "
                     f"cluster.model)")
    lines.append("last events:")
    lines.extend(f"  {line}" for line in s["log"][-12:])
    if s.get("error"):
        lines.append(f"controller error: {s['error']}")
    return "\n".join(lines)


def format_stats(r) -> str:
    """A worker's or the router's StatsReply (`--target`) as tables."""
    at_router = len(r.replicas) > 0
    lines = [
        f"{'router' if at_router else 'worker'}: model {r.model or '-'}, up {num(r.uptime_s)} s; "
        f"queued {num(r.queued)}, running {num(r.running)} of {num(r.max_rows)} rows"
        f"{', draining' if r.draining else ''}",
        f"threshold range {num(r.min_threshold, 2)}-{num(r.max_threshold, 2)}; attainment "
        f"{pct(r.attainment)} (met / finished + expired + refused)",
        f"requests: {num(r.accepted)} accepted, {num(r.finished)} finished "
        f"({num(r.deadline_met)} met), {num(r.rejected)} rejected, {num(r.expired)} expired, "
        f"{num(r.cancelled)} cancelled, {num(r.failed)} failed"
        + (f", {num(r.shed)} shed, {num(r.restarts)} restarted" if at_router else ""),
    ]
    if not at_router:
        lines.append(f"steps: {num(r.steps)}, median {num(r.median_step_ms, 2)} ms; step-cost "
                     f"model error {pct(r.step_cost_error)} over {num(r.step_cost_samples)} "
                     f"steps (the profile's own {pct(r.step_cost_prior_error)})")
        lines.append(f"machine: steps {_factor(r.machine_scale_measured)} the step-cost "
                     f"profile measured, the profile scaled by {_factor(r.machine_scale)}")
    if r.HasField("limits"):
        m = r.limits
        lines.append(f"limits: max_new_tokens <= {num(m.max_new_tokens)}, prompt + canvas <= "
                     f"{num(m.context_tokens)} tokens, block <= {num(m.max_block_size)}")
    classes = {c.name: {"ended": c.ended, "met": c.met, "attainment": c.attainment,
                        "target_attainment": c.target_attainment} for c in r.classes}
    if classes:
        lines += ["classes:", *table(("class", "ended", "met", "attain", "target"),
                                     [row[:1] + row[2:6] for row in class_rows(classes)])]
    if at_router:
        rows = [[str(x.id), x.target, x.state, f"TP{x.tp}", str(x.block_size),
                 f"{num(x.min_threshold, 2)}-{num(x.max_threshold, 2)}", num(x.queued),
                 num(x.running), num(x.in_flight), num(x.load, 2), num(x.healthy),
                 pct(x.attainment), _factor(x.machine_scale)] for x in r.replicas]
        lines += ["replicas:", *table(("id", "target", "state", "tp", "block", "thresholds",
                                       "queued", "running", "in flight", "load", "healthy",
                                       "attain", "x profile"), rows)]
        lines += [f"  #{x.id}: {x.error}" for x in r.replicas if x.error]
    return "\n".join(lines)


def _factor(value: float | None) -> str:
    return "-" if value is None or not value > 0 else f"x{num(value, 2)}"


def _from_router(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from worker.client.messages import WorkerError
    from worker.client.sync_client import WorkerClient

    try:
        with WorkerClient(args.target, **client_options(args)) as client:
            reply = client.stats(timeout=5.0)
    except WorkerError as err:
        raise ValueError(f"--target {args.target}: {err}") from None
    print(json_format.MessageToJson(reply) if args.json else format_stats(reply))
    return 0
