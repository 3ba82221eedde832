"""Step times of the real engine over `StepGrid`, fitted into step-cost profiles (docs/profiles.md).

Per cache mode, for every batch x prompt: rows are admitted and refreshed (one full forward over
prompt + canvas), then decode `reuse_steps` steps over the cache (dual: the block; prefix: the block
and everything after it), then leave; `repeats` times, the median of each phase is a sample. With
no cache every step is a full forward. Rows commit one token a step (top-1), so they stay in
their first block and in the phase being timed. Held-out steps mix rows already decoding with
newly admitted ones, at compositions the grid never ran; the fit's error on them is the profile's
`median_rel_error`.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from dilaserve.benches.gpu_check_shapes import StepGrid
from dilaserve.core.steps import AdmitRow, DecodeSettings, Phase, StepPlan, StepResult
from dilaserve.profiles.step_cost import StepCostModel, StepSample, median, relative_errors
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.models.transformer import DiffusionTransformer


@dataclass(frozen=True)
class Measured:
    sample: StepSample
    meta: dict  # batch, prompt, seq_len, canvas, block, phase


@dataclass(frozen=True)
class ModeResult:
    cache_mode: str
    fit: tuple[Measured, ...]
    heldout: tuple[Measured, ...]
    cost: StepCostModel
    fit_error: float
    heldout_error: float

    def time_s(self, phase: str, batch: int, prompt: int) -> float | None:
        for m in self.fit:
            if (m.meta["phase"], m.meta["batch"], m.meta["prompt"]) == (phase, batch, prompt):
                return m.sample.time_s
        return None


class GridRunner:
    """One engine (its KV pool sized for the grid) stepped through every cache mode."""

    def __init__(self, model: DiffusionTransformer, grid: StepGrid, seed: int = 0) -> None:
        self.cfg = model.config
        self.grid = grid
        self.rng = random.Random(seed)
        self.engine = DenoisingEngine(
            model, EngineConfig(max_rows=grid.max_rows, max_seq_len=grid.max_seq_len))
        self.next_id = 0

    def _rows(self, count: int, prompt: int, mode: str) -> list[AdmitRow]:
        settings = DecodeSettings(block_size=self.grid.block, rule="topk", rule_param=1,
                                  cache_mode=mode)
        # prompt ids below the special ones (LLaDA's sit near the top of its vocabulary)
        high = min(self.cfg.mask_token_id, self.cfg.eos_token_id, self.cfg.pad_token_id) - 1
        rows = []
        for _ in range(count):
            ids = tuple(self.rng.randint(0, high) for _ in range(prompt))
            rows.append(AdmitRow(f"g{self.next_id}", ids, self.grid.canvas, settings))
            self.next_id += 1
        return rows

    def _step(self, plan: StepPlan) -> StepResult:
        return self.engine.step(plan)

    def pure(self, mode: str, batch: int, prompt: int) -> list[Measured]:
        results: dict[Phase, list[StepResult]] = {Phase.REFRESH: [], Phase.REUSE: []}
        for _ in range(self.grid.repeats):
            rows = self._rows(batch, prompt, mode)
            ids = tuple(r.request_id for r in rows)
            results[Phase.REFRESH].append(self._step(StepPlan(admit=tuple(rows), run=ids)))
            if mode != "none":
                for _ in range(self.grid.reuse_steps):
                    results[Phase.REUSE].append(self._step(StepPlan(run=ids)))
            self._step(StepPlan(evict=ids))
        out = []
        for phase, steps in results.items():
            if steps:
                meta = {"batch": batch, "prompt": prompt, "seq_len": prompt + self.grid.canvas,
                        "canvas": self.grid.canvas, "block": self.grid.block,
                        "phase": phase.value}
                elapsed = statistics.median(s.elapsed_s for s in steps)
                out.append(Measured(StepSample(steps[0].features, elapsed), meta))
        return out

    def mixed(self, mode: str, decoding: int, admitted: int, prompt: int) -> Measured:
        old = self._rows(decoding, prompt, mode)
        old_ids = tuple(r.request_id for r in old)
        self._step(StepPlan(admit=tuple(old), run=old_ids))
        times, result = [], None
        for _ in range(self.grid.repeats):
            new = self._rows(admitted, prompt, mode)
            new_ids = tuple(r.request_id for r in new)
            result = self._step(StepPlan(admit=tuple(new), run=old_ids + new_ids))
            times.append(result.elapsed_s)
            self._step(StepPlan(evict=new_ids))
        self._step(StepPlan(evict=old_ids))
        assert result is not None
        meta = {"batch": decoding + admitted, "prompt": prompt,
                "seq_len": prompt + self.grid.canvas, "canvas": self.grid.canvas,
                "block": self.grid.block, "phase": "mixed", "decoding": decoding,
                "admitted": admitted}
        return Measured(StepSample(result.features, statistics.median(times)), meta)

    def measure(self, mode: str, progress: Callable[[str], None] = lambda _: None) -> ModeResult:
        self.pure(mode, min(self.grid.batches), min(self.grid.prompts))  # warm-up, discarded
        fit: list[Measured] = []
        for batch in self.grid.batches:
            for prompt in self.grid.prompts:
                fit += self.pure(mode, batch, prompt)
            progress(f"{mode}: batch {batch} done ({len(fit)} samples)")
        heldout = [self.mixed(mode, *composition) for composition in self.grid.heldout]
        cost = StepCostModel.fit([m.sample for m in fit])
        return ModeResult(
            mode, tuple(fit), tuple(heldout), cost,
            fit_error=median(relative_errors(cost, [m.sample for m in fit])),
            heldout_error=median(relative_errors(cost, [m.sample for m in heldout])))


def bandwidth_rows(results: dict[str, ModeResult], weights: int, kv_per_token: int,
                   bandwidth_tbs: float | None) -> list[dict]:
    """The batch-1 reuse steps against the memory-bandwidth bound: a step reads every weight at
    least once, so it cannot take less than weight bytes / bandwidth (`bound_ms`); reading the
    row's K/V cache as well adds `kv_bytes` (`bound_with_kv_ms`)."""
    rows = []
    for mode, result in results.items():
        for m in result.fit:
            if m.meta["phase"] != "reuse" or m.meta["batch"] != 1:
                continue
            kv = kv_per_token * (m.meta["seq_len"] + 1)
            t = m.sample.time_s
            row = {"cache_mode": mode, "prompt": m.meta["prompt"], "seq_len": m.meta["seq_len"],
                   "time_ms": t * 1e3, "weight_bytes": weights, "kv_bytes": kv,
                   "achieved_tbs": (weights + kv) / t / 1e12 if t > 0 else None,
                   "bound_ms": None, "bound_with_kv_ms": None, "times_bound": None}
            if bandwidth_tbs:
                bound = weights / (bandwidth_tbs * 1e12)
                row |= {"bound_ms": bound * 1e3,
                        "bound_with_kv_ms": (weights + kv) / (bandwidth_tbs * 1e12) * 1e3,
                        "times_bound": t / bound}
            rows.append(row)
    return rows
