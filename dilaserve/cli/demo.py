"""`dilaserve demo`: the main job on the embedded default (CPU, the shipped model).

Decodes a few held-out prompts of every task and runs a short engine benchmark, all in this
process. (Once the cluster router lands, this becomes: serve + a client run with deadlines.)
"""

from __future__ import annotations

import argparse

from dilaserve.cli import bench_engine
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.step_types import DecodeSettings
from worker.measure.quality_eval import evaluate
from worker.models import tasks
from worker.models.shipped import load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="decode held-out prompts and benchmark the engine (local)",
                       description=__doc__)
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, tok, directory = load(args.model)
    if tok is None:
        raise ValueError("--model: the demo needs the task tokenizer (tokenizer.json)")
    print(f"model {model.config.name} ({model.config.num_parameters() / 1e6:.2f}M parameters) "
          f"from {directory}")
    examples = tasks.heldout_set(2)
    engine = DenoisingEngine(model, EngineConfig(max_rows=16))
    result = evaluate(engine, tok, examples, DecodeSettings(threshold=0.9, block_size=8), 32, 16)
    for i, ex in enumerate(examples):
        answer = result.answers[str(i)]
        mark = "ok " if answer == ex.answer else "BAD"
        prompt = ex.prompt if len(ex.prompt) < 48 else ex.prompt[:22] + "..." + ex.prompt[-22:]
        print(f"  [{mark}] {prompt:50s} -> {answer}")
    print()
    return bench_engine.run(argparse.Namespace(
        model=args.model, requests=16, canvas=32, block_size=8, batches="8,16", threads=1,
        json=None))
