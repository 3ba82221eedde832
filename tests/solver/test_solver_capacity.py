"""The capacity model: its batch arithmetic against the step-cost model and the worker's
predictor, the chain's properties, monotonicity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dilaserve.core.steps import Phase, RowShape, query_len, step_features
from dilaserve.profiles.step_cost import StepCostModel
from solver.batch_model import acceptance, alone_s, max_moments, rows_of, step_seconds
from solver.capacity import (
    CapacityQuery,
    ReplicaQueue,
    attainment,
    capacity_table,
    replica_capacity,
    service_affine,
)
from solver.length_mix import LengthMix
from solver.types import LengthDist, ServingModel
from tests.solver.solver_helpers import COEF
from worker.scheduler.predictor import BatchShape

COST = StepCostModel(COEF)
MIX = LengthMix.from_dists(LengthDist(128, 256), LengthDist(96, 160), 32)


def query(tps=3.0, deadline=0.5, target=0.95, max_batch=16, cache="dual", mix=MIX,
          tries=1, **serving) -> CapacityQuery:
    deadlines = None if deadline is None else (deadline,) * len(mix)
    return CapacityQuery(COST, cache, mix, 32, tps, deadlines, target, max_batch,
                         ServingModel(**serving), tries)


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


@pytest.mark.parametrize("cache", ["dual", "prefix", "none"])
def test_time_alone_is_the_lockstep_service_at_batch_one(cache):
    pairs = [(100, 96), (700, 32), (50, 320)]
    rows = rows_of(LengthMix.from_pairs(pairs), 32, 3.5, cache, speed_cv=0.3)
    expected = [sum(service_affine(COST, cache, p, c, 32, 3.5)) for p, c in pairs]
    assert alone_s(COEF, rows, cache) == pytest.approx(expected, rel=1e-9)


def test_expected_maximum_by_enumeration():
    values, probs = np.array([10.0, 30.0, 20.0]), np.array([0.5, 0.2, 0.3])
    first, second = max_moments(values, probs, 3)
    for k in range(1, 4):
        draws = list(itertools.product(range(3), repeat=k))
        p = [np.prod(probs[list(d)]) for d in draws]
        m = [values[list(d)].max() for d in draws]
        assert first[k] == pytest.approx(np.dot(p, m))
        assert second[k] == pytest.approx(np.dot(p, [x * (x + 1) for x in m]))
    assert first[0] == second[0] == 0


@pytest.mark.parametrize("cache", ["dual", "prefix"])
def test_step_time_of_identical_rows_is_the_binomial_mix_of_step_costs(cache):
    prompt, canvas, tps, rows_n, cap = 200, 64, 4.0, 6, 4
    rows = rows_of(LengthMix.from_pairs([(prompt, canvas)]), 32, tps, cache, 0.0)
    seq, p = prompt + canvas, rows.refresh_share
    reuse_q = 32 if cache == "dual" else (canvas + 32) // 2
    expected = 0.0
    for k in range(rows_n + 1):
        chance = math.comb(rows_n, k) * p**k * (1 - p) ** (rows_n - k)
        shape = ([RowShape(seq, seq, Phase.REFRESH)] * min(k, cap)
                 + [RowShape(seq, reuse_q, Phase.REUSE)] * (rows_n - k))
        expected += chance * COST.predict(step_features(shape))
    assert step_seconds(COEF, rows, 16, cap, cache)[rows_n] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("held", [0, 3, 9])
def test_admission_is_the_worker_predictors_rule(held):
    """One length: accepted exactly when steps x the predictor's step time x 1.1 fits."""
    prompt, canvas, tps = 300, 96, 4.0
    rows = rows_of(LengthMix.from_pairs([(prompt, canvas)]), 32, tps, "dual", 0.0)
    n, p, seq = held + 1, rows.nominal_share, prompt + canvas
    shape = BatchShape(n * (1 - p), n * p, (1 - p) ** n, p**n, 32, seq)
    need = float(rows.steps_nominal[0]) * shape.step_seconds(COEF) * 1.1
    for deadline, accepted in ((need * 1.001, 1.0), (need * 0.999, 0.0)):
        got = acceptance(COEF, rows, np.array([deadline]), 16, 12, 0.1)[held, 0]
        assert got == accepted


def test_attainment_at_capacity_is_the_target_and_falls_with_load():
    cap = replica_capacity(query(deadline=1.0, target=0.9))
    assert cap.rate > 0
    assert attainment(cap, cap.rate) == pytest.approx(0.9, abs=2e-3)
    chain = ReplicaQueue(query(deadline=1.0, target=0.9))
    values = [chain.attainment(f * cap.rate) for f in (0.5, 0.8, 1.0, 1.3, 2.0)]
    assert values == sorted(values, reverse=True)
    assert values[0] > 0.9 > values[3]


def test_a_deadline_shorter_than_a_request_alone_gives_zero_with_a_reason():
    cap = replica_capacity(query(deadline=0.01))
    assert cap.rate == 0
    assert "even alone" in cap.reason


def test_best_effort_is_utilised_full_batch_throughput():
    q = query(deadline=None, max_batch=16)
    chain = ReplicaQueue(q)
    assert replica_capacity(q).rate == pytest.approx(0.9 * chain.throughput(16))


def test_more_router_tries_never_lose_capacity():
    one = replica_capacity(query(deadline=1.0, target=0.9)).rate
    three = replica_capacity(query(deadline=1.0, target=0.9, tries=3)).rate
    assert three > one


def test_table_matches_one_by_one():
    qs = [query(tps=t, deadline=d) for t in (1.5, 4.0) for d in (0.3, 1.0, None)]
    assert capacity_table(qs) == [replica_capacity(q) for q in qs]


@settings(max_examples=15, deadline=None)
@given(tps=st.floats(1.5, 8.0), more=st.floats(0.2, 4.0), deadline=st.floats(0.3, 3.0),
       extra=st.floats(0.1, 2.0), target=st.sampled_from([0.5, 0.9, 0.95]))
def test_capacity_monotone_in_threshold_deadline_and_target(tps, more, deadline, extra, target):
    base = replica_capacity(query(tps=tps, deadline=deadline, target=target)).rate
    # a lower threshold commits more tokens per step: never less capacity
    faster = replica_capacity(query(tps=tps + more, deadline=deadline, target=target)).rate
    assert faster >= base * (1 - 1e-3)
    later = replica_capacity(query(tps=tps, deadline=deadline + extra, target=target)).rate
    assert later >= base * (1 - 1e-3)
    stricter = replica_capacity(query(tps=tps, deadline=deadline, target=0.99)).rate
    assert stricter <= base * (1 + 1e-3)
