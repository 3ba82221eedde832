"""`dilaserve gpu-check`: the GPU path measured in one command, in at most 5 minutes.

On a CUDA machine: an LLaDA-8B-shaped model with random bf16 weights made on the GPU, a
tokenizer built here; step times (refresh and reuse, batch 1/4/16/32, prompt 512/1,024, canvas
256, block 32, dual and prefix cache, full forwards without cache) written as step-cost profiles
named for the GPU and dtype in worker/models/profiles_published/llada-8b/; the batch-1 reuse
step against the memory-bandwidth bound; the Triton kernels against the torch path; a few
requests served through the worker. Without CUDA the same phases run a tiny shape on the CPU in
seconds, written to runs/gpu-check/ (never over the published profiles). On a GPU box, from the
source tree (docs/gpu-check.md: which wheels to carry):
    make gpu-check
    PYTHONPATH=. python3 -m dilaserve.cli.main gpu-check
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dilaserve.core.locations import PUBLISHED_PROFILES_DIR

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "runs" / "gpu-check"
SKIPPABLE = ("steps", "kernels", "serve")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu-check", help="measure the GPU path in one command (CPU: a tiny shape)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="default: cuda when torch sees one")
    p.add_argument("--shape", choices=("auto", "llada-8b", "tiny"), default="auto",
                   help="default: llada-8b on cuda, tiny on cpu")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto",
                   help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--out", type=Path,
                   help=f"where the profiles and the summary go (default: {PUBLISHED_PROFILES_DIR}"
                        f" for the llada-8b shape on cuda, else {DEFAULT_OUT})")
    p.add_argument("--copy-to", type=Path,
                   help="also copy every file written there (a GPU session's $OUT)")
    p.add_argument("--skip", default="", help=f"comma list of phases to skip: {SKIPPABLE}")
    p.add_argument("--budget-s", type=float, default=300.0,
                   help="a phase not started by then is skipped (default 300)")
    p.add_argument("--bandwidth-tbs", type=float,
                   help="the device's memory bandwidth in TB/s (default: the table, by GPU name)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1, as for `dilaserve profile`)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def options(args: argparse.Namespace):
    import torch

    from dilaserve.benches.gpu_check import CheckOptions
    from dilaserve.benches.gpu_check_shapes import SHAPES

    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise ValueError(f"--device cuda: torch {torch.__version__} sees no CUDA device here")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and cuda) else "cpu"
    shape = args.shape if args.shape != "auto" else ("llada-8b" if device == "cuda" else "tiny")
    dtype = args.dtype if args.dtype != "auto" else (
        "bfloat16" if device == "cuda" else "float32")
    publishes = device == "cuda" and shape == "llada-8b"
    out = args.out or (PUBLISHED_PROFILES_DIR if publishes else DEFAULT_OUT)
    if out.resolve() == PUBLISHED_PROFILES_DIR.resolve() and not publishes:
        raise ValueError(f"--out: {PUBLISHED_PROFILES_DIR} takes only the llada-8b shape "
                         f"measured on cuda (this run: {shape} on {device})")
    skip = frozenset(s for s in args.skip.split(",") if s)
    if not skip <= set(SKIPPABLE):
        raise ValueError(f"--skip: unknown phase(s) {sorted(skip - set(SKIPPABLE))}; "
                         f"phases: {', '.join(SKIPPABLE)}")
    if args.budget_s <= 0 or args.threads <= 0 or (
            args.bandwidth_tbs is not None and args.bandwidth_tbs <= 0):
        raise ValueError("--budget-s, --threads and --bandwidth-tbs must be positive")
    torch.set_num_threads(args.threads)
    command = (f"dilaserve gpu-check --device {device} --shape {shape} --dtype {dtype}"
               + (f" --skip {','.join(sorted(skip))}" if skip else ""))
    return CheckOptions(torch.device(device), SHAPES[shape](), getattr(torch, dtype), out,
                        command, skip, args.budget_s, args.bandwidth_tbs, args.seed, args.copy_to)


def run(args: argparse.Namespace) -> int:
    import sys

    from dilaserve.benches.gpu_check import Check
    from dilaserve.cli.gpu_check_report import report

    check = Check(options(args), lambda m: print(f"[gpu-check] {m}", file=sys.stderr,
                                                  flush=True))
    summary = check.run()
    print(report(summary))
    for name, phase in summary["phases"].items():
        if phase["status"] == "failed":
            print(f"dilaserve gpu-check: error: {name}: {phase['why']}", file=sys.stderr)
    return 0 if summary["ok"] else 1
