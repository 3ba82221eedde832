"""The capacity check: its bisection, and the capacity model held to the simulator on a small
synthetic workload (the full per-trace check is `dilaserve bench --capacity-check`)."""

from __future__ import annotations

import pytest

from sim.capacity_check import _bisect, capacity_check, ranking
from solver.profile_set import resolve_profiles
from traces import LogNormal, synthetic_trace

PROFILES = resolve_profiles("llada-8b")


def test_bisection_finds_where_attainment_crosses_the_target():
    capacity, probes = _bisect(lambda rate: 1.0 - 0.1 * rate / 3.0, 1.0, 0.9)
    assert capacity == pytest.approx(3.0, rel=0.01)
    assert all(a >= 0.9 for r, a in probes if r <= 2.97)
    capacity, _ = _bisect(lambda rate: 1.0 - 0.1 * rate / 3.0, 10.0, 0.9)  # from above
    assert capacity == pytest.approx(3.0, rel=0.01)


@pytest.mark.parametrize("tp, replicas", [(2, 1), (8, 1)])
def test_model_agrees_with_the_simulator_on_a_synthetic_mix(tp, replicas):
    trace = synthetic_trace(1.0, count=800, prompt=LogNormal(900, 0.9),
                            output=LogNormal(150, 0.9), seed=3)
    (cell,) = capacity_check(PROFILES, trace, 5.0, lambda _: replicas, (tp,), (0.8,),
                             requests=800, seed=1)
    assert cell.simulated > 0
    assert abs(cell.error) < 0.15  # the per-trace check reaches ~5%; 800 requests are noisy
    assert ranking([cell], "predicted") == [tp]
