"""The engine's typed step boundary. Imports no torch: the scheduler and the simulator use it too.

A StepPlan goes in (rows to admit with their request data, rows to run, rows to evict, per-row
setting changes); a StepResult comes out (per-row outcomes and the step's measured time). A row's
phase is not in the plan: it follows from the row's state (a row at a block start refreshes).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Container
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

COMMIT_RULES = ("threshold", "factor", "topk")
CACHE_MODES = ("none", "prefix", "dual")


class Phase(enum.StrEnum):
    REFRESH = "refresh"  # full forward over prompt + canvas, rewriting the row's K/V cache
    REUSE = "reuse"  # forward of the current block (dual) or block + suffix (prefix) only


class FinishReason(enum.StrEnum):
    EOS = "eos"  # the model ended the answer (a stop token)
    LENGTH = "length"  # the canvas filled up
    CANCELLED = "cancelled"  # the server stopped it (shutdown past its grace); never the engine


@dataclass(frozen=True)
class DecodeSettings:
    """How one request decodes. `rule_param` is k for topk (default 1) and f for factor (default
    0.5); threshold uses `threshold`."""

    threshold: float = 0.9
    block_size: int = 32
    rule: str = "threshold"
    rule_param: float | None = None
    cache_mode: str = "dual"
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        validate_threshold(self.threshold)
        if self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        if self.rule not in COMMIT_RULES:
            raise ValueError(f"unknown commit rule {self.rule!r}; known: {', '.join(COMMIT_RULES)}")
        if self.cache_mode not in CACHE_MODES:
            raise ValueError(
                f"unknown cache mode {self.cache_mode!r}; known: {', '.join(CACHE_MODES)}"
            )
        p = self.param
        if self.rule == "topk" and (p < 1 or p != int(p)):
            raise ValueError(f"topk needs a whole k >= 1, got {p}")
        if self.rule == "factor" and not 0 < p < 1:
            raise ValueError(f"factor f must be in (0, 1), got {p}")
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    @property
    def param(self) -> float:
        if self.rule_param is not None:
            return float(self.rule_param)
        return {"topk": 1.0, "factor": 0.5}.get(self.rule, self.threshold)


def validate_threshold(tau: float) -> None:
    if not (isinstance(tau, (int, float)) and 0 < tau <= 1):
        raise ValueError(f"threshold must be in (0, 1], got {tau}")


def check_row(request_id: str, prompt_ids: tuple[int, ...], canvas_len: int,
              block_size: int) -> None:
    """ValueError unless a request has a prompt and a canvas of whole blocks (the scheduler's
    RequestSpec and the engine's AdmitRow both hold to it)."""
    if not prompt_ids:
        raise ValueError(f"request {request_id}: prompt is empty")
    if canvas_len <= 0:
        raise ValueError(f"request {request_id}: canvas length must be positive, got {canvas_len}")
    if canvas_len % block_size:
        raise ValueError(f"request {request_id}: canvas length {canvas_len} is not a multiple of "
                         f"block size {block_size}")


@dataclass(frozen=True)
class AdmitRow:
    request_id: str
    prompt_ids: tuple[int, ...]
    canvas_len: int
    settings: DecodeSettings = field(default_factory=DecodeSettings)

    def __post_init__(self) -> None:
        check_row(self.request_id, self.prompt_ids, self.canvas_len, self.settings.block_size)

    @property
    def seq_len(self) -> int:
        return len(self.prompt_ids) + self.canvas_len


@dataclass(frozen=True)
class SettingsChange:
    """Applies from the row's next step; a block-size change from its next block start."""

    request_id: str
    threshold: float | None = None
    block_size: int | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None:
            validate_threshold(self.threshold)
        if self.block_size is not None and self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")


@dataclass(frozen=True)
class StepPlan:
    admit: tuple[AdmitRow, ...] = ()
    run: tuple[str, ...] = ()
    evict: tuple[str, ...] = ()
    changes: tuple[SettingsChange, ...] = ()


class RowOutcome(NamedTuple):
    """One row's result of one step. A NamedTuple rather than a frozen dataclass: one is built
    for every row of every step, and a NamedTuple builds about 4x faster."""

    request_id: str
    phase: Phase
    committed: int  # tokens committed this step
    masked_left: int  # masked tokens left in the whole canvas
    block_finished: bool
    done: bool
    finish_reason: FinishReason | None = None
    block_tokens: tuple[int, ...] = ()  # the finished block's tokens, when block_finished
    output_ids: tuple[int, ...] = ()  # the whole canvas up to (not including) EOS, when done
    # the row ended alone (done, nothing committed): why, e.g. its probabilities were not finite
    error: str = ""


@dataclass(frozen=True)
class StepFeatures:
    """What a step costs, in the terms the step-cost model is fitted on (padded, as executed)."""

    forwards: int = 0
    refresh_tokens: int = 0
    reuse_tokens: int = 0
    attended_kv: int = 0

    def as_vector(self) -> tuple[float, float, float, float]:
        return (
            float(self.forwards),
            float(self.refresh_tokens),
            float(self.reuse_tokens),
            float(self.attended_kv),
        )


@dataclass(frozen=True)
class StepResult:
    outcomes: tuple[RowOutcome, ...]
    elapsed_s: float
    features: StepFeatures


@dataclass(frozen=True)
class EngineLimits:
    max_rows: int
    max_tokens: int  # prompt + canvas tokens summed over rows in flight
    max_seq_len: int  # one row's prompt + canvas

    def check_new_row(self, admit: AdmitRow, in_flight: Container[str]) -> None:
        """ValueError for a row no engine may take: one already in flight, or too long."""
        if admit.request_id in in_flight:
            raise ValueError(f"engine: row {admit.request_id!r} is already in flight")
        if admit.seq_len > self.max_seq_len:
            raise ValueError(
                f"request {admit.request_id}: prompt + canvas = {admit.seq_len} tokens "
                f"exceeds the engine's limit of {self.max_seq_len}"
            )


@dataclass(frozen=True)
class RowShape:
    """A row as the cost model sees it: its full length, its query length this step, its phase."""

    seq_len: int
    query_len: int
    phase: Phase


def step_features(rows: list[RowShape] | tuple[RowShape, ...]) -> StepFeatures:
    """Features of one step: refresh rows and reuse rows each run as one padded forward."""
    forwards = refresh = reuse = attended = 0
    for phase in (Phase.REFRESH, Phase.REUSE):
        group = [r for r in rows if r.phase is phase]
        if not group:
            continue
        forwards += 1
        queries = max(r.query_len for r in group) * len(group)
        keys = max(r.seq_len for r in group) + 1  # +1: the workspace's scratch column
        attended += queries * keys
        if phase is Phase.REFRESH:
            refresh += queries
        else:
            reuse += queries
    return StepFeatures(forwards, refresh, reuse, attended)


def padded_features(refresh_lens: list[int], reuse_lens: list[int],
                    reuse_queries: list[int]) -> StepFeatures:
    """`step_features` from the rows' lengths gathered by phase (and each reuse row's query
    length): the flat form the scheduler and the simulated engine build for every step."""
    refresh_long = max(refresh_lens, default=0)
    reuse_long = max(reuse_lens, default=0)
    refresh_tokens = len(refresh_lens) * refresh_long
    reuse_tokens = len(reuse_lens) * max(reuse_queries, default=0)
    attended = (refresh_tokens * (refresh_long + 1) if refresh_lens else 0) + (
        reuse_tokens * (reuse_long + 1) if reuse_lens else 0
    )
    return StepFeatures((len(refresh_lens) > 0) + (len(reuse_lens) > 0), refresh_tokens,
                        reuse_tokens, attended)


def query_len(phase: Phase, cache_mode: str, seq_len: int, block_start: int, block_end: int) -> int:
    if phase is Phase.REFRESH:
        return seq_len
    if cache_mode == "prefix":
        return seq_len - block_start
    return block_end - block_start


class Engine(Protocol):
    """What the serving loop and the simulated replica ask of an engine: its limits, and one step
    of a plan. The dense engine (`worker.engine.engine`), rank 0 of a tensor-parallel replica
    (`worker.parallel.engine`), the null engine and the simulator's engine all satisfy it."""

    @property
    def limits(self) -> EngineLimits: ...

    def step(self, plan: StepPlan) -> StepResult: ...
