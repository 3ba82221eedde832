"""Plain typed data between the cluster's decision logic and whatever runs it (the simulator, the
Ray runtime and the router): replica configurations and views, routing requests and decisions
(the controller's actions on replicas are in `orchestrator.actions`). Frozen, no behaviour beyond
small derived values."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


def check_replica_settings(where: str, tp: int, block_size: int, threshold_min: float,
                           threshold_max: float) -> None:
    """ValueError naming `where` unless TP and block size are >= 1 and the threshold range is
    0 < threshold_min <= threshold_max <= 1."""
    if tp < 1 or block_size < 1:
        raise ValueError(f"{where}: tp and block_size must be >= 1, got {tp}, {block_size}")
    if not 0 < threshold_min <= threshold_max <= 1:
        raise ValueError(f"{where}: need 0 < threshold_min <= threshold_max <= 1, got "
                         f"{threshold_min}, {threshold_max}")


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """What a replica is: TP degree on a node type, and the decode settings it gives new requests
    (start at threshold_max; load control may lower a request to threshold_min)."""

    node_type: str
    tp: int
    block_size: int
    threshold_min: float
    threshold_max: float

    def __post_init__(self) -> None:
        check_replica_settings("replica config", self.tp, self.block_size, self.threshold_min,
                               self.threshold_max)

    @property
    def slot(self) -> tuple[str, int]:
        """What changing costs a reload: (node type, TP degree). Thresholds are free."""
        return (self.node_type, self.tp)

    def describe(self) -> str:
        tau = (f"{self.threshold_max:g}" if self.threshold_min == self.threshold_max
               else f"{self.threshold_min:g}-{self.threshold_max:g}")
        return f"TP{self.tp} tau {tau} B{self.block_size} on {self.node_type}"


class ReplicaState(enum.StrEnum):
    LOADING = "loading"  # weights loading: takes no requests yet
    ACTIVE = "active"
    DRAINING = "draining"  # takes no new requests; ends when its requests have ended


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """A replica's load as the router and controller see it (reported by the worker).

    A step of r rows is predicted to take `step_base_s + r * row_step_s`; `backlog_steps` is the
    steps its active requests still need (each at the start threshold's rate); `tokens_per_step`
    is the rate a new request starts at; `machine_scale` is the factor the worker scales its
    step-cost profile by (its Stats: 1 within 10% or not calibrated; nan: not polled yet);
    `active_by_priority` splits `active` by the requests' priority, as (priority, count) pairs
    (empty: not known, every active request counts as ahead of a new one)."""

    replica_id: int
    config: ReplicaConfig
    state: ReplicaState
    node: int  # index of the node it runs on
    active: int  # accepted requests not yet ended (resident + queued)
    resident: int
    max_rows: int
    backlog_steps: float
    step_base_s: float
    row_step_s: float
    tokens_per_step: float
    machine_scale: float = math.nan
    active_by_priority: tuple[tuple[int, int], ...] = ()

    @property
    def accepting(self) -> bool:
        return self.state is ReplicaState.ACTIVE

    def ahead_of(self, priority: int) -> int:
        """The active requests a new one of `priority` waits behind: the worker orders its queue
        by priority first, so only those of its priority or higher, plus the lower-priority ones
        that may hold every row slot (rows are not pre-empted), at most `max_rows` of them."""
        if not self.active_by_priority:
            return self.active
        higher = sum(n for p, n in self.active_by_priority if p >= priority)
        return higher + min(self.active - higher, self.max_rows)

    def step_s(self, rows: int) -> float:
        return self.step_base_s + max(1, rows) * self.row_step_s


@dataclass(frozen=True, slots=True)
class RouteRequest:
    request_id: str
    slo_class: str
    prompt_len: int
    canvas_len: int
    arrival_s: float
    deadline_s: float = math.inf
    priority: int = 0  # the worker's queue order: higher goes first (the class's, or its own)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """`replica_id` gets the request (None: shed); if its worker's admission refuses it, the
    caller offers it to `fallbacks` in order (the router's next choices), and rejects it only
    when all of them refuse."""

    request_id: str
    replica_id: int | None  # None: shed
    reason: str
    predicted_latency_s: float = math.nan
    fallbacks: tuple[int, ...] = ()

    @property
    def shed(self) -> bool:
        return self.replica_id is None


@dataclass(frozen=True, slots=True)
class Route:
    """A share of a class's load for replicas of one configuration."""

    slo_class: str
    config: ReplicaConfig
    fraction: float
