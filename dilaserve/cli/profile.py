"""`dilaserve profile`: measure step-cost and quality profiles of a model on this machine."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from dilaserve.core.steps import CACHE_MODES, DecodeSettings
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostProfile, sample_to_json
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.measure.profile_files import (
    QUALITY_FILE,
    hardware_name,
    profiles_dir,
    step_cost_file,
)
from worker.measure.quality_eval import evaluate
from worker.measure.step_cost_probe import ProbeGrid, probe
from worker.models.shipped import load
from worker.models.task_suites import suite_for

THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 to 0.95 by 0.05
BLOCK_SIZES = (8, 16, 32)
REFERENCE = DecodeSettings(threshold=0.9, block_size=32)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="measure step-cost and quality profiles of a model", description=__doc__
    )
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--out", type=Path, help="profile directory (default: MODEL/profiles)")
    p.add_argument(
        "--what",
        help="comma list of step-cost, quality (default both; with --tp > 1, step-cost)",
    )
    p.add_argument("--cache-modes", default="dual,prefix,none", help="for step-cost")
    p.add_argument(
        "--tp",
        type=int,
        default=1,
        help="tensor-parallel degree: > 1 runs rank 0 here and spawns ranks 1..N-1 (gloo on CPU, "
        "NCCL with --device cuda, rank r on cuda:r); the profile is written with tpN in its name",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--per-task", type=int, default=100, help="held-out prompts per task")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: an embedded-default CPU replica has one core)")
    p.add_argument("--quick", action="store_true", help="a small grid, for smoke runs")
    p.add_argument("--derive", metavar="GPU",
                   help="measure nothing: derive step-cost profiles for this GPU (A100, H100, "
                   "H200, L40S) from measured ones by roofline (dilaserve/profiles/roofline.py)")
    p.add_argument("--from", dest="derive_from", type=Path, metavar="FILE_OR_DIR",
                   help="with --derive: the measured profile(s) (default: the published "
                   "LLaDA-8B A100 profile); the output goes beside them unless --out")
    p.set_defaults(func=run)


def _log(message: str) -> None:
    print(f"[profile] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.derive:
        from dilaserve.cli import profile_derive

        return profile_derive.run(args)
    if args.tp < 1:
        raise ValueError(f"--tp: must be >= 1, got {args.tp}")
    what = set((args.what or ("step-cost,quality" if args.tp == 1 else "step-cost")).split(","))
    if not what <= {"step-cost", "quality"}:
        raise ValueError(f"--what: unknown part(s) {sorted(what - {'step-cost', 'quality'})}")
    if args.tp > 1 and "quality" in what:
        raise ValueError("--what: quality does not depend on --tp (the ranks decode the same "
                         "tokens); measure it with --tp 1")
    modes = args.cache_modes.split(",")
    if not set(modes) <= set(CACHE_MODES):
        raise ValueError(f"--cache-modes: expected some of {', '.join(CACHE_MODES)}")
    if args.threads <= 0:
        raise ValueError("--threads must be positive")
    torch.set_num_threads(args.threads)
    with _model(args) as (model, tok, model_dir, engine_class):
        _measure(args, what, modes, model, tok, model_dir, engine_class)
    return 0


@contextmanager
def _model(args: argparse.Namespace) -> Iterator[tuple]:
    """(model, tokenizer, model directory, engine class): one device, or rank 0 of a local TP
    replica whose other ranks run in spawned processes until the block ends."""
    if args.tp == 1:
        model, tok, model_dir = load(
            args.model, dtype=getattr(torch, args.dtype), device=args.device
        )
        yield model, tok, model_dir, DenoisingEngine
        return
    from worker.parallel.engine import tp_engine_class
    from worker.parallel.local import LocalRanks, local_rank0

    if args.device not in ("cpu", "cuda"):
        raise ValueError(f"--device: with --tp > 1, cpu or cuda (rank r on cuda:r), got "
                         f"{args.device!r}")
    ranks = LocalRanks(device=args.device, dtype=args.dtype, threads=args.threads)
    with local_rank0(args.tp, args.model, ranks) as rank0:
        yield rank0.model, None, rank0.model_dir, tp_engine_class(rank0.leader)


def _measure(args, what, modes, model, tok, model_dir, engine_class) -> None:
    out = args.out or profiles_dir(model_dir)
    provenance = {
        "source": "measured",
        "command": " ".join(["dilaserve", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if args.tp > 1:
        provenance["ranks"] = (
            f"{args.tp} processes on one machine, {args.threads} torch threads each, "
            f"{'NCCL' if args.device == 'cuda' else 'gloo'}; step times measured on rank 0"
        )
    if "step-cost" in what:
        grid = (
            ProbeGrid(batch_sizes=(1, 4, 16), seq_lens=(64, 256), repeats=1, mixed_steps=4)
            if args.quick
            else ProbeGrid()
        )
        grid = _clip_grid(grid, model.config.max_seq_len)
        hardware = hardware_name(next(model.parameters()).device)
        for mode in modes:
            started = time.monotonic()
            result = probe(model, mode, grid, progress=_log, engine_class=engine_class)
            profile = StepCostProfile(
                model=model.config.name,
                hardware=hardware,
                dtype=args.dtype,
                tp=args.tp,
                cache_mode=mode,
                cost=result.model,
                median_rel_error=result.heldout_error,
                provenance={
                    **provenance,
                    "fit_median_rel_error": result.fit_error,
                    "heldout": "steps mixing refresh and reuse rows, not fitted on",
                },
                samples=tuple(
                    sample_to_json(s, **meta, heldout=False) for s, meta in result.fit_samples
                )
                + tuple(
                    sample_to_json(s, **meta, heldout=True) for s, meta in result.heldout_samples
                ),
            )
            path = out / step_cost_file(hardware, args.dtype, args.tp, mode)
            profile.save(path)
            print(
                f"step-cost {mode:6s}: coef {[f'{c:.3g}' for c in result.model.coef]} "
                f"fit error {result.fit_error:.1%}, held-out error {result.heldout_error:.1%} "
                f"({time.monotonic() - started:.0f} s) -> {path}"
            )
    if "quality" in what:
        if tok is None:
            raise ValueError("--model: quality profiling needs the task tokenizer (tokenizer.json)")
        per_task = 20 if args.quick else args.per_task
        profile = quality_profile(model, tok, per_task, provenance)
        profile.save(out / QUALITY_FILE)
        print_quality(profile)
        print(f"-> {out / QUALITY_FILE}")


def _clip_grid(grid: ProbeGrid, max_seq: int) -> ProbeGrid:
    return ProbeGrid(
        grid.batch_sizes,
        tuple(s for s in grid.seq_lens if s <= max_seq) or (max_seq,),
        grid.block_sizes,
        grid.repeats,
        grid.mixed_steps,
    )


def quality_profile(model, tok, per_task: int, provenance: dict) -> QualityProfile:
    suite = suite_for(model.config.name)
    examples = suite.heldout_set(per_task)
    canvases = suite.canvases()
    engine = DenoisingEngine(model, EngineConfig(max_rows=32))
    settings = [DecodeSettings(threshold=t, block_size=b) for b in BLOCK_SIZES for t in THRESHOLDS]
    settings.append(DecodeSettings(block_size=8, rule="topk", rule_param=1))
    points = []
    for s in settings:
        started = time.monotonic()
        points.append(evaluate(engine, tok, examples, s, canvases, batch_size=32).point)
        _log(
            f"{s.rule} tau={s.threshold} block={s.block_size}: accuracy "
            f"{points[-1].accuracy:.1%} ({time.monotonic() - started:.0f} s)"
        )
    reference = next(
        p
        for p in points
        if p.rule == "threshold"
        and p.threshold == REFERENCE.threshold
        and p.block_size == REFERENCE.block_size
    )
    return QualityProfile(
        model=model.config.name,
        reference=reference,
        points=tuple(points),
        heldout={"per_task": per_task, "seed": 1234, "canvas": canvases,
                 "tasks": list(suite.tasks)},
        provenance=provenance,
    )


def print_quality(profile: QualityProfile) -> None:
    names = list(profile.reference.per_task)
    print(
        f"{'rule':9s} {'tau':>5s} {'block':>5s} {'acc':>6s} "
        + " ".join(f"{n:>6s}" for n in names)
        + f" {'ans/step':>8s} {'tok/step':>8s} {'fwd/req':>7s}"
    )
    for p in profile.points:
        print(
            f"{p.rule:9s} {p.threshold:5.2f} {p.block_size:5d} {p.accuracy:6.1%} "
            + " ".join(f"{p.per_task[n]:6.1%}" for n in names)
            + f" {p.answer_tokens_per_step:8.2f} {p.tokens_per_step:8.2f} "
            f"{p.forwards_per_request:7.2f}"
        )
