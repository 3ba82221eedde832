from __future__ import annotations

import pytest

from orchestrator.router import (
    DeadlineAwareRouter,
    LeastLoadedRouter,
    RoundRobinRouter,
    predicted_latency,
)
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView, Route, RouteRequest

FAST = ReplicaConfig("A100x8", 2, 32, 0.7, 0.9)
SLOW = ReplicaConfig("A100x8", 1, 32, 0.9, 0.9)


def view(rid: int, config: ReplicaConfig = SLOW, *, active: int = 0, backlog: float = 0.0,
         state: ReplicaState = ReplicaState.ACTIVE, step: float = 0.1, row: float = 0.01,
         tps: float = 3.2) -> ReplicaView:
    return ReplicaView(rid, config, state, 0, active, min(active, 8), 8, backlog, step, row, tps)


def request(deadline: float = 100.0, canvas: int = 64, cls: str = "chat") -> RouteRequest:
    return RouteRequest("r1", cls, 100, canvas, 0.0, deadline)


def test_predicted_latency_counts_own_steps_and_slot_wait():
    idle = view(0)
    # 2 blocks of 32 at 3.2 tokens/step = 20 steps, one row: 0.1 + 0.01
    assert predicted_latency(request(), idle) == pytest.approx(20 * 0.11)
    full = view(1, active=9, backlog=90.0)
    # 2 requests ahead of a free slot, 10 steps each, over 8 slots, at 8 rows
    assert predicted_latency(request(), full) == pytest.approx((20 + 2 * 10 / 8) * 0.18)


def test_a_backlog_of_lower_priority_work_waits_behind_a_higher_priority_request():
    # 8 rows, 200 active: 195 at priority 0 (best-effort work), 5 at priority 2
    busy = ReplicaView(0, SLOW, ReplicaState.ACTIVE, 0, 200, 8, 8, 2000.0, 0.1, 0.01, 3.2,
                       active_by_priority=((0, 195), (2, 5)))
    assert busy.ahead_of(0) == 200 and busy.ahead_of(1) == 5 + 8 and busy.ahead_of(2) == 13
    assert busy.ahead_of(3) == 8  # nothing of its priority: a row's worth of lower work
    high = RouteRequest("r1", "chat", 100, 64, 0.0, 100.0, priority=2)
    low = RouteRequest("r2", "chat", 100, 64, 0.0, 100.0, priority=0)
    # 10 steps per active request: 6 ahead past the 8 slots for the high one, 193 for the low
    assert predicted_latency(high, busy) == pytest.approx((20 + 6 * 10 / 8) * 0.18)
    assert predicted_latency(low, busy) == pytest.approx((20 + 193 * 10 / 8) * 0.18)
    # without the split every active request is ahead, whatever the priority
    unsplit = view(1, active=200, backlog=2000.0)
    assert predicted_latency(high, unsplit) == predicted_latency(low, busy)


def test_round_robin_cycles_over_accepting_replicas():
    router = RoundRobinRouter()
    views = [view(0), view(1, state=ReplicaState.DRAINING), view(2), view(3)]
    picks = [router.route(request(), views, 0.0).replica_id for _ in range(5)]
    assert picks == [0, 2, 3, 0, 2]
    shed = router.route(request(), [view(0, state=ReplicaState.LOADING)], 0.0)
    assert shed.shed and "no replica" in shed.reason


def test_least_loaded_joins_the_shortest_queue():
    views = [view(0, active=9, backlog=300.0), view(1, active=2, backlog=20.0), view(2, FAST),
             view(3, FAST)]
    decision = LeastLoadedRouter().route(request(), views, 0.0)
    assert decision.replica_id == 2  # idle, and ties go to the lower id
    assert decision.predicted_latency_s == pytest.approx(predicted_latency(request(), views[2]))


def test_deadline_aware_prefers_feasible_then_routed_and_rotates():
    router = DeadlineAwareRouter([Route("chat", FAST, 1.0)], shed_margin=1.0, tries=3)
    views = [view(0, SLOW), view(1, FAST), view(2, FAST)]
    first = router.route(request(), views, 0.0)
    second = router.route(request(), views, 0.0)
    assert {first.replica_id, second.replica_id} == {1, 2}  # routed ones, taking turns
    assert first.reason == "deadline-aware" and len(first.fallbacks) == 2
    assert first.fallbacks[-1] == 0  # the unrouted replica is the last resort
    # a routed replica predicted late goes behind an unrouted one predicted on time
    busy = view(1, FAST, active=9, backlog=900.0)
    decision = router.route(request(deadline=5.0), [view(0, SLOW), busy], 0.0)
    assert decision.replica_id == 0 and "overflow" in decision.reason
    assert decision.fallbacks == (1,)


def test_deadline_aware_falls_back_and_sheds():
    router = DeadlineAwareRouter([Route("chat", FAST, 1.0)], shed_margin=0.0, tries=1)
    views = [view(0, SLOW), view(1, FAST, state=ReplicaState.LOADING)]
    fallback = router.route(request(), views, 0.0)
    assert fallback.replica_id == 0 and "overflow" in fallback.reason and not fallback.fallbacks
    # predicted 2.2 s against a 1 s budget, no margin: shed
    tight = router.route(request(deadline=1.0), [view(0, FAST)], 0.0)
    assert tight.shed and "predicted" in tight.reason
    lenient = DeadlineAwareRouter([Route("chat", FAST, 1.0)], shed_margin=2.0)
    kept = lenient.route(request(deadline=1.0), [view(0, FAST)], 0.0)
    assert kept.replica_id == 0 and "predicted late" in kept.reason
    assert router.route(request(), [], 0.0).shed


def test_deadline_aware_classes_without_routes_use_any_replica():
    router = DeadlineAwareRouter([Route("chat", FAST, 1.0)])
    assert router.route(request(cls="batch"), [view(4, SLOW)], 0.0).replica_id == 4
    with pytest.raises(ValueError):
        DeadlineAwareRouter(shed_margin=-1)
    with pytest.raises(ValueError):
        DeadlineAwareRouter(tries=0)
