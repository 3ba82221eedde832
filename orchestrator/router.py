"""Which replica gets a request, or shed: `route(request, replicas, now) -> RouteDecision`.

Three routers, one interface (all pure; `now` is input):
- `RoundRobinRouter`: the next accepting replica in id order (what a plain load balancer does);
- `LeastLoadedRouter`: join the shortest queue (fewest active requests per row slot);
- `DeadlineAwareRouter`: replicas predicted to meet the deadline first, the plan's replicas for
  the class before the others, rotating among equals, with fallbacks when a worker's admission
  refuses; sheds what no replica can finish in time (see the class).

Predicted latency (`predicted_latency`): the request's own steps (its blocks at the start
threshold's tokens per step, at least one step per block) plus, when every row slot is taken, a
wait for a slot (the requests ahead of it, each with the mean backlog per active request, over the
row slots), times the step time with one more row. Ahead of it are the active requests of its
priority or higher and at most a row's worth of lower-priority ones (`ReplicaView.ahead_of`): a
worker queues by priority first, so a backlog of low-priority (best-effort) work does not make
the router shed a request the worker would serve before that backlog.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from dilaserve.policy.cluster import ROUTER_KINDS
from orchestrator.types import ReplicaView, Route, RouteDecision, RouteRequest


def request_steps(request: RouteRequest, block_size: int, tokens_per_step: float) -> float:
    blocks = math.ceil(request.canvas_len / block_size)
    return blocks * max(1.0, block_size / max(tokens_per_step, 1e-9))


def predicted_latency(request: RouteRequest, view: ReplicaView) -> float:
    own = request_steps(request, view.config.block_size, view.tokens_per_step)
    wait = 0.0
    ahead = view.ahead_of(request.priority)
    if ahead >= view.max_rows:
        per_request = view.backlog_steps / max(1, view.active)
        wait = (ahead + 1 - view.max_rows) * per_request / view.max_rows
    rows = min(view.active + 1, view.max_rows)
    return (own + wait) * view.step_s(rows)


class Router(Protocol):
    def route(self, request: RouteRequest, replicas: Sequence[ReplicaView],
              now: float) -> RouteDecision: ...


def _shed(request: RouteRequest, reason: str) -> RouteDecision:
    return RouteDecision(request.request_id, None, f"shed: {reason}")


class RoundRobinRouter:
    def __init__(self) -> None:
        self._next = 0

    def route(self, request: RouteRequest, replicas: Sequence[ReplicaView],
              now: float) -> RouteDecision:
        ready = [v for v in replicas if v.accepting]
        if not ready:
            return _shed(request, "no replica is accepting")
        ready.sort(key=lambda v: v.replica_id)
        view = next((v for v in ready if v.replica_id >= self._next), ready[0])
        self._next = view.replica_id + 1
        return RouteDecision(request.request_id, view.replica_id, "round robin")


class LeastLoadedRouter:
    """Join the shortest queue: the accepting replica with the fewest active requests per row
    slot (ties: the smaller predicted latency, then the lower id)."""

    def route(self, request: RouteRequest, replicas: Sequence[ReplicaView],
              now: float) -> RouteDecision:
        best, best_key = None, None
        for view in replicas:
            if view.accepting:
                key = (view.active / view.max_rows, predicted_latency(request, view),
                       view.replica_id)
                if best_key is None or key < best_key:
                    best, best_key = view, key
        if best is None:
            return _shed(request, "no replica is accepting")
        return RouteDecision(request.request_id, best.replica_id, "least loaded", best_key[1])


class DeadlineAwareRouter:
    """Offers a request first to the replicas predicted to meet its deadline, among them first to
    the ones the plan routes its class to (the rest are overflow: spare replicas, other classes'
    replicas; the class's quality floor travels with the request), in rotating order so that
    load spreads the way round robin spreads it; the next `tries - 1` are fallbacks should a
    worker's admission refuse it. Sheds when even the fastest replica's predicted latency exceeds
    the time to the deadline by more than `shed_margin` (relative).

    Rotation rather than least-predicted-latency first: in simulation under overload, ranking by
    the predicted latency (or by queue length) evened load out so well that the workers'
    admission, which plans for the replica's typical batch, turned away more requests than it
    did under round robin (docs/simulator.md has the numbers)."""

    def __init__(self, routes: Sequence[Route] = (), shed_margin: float = 1.0,
                 tries: int = 3) -> None:
        if shed_margin < 0:
            raise ValueError(f"shed_margin must be >= 0, got {shed_margin}")
        if tries < 1:
            raise ValueError(f"tries must be >= 1, got {tries}")
        self.shed_margin = shed_margin
        self.tries = tries
        self._turn = 0
        self.set_routes(routes)

    def set_routes(self, routes: Sequence[Route]) -> None:
        """Every route the plan lists, planned load or not (a plan lists its spare replicas for
        the classes they may serve, with no planned load)."""
        self._configs: dict[str, set] = {}
        for r in routes:
            self._configs.setdefault(r.slo_class, set()).add(r.config)

    def route(self, request: RouteRequest, replicas: Sequence[ReplicaView],
              now: float) -> RouteDecision:
        ready = [v for v in replicas if v.accepting]
        if not ready:
            return _shed(request, "no replica is accepting")
        wanted = self._configs.get(request.slo_class)
        budget = request.deadline_s - now
        ranked = []
        fastest = math.inf
        for view in ready:
            latency = predicted_latency(request, view)
            fastest = min(fastest, latency)
            routed = wanted is None or view.config in wanted
            ranked.append((latency > budget, not routed, view.replica_id))
        if fastest > budget * (1.0 + self.shed_margin):
            return RouteDecision(request.request_id, None,
                                 f"shed: predicted {fastest:.3g} s on the fastest replica, "
                                 f"{budget:.3g} s to the deadline", fastest)
        ranked.sort()
        tier = [r for r in ranked if r[:2] == ranked[0][:2]]
        turn = self._turn % len(tier)
        self._turn += 1
        order = tier[turn:] + tier[:turn] + ranked[len(tier):]
        late, unrouted, best = order[0]
        how = "deadline-aware" + (" (overflow)" if unrouted else "") + \
            (" (predicted late)" if late else "")
        fallbacks = tuple(r[2] for r in order[1:self.tries])
        return RouteDecision(request.request_id, best, how, fastest, fallbacks)


def make_router(kind: str, shed_margin: float = 1.0) -> Router:
    """A router by name (`ROUTER_KINDS`); `shed_margin` is the deadline-aware router's."""
    if kind == "round_robin":
        return RoundRobinRouter()
    if kind == "least_loaded":
        return LeastLoadedRouter()
    if kind == "deadline_aware":
        return DeadlineAwareRouter((), shed_margin)
    raise ValueError(f"router kind must be one of {', '.join(ROUTER_KINDS)}, got {kind!r}")
