"""`dilaserve train`: train the shipped masked-diffusion model (deterministic recipe)."""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.models import train as trainer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the shipped model on the synthetic task mix",
                       description=trainer.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    p.add_argument("--stages", default="1,2,3",
                   help="recipe stages to run (default 1,2,3: the shipped model from scratch)")
    p.add_argument("--init", type=Path, help="continue from this checkpoint")
    p.add_argument("--batch", type=int, default=64)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        stages = tuple(trainer.RECIPE[int(i) - 1] for i in args.stages.split(","))
    except (ValueError, IndexError):
        raise ValueError(f"--stages: expected numbers 1..{len(trainer.RECIPE)}, "
                         f"got {args.stages!r}") from None
    if args.batch <= 0:
        raise ValueError("--batch must be positive")
    trainer.train(args.out, args.batch, stages, args.init)
    return 0
