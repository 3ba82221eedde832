"""`dilaserve gpu-check`: the GPU path measured in one command (docs/gpu-check.md).

Phases, in order, each timed and recorded on its own (one that fails does not lose the others;
its error is one line on stderr and its traceback is in the summary):
1. build: the shape's model directory (config.json, a tokenizer built here) and random weights
   made on the device (`gpu_check_model`), with the allocator's and the host's peaks;
2. steps: the step grid per cache mode (`gpu_check_steps`), written as step-cost profiles named
   for the device and dtype, and the batch-1 reuse step against the memory-bandwidth bound;
3. kernels: the Triton kernels against the torch path at the shape's sizes (the kernels bench);
4. serve: a few requests through the worker on the device (`gpu_check_serve`).
A phase not started within the time budget is skipped, saying so. The summary (JSON) is written
beside the profiles as `gpu_check.<hardware>.<dtype>.json`.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dilaserve.benches import gpu_check_model as build
from dilaserve.benches.gpu_check_device import DeviceFacts, device_facts
from dilaserve.benches.gpu_check_serve import serve_check, serve_imports
from dilaserve.benches.gpu_check_shapes import CheckShape
from dilaserve.benches.gpu_check_steps import GridRunner, ModeResult, bandwidth_rows
from dilaserve.profiles.step_cost import StepCostProfile, sample_to_json
from kernels.dispatch import MODE_ENV, kernel_mode, triton_installed
from worker.measure.profile_files import step_cost_file

SUMMARY_SCHEMA = "dilaserve.gpu_check/v1"
PHASES = ("build", "steps", "kernels", "serve")
GIB = 1 << 30


@dataclass(frozen=True)
class CheckOptions:
    device: torch.device
    shape: CheckShape
    dtype: torch.dtype
    out: Path
    command: str
    skip: frozenset[str] = frozenset()
    budget_s: float = 300.0
    bandwidth_tbs: float | None = None
    seed: int = 0
    copy_to: Path | None = None


def summary_file(facts: DeviceFacts, dtype: torch.dtype) -> str:
    """Named like the step-cost profiles: `gpu_check.h200.bfloat16.json`."""
    hardware = re.sub(r"[^a-z0-9]+", "-", facts.hardware.lower()).strip("-")
    return f"gpu_check.{hardware}.{_dtype(dtype)}.json"


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


class Check:
    def __init__(self, options: CheckOptions, log: Callable[[str], None]) -> None:
        self.o = options
        self.log = log
        self.started = time.monotonic()
        self.phases: dict[str, dict] = {}
        self.written: list[Path] = []
        self.model = self.tokenizer = None
        self.model_dir: Path | None = None  # the shape's config and tokenizer files (temporary)
        self.modes: dict[str, ModeResult] = {}
        self.facts = device_facts(options.device, options.bandwidth_tbs)
        self.engine_kernels = _engine_kernels(options.device)

    def phase(self, name: str, body: Callable[[], dict]) -> None:
        elapsed = time.monotonic() - self.started
        if name in self.o.skip:
            self.phases[name] = {"status": "skipped", "why": "--skip"}
            return
        if elapsed > self.o.budget_s:
            self.phases[name] = {"status": "skipped",
                                 "why": f"time budget {self.o.budget_s:g} s spent"}
            return
        self.log(f"{name} ...")
        begun = time.monotonic()
        try:
            record = {"status": "ok", **body()}
        except Exception as err:  # recorded; the other phases go on
            record = {"status": "failed", "why": _one_line(err),
                      "traceback": traceback.format_exc()}
            self.log(f"{name} failed: {record['why']}")
        record["seconds"] = time.monotonic() - begun
        self.phases[name] = record

    # ---- phases --------------------------------------------------------------------------------
    def build(self) -> dict:
        o, dev = self.o, self.o.device
        directory = Path(tempfile.mkdtemp(prefix=f"gpu-check-{o.shape.name}-"))
        self.model_dir = directory
        cfg, text_ids = build.write_model_dir(o.shape, directory)
        from worker.models.hf_tokenizer import HFTokenizer

        self.tokenizer = HFTokenizer.load(directory)
        if dev.type == "cuda":
            need, (free, _) = 1.2 * build.bytes_needed(cfg, o.dtype, o.shape.grid), \
                torch.cuda.mem_get_info(dev)
            if need > free:
                raise ValueError(f"the {o.shape.name} shape needs about {need / GIB:.0f} GiB "
                                 f"(weights, the grid's KV cache, 20% for activations); this GPU "
                                 f"has {free / GIB:.0f} GiB free")
        host_before = _host_peak_bytes()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        begun = time.monotonic()
        self.model = build.random_model(cfg, o.dtype, dev, o.seed, text_ids)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.monotonic() - begun
        weights = build.weight_bytes(self.model)
        self.weights, self.kv_per_token = weights, build.kv_bytes_per_token(cfg, o.dtype)
        peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
        return {"parameters": sum(p.numel() for p in self.model.parameters()),
                "weight_bytes": weights, "build_seconds": seconds,
                "device_peak_bytes": peak,
                "device_peak_over_weights": peak / weights if peak else None,
                "host_peak_growth_bytes": _host_peak_bytes() - host_before,
                "layers": cfg.num_layers, "hidden": cfg.hidden_size, "vocab": cfg.vocab_size,
                "tokenizer_vocab": self.tokenizer.vocab_size,
                "mask_id": self.tokenizer.mask_id, "eos_id": self.tokenizer.eos_id}

    def steps(self) -> dict:
        """The grid with the engine's kernels as dispatched (Triton on CUDA); if that fails on
        CUDA, again on the torch path (DILASERVE_KERNELS=torch, serve too), saying why."""
        if self.model is None:
            raise ValueError("no model: the build phase did not finish")
        self.engine_kernels = _engine_kernels(self.o.device)
        try:
            return self._steps()
        except Exception as err:
            if self.engine_kernels != "triton":
                raise
            failed = {"triton_error": _one_line(err), "triton_traceback": traceback.format_exc()}
        self.log(f"steps with the Triton kernels failed ({failed['triton_error']}); "
                 f"measuring again on the torch path")
        _free(self.o.device)
        os.environ[MODE_ENV] = "torch"
        self.engine_kernels = "torch"
        self.modes.clear()
        return {**self._steps(), **failed}

    def _steps(self) -> dict:
        runner = GridRunner(self.model, self.o.shape.grid, self.o.seed)
        for mode in self.o.shape.grid.cache_modes:
            if time.monotonic() - self.started > self.o.budget_s:
                self.log(f"steps: time budget spent, {mode} cache not measured")
                break
            self.modes[mode] = runner.measure(mode, self.log)
            self._write_profile(self.modes[mode])
        del runner
        _free(self.o.device)
        bound = bandwidth_rows(self.modes, self.weights, self.kv_per_token,
                               self.facts.bandwidth_tbs)
        return {"engine_kernels": self.engine_kernels,
                "profiles": {m: r.cost.coef for m, r in self.modes.items()},
                "fit_error": {m: r.fit_error for m, r in self.modes.items()},
                "heldout_error": {m: r.heldout_error for m, r in self.modes.items()},
                "table": self._table(), "bandwidth": bound}

    def _table(self) -> list[dict]:
        grid, rows = self.o.shape.grid, []
        for batch in grid.batches:
            for prompt in grid.prompts:
                row = {"batch": batch, "prompt": prompt}
                for mode, result in self.modes.items():
                    for phase in ("refresh", "reuse"):
                        t = result.time_s(phase, batch, prompt)
                        if t is not None:
                            row[f"{mode}_{phase}_ms"] = t * 1e3
                rows.append(row)
        return rows

    def _write_profile(self, result: ModeResult) -> None:
        o, f = self.o, self.facts
        grid = o.shape.grid
        provenance = {
            "source": "measured", "command": o.command, "date": f.date,
            "gpu": f.name if f.device == "cuda" else None, "driver": f.driver,
            "torch": f.torch, "cuda": f.cuda, "triton": f.triton,
            "kernels": self.engine_kernels,
            "weights": f"random ({o.shape.name} shape: step times do not depend on the values)",
            "grid": {"batches": grid.batches, "prompts": grid.prompts, "canvas": grid.canvas,
                     "block": grid.block, "repeats": grid.repeats,
                     "reuse_steps": grid.reuse_steps},
            "fit_median_rel_error": result.fit_error,
            "heldout": "steps mixing rows already decoding with newly admitted ones "
                       "(compositions the grid never ran), not fitted on",
        }
        profile = StepCostProfile(
            model=o.shape.model_name, hardware=f.hardware, dtype=_dtype(o.dtype), tp=1,
            cache_mode=result.cache_mode, cost=result.cost,
            median_rel_error=result.heldout_error, provenance=provenance,
            samples=tuple(sample_to_json(m.sample, **m.meta, heldout=False) for m in result.fit)
            + tuple(sample_to_json(m.sample, **m.meta, heldout=True) for m in result.heldout))
        path = o.out / step_cost_file(f.hardware, _dtype(o.dtype), 1, result.cache_mode)
        profile.save(path)
        self.written.append(path)

    def kernels(self) -> dict:
        from dilaserve.benches import kernels as bench

        if self.model is None:
            raise ValueError("no model: the build phase did not finish")
        cfg, o = self.model.config, self.o
        triton = o.device.type == "cuda" and triton_installed()
        run = bench.Run(o.device, o.dtype, triton, 20 if o.device.type == "cuda" else 3)
        shape = bench.Shape(cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size,
                            cfg.num_heads, cfg.num_kv_heads, o.shape.grid.block,
                            cfg.mask_token_id)
        head = bench.bench_head(run, shape, list(o.shape.kernel_batches), cfg.hidden_size)
        attention = bench.bench_attention(run, shape, list(o.shape.kernel_batches),
                                          list(o.shape.kernel_canvases))
        _free(o.device)
        return {"triton": triton, "head": head, "attention": attention}

    def serve(self) -> dict:
        missing = serve_imports()
        if missing is not None:
            return {"status": "skipped", "why": f"the worker's packages do not import here "
                    f"({missing}); carry them as wheels (docs/gpu-check.md)"}
        if self.model is None:
            raise ValueError("no model: the build phase did not finish")
        dual = self.modes.get("dual")
        if dual is None:
            raise ValueError("no dual-cache step cost: the steps phase did not finish")
        return serve_check(self.model, self.tokenizer, self.o.shape, dual.cost)

    # ---- the whole check -----------------------------------------------------------------------
    def run(self) -> dict:
        self.o.out.mkdir(parents=True, exist_ok=True)
        try:
            for name in PHASES:
                self.phase(name, getattr(self, name))
        finally:
            if self.model_dir is not None:
                shutil.rmtree(self.model_dir, ignore_errors=True)
        summary = self.summary()
        path = self.o.out / summary_file(self.facts, self.o.dtype)
        self.written.append(path)
        summary["written"] = [str(p) for p in self.written]
        path.write_text(json.dumps(summary, indent=1, default=_json_default) + "\n")
        if self.o.copy_to is not None:
            self.o.copy_to.mkdir(parents=True, exist_ok=True)
            for p in self.written:
                shutil.copy(p, self.o.copy_to / p.name)
        return summary

    def summary(self) -> dict:
        o = self.o
        bound = self.phases.get("steps", {}).get("bandwidth", [])
        headline = next((r for r in bound if r["cache_mode"] == "dual"), None)
        return {"schema": SUMMARY_SCHEMA, "command": o.command, "shape": o.shape.name,
                "dtype": _dtype(o.dtype), "device": self.facts.to_json(),
                "seconds": time.monotonic() - self.started, "budget_s": o.budget_s,
                "ok": not any(p["status"] == "failed" for p in self.phases.values()),
                "batch1_reuse_vs_bandwidth": headline, "phases": self.phases}


def _engine_kernels(device: torch.device) -> str:
    """What the engine's attention and LM head run on for this device (kernels.dispatch)."""
    mode = kernel_mode()
    if mode == "auto":
        return "triton" if device.type == "cuda" and triton_installed() else "torch"
    return mode


def _host_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _json_default(value: object) -> object:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)
