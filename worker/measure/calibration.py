"""A worker's startup calibration: a few timed steps of its real engine, at shapes its step-cost
profile was fitted on, against what the profile predicts for them.

The grid is the profile grid's small corner (batch 1 and 4, 64 and 128 tokens, blocks 8 and 32;
refresh steps, and reuse steps where there is a cache), so it runs in a fraction of a second on a
small model; `dilaserve.profiles.machine_scale` turns the ratios into the machine's factor.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from dilaserve.profiles.machine_scale import step_ratio
from dilaserve.profiles.step_cost import StepCostModel, StepSample
from worker.engine.engine import DenoisingEngine
from worker.measure.step_cost_probe import EngineClass, ProbeGrid, time_pure_steps
from worker.models.transformer import DiffusionTransformer

CALIBRATION_GRID = ProbeGrid(batch_sizes=(1, 4), seq_lens=(64, 128), block_sizes=(8, 32),
                             repeats=3, mixed_steps=0)


@dataclass(frozen=True)
class Calibration:
    samples: tuple[StepSample, ...]
    seconds: float  # the calibration's wall time, warm-up included

    def ratios(self, profile: StepCostModel) -> list[float]:
        """Measured / predicted per timed shape and phase."""
        return [r for s in self.samples
                if (r := step_ratio(profile, s.features, s.time_s)) is not None]


def fitting_grid(grid: ProbeGrid, max_seq_len: int) -> ProbeGrid:
    """`grid` within the model's context (a short-context model calibrates at its longest)."""
    seq_lens = tuple(n for n in grid.seq_lens if n <= max_seq_len) or (max_seq_len,)
    longest = max(seq_lens)
    blocks = tuple(b for b in grid.block_sizes if b < longest) or (max(1, longest // 2),)
    return dataclasses.replace(grid, seq_lens=seq_lens, block_sizes=blocks)


def calibrate(model: DiffusionTransformer, cache_mode: str,
              engine_class: EngineClass = DenoisingEngine,
              grid: ProbeGrid = CALIBRATION_GRID) -> Calibration:
    started = time.perf_counter()
    grid = fitting_grid(grid, model.config.max_seq_len)
    samples = time_pure_steps(model, cache_mode, grid, engine_class=engine_class)
    return Calibration(tuple(samples), time.perf_counter() - started)
