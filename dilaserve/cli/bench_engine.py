"""`dilaserve bench-engine`: LLaDA baseline vs Fast-dLLM vs dilaserve batching, side by side.

All configurations run the same engine code path on the same requests (the held-out prompts with the
longest prompts), the same canvas and the same early-stop rule; only the decoding settings and the
batch size differ. Answer tokens exclude the trailing EOS.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from dilaserve.core.steps import DecodeSettings
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.measure.quality_eval import evaluate
from worker.models import tasks
from worker.models.shipped import load


@dataclass(frozen=True)
class Config:
    name: str
    settings: DecodeSettings
    batch_size: int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-engine",
        help="engine throughput: baseline vs Fast-dLLM vs batched",
        description=__doc__,
    )
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--requests", type=int, default=64, help="number of requests (longest prompts)")
    p.add_argument("--canvas", type=int, default=32, help="answer canvas length")
    p.add_argument("--block-size", type=int, default=8)
    p.add_argument("--batches", default="8,16", help="batch sizes for the batched configurations")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1; two threads stall badly when another "
                        "process holds a core of a 2-core machine)")
    p.add_argument("--json", help="write results as JSON to this file ('-' for stdout)")
    p.set_defaults(func=run)


def configs(block: int, batches: list[int]) -> list[Config]:
    out = [
        Config(
            "(1) llada-baseline topk1 no-cache b1",
            DecodeSettings(block_size=block, rule="topk", rule_param=1, cache_mode="none"),
            1,
        ),
        Config(
            "(2) fast-dllm tau0.9 dual-cache b1",
            DecodeSettings(threshold=0.9, block_size=block, cache_mode="dual"),
            1,
        ),
    ]
    for b in batches:
        out.append(
            Config(
                f"(3) dilaserve tau0.9 dual-cache b{b}",
                DecodeSettings(threshold=0.9, block_size=block, cache_mode="dual"),
                b,
            )
        )
    return out


def longest_prompts(count: int) -> list[tasks.Example]:
    pool = tasks.heldout_set(max(count, 64))
    return sorted(pool, key=lambda ex: (-len(ex.prompt), ex.prompt))[:count]


def run(args: argparse.Namespace) -> int:
    batches = [int(b) for b in args.batches.split(",") if b]
    if args.requests <= 0 or not batches or min(batches) <= 0:
        raise ValueError("--requests and --batches must be positive")
    if args.threads <= 0:
        raise ValueError("--threads must be positive")
    torch.set_num_threads(args.threads)
    if args.canvas % args.block_size:
        raise ValueError(
            f"--canvas {args.canvas} is not a multiple of --block-size {args.block_size}"
        )
    model, tok, _ = load(args.model)
    if tok is None:
        raise ValueError("--model: the engine benchmark needs the task tokenizer (tokenizer.json)")
    examples = longest_prompts(args.requests)
    prompt_lens = [len(ex.prompt) for ex in examples]
    engine = DenoisingEngine(model, EngineConfig(max_rows=max(batches)))
    evaluate(engine, tok, examples[:2], DecodeSettings(block_size=args.block_size), args.canvas, 2)
    rows = []
    for cfg in configs(args.block_size, batches):
        print(f"[bench-engine] {cfg.name} ...", file=sys.stderr, flush=True)
        result = evaluate(
            engine, tok, examples, cfg.settings, args.canvas, cfg.batch_size, keep_steps=True
        )
        report = result.report
        answer_tokens = sum(len(c.output_ids) for c in report.completions.values())
        row_forwards = sum(c.forwards for c in report.completions.values())
        rows.append(
            {
                "name": cfg.name,
                "batch_size": cfg.batch_size,
                "rule": cfg.settings.rule,
                "threshold": cfg.settings.threshold,
                "cache_mode": cfg.settings.cache_mode,
                "wall_s": report.wall_s,
                "answer_tokens": answer_tokens,
                "answer_tokens_per_s": answer_tokens / report.wall_s,
                "row_forwards_per_answer_token": row_forwards / answer_tokens,
                "model_forwards_per_answer_token": sum(s.features.forwards for s in report.steps)
                / answer_tokens,
                "accuracy": result.point.accuracy,
            }
        )
    base, fast = rows[0]["answer_tokens_per_s"], rows[1]["answer_tokens_per_s"]
    ratios = {"(2)/(1)": fast / base}
    ratios.update(
        {f"(3 b{r['batch_size']})/(2)": r["answer_tokens_per_s"] / fast for r in rows[2:]}
    )
    summary = {
        "model": model.config.name,
        "requests": len(examples),
        "canvas": args.canvas,
        "block_size": args.block_size,
        "prompt_tokens": [min(prompt_lens), max(prompt_lens)],
        "threads": torch.get_num_threads(),
        "configs": rows,
        "ratios": ratios,
    }
    _print(summary)
    if args.json:
        text = json.dumps(summary, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


def _print(summary: dict) -> None:
    print(
        f"model {summary['model']}, {summary['requests']} requests with the longest prompts "
        f"({summary['prompt_tokens'][0]}-{summary['prompt_tokens'][1]} tokens), canvas "
        f"{summary['canvas']}, block {summary['block_size']}, {summary['threads']} threads"
    )
    print(
        f"{'configuration':40s} {'ans tok/s':>10s} {'fwd/tok':>8s} {'accuracy':>9s} {'wall s':>7s}"
    )
    for r in summary["configs"]:
        print(
            f"{r['name']:40s} {r['answer_tokens_per_s']:10.1f} "
            f"{r['row_forwards_per_answer_token']:8.2f} {r['accuracy']:9.1%} {r['wall_s']:7.2f}"
        )
    for name, value in summary["ratios"].items():
        print(f"ratio {name}: {value:.2f}x")
