"""From what the router knows of a replica to the `ReplicaView` the pure router decides on.

- state: the controller's (LOADING, ACTIVE, DRAINING); an ACTIVE replica that failed its last poll
  or a call, or that reports itself draining, is seen as DRAINING (takes nothing new);
- active: the router's own requests on it (live; the polled queue is up to a period old, and the
  router is the cluster's only front door), split by priority; resident: as many of them as fit
  in its rows;
- backlog_steps: active x the worker's steps left per request (its Stats: backlog_steps over
  queued + running), or a typical request's steps when it reported none;
- step time: `orchestrator.step_model` (as the simulator) from the worker's online step-cost
  coefficients (its profile's scaled by its machine factor, then refined online), its tokens per
  step at its max threshold and a typical request's length;
- before a first poll nothing is known: no step time, so it is predicted to be quick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.step_model import step_time_model
from orchestrator.types import ReplicaState, ReplicaView
from proto import dilaserve_pb2 as pb

SEQ_AVERAGING = 0.02  # weight of the newest request in the running means (as the simulator)
UNPOLLED_MAX_ROWS = 1 << 20  # rows of a replica not polled yet: unknown, so not a limit


@dataclass(frozen=True)
class TypicalRequest:
    """Running means of the requests the router has seen (0 before the first)."""

    prompt_len: float = 0.0
    canvas_len: float = 0.0

    def with_request(self, prompt_len: int, canvas_len: int) -> TypicalRequest:
        if self.canvas_len == 0.0:
            return TypicalRequest(float(prompt_len), float(canvas_len))
        w = SEQ_AVERAGING
        return TypicalRequest(self.prompt_len + (prompt_len - self.prompt_len) * w,
                              self.canvas_len + (canvas_len - self.canvas_len) * w)

    @property
    def seq_len(self) -> float:
        return self.prompt_len + self.canvas_len


def replica_view(endpoint, stats: pb.StatsReply | None, in_flight: int, healthy: bool,
                 typical: TypicalRequest, cache_mode: str,
                 by_priority: tuple[tuple[int, int], ...] = ()) -> ReplicaView:
    """`endpoint` is a ReplicaEndpoint (replica id, config, node, state); `by_priority` splits
    `in_flight` by priority ((priority, count) pairs)."""
    state = endpoint.state
    if state is ReplicaState.ACTIVE and (not healthy or (stats is not None and stats.draining)):
        state = ReplicaState.DRAINING
    config = endpoint.config
    if stats is None or len(stats.step_cost_coef) != 4:
        return ReplicaView(endpoint.replica_id, config, state, endpoint.node, in_flight,
                           in_flight, UNPOLLED_MAX_ROWS, 0.0, 0.0, 0.0, 1.0,
                           active_by_priority=by_priority)
    block = stats.block_size or config.block_size
    rate = stats.tokens_per_step
    rate = min(max(rate, 1.0), float(block)) if math.isfinite(rate) and rate > 0 else 1.0
    max_rows = max(1, stats.max_rows)
    reported = stats.queued + stats.running
    if reported > 0:
        per_request = stats.backlog_steps / reported
    else:
        per_request = math.ceil(typical.canvas_len / block) * max(1.0, block / rate)
    seq = typical.seq_len or float(block)
    base, row = step_time_model(tuple(stats.step_cost_coef), block, rate, seq, cache_mode)
    scale = stats.machine_scale if math.isfinite(stats.machine_scale) else 0.0
    # 0: a worker built before the field (unscaled)
    return ReplicaView(endpoint.replica_id, config, state, endpoint.node, in_flight,
                       min(in_flight, max_rows), max_rows, in_flight * per_request, base, row,
                       rate, scale if scale > 0 else 1.0, by_priority)
