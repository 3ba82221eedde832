"""`dilaserve tiny-checkpoint DIR`: write a tiny random checkpoint in LLaDA-8B-Instruct's Hugging
Face layout (config.json keys, sharded safetensors with their index, a byte-level BPE tokenizer
with LLaDA's special tokens and a chat template), to try the Hugging Face path end to end."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-checkpoint", help="write a tiny LLaDA-layout checkpoint to try",
                       description=__doc__)
    p.add_argument("out", type=Path, help="directory to write (created)")
    p.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from worker.models.tiny_checkpoint import write_tiny_checkpoint

    if args.out.exists() and any(args.out.iterdir()):
        raise ValueError(f"{args.out}: exists and is not empty")
    directory = write_tiny_checkpoint(args.out, seed=args.seed)
    files = ", ".join(sorted(p.name for p in directory.iterdir()))
    print(f"wrote {directory}: {files}")
    print(f"next: dilaserve profile --model {directory} --quick   (its step-cost and quality "
          f"profiles on this machine)")
    return 0
