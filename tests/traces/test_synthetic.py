from __future__ import annotations

import numpy as np
import pytest

from traces import Fixed, LogNormal, Uniform, parse_lengths, synthetic_trace


def gaps(trace) -> np.ndarray:
    return np.diff([0.0] + [r.arrival_s for r in trace.requests])


@pytest.mark.parametrize("cv", [1.0, 0.5, 2.0])
def test_arrival_rate_and_cv(cv):
    trace = synthetic_trace(10.0, count=40_000, cv=cv, seed=3)
    g = gaps(trace)
    assert g.mean() == pytest.approx(0.1, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.06)


def test_duration_mode_fills_the_span():
    trace = synthetic_trace(5.0, duration_s=400.0, seed=1)
    assert trace.duration_s == 400.0
    assert all(r.arrival_s < 400.0 for r in trace.requests)
    assert len(trace) == pytest.approx(2000, rel=0.1)


def test_deterministic_under_seed():
    a = synthetic_trace(2.0, count=500, cv=1.5, prompt=LogNormal(300, 1.0), seed=7)
    b = synthetic_trace(2.0, count=500, cv=1.5, prompt=LogNormal(300, 1.0), seed=7)
    c = synthetic_trace(2.0, count=500, cv=1.5, prompt=LogNormal(300, 1.0), seed=8)
    assert a.requests == b.requests
    assert a.requests != c.requests


def test_length_distributions():
    rng = np.random.default_rng(0)
    sample = LogNormal(200, 0.8).sample(rng, 50_000)
    assert sample.min() >= 1
    assert sample.mean() == pytest.approx(200, rel=0.03)
    assert sample.std() / sample.mean() == pytest.approx(0.8, rel=0.08)
    uni = Uniform(5, 9).sample(rng, 1000)
    assert uni.min() == 5 and uni.max() == 9
    assert (Fixed(7).sample(rng, 3) == 7).all()


def test_parse_lengths():
    assert parse_lengths("64") == Fixed(64)
    assert parse_lengths("uniform:1:10") == Uniform(1, 10)
    assert parse_lengths("lognormal:100:0.5") == LogNormal(100.0, 0.5)
    with pytest.raises(ValueError, match="length spec"):
        parse_lengths("normal:1:2")
    with pytest.raises(ValueError, match="lo <= hi"):
        parse_lengths("uniform:9:1")


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        synthetic_trace(1.0)
    with pytest.raises(ValueError, match="rate must be > 0"):
        synthetic_trace(0.0, count=10)
    with pytest.raises(ValueError, match="cv must be > 0"):
        synthetic_trace(1.0, count=10, cv=0.0)
