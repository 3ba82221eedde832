from __future__ import annotations

from pathlib import Path

import pytest

from sim.experiments import BenchSetup, run_grid
from sim.policies import POLICIES
from sim.workload import SimClass
from solver.profile_set import resolve_profiles
from solver.types import Cluster
from traces import load_trace, window

AZURE_CONV = Path(__file__).resolve().parents[3] / "shared" / "traces" / "azure_llm_2023_conv.csv"


@pytest.mark.slow
@pytest.mark.skipif(not AZURE_CONV.is_file(), reason="needs ../shared/traces (not in a clone)")
def test_ten_minutes_of_azure_conversation_under_overload():
    trace = window(load_trace(AZURE_CONV), 1200.0, 1800.0)
    setup = BenchSetup(trace, (SimClass(slo_scale=5.0),), Cluster.from_spec("2x8:A100"),
                       resolve_profiles("llada-8b"))
    names = ("static", "static+edf", "static+edf+threshold", "dilaserve")
    results = {r.policy: r.summary for r in
               run_grid(setup, [POLICIES[n] for n in names], [1.5], [1.0])}
    # under overload, admission and least-slack ordering beat FCFS, threshold control adds more
    assert results["static"].attainment < results["static+edf"].attainment
    assert results["static+edf"].attainment < results["static+edf+threshold"].attainment
    assert results["dilaserve"].mean_threshold < 0.9
    for s in results.values():
        assert s.met + s.late + s.expired + s.rejected + s.shed == s.requests
