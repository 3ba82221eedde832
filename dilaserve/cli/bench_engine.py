"""`dilaserve bench-engine`: LLaDA baseline vs Fast-dLLM vs dilaserve batching, side by side.

All configurations run the same engine code path on the same requests (the held-out prompts with the
longest prompts, of the tasks `--tasks` names), the same canvas and the same early-stop rule; only
the decoding settings and the batch size differ. Answer tokens exclude the trailing EOS. Fast-dLLM
runs twice at batch 1, with the dual cache and with none; its dual-cache steps give the time of a
reuse step (the block's rows against cached K/V) as a fraction of a refresh step's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

import torch

from dilaserve.cli.tables import write_json
from dilaserve.core.steps import DecodeSettings
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.runner import RunReport
from worker.measure.quality_eval import evaluate
from worker.models.shipped import load
from worker.models.task_suites import TaskSuite, suite_for
from worker.models.tasks import Example


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
    p.add_argument("--tasks", help="comma list of the model's tasks to take prompts from "
                   "(default all; 'long' for those whose answers span several blocks)")
    p.add_argument("--canvas", type=int,
                   help="answer canvas length (default: the largest the chosen tasks take)")
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
        Config(
            "(2n) fast-dllm tau0.9 no-cache b1",
            DecodeSettings(threshold=0.9, block_size=block, cache_mode="none"),
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


def chosen_tasks(suite: TaskSuite, spec: str | None) -> tuple[str, ...]:
    if not spec:
        return suite.tasks
    names = suite.long_tasks if spec == "long" else tuple(t for t in spec.split(",") if t)
    unknown = [t for t in names if t not in suite.tasks]
    if unknown or not names:
        long = f" (long: {', '.join(suite.long_tasks)})" if suite.long_tasks else ""
        raise ValueError(f"--tasks: {suite.model} has tasks {', '.join(suite.tasks)}{long}; "
                         f"got {spec!r}")
    return names


def longest_prompts(suite: TaskSuite, names: tuple[str, ...], count: int) -> list[Example]:
    """The longest prompts, the tasks taken in turn (each task's longest first), so tasks whose
    prompts are equally long (tiny-dlm-long's xor and sft) are all in the mix."""
    pool = suite.heldout_set(max(count, 64), tasks=names)
    ranked = {task: sorted((ex for ex in pool if ex.task == task),
                           key=lambda ex: (-len(ex.prompt), ex.prompt)) for task in names}
    turns = sorted((i, -len(ex.prompt), names.index(task), ex)
                   for task, group in ranked.items() for i, ex in enumerate(group))
    chosen = [ex for *_, ex in turns][:count]
    return sorted(chosen, key=lambda ex: (-len(ex.prompt), ex.prompt))


def step_times(report: RunReport) -> dict[str, float]:
    """Median times of a batch-1 run's refresh steps and reuse steps."""
    refresh = [s.elapsed_s for s in report.steps if s.features.refresh_tokens]
    reuse = [s.elapsed_s for s in report.steps
             if s.features.reuse_tokens and not s.features.refresh_tokens]
    if not refresh or not reuse:
        return {}
    times = {"refresh_step_ms": statistics.median(refresh) * 1e3,
             "reuse_step_ms": statistics.median(reuse) * 1e3}
    times["reuse_over_refresh"] = times["reuse_step_ms"] / times["refresh_step_ms"]
    return times


def run(args: argparse.Namespace) -> int:
    batches = [int(b) for b in args.batches.split(",") if b]
    if args.requests <= 0 or not batches or min(batches) <= 0:
        raise ValueError("--requests and --batches must be positive")
    if args.threads <= 0:
        raise ValueError("--threads must be positive")
    torch.set_num_threads(args.threads)
    model, tok, _ = load(args.model)
    if tok is None:
        raise ValueError("--model: the engine benchmark needs the task tokenizer (tokenizer.json)")
    suite = suite_for(model.config.name)
    names = chosen_tasks(suite, args.tasks)
    canvas = args.canvas or max(suite.canvas_of(t) for t in names)
    if canvas <= 0 or args.block_size <= 0:
        raise ValueError("--canvas and --block-size must be positive")
    if canvas % args.block_size:
        raise ValueError(f"--canvas {canvas} is not a multiple of --block-size {args.block_size}")
    examples = longest_prompts(suite, names, args.requests)
    prompt_lens = [len(ex.prompt) for ex in examples]
    engine = DenoisingEngine(model, EngineConfig(max_rows=max(batches)))
    evaluate(engine, tok, examples[:2], DecodeSettings(block_size=args.block_size), canvas, 2)
    rows = []
    reuse_vs_refresh: dict[str, float] = {}
    for cfg in configs(args.block_size, batches):
        print(f"[bench-engine] {cfg.name} ...", file=sys.stderr, flush=True)
        result = evaluate(
            engine, tok, examples, cfg.settings, canvas, cfg.batch_size, keep_steps=True
        )
        report = result.report
        if cfg.name.startswith("(2) "):
            reuse_vs_refresh = step_times(report)
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
    base, fast, uncached = (r["answer_tokens_per_s"] for r in rows[:3])
    ratios = {"(2)/(1)": fast / base, "(2)/(2n)": fast / uncached}
    ratios.update(
        {f"(3 b{r['batch_size']})/(2)": r["answer_tokens_per_s"] / fast for r in rows[3:]}
    )
    summary = {
        "model": model.config.name,
        "requests": len(examples),
        "tasks": list(names),
        "canvas": canvas,
        "block_size": args.block_size,
        "prompt_tokens": [min(prompt_lens), max(prompt_lens)],
        "threads": torch.get_num_threads(),
        "configs": rows,
        "ratios": ratios,
        "step_times_b1_dual": reuse_vs_refresh,
    }
    _print(summary)
    write_json(summary, args.json)
    return 0


def _print(summary: dict) -> None:
    print(
        f"model {summary['model']}, {summary['requests']} requests with the longest prompts of "
        f"{','.join(summary['tasks'])} "
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
    times = summary["step_times_b1_dual"]
    if times:
        print(f"(2) step time, median: refresh {times['refresh_step_ms']:.2f} ms, reuse "
              f"{times['reuse_step_ms']:.2f} ms ({times['reuse_over_refresh']:.0%} of a refresh)")
