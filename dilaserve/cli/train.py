"""`dilaserve train`: train the shipped masked-diffusion model from scratch (deterministic)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from worker.models import train as trainer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the shipped model on the synthetic task mix",
        description=trainer.__doc__,
    )
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--steps", type=int, default=3500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.steps <= 0 or args.batch <= 0:
        raise ValueError("--steps and --batch must be positive")
    torch.set_num_threads(2)
    trainer.train(Path(args.out), args.steps, args.batch, args.seed, args.lr)
    return 0
