"""What the simulator models of the machine around the replicas: SimOptions.rpc_s (a request's
time outside the worker, half before the worker sees it, half after it finishes) and
SimOptions.step_scale (steps slower than their profile: the CPU replicas share the host with the
request traffic) and SimOptions.loop_s_per_request (the serving loop's own time per request it
takes in, outside steps)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.metrics import Outcome
from sim.policies import POLICIES
from sim.simulator import SimOptions, Simulation
from sim.workload import SimClass, build_workload
from solver.profile_set import resolve_profiles
from solver.types import Cluster
from traces import Fixed, synthetic_trace

PROFILES = resolve_profiles("shipped")
CLUSTER = Cluster.from_spec(f"1x2:{PROFILES.hardware[0]}")


def sparse_workload(slo: float):
    """Requests far apart: each runs alone, so the worker's time is the same with or without
    the RPC delay, and the only difference is the delay itself."""
    trace = synthetic_trace(0.5, count=12, prompt=Fixed(20), output=Fixed(32), seed=3)
    return build_workload(trace, (SimClass(slo_scale=slo),), PROFILES, seed=3)


def run(slo: float, rpc_s: float, workload=None, cluster: Cluster = CLUSTER,
        **host: float) -> Simulation:
    sim = Simulation(workload or sparse_workload(slo), cluster, PROFILES, POLICIES["static"],
                     SimOptions(seed=1, rpc_s=rpc_s, step_jitter=0.0, **host))
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
    """Requests arriving two at once, far apart."""
    trace = synthetic_trace(0.5, count=6, prompt=Fixed(20), output=Fixed(32), seed=3)
    doubled = [r for r in trace.requests for _ in range(2)]
    return build_workload(trace.with_requests(doubled, "each request twice"),
                          (SimClass(slo_scale=5.0),), PROFILES, seed=3, speed_cv=0.0)


def test_step_scale_stretches_every_step():
    base = run(5.0, 0.0)
    slow = run(5.0, 0.0, step_scale=1.5)  # each request alone: its latency is its steps
    assert np.allclose(latencies(slow), 1.5 * latencies(base))
    assert slow.fleet.steps_total == base.fleet.steps_total


def test_loop_time_is_paid_once_for_each_request_a_step_takes_in():
    alone = latencies(run(5.0, 0.0))
    assert np.allclose(latencies(run(5.0, 0.0, loop_s_per_request=0.002)) - alone, 0.002)
    # on one replica, the first request of a pair starts a step at once and the second joins
    # the next: the second waits for both requests' loop time, the first for its own and, when
    # it needs that next step too, the second's
    one = Cluster.from_spec(f"1x1:{PROFILES.hardware[0]}")
    pairs = latencies(run(5.0, 0.0, pairs_workload(), one))
    added = latencies(run(5.0, 0.0, pairs_workload(), one, loop_s_per_request=0.002)) - pairs
    assert np.allclose(added[1::2], 0.004)
    assert np.all(np.isclose(added[0::2], 0.002) | np.isclose(added[0::2], 0.004))


def test_bad_host_options_are_refused():
    with pytest.raises(ValueError, match="rpc_s"):
        SimOptions(rpc_s=-0.001)
    with pytest.raises(ValueError, match="step_scale"):
        SimOptions(step_scale=0.0)
    with pytest.raises(ValueError, match="loop_s_per_request"):
        SimOptions(loop_s_per_request=-1e-3)


def test_rpc_samples_spread_the_way_back_around_the_median():
    base = run(5.0, 0.004)
    samples = (0.002, 0.004, 0.010)
    spread = Simulation(sparse_workload(5.0), CLUSTER, PROFILES, POLICIES["static"],
                        SimOptions(seed=1, rpc_s=0.004, rpc_samples_s=samples, step_jitter=0.0))
    spread.run()
    added = latencies(spread) - latencies(base)  # the drawn time less the median, per request
    assert np.all(np.isclose(added[:, None], np.array(samples) - 0.004).any(axis=1))
    assert len(set(np.round(added, 6))) > 1
    with pytest.raises(ValueError, match="rpc_samples_s"):
        SimOptions(rpc_samples_s=(0.001, -0.001))
