"""What the serving loop tells a request's handler, and what a handler asks of the loop.

Plain dataclasses, no gRPC and no torch: the loop thread builds them, the gRPC handlers (on the
asyncio thread) turn them into stream messages or status codes. A `RequestSink` carries them across
threads; its `send` must be safe to call from the loop thread.
"""

from __future__ import annotations

import enum
import math
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from dilaserve.core.results import FinalResult  # the loop's final event (one record to clients)
from worker.scheduler.requests import RequestSpec


class Failure(enum.StrEnum):
    """Ways a request ends without a final message; the servicer maps each to a gRPC status."""

    REJECTED = "rejected"  # refused at admission -> RESOURCE_EXHAUSTED
    EXPIRED = "expired"  # deadline passed, not best-effort -> DEADLINE_EXCEEDED
    DUPLICATE = "duplicate"  # request id already in flight -> ALREADY_EXISTS
    ENGINE_ERROR = "engine_error"  # engine.step raised -> INTERNAL
    UNAVAILABLE = "unavailable"  # the loop is stopping -> UNAVAILABLE


@dataclass(frozen=True)
class PartialResult:
    request_id: str
    block_index: int
    token_ids: tuple[int, ...]
    text: str
    elapsed_ms: float
    threshold: float


@dataclass(frozen=True)
class FailedResult:
    request_id: str
    failure: Failure
    message: str


Event = PartialResult | FinalResult | FailedResult


class RequestSink(Protocol):
    def send(self, event: Event) -> None: ...


@dataclass(frozen=True)
class ClassCounts:
    name: str
    target_attainment: float
    ended: int
    met: int

    @property
    def attainment(self) -> float:
        return self.met / self.ended if self.ended else 1.0


@dataclass(frozen=True)
class LoopStats:
    """A snapshot taken by the loop thread between steps."""

    queued: int
    running: int
    max_rows: int
    in_flight: int
    accepted: int
    rejected: int
    finished: int
    deadline_met: int
    expired: int
    cancelled: int
    failed: int
    classes: tuple[ClassCounts, ...]
    predicted_step_ms: float
    predicted_drain_ms: float
    backlog_steps: float  # steps the queued and running requests still need, summed
    step_cost_error: float
    step_cost_samples: int
    step_cost_coef: tuple[float, ...]
    step_cost_prior_error: float  # the offline profile's error on the same steps, unrefined
    median_step_ms: float
    steps: int
    step_seconds: float = 0.0  # measured time of every step since the start
    step_prior_seconds: float = 0.0  # the offline profile's prediction of those steps
    busy_seconds: float = 0.0  # the serving loop's time in turns that stepped (steps included)
    machine_scale: float = 1.0  # the factor the step-cost profile is scaled by
    machine_scale_measured: float = math.nan  # the measured one (nan: not measured)
    workload_speed: float = 1.0  # tokens per step over the quality profile's, learned

    @property
    def attainment(self) -> float:
        ended = self.finished + self.expired + self.rejected
        return self.deadline_met / ended if ended else 1.0


# ---- what a handler asks of the loop (its inbox) -----------------------------------------------


@dataclass(frozen=True)
class Submit:
    spec: RequestSpec  # validated
    sink: RequestSink


@dataclass(frozen=True)
class Cancel:
    """The client of this submission (`sink`) is gone."""

    request_id: str
    sink: RequestSink


@dataclass(frozen=True)
class TakeStats:
    future: Future  # of LoopStats


@dataclass(frozen=True)
class Stop:
    grace_s: float


Command = Submit | Cancel | TakeStats | Stop
