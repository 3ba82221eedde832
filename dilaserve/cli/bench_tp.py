"""`dilaserve bench-tp`: step time at TP=1 vs TP=N on this machine, side by side, and the
modelled TP step times the solver uses for GPUs (docs/parallel.md)."""

from __future__ import annotations

import argparse
import sys

import torch

from dilaserve.cli.tables import write_json
from worker.models.shipped import load
from worker.parallel.bench import TpBenchConfig, measure_allreduce, modelled_gpu_steps, run_bench


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-tp", help="step time: TP=1 vs TP=N (CPU, gloo), measured", description=__doc__
    )
    defaults = TpBenchConfig()
    p.add_argument("--tp", type=int, default=defaults.tp, help="ranks of the TP replica")
    p.add_argument("--requests", type=int, default=defaults.requests)
    p.add_argument("--batch", type=int, default=defaults.batch, help="rows decoded together")
    p.add_argument("--canvas", type=int, default=defaults.canvas)
    p.add_argument("--block-size", type=int, default=defaults.block_size)
    p.add_argument("--topk", type=int, default=defaults.topk, help="tokens committed per step")
    p.add_argument("--cache-mode", default=defaults.cache_mode, choices=("none", "prefix", "dual"))
    p.add_argument("--repeats", type=int, default=defaults.repeats, help="rounds; median kept")
    p.add_argument("--json", help="write results as JSON to this file ('-' for stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = TpBenchConfig(
        args.tp, args.requests, args.batch, args.canvas, args.block_size, args.topk,
        args.cache_mode, args.repeats,
    )
    torch.set_num_threads(1)
    print(f"[bench-tp] {cfg.repeats} rounds of 3 configurations ...", file=sys.stderr, flush=True)
    summary = run_bench(cfg)
    cfg_model = load()[0].config
    summary["layers"] = cfg_model.num_layers
    summary["allreduce_us"] = measure_allreduce(cfg.tp, cfg_model.hidden_size)
    summary["modelled_gpu"] = modelled_gpu_steps()
    _print(summary)
    write_json(summary, args.json)
    return 0


def _print(summary: dict) -> None:
    c = summary["config"]
    print(
        f"measured: model {summary['model']}, {c['requests']} requests (longest held-out "
        f"prompts), batch {c['batch']}, canvas {c['canvas']}, block {c['block_size']}, "
        f"top-{c['topk']} a step, {c['cache_mode']} cache; median of {c['repeats']} rounds"
    )
    print(
        f"{'configuration':28s} {'step s':>8s} {'steps':>6s} {'med ms':>7s} {'reuse ms':>9s} "
        f"{'refresh ms':>10s} {'speedup':>8s} {'same out':>8s}"
    )
    for r in summary["rows"]:
        print(
            f"{r['name']:28s} {r['step_s']:8.3f} {r['steps']:6d} {r['median_step_ms']:7.2f} "
            f"{r['median_reuse_step_ms']:9.2f} {r['median_refresh_step_ms']:10.2f} "
            f"{summary['speedup_vs_tp1_1thread'][r['name']]:7.2f}x "
            f"{'yes' if r['same_outputs_as_tp1'] else 'NO':>8s}"
        )
    print(
        f"gloo all-reduce between {c['tp']} local processes, [tokens, hidden] float32, us each: "
        + ", ".join(f"{k} {v:.0f}" for k, v in summary["allreduce_us"].items())
        + f"; a TP forward makes 2 x {summary['layers']} of them, plus one broadcast of the "
        "chosen tokens per phase group and rank 0's step command (two gloo broadcasts)"
    )
    m = summary["modelled_gpu"]
    print(f"\nmodelled (not measured), the solver's GPU TP profiles: {m['profile']}")
    print(f"  {m['model']}")
    degrees = list(next(iter(m["steps"].values())))
    print(f"  {'step':22s} " + " ".join(f"{d + ' ms (comm)':>18s}" for d in degrees))
    for name, row in m["steps"].items():
        cells = [f"{v['step_ms']:8.2f} ({v['allreduce_ms']:6.2f})" for v in row.values()]
        print(f"  {name:22s} " + " ".join(f"{cell:>18s}" for cell in cells))
