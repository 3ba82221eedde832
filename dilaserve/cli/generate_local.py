"""`dilaserve generate`: decode one prompt with the engine in this process."""

from __future__ import annotations

import argparse
import time

from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.runner import run_to_completion
from worker.engine.step_types import CACHE_MODES, COMMIT_RULES, AdmitRow, DecodeSettings
from worker.models.shipped import load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="decode a prompt locally with the engine", description=__doc__
    )
    p.add_argument("prompt", nargs="+", help="prompt text (several prompts decode as one batch)")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer canvas length")
    p.add_argument("--block-size", type=int, default=8)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--rule", default="threshold", choices=COMMIT_RULES)
    p.add_argument("--cache-mode", default="dual", choices=CACHE_MODES)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_new_tokens <= 0:
        raise ValueError("--max-new-tokens must be positive")
    if args.block_size <= 0:
        raise ValueError("--block-size must be positive")
    model, tok, _ = load(args.model)
    if tok is None:
        raise ValueError("--model: this model has no tokenizer.json; send token ids to a worker")
    canvas = -(-args.max_new_tokens // args.block_size) * args.block_size
    settings = DecodeSettings(
        threshold=args.threshold,
        block_size=args.block_size,
        rule=args.rule,
        cache_mode=args.cache_mode,
    )
    requests = []
    for i, text in enumerate(args.prompt):
        if not text:
            raise ValueError(f"prompt {i + 1}: empty")
        requests.append(AdmitRow(str(i), tuple(tok.encode(text)), canvas, settings))
    engine = DenoisingEngine(model, EngineConfig(max_rows=max(1, len(requests))))
    started = time.perf_counter()
    report = run_to_completion(engine, requests, batch_size=len(requests))
    elapsed = time.perf_counter() - started
    for i, text in enumerate(args.prompt):
        done = report.completions[str(i)]
        print(
            f"{text} -> {tok.decode(done.output_ids)}   "
            f"[{done.forwards} forwards, {done.refreshes} refreshes, {done.finish_reason.value}]"
        )
    print(f"{len(requests)} prompt(s) in {elapsed * 1000:.0f} ms")
    return 0
