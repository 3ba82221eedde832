"""The router's replica set: pushes from the controller, in-flight counts, polls."""

from __future__ import annotations

import pytest

from orchestrator.service import ReplicaEndpoint, ReplicaPool
from orchestrator.types import ReplicaConfig, ReplicaState
from proto import dilaserve_pb2 as pb

CONFIG = ReplicaConfig("cpu", 1, 8, 0.5, 0.9)


def at(replica_id: int, target: str, state=ReplicaState.ACTIVE) -> ReplicaEndpoint:
    return ReplicaEndpoint(replica_id, target, CONFIG, 0, state)


def test_a_push_returns_the_replicas_that_left_or_moved_and_keeps_the_rest():
    pool = ReplicaPool("dual")
    assert pool.set_endpoints([at(0, "a:1"), at(1, "b:1")]) == []
    assert pool.started(0, "a:1") and pool.started(1, "b:1")
    gone = pool.set_endpoints([at(0, "a:1", ReplicaState.DRAINING), at(1, "c:1"), at(2, "d:1")])
    assert gone == [at(1, "b:1")]  # replica 1 moved: a new replica under the same id
    assert pool.in_flight() == {0: 1, 1: 0, 2: 0}
    assert pool.endpoint(0).state is ReplicaState.DRAINING
    pool.ended(1, "b:1")  # the old replica 1's request ending does not touch the new one
    pool.ended(0, "a:1")
    assert pool.in_flight() == {0: 0, 1: 0, 2: 0}
    assert not pool.started(1, "b:1") and not pool.started(9, "x:1")
    with pytest.raises(ValueError, match="unique"):
        pool.set_endpoints([at(0, "a:1"), at(0, "b:1")])


def test_in_flight_requests_are_counted_by_priority():
    pool = ReplicaPool("dual")
    pool.set_endpoints([at(0, "a:1")])
    for priority in (0, 0, 0, 2):
        assert pool.started(0, "a:1", priority)
    pool.ended(0, "a:1", 0)
    (view,) = pool.views()
    assert view.active == 3 and view.active_by_priority == ((0, 2), (2, 1))
    pool.ended(0, "a:1", 2)
    (view,) = pool.views()
    assert view.active_by_priority == ((0, 2),)


def test_polls_and_failed_calls_decide_health():
    pool = ReplicaPool("dual", clock=lambda: 7.0)
    pool.set_endpoints([at(0, "a:1"), at(1, "b:1")])
    pool.record_poll(at(0, "a:1"), pb.StatsReply(max_rows=4, step_cost_coef=(1e-3, 0, 0, 0)))
    pool.record_poll(at(1, "b:1"), None, "UNAVAILABLE: connection refused")
    pool.record_poll(at(1, "old:1"), pb.StatsReply(max_rows=9))  # a stale target: ignored
    accepting = {v.replica_id: v.accepting for v in pool.views()}
    assert accepting == {0: True, 1: False}
    first, second = pool.snapshots()
    assert first.polled_at == 7.0 and first.stats.max_rows == 4 and first.healthy
    assert not second.healthy and second.error.startswith("UNAVAILABLE") and second.stats is None
    pool.mark_unhealthy(0, "UNAVAILABLE: gone")
    assert not any(v.accepting for v in pool.views())
    pool.record_poll(at(0, "a:1"), pb.StatsReply(max_rows=4))
    assert {v.replica_id: v.accepting for v in pool.views()} == {0: True, 1: False}
