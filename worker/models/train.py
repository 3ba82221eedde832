"""Train the shipped masked-diffusion model on the synthetic task mix (deterministic under --seed).

    python -m worker.models.train --out worker/models/shipped/tiny-dlm

Loss as in LLaDA/MDLM: per sequence t ~ U(eps, 1); each canvas token (answer and the EOS fill after
it) is masked with probability t; cross-entropy on masked tokens weighted 1/t, divided by
batch x canvas. Each batch holds one task, so padding stays small while prompts range 14-240 tokens.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from worker.models import tasks
from worker.models.checkpoint import save_model
from worker.models.config import ModelConfig
from worker.models.tokenizer import CharTokenizer
from worker.models.transformer import DiffusionTransformer

TASK_WEIGHTS = {"add": 0.4, "find": 0.15, "sort": 0.2, "count": 0.1, "rev": 0.15}
CANVAS_WEIGHTS = {32: 0.7, 64: 0.2, 128: 0.1}
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


def make_batch(tok: CharTokenizer, rng: random.Random, gen: torch.Generator, batch: int):
    task = rng.choices(list(TASK_WEIGHTS), weights=list(TASK_WEIGHTS.values()))[0]
    canvas = rng.choices(list(CANVAS_WEIGHTS), weights=list(CANVAS_WEIGHTS.values()))[0]
    examples = [tasks.sample(task, rng, heldout=False) for _ in range(batch)]
    prompts = [tok.encode(ex.prompt) for ex in examples]
    length = max(len(p) for p in prompts) + canvas
    tokens = torch.full((batch, length), tok.pad_id, dtype=torch.long)
    key_mask = torch.zeros((batch, length), dtype=torch.bool)
    canvas_pos = torch.zeros((batch, canvas), dtype=torch.long)
    for row, (prompt, ex) in enumerate(zip(prompts, examples)):
        answer = tok.encode(ex.answer) + [tok.eos_id] * (canvas - len(ex.answer))
        seq = prompt + answer
        tokens[row, : len(seq)] = torch.tensor(seq)
        key_mask[row, : len(seq)] = True
        canvas_pos[row] = torch.arange(len(prompt), len(seq))
    targets = tokens.gather(1, canvas_pos)
    t = torch.rand(batch, 1, generator=gen) * (1 - 1e-3) + 1e-3
    masked = torch.rand(batch, canvas, generator=gen) < t
    noisy = tokens.clone()
    noisy.scatter_(1, canvas_pos, torch.where(masked, tok.mask_id, targets))
    return noisy, key_mask, canvas_pos, targets, masked, t


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(out: Path, steps: int, batch: int, seed: int, lr: float, log_every: int = 50) -> None:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    tok = CharTokenizer()
    model = DiffusionTransformer(shipped_config(tok))
    print(
        f"training {model.config.num_parameters() / 1e6:.2f}M parameters for {steps} steps",
        flush=True,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    started = time.monotonic()
    running = 0.0
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=150)
        noisy, key_mask, canvas_pos, targets, masked, t = make_batch(tok, rng, gen, batch)
        hidden = model.hidden_states(noisy, torch.arange(noisy.shape[1]).expand_as(noisy), key_mask)
        canvas_hidden = hidden.gather(1, canvas_pos[..., None].expand(-1, -1, hidden.shape[-1]))
        logits = model.logits(canvas_hidden[masked])
        ce = F.cross_entropy(logits, targets[masked], reduction="none")
        weights = (1.0 / t).expand_as(masked)[masked]
        loss = (ce * weights).sum() / masked.numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += loss.item()
        if (step + 1) % log_every == 0:
            elapsed = time.monotonic() - started
            eta = elapsed / (step + 1) * (steps - step - 1)
            print(
                f"step {step + 1}/{steps} loss {running / log_every:.4f} "
                f"elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min",
                flush=True,
            )
            running = 0.0
        if (step + 1) % 500 == 0 or step + 1 == steps:
            save_model(model, out, tok)
    print(f"saved {out} after {(time.monotonic() - started) / 60:.1f} min", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--steps", type=int, default=3500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train(args.out, args.steps, args.batch, args.seed, args.lr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
