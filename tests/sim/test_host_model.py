"""What the simulator models of the machine around the replicas: SimOptions.rpc_s (a request's
time outside the worker, half before the worker sees it, half after it finishes) and
SimOptions.host_slowdown (replicas sharing a host's cores step slower together)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.metrics import Outcome
from sim.policies import POLICIES
from sim.profiles import resolve_profiles
from sim.simulator import SimOptions, Simulation
from sim.workload import SimClass, build_workload
from solver.types import Cluster
from traces import Fixed, synthetic_trace

PROFILES = resolve_profiles("shipped")
CLUSTER = Cluster.from_spec(f"1x2:{PROFILES.hardware[0]}")


def sparse_workload(slo: float):
    """Requests far apart: each runs alone, so the worker's time is the same with or without
    the RPC delay, and the only difference is the delay itself."""
    trace = synthetic_trace(0.5, count=12, prompt=Fixed(20), output=Fixed(32), seed=3)
    return build_workload(trace, (SimClass(slo_scale=slo),), PROFILES, seed=3)


def run(slo: float, rpc_s: float, host_slowdown: tuple[float, ...] = (),
        workload=None) -> Simulation:
    sim = Simulation(workload or sparse_workload(slo), CLUSTER, PROFILES, POLICIES["static"],
                     SimOptions(seed=1, rpc_s=rpc_s, host_slowdown=host_slowdown,
                                step_jitter=0.0))
    sim.run()
    return sim


def latencies(sim: Simulation) -> np.ndarray:
    arrivals = np.array([j.arrival_s for j in sim.workload.jobs])
    return sim.records.end_s - arrivals


def test_rpc_time_adds_to_every_latency_and_nothing_else():
    base, slow = run(5.0, 0.0), run(5.0, 0.004)
    assert np.allclose(latencies(slow) - latencies(base), 0.004)
    assert (slow.records.outcome == base.records.outcome).all()


def test_a_deadline_the_worker_meets_is_missed_when_the_answer_arrives_after_it():
    slo = 2.0
    deadlines = np.array([j.deadline_s - j.arrival_s for j in sparse_workload(slo).jobs])
    alone = run(slo, 0.0)
    assert (alone.records.outcome == Outcome.MET).all()
    slack = (deadlines - latencies(alone)).min()
    late = run(slo, 2 * slack + 1e-3)  # the way back alone is longer than the least slack
    assert (late.records.outcome != Outcome.MET).any()
    assert ((late.records.outcome == Outcome.MET) | (late.records.outcome == Outcome.LATE)).all()
    assert (latencies(late)[late.records.outcome == Outcome.LATE]
            > deadlines[late.records.outcome == Outcome.LATE]).all()


def pairs_workload():
    """Requests arriving two at once, far apart: round robin puts one on each replica, so
    both replicas step together."""
    trace = synthetic_trace(0.5, count=6, prompt=Fixed(20), output=Fixed(32), seed=3)
    doubled = [r for r in trace.requests for _ in range(2)]
    return build_workload(trace.with_requests(doubled, "each request twice"),
                          (SimClass(slo_scale=5.0),), PROFILES, seed=3, speed_cv=0.0)


def test_replicas_stepping_together_take_the_hosts_slowdown():
    alone = run(5.0, 0.0, (1.0, 2.5))  # one request at a time: one replica steps
    assert np.allclose(latencies(alone), latencies(run(5.0, 0.0)))
    together = latencies(run(5.0, 0.0, (1.0, 2.5), pairs_workload()))
    apart = latencies(run(5.0, 0.0, (), pairs_workload()))
    # a pair whose two requests take as many steps step together all along; in a pair where
    # one takes a step more, that last step runs alone, at the unshared speed
    same = np.repeat(apart[0::2] == apart[1::2], 2)
    assert same.sum() >= 4 and (~same).sum() >= 2
    assert np.allclose(together[same], 2.5 * apart[same])
    shorter = np.repeat(np.minimum(apart[0::2], apart[1::2]), 2)[~same]
    assert np.allclose(together[~same], 2.5 * shorter + (apart[~same] - shorter))


def test_bad_host_options_are_refused():
    with pytest.raises(ValueError, match="rpc_s"):
        SimOptions(rpc_s=-0.001)
    with pytest.raises(ValueError, match="host_slowdown"):
        SimOptions(host_slowdown=(1.0, 0.5))
