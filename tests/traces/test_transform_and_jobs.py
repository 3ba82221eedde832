from __future__ import annotations

import math

import pytest

from traces import (
    CanvasPolicy,
    Trace,
    TraceRequest,
    assign_classes,
    clip_lengths,
    prepare_jobs,
    scale_rate,
    synthetic_trace,
    window,
)


def base() -> Trace:
    return synthetic_trace(4.0, duration_s=500.0, seed=2)


@pytest.mark.parametrize("factor", [0.5, 2.0, 3.3])
def test_scale_by_count_keeps_span(factor):
    trace = base()
    scaled = scale_rate(trace, factor, seed=1)
    assert scaled.duration_s == trace.duration_s
    assert len(scaled) == pytest.approx(factor * len(trace), rel=0.06)
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(scaled.requests, scaled.requests[1:]))
    assert scale_rate(trace, factor, seed=1).requests == scaled.requests
    assert "rate x" in scaled.notes[-1]


def test_scale_by_time_compresses():
    trace = base()
    scaled = scale_rate(trace, 2.0, mode="time")
    assert len(scaled) == len(trace)
    assert scaled.duration_s == pytest.approx(trace.duration_s / 2)
    assert scaled.requests[5].arrival_s == pytest.approx(trace.requests[5].arrival_s / 2)
    with pytest.raises(ValueError, match="mode"):
        scale_rate(trace, 2.0, mode="other")
    with pytest.raises(ValueError, match="> 0"):
        scale_rate(trace, -1.0)


def test_window_shifts_and_keeps_span():
    cut = window(base(), 100.0, 200.0)
    assert cut.duration_s == 100.0
    assert all(0 <= r.arrival_s < 100 for r in cut.requests)
    with pytest.raises(ValueError, match="empty"):
        window(base(), 50.0, 10.0)


def test_clip_lengths_fits_the_model():
    reqs = (TraceRequest(0.0, 5000, 2000), TraceRequest(1.0, 0, 0), TraceRequest(2.0, 10, 33))
    clipped = clip_lengths(Trace("t", reqs), max_prompt=4000, max_output=1024,
                           max_seq_len=4096, block_size=32)
    for r in clipped.requests:
        canvas = math.ceil(r.output_len / 32) * 32
        assert 1 <= r.prompt_len and 1 <= r.output_len <= 1024
        assert r.prompt_len + canvas <= 4096
    assert clipped.requests[0].prompt_len == 4096 - 1024
    assert "1 prompts and 1 outputs cut" in clipped.notes[-1]


def test_assign_classes_shares_and_seed():
    trace = assign_classes(base(), {"chat": 3, "batch": 1}, seed=4)
    share = sum(r.slo_class == "chat" for r in trace.requests) / len(trace)
    assert share == pytest.approx(0.75, abs=0.04)
    assert assign_classes(base(), {"chat": 3, "batch": 1}, seed=4).requests == trace.requests


def test_known_canvas_and_deadlines():
    reqs = (TraceRequest(1.0, 100, 40, "a"), TraceRequest(2.0, 50, 64, "b"))

    def unloaded(prompt: int, canvas: int, decoded: int) -> float:
        return prompt / 100 + decoded / 32

    jobs = prepare_jobs(Trace("t", reqs), CanvasPolicy(32), unloaded, {"a": 2.0, "b": 5.0})
    assert [j.canvas_len for j in jobs] == [64, 64]
    assert jobs[0].deadline_s == pytest.approx(1.0 + 2.0 * (1 + 2))
    assert jobs[1].deadline_s == pytest.approx(2.0 + 5.0 * (0.5 + 2))
    assert not jobs[0].early_stop
    with pytest.raises(ValueError, match="no SLO scale for class 'b'"):
        prepare_jobs(Trace("t", reqs), CanvasPolicy(32), unloaded, {"a": 2.0})


def test_fixed_canvas_stops_at_eos_block():
    reqs = (TraceRequest(0.0, 10, 40), TraceRequest(0.0, 10, 900))
    policy = CanvasPolicy(32, fixed_default=256)
    jobs = prepare_jobs(Trace("t", reqs), policy, lambda p, c, d: d / 32, 3.0)
    assert [j.canvas_len for j in jobs] == [256, 256]
    assert [j.decoded_len for j in jobs] == [64, 256]
    assert jobs[0].early_stop and not jobs[1].early_stop
    assert jobs[0].deadline_s == pytest.approx(3.0 * 2)
    assert "early stop" in policy.describe() and "oracle" in CanvasPolicy(32).describe()
