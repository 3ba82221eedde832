"""Measure step times of the real engine over a grid, and fit the step-cost model to them.

Pure-phase steps (all rows refreshing, or all reusing) over batch x length x block form the fitting
set; steps that mix refreshing and reusing rows, at compositions the grid never ran, are held out to
report how well the fitted model predicts steps it was not fitted on.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from dilaserve.core.steps import AdmitRow, DecodeSettings, Phase, StepPlan, StepResult
from dilaserve.profiles.step_cost import StepCostModel, StepSample, median, relative_errors
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.models.transformer import DiffusionTransformer

EngineClass = Callable[[DiffusionTransformer, EngineConfig], DenoisingEngine]


@dataclass(frozen=True)
class ProbeGrid:
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    seq_lens: tuple[int, ...] = (64, 128, 256, 384)
    block_sizes: tuple[int, ...] = (8, 32)
    repeats: int = 3
    mixed_steps: int = 24

    def __post_init__(self) -> None:
        if min(self.batch_sizes) <= 0 or min(self.seq_lens) <= 0 or self.repeats <= 0:
            raise ValueError("probe grid: batch sizes, lengths and repeats must be positive")


@dataclass(frozen=True)
class ProbeResult:
    fit_samples: list[tuple[StepSample, dict]]
    heldout_samples: list[tuple[StepSample, dict]]
    model: StepCostModel
    fit_error: float
    heldout_error: float


class _Prober:
    def __init__(
        self,
        model: DiffusionTransformer,
        cache_mode: str,
        grid: ProbeGrid,
        seed: int,
        engine_class: EngineClass = DenoisingEngine,
    ) -> None:
        self.cfg = model.config
        self.cache_mode = cache_mode
        self.grid = grid
        self.rng = random.Random(seed)
        longest = max(grid.seq_lens)
        self.engine = engine_class(
            model, EngineConfig(max_rows=2 * max(grid.batch_sizes), max_seq_len=longest)
        )
        self.next_id = 0

    def _rows(self, count: int, seq_len: int, block: int) -> list[AdmitRow]:
        canvas = min(2 * block, seq_len - 1) // block * block or block
        prompt = max(1, seq_len - canvas)
        # one token a step, so a row stays in its block (and its phase) for many steps
        settings = DecodeSettings(
            block_size=block, rule="topk", rule_param=1, cache_mode=self.cache_mode
        )
        low = max(self.cfg.mask_token_id, self.cfg.eos_token_id, self.cfg.pad_token_id) + 1
        rows = []
        for _ in range(count):
            ids = tuple(self.rng.randrange(low, self.cfg.vocab_size) for _ in range(prompt))
            rows.append(AdmitRow(f"p{self.next_id}", ids, canvas, settings))
            self.next_id += 1
        return rows

    def _step(self, plan: StepPlan) -> StepResult:
        return self.engine.step(plan)

    def pure(self, batch: int, seq_len: int, block: int) -> list[tuple[StepSample, dict]]:
        times: dict[Phase, list[StepResult]] = {Phase.REFRESH: [], Phase.REUSE: []}
        for _ in range(self.grid.repeats):
            rows = self._rows(batch, seq_len, block)
            ids = tuple(r.request_id for r in rows)
            result = self._step(StepPlan(admit=tuple(rows), run=ids))
            times[Phase.REFRESH].append(result)
            if self.cache_mode != "none":
                for _ in range(2):
                    times[Phase.REUSE].append(self._step(StepPlan(run=ids)))
            self._step(StepPlan(evict=ids))
        out = []
        for phase, results in times.items():
            if results:
                elapsed = statistics.median(r.elapsed_s for r in results)
                sample = StepSample(results[0].features, elapsed)
                out.append(
                    (
                        sample,
                        {"batch": batch, "seq_len": seq_len, "block": block, "phase": phase.value},
                    )
                )
        return out

    def mixed(self) -> list[tuple[StepSample, dict]]:
        """Steps where some rows reuse while newly admitted rows refresh."""
        out = []
        for _ in range(self.grid.mixed_steps):
            seq_len = self.rng.choice(self.grid.seq_lens)
            block = self.rng.choice(self.grid.block_sizes)
            old = self._rows(self.rng.choice(self.grid.batch_sizes), seq_len, block)
            old_ids = tuple(r.request_id for r in old)
            self._step(StepPlan(admit=tuple(old), run=old_ids))
            new = self._rows(self.rng.randint(1, 4), self.rng.choice(self.grid.seq_lens), block)
            ids = old_ids + tuple(r.request_id for r in new)
            times = []
            for _ in range(self.grid.repeats):
                result = self._step(StepPlan(admit=tuple(new), run=ids))
                times.append(result.elapsed_s)
                self._step(StepPlan(evict=tuple(r.request_id for r in new)))
            out.append(
                (
                    StepSample(result.features, statistics.median(times)),
                    {"batch": len(ids), "seq_len": seq_len, "block": block, "phase": "mixed"},
                )
            )
            self._step(StepPlan(evict=old_ids))
        return out


def time_pure_steps(
    model: DiffusionTransformer,
    cache_mode: str,
    grid: ProbeGrid,
    seed: int = 0,
    engine_class: EngineClass = DenoisingEngine,
) -> list[StepSample]:
    """The fitting grid's pure-phase steps alone (a worker's startup calibration): each the
    median of `grid.repeats`, after a discarded warm-up."""
    prober = _Prober(model, cache_mode, grid, seed, engine_class)
    prober.pure(1, min(grid.seq_lens), min(grid.block_sizes))
    return [sample for batch in grid.batch_sizes for seq_len in grid.seq_lens
            for block in grid.block_sizes for sample, _ in prober.pure(batch, seq_len, block)]


def probe(
    model: DiffusionTransformer,
    cache_mode: str,
    grid: ProbeGrid = ProbeGrid(),
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    engine_class: EngineClass = DenoisingEngine,
) -> ProbeResult:
    """engine_class: how to build the engine on `model` (a tensor-parallel rank 0's, for one)."""
    prober = _Prober(model, cache_mode, grid, seed, engine_class)
    prober.pure(1, min(grid.seq_lens), min(grid.block_sizes))  # warm-up, discarded
    fit: list[tuple[StepSample, dict]] = []
    total = len(grid.batch_sizes) * len(grid.seq_lens) * len(grid.block_sizes)
    for batch in grid.batch_sizes:
        for seq_len in grid.seq_lens:
            for block in grid.block_sizes:
                fit += prober.pure(batch, seq_len, block)
                if progress:
                    progress(f"{cache_mode}: {len(fit)} samples of ~{2 * total}")
    heldout = prober.mixed()
    cost = StepCostModel.fit([s for s, _ in fit])
    return ProbeResult(
        fit,
        heldout,
        cost,
        fit_error=median(relative_errors(cost, [s for s, _ in fit])),
        heldout_error=median(relative_errors(cost, [s for s, _ in heldout])),
    )
