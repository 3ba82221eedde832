"""The capacity approximation: service time, queueing tail, monotonicity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dilaserve.core.steps import Phase, RowShape, query_len, step_features
from dilaserve.profiles.step_cost import StepCostModel
from solver.capacity import (
    CapacityQuery,
    attainment,
    capacity_table,
    erlang_c,
    latency,
    replica_capacity,
    service_affine,
    wait_tail,
)
from solver.types import LengthDist
from tests.solver.solver_helpers import COEF

COST = StepCostModel(COEF)


def query(tps=3.0, deadline=0.5, target=0.95, max_batch=64, cache="dual", prompt=(128, 256),
          output=(128, 128), block=32) -> CapacityQuery:
    return CapacityQuery(COST, cache, LengthDist(*prompt), LengthDist(*output), block, tps,
                         deadline, target, max_batch)


@pytest.mark.parametrize("cache", ["dual", "prefix", "none"])
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_service_time_is_the_sum_of_step_costs(cache, batch):
    prompt, canvas, block, tps = 100, 96, 32, 4.0
    seq = prompt + canvas
    steps = block / tps
    total = 0.0
    for start in range(0, canvas, block):
        refresh = [RowShape(seq, seq, Phase.REFRESH)] * batch
        total += COST.predict(step_features(refresh))
        if cache == "none":
            total += (steps - 1) * COST.predict(step_features(refresh))
            continue
        q = query_len(Phase.REUSE, cache, seq, prompt + start, prompt + start + block)
        total += (steps - 1) * COST.predict(step_features([RowShape(seq, q, Phase.REUSE)] * batch))
    s0, s1 = service_affine(COST, cache, prompt, canvas, block, tps)
    assert s0 + s1 * batch == pytest.approx(total, rel=1e-9)


def test_output_is_rounded_up_to_whole_blocks():
    q1, q2 = query(output=(100, 100)), query(output=(128, 128))
    assert latency(q1, 4, tail=False) == pytest.approx(latency(q2, 4, tail=False))


def test_erlang_c_known_values():
    assert float(erlang_c(np.array(2), np.array(1.0))) == pytest.approx(1 / 3)
    assert float(erlang_c(np.array(1), np.array(0.7))) == pytest.approx(0.7)


def test_single_slot_tail_is_kingman_md1():
    lam, s, t = 2.0, 0.3, 0.4
    rho = lam * s
    assert wait_tail(lam, 1, s, t) == pytest.approx(rho * math.exp(-2 * (1 / s - lam) * t))
    assert wait_tail(lam, 1, s, 0.0) == 1.0
    assert wait_tail(0.0, 1, s, t) == 0.0


def test_attainment_at_capacity_is_the_target():
    q = query(deadline=0.4, target=0.9)
    cap = replica_capacity(q)
    assert cap.rate > 0
    assert attainment(cap, 0.4, cap.rate) == pytest.approx(0.9, abs=1e-4)
    assert attainment(cap, 0.4, 0.5 * cap.rate) > 0.9
    assert cap.service_s < 0.4  # the p90 latency at the planned batch fits the deadline


def test_deadline_shorter_than_a_lone_request_gives_zero_with_a_reason():
    cap = replica_capacity(query(deadline=0.01))
    assert cap.rate == 0
    assert "exceeds the deadline" in cap.reason


def test_best_effort_is_utilised_max_batch_throughput():
    q = query(deadline=None, max_batch=16)
    cap = replica_capacity(q)
    assert cap.batch == 16
    assert cap.rate == pytest.approx(0.9 * 16 / latency(q, 16, tail=False))


def test_table_matches_one_by_one():
    qs = [query(tps=t, deadline=d) for t in (1.5, 4.0) for d in (0.3, 1.0, None)]
    assert capacity_table(qs) == [replica_capacity(q) for q in qs]


@settings(max_examples=25, deadline=None)
@given(tps=st.floats(1.0, 8.0), more=st.floats(0.01, 4.0), deadline=st.floats(0.1, 3.0),
       extra=st.floats(0.01, 2.0), target=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_capacity_monotone_in_threshold_and_deadline(tps, more, deadline, extra, target):
    base = replica_capacity(query(tps=tps, deadline=deadline, target=target)).rate
    # a lower threshold commits more tokens per step: never less capacity
    faster = replica_capacity(query(tps=tps + more, deadline=deadline, target=target)).rate
    assert faster >= base * (1 - 1e-6)
    later = replica_capacity(query(tps=tps, deadline=deadline + extra, target=target)).rate
    assert later >= base * (1 - 1e-6)
    stricter = replica_capacity(query(tps=tps, deadline=deadline, target=0.999)).rate
    assert stricter <= base * (1 + 1e-6)
