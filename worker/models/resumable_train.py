"""Train tiny-dlm-long by its recipe, resumably: `dilaserve train --run DIR` (again, to continue).

The run directory holds everything: state.pt (weights, optimizer, stage and step, random states;
written every `save_every` steps and at each stage's end, so a restart replays the same batches
from there), train.log, curve.jsonl (held-out exact match at tau 0.9, block 32, every
`eval_every` steps), tokenizer files, and after each stage its model in LLaDA's Hugging Face
layout (stage-N-NAME/). `export` writes the final model as a shippable directory.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from worker.models import char_hf_tokenizer, long_recipe, long_tasks
from worker.models.checkpoint import save_llada_format
from worker.models.curve_eval import exact_match
from worker.models.hf_tokenizer import HFTokenizer
from worker.models.masked_diffusion import train_step
from worker.models.transformer import DiffusionTransformer

STATE_FILE = "state.pt"
CURVE_PROMPTS = 8  # held-out prompts per task at each point of the learning curve


def _tokenizer(run: Path) -> HFTokenizer:
    tok_dir = run / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        char_hf_tokenizer.write(tok_dir, long_tasks.ALPHABET, long_recipe.MAX_SEQ_LEN)
    return HFTokenizer.load(tok_dir)


def _fresh_model(tok: HFTokenizer) -> DiffusionTransformer:
    torch.manual_seed(long_recipe.RECIPE[0].seed)
    cfg = long_recipe.model_config(tok.vocab_size, tok.mask_id, tok.eos_id, tok.pad_id)
    return DiffusionTransformer(cfg)


def _optimizer(model: DiffusionTransformer) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=0.0, betas=(0.9, 0.98), weight_decay=0.01)


def train(run: Path, stages: tuple[long_recipe.Stage, ...] = long_recipe.RECIPE,
          save_every: int = 100, eval_every: int = 300, log_every: int = 50,
          until_stage: int | None = None, curve_prompts: int = CURVE_PROMPTS) -> None:
    """Run (or continue) the recipe in `run`; stop after stage `until_stage` (1-based) if given.
    `curve_prompts` held-out prompts per task at each learning-curve point (0: no curve)."""
    run.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(run)
    model = _fresh_model(tok)
    opt = _optimizer(model)
    stage_index, step = 0, 0
    rng_state = gen_state = None
    state_path = run / STATE_FILE
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        stage_index, step = state["stage"], state["step"]
        rng_state, gen_state = state["rng"], state["gen"]
        _log(run, f"resuming at stage {stage_index + 1} step {step}")
    heldout = long_tasks.heldout_set(curve_prompts, seed=99) if curve_prompts else []
    canvas_of = {t: long_tasks.canvas_for(t) for t in long_tasks.TASKS}
    last = len(stages) if until_stage is None else min(until_stage, len(stages))
    _log(run, f"training {model.config.num_parameters() / 1e6:.2f}M parameters")
    while stage_index < last:
        stage = stages[stage_index]
        torch.set_num_threads(stage.threads)
        rng = random.Random(stage.seed)
        gen = torch.Generator().manual_seed(stage.seed)
        if rng_state is not None:  # resuming part-way through this stage
            rng.setstate(rng_state)
            gen.set_state(gen_state)
            rng_state = gen_state = None
        model.train()
        started, running, counted = time.monotonic(), 0.0, 0
        while step < stage.steps:
            for group in opt.param_groups:
                group["lr"] = long_recipe.lr_at(stage, step)
            loss = _step(model, opt, tok, rng, gen, stage)
            running, counted, step = running + loss, counted + 1, step + 1
            if step % log_every == 0:
                per_step = (time.monotonic() - started) / counted
                _log(run, f"{stage.name} step {step}/{stage.steps} loss {running / log_every:.4f} "
                          f"{per_step:.2f} s/step lr {long_recipe.lr_at(stage, step - 1):.2e}")
                running = 0.0
            if heldout and (step % eval_every == 0 or step == stage.steps):
                _curve(run, model, tok, heldout, canvas_of, stage_index, step)
            if step % save_every == 0 or step == stage.steps:
                _save(state_path, model, opt, stage_index, step, rng, gen)
        out = run / f"stage-{stage_index + 1}-{stage.name}"
        _export_model(model, out, run)
        _log(run, f"stage {stage_index + 1} ({stage.name}) done: {out}")
        stage_index, step = stage_index + 1, 0
        # the next stage starts from its own seed: no random state to carry
        _save(state_path, model, opt, stage_index, step, None, None)


def _step(model, opt, tok, rng, gen, stage) -> float:
    _, batch = long_recipe.make_batch(tok, rng, gen, stage)
    return train_step(model, opt, batch)


def _save(path: Path, model, opt, stage_index: int, step: int, rng, gen) -> None:
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "stage": stage_index,
             "step": step, "rng": rng.getstate() if rng else None,
             "gen": gen.get_state() if gen else None}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a kill mid-write leaves the previous state whole


def _curve(run: Path, model, tok, heldout, canvas_of, stage_index: int, step: int) -> None:
    points = exact_match(model, tok, heldout, canvas_of)
    record = {"stage": stage_index + 1, "step": step, "time": time.time(),
              "tasks": [asdict(p) for p in points]}
    with open(run / "curve.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    _log(run, "  held-out tau 0.9: " + "  ".join(
        f"{p.task} {p.exact_match:.0%} ({p.steps_per_request:.1f} steps)" for p in points))


def _log(run: Path, line: str) -> None:
    stamped = f"{time.strftime('%H:%M:%S')} {line}"
    print(stamped, flush=True)
    with open(run / "train.log", "a") as f:
        f.write(stamped + "\n")


def _export_model(model: DiffusionTransformer, out: Path, run: Path) -> None:
    """The model in LLaDA's Hugging Face layout with its tokenizer files: a model directory."""
    if out.exists():
        shutil.rmtree(out)
    # float16 on disk (half the bytes; the loader casts to the serving dtype)
    save_llada_format(copy.deepcopy(model).half(), out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(run / "tokenizer" / name, out / name)
