"""A benchmarking engine that does no model compute: every step commits each running row's whole
current block with one fixed token. It keeps the DenoisingEngine interface (limits, step), so the
worker's scheduler, serving loop and gRPC service run unchanged around it: what a benchmark then
measures is the serving path (gRPC, scheduler, router), not the model. `dilaserve worker --engine
null` selects it; its answers are meaningless by design.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dilaserve.core.steps import (
    AdmitRow,
    EngineLimits,
    FinishReason,
    Phase,
    RowOutcome,
    RowShape,
    StepPlan,
    StepResult,
    step_features,
)
from worker.engine.engine import EngineConfig, EngineFullError
from worker.models.transformer import DiffusionTransformer

CPU_MAX_ROWS = 32  # the real engine's default without a GPU


@dataclass
class _Row:
    prompt_len: int
    seq_len: int
    block_size: int
    block_start: int
    pending_block: int | None = None


class NullEngine:
    def __init__(self, model: DiffusionTransformer, config: EngineConfig | None = None) -> None:
        config = config or EngineConfig()
        cfg = model.config
        max_seq = min(config.max_seq_len or cfg.max_seq_len, cfg.max_seq_len)
        max_rows = config.max_rows or CPU_MAX_ROWS
        self.limits = EngineLimits(max_rows, config.max_tokens or max_rows * max_seq, max_seq)
        self.eos_id = cfg.eos_token_id
        # the first id that is not special (pad, mask, a stop token): a plain token every row
        # commits
        special = {cfg.pad_token_id, cfg.mask_token_id, cfg.eos_token_id, *config.stop_token_ids}
        self.token = min(set(range(len(special) + 1)) - special)
        self._rows: dict[str, _Row] = {}
        self._tokens_in_flight = 0

    @property
    def rows_in_flight(self) -> int:
        return len(self._rows)

    def step(self, plan: StepPlan) -> StepResult:
        started = time.perf_counter()
        for request_id in plan.evict:
            self._release(request_id)
        for admit in plan.admit:
            self._admit(admit)
        for change in plan.changes:
            if change.block_size is not None:
                self._rows[change.request_id].pending_block = change.block_size
        if len(set(plan.run)) != len(plan.run):
            raise ValueError("engine: a row is listed twice in the step's run list")
        shapes, outcomes = [], []
        for request_id in plan.run:
            row = self._rows.get(request_id)
            if row is None:
                raise ValueError(f"engine: no row {request_id!r} in flight")
            shapes.append(RowShape(row.seq_len, row.seq_len, Phase.REFRESH))
            outcomes.append(self._commit_block(request_id, row))
        return StepResult(tuple(outcomes), time.perf_counter() - started, step_features(shapes))

    def _commit_block(self, request_id: str, row: _Row) -> RowOutcome:
        end = min(row.block_start + row.block_size, row.seq_len)
        block = (self.token,) * (end - row.block_start)
        if end < row.seq_len:
            row.block_start = end
            if row.pending_block is not None:
                row.block_size, row.pending_block = row.pending_block, None
            return RowOutcome(request_id, Phase.REFRESH, len(block), row.seq_len - end, True,
                              False, block_tokens=block)
        self._release(request_id)
        output = (self.token,) * (row.seq_len - row.prompt_len)
        return RowOutcome(request_id, Phase.REFRESH, len(block), 0, True, True,
                          FinishReason.LENGTH, block_tokens=block, output_ids=output)

    def _admit(self, admit: AdmitRow) -> None:
        self.limits.check_new_row(admit, self._rows)
        if (len(self._rows) >= self.limits.max_rows
                or self._tokens_in_flight + admit.seq_len > self.limits.max_tokens):
            raise EngineFullError(f"engine full: {len(self._rows)}/{self.limits.max_rows} rows")
        prompt = len(admit.prompt_ids)
        self._rows[admit.request_id] = _Row(prompt, admit.seq_len, admit.settings.block_size,
                                            prompt)
        self._tokens_in_flight += admit.seq_len

    def _release(self, request_id: str) -> None:
        row = self._rows.pop(request_id, None)
        if row is not None:
            self._tokens_in_flight -= row.seq_len
