"""The denoising engine: batched steps over heterogeneous rows, one typed boundary.

    result = engine.step(StepPlan(admit=..., run=..., evict=..., changes=...))

Each step runs the rows due a refresh as one padded full forward and the other rows as one padded
block forward over cached K/V, then computes the LM head only for each row's still-masked positions
of its current block, applies each row's commit rule, and advances rows whose block is complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from dilaserve.core.steps import (
    AdmitRow,
    EngineLimits,
    FinishReason,
    Phase,
    RowOutcome,
    RowShape,
    SettingsChange,
    StepPlan,
    StepResult,
    step_features,
)
from dilaserve.core.tokenizer import cut_at_stop
from kernels.dispatch import masked_head
from worker.engine.commit_rules import get_rule
from worker.engine.kv_pool import KVPool
from worker.engine.rows import RowState
from worker.models.transformer import DiffusionTransformer


class EngineFullError(RuntimeError):
    """Admitting the row would exceed the engine's row or token limit."""


@dataclass(frozen=True)
class EngineConfig:
    max_rows: int | None = None  # None: 32 on CPU, derived from free memory on a GPU
    max_tokens: int | None = None  # None: max_rows x max_seq_len
    max_seq_len: int | None = None  # None: the model's
    gpu_memory_fraction: float = 0.6  # of free memory the KV pool may take, when derived
    # tokens that end an answer besides the model's EOS (a chat model's end of turn: the
    # tokenizer's stop ids)
    stop_token_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_tokens", "max_seq_len"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"engine config: {name} must be positive, got {value}")


class DenoisingEngine:
    def __init__(self, model: DiffusionTransformer, config: EngineConfig = EngineConfig()) -> None:
        self.model = model
        self.cfg = model.config
        self.config = config
        self.stop_ids = frozenset((self.cfg.eos_token_id, *config.stop_token_ids))
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        max_seq = min(config.max_seq_len or self.cfg.max_seq_len, self.cfg.max_seq_len)
        max_rows = config.max_rows or self._derive_max_rows(max_seq, config.gpu_memory_fraction)
        self.limits = EngineLimits(
            max_rows=max_rows,
            max_tokens=config.max_tokens or max_rows * max_seq,
            max_seq_len=max_seq,
        )
        self.pool = KVPool(self.cfg, max_rows, max_seq, self.dtype, self.device, model.kv_heads)
        self._rows: dict[str, RowState] = {}
        self._by_slot: list[RowState] = []
        self._tokens_in_flight = 0
        self._positions = torch.arange(max_seq + 1, device=self.device)

    def _derive_max_rows(self, max_seq: int, fraction: float) -> int:
        if self.device.type != "cuda":
            return 32
        free, _ = torch.cuda.mem_get_info(self.device)
        per_row = KVPool.bytes_per_row(self.cfg, max_seq, self.dtype, self.model.kv_heads)
        return max(1, int(free * fraction // per_row))

    # ---- state -------------------------------------------------------------------------------
    @property
    def rows_in_flight(self) -> int:
        return len(self._rows)

    @property
    def tokens_in_flight(self) -> int:
        return self._tokens_in_flight

    def has_room(self, seq_len: int, rows: int = 1) -> bool:
        return (
            len(self._rows) + rows <= self.limits.max_rows
            and self._tokens_in_flight + seq_len <= self.limits.max_tokens
        )

    def row_shape(self, request_id: str) -> RowShape:
        row = self._row(request_id)
        start, end = row.query_span()
        return RowShape(row.seq_len, end - start, row.phase)

    def _row(self, request_id: str) -> RowState:
        try:
            return self._rows[request_id]
        except KeyError:
            raise ValueError(f"engine: no row {request_id!r} in flight") from None

    # ---- the step ----------------------------------------------------------------------------
    def step(self, plan: StepPlan) -> StepResult:
        for request_id in plan.evict:
            if request_id in self._rows:
                self._release(self._rows[request_id])
        for admit in plan.admit:
            self._admit(admit)
        for change in plan.changes:
            self._change(change)
        if len(set(plan.run)) != len(plan.run):
            raise ValueError("engine: a row is listed twice in the step's run list")
        rows = [self._row(rid) for rid in plan.run]
        features = step_features([self.row_shape(rid) for rid in plan.run])
        started = time.perf_counter()
        outcomes: dict[str, RowOutcome] = {}
        # phases are fixed before running: a refreshed row must not run again as a reuse row
        groups = [
            (phase, [row for row in rows if row.phase is phase])
            for phase in (Phase.REFRESH, Phase.REUSE)
        ]
        with torch.inference_mode():
            for phase, group in groups:
                if group:
                    outcomes.update(self._run_group(group, phase))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - started
        for rid, outcome in outcomes.items():
            if outcome.done:
                self._release(self._rows[rid])
        return StepResult(tuple(outcomes[rid] for rid in plan.run), elapsed, features)

    def _run_group(self, group: list[RowState], phase: Phase) -> dict[str, RowOutcome]:
        group.sort(key=lambda r: r.slot)
        lo, hi = group[0].slot, group[-1].slot + 1
        # A reuse step over a nearly contiguous slot range runs the few rows in between as idle
        # padding rather than copying every member's K/V out of the pool.
        in_place = hi - lo == len(group) or (phase is Phase.REUSE and hi - lo <= 2 * len(group))
        members = self._by_slot[lo:hi] if in_place else group
        active = {id(r) for r in group}
        keys = max(r.seq_len for r in members) + 1
        spans = [r.query_span() if id(r) in active else (0, 0) for r in members]
        width = max(end - start for start, end in spans)
        tokens = torch.full((len(members), width), self.cfg.pad_token_id, device=self.device)
        positions = torch.full((len(members), width), keys - 1, device=self.device)
        key_mask = torch.zeros((len(members), keys), dtype=torch.bool, device=self.device)
        for i, (row, (start, end)) in enumerate(zip(members, spans)):
            if end > start:
                tokens[i, : end - start] = row.tokens[start:end]
                positions[i, : end - start] = self._positions[start:end]
                key_mask[i, : row.seq_len] = True
            else:
                key_mask[i, 0] = True  # an idle row attends somewhere harmless, never to nothing
        if in_place:
            workspace = self.pool.view(lo, hi, keys)
        else:
            slots = torch.tensor([r.slot for r in group], device=self.device)
            workspace = self.pool.gather(slots, keys)
        hidden = self.model.hidden_states(tokens, positions, key_mask, workspace)
        if not in_place and phase is Phase.REFRESH:
            self.pool.write_back(slots, keys, workspace)
        index = {id(r): i for i, r in enumerate(members)}
        return self._commit(
            group,
            [hidden[index[id(r)]] for r in group],
            [spans[index[id(r)]][0] for r in group],
            phase,
        )

    def _commit(
        self,
        group: list[RowState],
        hidden_rows: list[torch.Tensor],
        span_starts: list[int],
        phase: Phase,
    ) -> dict[str, RowOutcome]:
        masked_positions = []
        picked = []
        for row, h, start in zip(group, hidden_rows, span_starts):
            block = row.tokens[row.block_start : row.block_end]
            where = (block == self.cfg.mask_token_id).nonzero().squeeze(1) + row.block_start
            masked_positions.append(where)
            picked.append(h[where - start])
        # mask-only logits: the LM head sees only still-masked positions of current blocks
        chosen, confidence = self._pick(
            group, torch.cat(picked), [len(w) for w in masked_positions]
        )
        width = max(len(w) for w in masked_positions)
        conf = torch.full((len(group), width), float("-inf"), device=self.device)
        offsets = [0]
        for i, where in enumerate(masked_positions):
            conf[i, : len(where)] = confidence[offsets[-1] : offsets[-1] + len(where)]
            offsets.append(offsets[-1] + len(where))
        commit = self._apply_rules(group, conf)
        # a row whose probabilities are not finite (numerics, an extreme temperature) ends
        # alone; committing its tokens would be noise, and its batch-mates go on
        broken = ~torch.isfinite(conf).logical_or(conf == float("-inf")).all(dim=1)
        outcomes = {}
        for i, (row, where) in enumerate(zip(group, masked_positions)):
            if broken[i]:
                outcomes[row.request_id] = self._fail_row(row, phase)
                continue
            take = commit[i, : len(where)]
            row.tokens[where[take]] = chosen[offsets[i] : offsets[i + 1]][take]
            committed = int(take.sum())
            row.masked_left -= committed
            outcomes[row.request_id] = self._after_commit(
                row, phase, committed, committed == len(where)
            )
        return outcomes

    def _pick(
        self, group: list[RowState], hidden: torch.Tensor, counts: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each masked position's token and its confidence (`counts` positions per row)."""
        mask_id = self.cfg.mask_token_id  # never chosen: committing MASK would undo nothing
        if any(row.settings.temperature > 0 for row in group):
            # sampling needs each position's whole distribution: the torch path's full logits
            logits = self.model.logits(hidden).float()
            logits[:, mask_id] = float("-inf")
            return self._choose(group, logits, counts)
        # argmax and its probability only: fused on CUDA, without the [n, vocab] logits
        return masked_head(hidden, self.model.lm_head.weight, mask_id, logits_fn=self.model.logits)

    def _choose(
        self, group: list[RowState], logits: torch.Tensor, counts: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(logits, dim=-1)
        confidence, chosen = probs.max(dim=-1)
        start = 0
        for row, n in zip(group, counts):
            if row.settings.temperature > 0 and n:
                p = torch.softmax(logits[start : start + n] / row.settings.temperature, dim=-1)
                if not torch.isfinite(p).all():  # marked; the row ends alone (_commit)
                    confidence[start : start + n] = float("nan")
                    start += n
                    continue
                sample = torch.multinomial(p, 1, generator=row.generator).squeeze(1)
                chosen[start : start + n] = sample
                confidence[start : start + n] = p.gather(1, sample[:, None]).squeeze(1)
            start += n
        return chosen, confidence

    def _apply_rules(self, group: list[RowState], conf: torch.Tensor) -> torch.Tensor:
        commit = torch.zeros_like(conf, dtype=torch.bool)
        for rule in {row.settings.rule for row in group}:
            idx = [i for i, row in enumerate(group) if row.settings.rule == rule]
            params = torch.tensor(
                [
                    group[i].threshold if rule == "threshold" else group[i].settings.param
                    for i in idx
                ],
                dtype=conf.dtype,
                device=conf.device,
            )
            sel = torch.tensor(idx, device=conf.device)
            commit[sel] = get_rule(rule)(conf[sel], params)
        return commit

    def _after_commit(
        self, row: RowState, phase: Phase, committed: int, block_done: bool
    ) -> RowOutcome:
        if not block_done:
            row.needs_refresh = False
            return RowOutcome(row.request_id, phase, committed, row.masked_left, False, False)
        stops = self.stop_ids
        block_tokens = tuple(row.tokens[row.block_start : row.block_end].tolist())
        ends_in_stop = block_tokens[-1] in stops
        if not ends_in_stop and row.block_end < row.seq_len:
            row.advance_block()
            return RowOutcome(
                row.request_id,
                phase,
                committed,
                row.masked_left,
                True,
                False,
                block_tokens=block_tokens,
            )
        # early stop: the rest of the canvas is EOS
        row.tokens[row.block_end :] = self.cfg.eos_token_id
        row.masked_left = 0
        canvas = row.tokens[row.prompt_len :].tolist()
        output = cut_at_stop(canvas, stops)
        reason = FinishReason.EOS if len(output) < len(canvas) else FinishReason.LENGTH
        return RowOutcome(
            row.request_id,
            phase,
            committed,
            0,
            True,
            True,
            reason,
            block_tokens=block_tokens,
            output_ids=output,
        )

    def _fail_row(self, row: RowState, phase: Phase) -> RowOutcome:
        settings = row.settings
        why = (f"the model's token probabilities for this request were not finite (temperature "
               f"{settings.temperature:g}); it was stopped, the requests batched with it go on")
        return RowOutcome(row.request_id, phase, 0, row.masked_left, False, True, error=why)

    # ---- admission and release ---------------------------------------------------------------
    def _admit(self, admit: AdmitRow) -> None:
        self.limits.check_new_row(admit, self._rows)
        bad = [t for t in admit.prompt_ids if not 0 <= t < self.cfg.vocab_size]
        if bad:
            raise ValueError(
                f"request {admit.request_id}: prompt token ids outside the vocabulary "
                f"[0, {self.cfg.vocab_size}): {bad[:5]}"
            )
        if not self.has_room(admit.seq_len):
            raise EngineFullError(
                f"engine full: {len(self._rows)}/{self.limits.max_rows} rows, "
                f"{self._tokens_in_flight}+{admit.seq_len}/{self.limits.max_tokens} tokens"
            )
        s = admit.settings
        tokens = torch.full((admit.seq_len,), self.cfg.mask_token_id, device=self.device)
        prompt_len = len(admit.prompt_ids)
        tokens[:prompt_len] = torch.tensor(admit.prompt_ids, device=self.device)
        generator = None
        if s.temperature > 0:
            generator = torch.Generator(device=self.device).manual_seed(s.seed)
        row = RowState(
            admit.request_id,
            len(self._by_slot),
            tokens,
            prompt_len,
            s,
            s.threshold,
            s.block_size,
            prompt_len,
            min(prompt_len + s.block_size, admit.seq_len),
            admit.canvas_len,
            generator=generator,
        )
        self._rows[admit.request_id] = row
        self._by_slot.append(row)
        self._tokens_in_flight += admit.seq_len

    def _change(self, change: SettingsChange) -> None:
        row = self._row(change.request_id)
        if change.threshold is not None:
            row.threshold = change.threshold
        if change.block_size is not None:
            row.pending_block_size = change.block_size

    def _release(self, row: RowState) -> None:
        del self._rows[row.request_id]
        self._tokens_in_flight -= row.seq_len
        last = self._by_slot.pop()
        if last is not row:
            self.pool.move(last.slot, row.slot, last.seq_len)
            last.slot = row.slot
            self._by_slot[row.slot] = last
