"""What the scheduler knows about a request: its immutable spec, its live state, how it ended."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace

from dilaserve.core.steps import (
    DecodeSettings,
    FinishReason,
    Phase,
    check_row,
    validate_threshold,
)


@dataclass(frozen=True)
class RequestSpec:
    """A request as the server hands it over. `settings` carries the starting threshold and block
    size; `quality_floor` is the lowest threshold load control may use (the class's effective floor,
    None: the starting threshold, i.e. no degradation); `block_range` bounds the block size;
    `accuracy_budget` is the mean accuracy drop (0..1) its class's finished requests may take
    together (None: no budget, load control may take any request to its floor)."""

    request_id: str
    prompt_ids: tuple[int, ...]
    canvas_len: int
    arrival_s: float
    deadline_s: float = math.inf
    slo_class: str = "default"
    priority: int = 0
    best_effort: bool = False
    quality_floor: float | None = None
    block_range: tuple[int, int] | None = None
    accuracy_budget: float | None = None
    settings: DecodeSettings = field(default_factory=DecodeSettings)

    @property
    def relative_deadline_s(self) -> float:
        """Arrival to the SLO deadline (inf: none)."""
        return self.deadline_s - self.arrival_s

    def __post_init__(self) -> None:
        rid = self.request_id
        check_row(rid, self.prompt_ids, self.canvas_len, self.settings.block_size)
        if not math.isfinite(self.arrival_s) or math.isnan(self.deadline_s):
            raise ValueError(f"request {rid}: arrival_s must be finite and deadline_s a number")
        if self.quality_floor is not None:
            validate_threshold(self.quality_floor)
            if self.quality_floor > self.settings.threshold:
                raise ValueError(
                    f"request {rid}: quality_floor {self.quality_floor} is above the "
                    f"starting threshold {self.settings.threshold}"
                )
        lo, hi = self.blocks
        if not 0 < lo <= self.settings.block_size <= hi:
            raise ValueError(
                f"request {rid}: block_range {self.block_range} must contain "
                f"settings.block_size {self.settings.block_size}"
            )

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)

    @property
    def seq_len(self) -> int:
        return len(self.prompt_ids) + self.canvas_len

    @property
    def start_threshold(self) -> float:
        return self.settings.threshold

    @property
    def floor(self) -> float:
        return self.settings.threshold if self.quality_floor is None else self.quality_floor

    @property
    def blocks(self) -> tuple[int, int]:
        block = self.settings.block_size
        return self.block_range if self.block_range is not None else (block, block)


class RequestState:
    """The live record of an accepted request, kept in step with the engine's outcomes.

    Block geometry: the current block is [block_start, block_start + block_size); `pending_block`
    is a requested block size not yet in force (it takes effect at the next block start).
    `expected_committed` is what the quality profile predicted for the steps taken, so that
    committed / expected is the request's own correction to the profile's tokens per step.
    """

    __slots__ = (
        "spec",
        "request_id",
        "cache_mode",
        "topk",
        "seq_len",
        "deadline_s",
        "threshold",
        "block_size",
        "pending_block",
        "threshold_rungs",
        "block_rungs",
        "threshold_rung",
        "block_rung",
        "masked_left",
        "block_start",
        "at_block_start",
        "steps",
        "committed",
        "expected_committed",
        "steps_at_change",
        "deferrals",
        "resident",
        "demoted",
        "steps_left",
        "refresh_left",
        "seq",
        "planned_steps",
        "refreshes",
        "drop_committed",
        "planned_drop",
    )

    def __init__(
        self,
        spec: RequestSpec,
        threshold_rungs: tuple[float, ...],
        block_rungs: tuple[int, ...],
        seq: int = 0,
    ) -> None:
        self.spec = spec
        # copies of spec fields read for every row at every step (the spec is immutable)
        self.request_id = spec.request_id
        self.cache_mode = spec.settings.cache_mode
        self.topk = spec.settings.rule == "topk"
        self.seq = seq  # acceptance order: the tie-break of every ordering
        self.seq_len = spec.seq_len
        self.deadline_s = spec.deadline_s
        self.threshold_rungs = threshold_rungs
        self.block_rungs = block_rungs
        self.threshold_rung = 0
        self.block_rung = 0
        self.threshold = threshold_rungs[0]
        self.block_size = block_rungs[0]
        self.pending_block: int | None = None
        self.masked_left = spec.canvas_len
        self.block_start = 0
        self.at_block_start = True
        self.steps = 0
        self.refreshes = 0  # refresh steps taken
        self.committed = 0
        self.expected_committed = 0.0
        self.steps_at_change = 0
        self.deferrals = 0
        self.resident = False
        self.demoted = False
        # the predictor's cached estimate of the work left, refreshed whenever the state changes
        self.steps_left = 0.0
        self.refresh_left = 0.0
        # steps left at the settings it was admitted with, kept while queued for admission checks
        self.planned_steps = 0.0
        # the accuracy budget's ledger (`budget`): committed tokens x their accuracy drop, and the
        # drop the whole request is expected to end with at its current threshold
        self.drop_committed = 0.0
        self.planned_drop = 0.0

    @property
    def next_block(self) -> int:
        """The block size the next block will use."""
        return self.block_size if self.pending_block is None else self.pending_block

    @property
    def next_phase(self) -> Phase:
        if self.at_block_start or self.cache_mode == "none":
            return Phase.REFRESH
        return Phase.REUSE

    @property
    def reuse_query_len(self) -> int:
        """Query rows of a reuse step: the block (dual cache) or block + suffix (prefix cache)."""
        if self.cache_mode == "prefix":
            return self.seq_len - len(self.spec.prompt_ids) - self.block_start
        return self.block_size

    def settings_now(self) -> DecodeSettings:
        return replace(self.spec.settings, threshold=self.threshold, block_size=self.block_size)


class TerminalKind(enum.StrEnum):
    FINISHED = "finished"
    EXPIRED = "expired"  # deadline passed, not best-effort: the server answers DEADLINE_EXCEEDED
    CANCELLED = "cancelled"
    FAILED = "failed"  # the engine ended this row alone (RowOutcome.error): INTERNAL, with why


@dataclass(frozen=True)
class TerminalEvent:
    """The one and only end of an accepted request."""

    kind: TerminalKind
    request_id: str
    at_s: float
    deadline_met: bool
    reason: str
    output_ids: tuple[int, ...] = ()
    finish_reason: FinishReason | None = None
    steps: int = 0
    committed: int = 0
    threshold: float = 0.0
    block_size: int = 0


class Verdict(enum.StrEnum):
    ACCEPTED = "accepted"
    BEST_EFFORT = "best_effort"  # infeasible, accepted because its class allows best effort
    REJECTED = "rejected"


@dataclass(frozen=True)
class AdmissionDecision:
    request_id: str
    verdict: Verdict
    reason: str
    predicted_finish_s: float | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict is not Verdict.REJECTED


def terminal_event(
    state: RequestState,
    kind: TerminalKind,
    now: float,
    reason: str,
    output_ids: tuple[int, ...] = (),
    finish_reason: FinishReason | None = None,
) -> TerminalEvent:
    return TerminalEvent(
        kind=kind,
        request_id=state.request_id,
        at_s=now,
        deadline_met=kind is TerminalKind.FINISHED and now <= state.deadline_s,
        reason=reason,
        output_ids=output_ids,
        finish_reason=finish_reason,
        steps=state.steps,
        committed=state.committed,
        threshold=state.threshold,
        block_size=state.block_size,
    )
