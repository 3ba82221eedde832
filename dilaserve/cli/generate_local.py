"""`dilaserve generate`: decode prompts with the engine here, or on a worker with --target.

Prompts are text for the model's tokenizer; with --chat each is a user turn through the model's
chat template (--system adds a system turn first)."""

from __future__ import annotations

import argparse
import math
import re
import sys
import time

from dilaserve.cli.client_args import add_client_arguments, client_options
from dilaserve.cli.device_args import add_device_arguments, device_choice
from dilaserve.core.steps import CACHE_MODES, COMMIT_RULES, AdmitRow, DecodeSettings
from dilaserve.core.tokenizer import ChatMessage, Tokenizer
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.runner import run_to_completion
from worker.models.device import torch_dtype
from worker.models.shipped import load

LOCAL_BLOCK_SIZE = 8
LOCAL_THRESHOLD = 0.9


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="decode a prompt locally or on a worker", description=__doc__
    )
    p.add_argument("prompt", nargs="+", help="prompt text (several prompts decode as one batch)")
    p.add_argument("--target", help="HOST:PORT of a worker to call (default: decode locally)")
    p.add_argument("--deadline", type=duration_ms, help="SLO deadline, e.g. 2s, 500ms, 1.5")
    p.add_argument(
        "--slo-class", default="", help="with --target: the SLO class (default: the policy's)"
    )
    p.add_argument("--model", help="local: model directory (default: the shipped model)")
    p.add_argument("--chat", action="store_true",
                   help="each prompt is a user turn through the model's chat template")
    p.add_argument("--system", help="with --chat: a system turn before each prompt")
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer canvas length")
    p.add_argument("--block-size", type=int, help=f"default {LOCAL_BLOCK_SIZE} (worker: policy's)")
    p.add_argument("--threshold", type=float, help=f"default {LOCAL_THRESHOLD} (worker: replica's)")
    p.add_argument("--min-threshold", type=float, help="with --target: the lowest allowed")
    p.add_argument("--rule", default="threshold", choices=COMMIT_RULES)
    p.add_argument("--cache-mode", default="dual", choices=CACHE_MODES, help="local only")
    add_device_arguments(p)  # local only
    add_client_arguments(p)  # --target only
    p.set_defaults(func=run)


def duration_ms(text: str) -> float:
    """'2s', '500ms', '1.5' (seconds) -> milliseconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 2s or 500ms)")
    value = float(match.group(1))
    ms = value if match.group(2) == "ms" else value * 1e3
    if ms <= 0:
        raise argparse.ArgumentTypeError(f"a deadline must be positive, got {text!r}")
    return ms


def run(args: argparse.Namespace) -> int:
    if args.max_new_tokens <= 0:
        raise ValueError("--max-new-tokens must be positive")
    if args.block_size is not None and args.block_size <= 0:
        raise ValueError("--block-size must be positive")
    for i, text in enumerate(args.prompt):
        if not text:
            raise ValueError(f"prompt {i + 1}: empty")
    if args.system is not None and not args.chat:
        raise ValueError("--system: only with --chat")
    return run_remote(args) if args.target else run_local(args)


def chat_of(args: argparse.Namespace, text: str) -> list[ChatMessage]:
    system = [ChatMessage("system", args.system)] if args.system is not None else []
    return [*system, ChatMessage("user", text)]


def encode(args: argparse.Namespace, tok: Tokenizer, i: int, text: str) -> tuple[int, ...]:
    try:
        return tuple(tok.encode_chat(chat_of(args, text)) if args.chat else tok.encode(text))
    except ValueError as err:
        raise ValueError(f"prompt {i + 1}: {err}") from None


def run_local(args: argparse.Namespace) -> int:
    choice = device_choice(args)
    model, tok, _ = load(args.model, dtype=torch_dtype(choice.dtype), device=choice.device)
    if tok is None:
        raise ValueError("--model: this model has no tokenizer.json; send token ids to a worker")
    prompts = [encode(args, tok, i, text) for i, text in enumerate(args.prompt)]
    longest = model.config.max_seq_len
    block = args.block_size or LOCAL_BLOCK_SIZE
    canvas = -(-args.max_new_tokens // block) * block
    settings = DecodeSettings(
        threshold=args.threshold if args.threshold is not None else LOCAL_THRESHOLD,
        block_size=block,
        rule=args.rule,
        cache_mode=args.cache_mode,
    )
    for i, ids in enumerate(prompts):
        if len(ids) + canvas > longest:
            raise ValueError(f"prompt {i + 1}: {len(ids)} tokens + canvas {canvas} is over the "
                             f"model's context of {longest} tokens")
    requests = [AdmitRow(str(i), ids, canvas, settings) for i, ids in enumerate(prompts)]
    engine = DenoisingEngine(model, EngineConfig(
        max_rows=max(1, len(requests)), stop_token_ids=tuple(sorted(tok.stop_ids))))
    started = time.perf_counter()
    report = run_to_completion(engine, requests, batch_size=len(requests))
    elapsed_ms = (time.perf_counter() - started) * 1e3
    for i, text in enumerate(args.prompt):
        done = report.completions[str(i)]
        print(
            f"{text} -> {tok.decode(done.output_ids)}   "
            f"[{len(prompts[i])} prompt + {len(done.output_ids)} answer tokens, {done.forwards} "
            f"forwards, {done.refreshes} refreshes, {done.finish_reason.value}]"
        )
    met = ""
    if args.deadline is not None:
        verdict = "met" if elapsed_ms <= args.deadline else "missed"
        met = f" (deadline {args.deadline:.0f} ms {verdict})"
    print(f"{len(requests)} prompt(s) in {elapsed_ms:.0f} ms on {choice.device} in "
          f"{choice.dtype}{met}")
    return 0


def run_remote(args: argparse.Namespace) -> int:
    from worker.client import WorkerClient, WorkerError

    failures = 0
    with WorkerClient(args.target, **client_options(args)) as client:
        for text in args.prompt:
            try:
                result = client.generate(
                    chat_of(args, text) if args.chat else text,
                    args.max_new_tokens,
                    deadline_ms=args.deadline,
                    slo_class=args.slo_class,
                    threshold=args.threshold,
                    min_threshold=args.min_threshold,
                    block_size=args.block_size,
                    commit_rule=args.rule,
                )
            except WorkerError as err:
                print(f"{text} -> error {err.code.name}: {err.details}")
                failures += 1
                continue
            deadline = (
                f"deadline {'met' if result.deadline_met else 'missed'}"
                if math.isfinite(result.deadline_s)
                else "no deadline"
            )
            print(
                f"{text} -> {result.text}   [{result.prompt_tokens} prompt + "
                f"{len(result.token_ids)} answer tokens, {result.forwards} forwards, "
                f"{result.finish_reason}, "
                f"{deadline}, {result.e2e_ms:.0f} ms, threshold {result.threshold_start:g}"
                f"->{result.threshold_min:g}, class {result.slo_class}]"
            )
            if args.threshold is not None and result.threshold_start > args.threshold + 1e-9:
                print(f"warning: --threshold {args.threshold:g} is below the floor of class "
                      f"{result.slo_class} or of the replica; it decoded from "
                      f"{result.threshold_start:g}", file=sys.stderr)
    return 1 if failures else 0
