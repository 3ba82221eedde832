"""`dilaserve train`: train a shipped masked-diffusion model by its deterministic recipe.

    dilaserve train --run DIR                   # tiny-dlm-long, resumable: run again to continue
    dilaserve train --run DIR --until-stage 1   # its first stage only
    dilaserve train --run DIR --export MODEL    # then copy its last stage's model files to MODEL
    dilaserve train --out DIR [--stages 3 --init STAGE2_DIR]   # tiny-dlm's recipe (the old model)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a shipped model on its synthetic task mix",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path,
                       help="tiny-dlm-long's run directory (state, log, learning curve, a model "
                       "per stage); an existing one continues from its last checkpoint")
    where.add_argument("--out", type=Path, help="tiny-dlm's recipe: checkpoint directory to write")
    p.add_argument("--until-stage", type=int, help="with --run: stop after this stage (1-based)")
    p.add_argument("--export", type=Path,
                   help="with --run: copy the last finished stage's model files here (other "
                   "files there, such as profiles/, stay)")
    p.add_argument("--stages", default="1,2,3",
                   help="with --out: recipe stages to run (default 1,2,3: tiny-dlm from scratch)")
    p.add_argument("--init", type=Path, help="with --out: continue from this checkpoint")
    p.add_argument("--batch", type=int, default=64, help="with --out: batch size")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batch <= 0:
        raise ValueError("--batch must be positive")
    if args.run is not None:
        return _run_long(args)
    from worker.models import train as trainer

    try:
        stages = tuple(trainer.RECIPE[int(i) - 1] for i in args.stages.split(","))
    except (ValueError, IndexError):
        raise ValueError(f"--stages: expected numbers 1..{len(trainer.RECIPE)}, "
                         f"got {args.stages!r}") from None
    trainer.train(args.out, args.batch, stages, args.init)
    return 0


def _run_long(args: argparse.Namespace) -> int:
    from worker.models import long_recipe, resumable_train

    stages = long_recipe.RECIPE
    if args.until_stage is not None and not 1 <= args.until_stage <= len(stages):
        raise ValueError(f"--until-stage: expected 1..{len(stages)}, got {args.until_stage}")
    resumable_train.train(args.run, stages, until_stage=args.until_stage)
    if args.export:
        done = sorted(args.run.glob("stage-*"))
        if not done:
            raise ValueError(f"--export: {args.run} has no finished stage yet")
        shutil.copytree(done[-1], args.export, dirs_exist_ok=True)
        print(f"exported {done[-1]} -> {args.export}")
    return 0
