"""Train the shipped masked-diffusion model on the synthetic task mix (a deterministic recipe).

    python -m worker.models.train --out DIR                # the whole recipe, from scratch
    python -m worker.models.train --out DIR --stages 3 --init STAGE2_DIR

Loss as in LLaDA/MDLM (`masked_diffusion`). Each batch holds one task, so padding stays small while
prompts range 14-240 tokens.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from worker.models import tasks
from worker.models.checkpoint import load_model, save_model
from worker.models.config import ModelConfig
from worker.models.masked_diffusion import MaskedBatch, masked_batch, train_step
from worker.models.tokenizer import CharTokenizer
from worker.models.transformer import DiffusionTransformer


@dataclass(frozen=True)
class Stage:
    steps: int
    lr: float
    seed: int
    warmup: int
    task_weights: dict[str, float]
    canvas_weights: dict[int, float]
    task_options: dict[str, dict] = field(default_factory=dict)
    halve_long_prompt_batches: bool = True
    threads: int = 2  # part of the recipe: float reductions differ with the thread count
    stop_after: int | None = None  # end early, part-way through the LR schedule


# The shipped model's recipe, from scratch. Mostly 32-token canvases (cheap steps, and every
# held-out answer fits one); a few of 64 and 128 teach the EOS fill of longer canvases.
RECIPE = (
    # stopped at 5,000 steps (24 min): head and rev had formed, sort was at half; add and psum
    # (running sums mod 10) had not started to, so stage 2 drops them for xor (running parity,
    # the same dependence on the previous answer digit with a 2-entry table instead of 100)
    Stage(6500, 2e-3, 0, 150, {"add": 0.25, "psum": 0.25, "sort": 0.2, "rev": 0.1, "head": 0.2},
          {32: 0.85, 64: 0.1, 128: 0.05}, stop_after=5000),
    # stopped at 2,500 steps (11 min): sort at 85%, rev and head at 100%; xor of 8-16 bits had
    # not formed (bit i of the answer sits at a length-dependent distance from bit i of the prompt)
    Stage(4500, 1.5e-3, 1, 100, {"xor": 0.4, "sort": 0.35, "rev": 0.1, "head": 0.15},
          {32: 0.9, 64: 0.07, 128: 0.03}, {"xor": {"lengths": (8, 16)}}, stop_after=2500),
    # xor of a fixed 16 bits: a fixed distance
    Stage(2200, 1e-3, 2, 50, {"xor": 0.5, "sort": 0.3, "rev": 0.1, "head": 0.1},
          {32: 0.9, 64: 0.07, 128: 0.03}),
)
LONG_PROMPT_TASKS = {"head"}  # half-size batches: their prompts are 5-10x longer
MAX_PROMPT = 256
MAX_CANVAS = 128


def shipped_config(tok: CharTokenizer) -> ModelConfig:
    return ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=128,
        num_layers=6,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=352,
        max_seq_len=MAX_PROMPT + MAX_CANVAS,
        mask_token_id=tok.mask_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
        rope_theta=10000.0,
        name="tiny-dlm",
    )


def make_batch(tok: CharTokenizer, rng: random.Random, gen: torch.Generator, batch: int,
               stage: Stage) -> MaskedBatch:
    task = rng.choices(list(stage.task_weights), weights=list(stage.task_weights.values()))[0]
    canvas = rng.choices(list(stage.canvas_weights), weights=list(stage.canvas_weights.values()))[0]
    if task in LONG_PROMPT_TASKS and stage.halve_long_prompt_batches:
        batch //= 2
    options = stage.task_options.get(task, {})
    examples = [tasks.sample(task, rng, heldout=False, **options) for _ in range(batch)]
    return masked_batch(tok, examples, canvas, gen)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(out: Path, batch: int, stages: tuple[Stage, ...] = RECIPE, init: Path | None = None,
          log_every: int = 50) -> None:
    """Run the recipe's stages in order, from scratch or continuing from `init`."""
    tok = CharTokenizer()
    torch.manual_seed(stages[0].seed)
    model = load_model(init) if init else DiffusionTransformer(shipped_config(tok))
    print(f"training {model.config.num_parameters() / 1e6:.2f}M parameters", flush=True)
    for stage in stages:
        label = f"stage {RECIPE.index(stage) + 1}" if stage in RECIPE else "stage"
        run_stage(model, tok, stage, batch, out, label, log_every)


def run_stage(model: DiffusionTransformer, tok: CharTokenizer, stage: Stage, batch: int,
              out: Path, label: str, log_every: int) -> None:
    model.train()
    torch.set_num_threads(stage.threads)
    torch.manual_seed(stage.seed)
    rng = random.Random(stage.seed)
    gen = torch.Generator().manual_seed(stage.seed)
    steps, lr = stage.steps, stage.lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    started = time.monotonic()
    running = 0.0
    for step in range(stage.stop_after or steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=stage.warmup)
        running += train_step(model, opt, make_batch(tok, rng, gen, batch, stage))
        if (step + 1) % log_every == 0:
            elapsed = time.monotonic() - started
            eta = elapsed / (step + 1) * (steps - step - 1)
            print(
                f"{label} step {step + 1}/{steps} loss {running / log_every:.4f} "
                f"elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min",
                flush=True,
            )
            running = 0.0
        if (step + 1) % 500 == 0 or step + 1 == (stage.stop_after or steps):
            save_model(model, out, tok)
    print(f"{label}: saved {out} after {(time.monotonic() - started) / 60:.1f} min", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--stages", default="1,2,3", help="recipe stages to run, e.g. 3")
    parser.add_argument("--init", type=Path, help="continue from this checkpoint directory")
    args = parser.parse_args(argv)
    stages = tuple(RECIPE[int(i) - 1] for i in args.stages.split(","))
    train(args.out, args.batch, stages, args.init)
    return 0


if __name__ == "__main__":
    sys.exit(main())
