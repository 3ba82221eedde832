"""The host calibration's arithmetic, on counters and outcomes made by hand."""

from __future__ import annotations

import math

import pytest

from dilaserve.livebench.calibrate import StepCounters, calibration_requests, host_calibration
from dilaserve.livebench.client import LiveOutcome
from tests.livebench.test_mapping import workload


def finished(latency_ms: float, replica_ms: float) -> LiveOutcome:
    return LiveOutcome(0, "met", 0.0, latency_ms / 1e3, replica_ms=replica_ms)


BEFORE = {"a": StepCounters(10.0, 9.0, 11.0, 100), "b": StepCounters(5.0, 5.0, 6.0, 50)}
# over the replay: a stepped 3.0 s for 2.4 s predicted, b 1.8 s for 1.6 s; busy 0.5 s more
# than stepping in all, over 250 requests taken in
AFTER = {"a": StepCounters(13.0, 11.4, 14.3, 250), "b": StepCounters(6.8, 6.6, 8.0, 150)}


def test_the_three_figures_come_from_the_counters_and_the_requests():
    outcomes = [finished(10.0, 7.0), finished(12.0, 8.0), finished(20.0, 17.5),
                LiveOutcome(1, "expired", 0.0, math.nan)]
    host = host_calibration(BEFORE, AFTER, outcomes, 50.0)
    assert host.step_scale == pytest.approx(4.8 / 4.0)
    assert host.loop_s_per_request == pytest.approx(0.5 / 250)
    assert host.rpc_s == pytest.approx(0.003)  # the median of 3.0, 4.0 and 2.5 ms
    assert host.requests == 3
    assert sorted(host.rpc_samples_s) == pytest.approx([0.0025, 0.003, 0.004])
    assert host.to_dict()["rpc_ms"]["p50"] == pytest.approx(3.0)
    options = host.options(seed=7)
    assert (options.seed, options.step_scale, options.rpc_s) == (7, host.step_scale, 0.003)
    assert options.rpc_samples_s == host.rpc_samples_s
    assert "x1.20 the profile" in host.describe()


def test_a_replica_missing_at_either_reading_is_left_out():
    host = host_calibration({**BEFORE, "c": StepCounters(1, 1, 1, 1)},
                            {**AFTER, "d": StepCounters(9, 9, 9, 9)}, [finished(5, 4)], 1.0)
    assert host.step_scale == pytest.approx(4.8 / 4.0)


def test_nothing_measured_is_an_error_that_says_what():
    with pytest.raises(ValueError, match="no replica"):
        host_calibration({"a": BEFORE["a"]}, {"b": AFTER["b"]}, [finished(5, 4)], 1.0)
    with pytest.raises(ValueError, match="no profiled steps"):
        host_calibration(BEFORE, BEFORE, [finished(5, 4)], 1.0)
    with pytest.raises(ValueError, match="no calibration request finished"):
        host_calibration(BEFORE, AFTER, [LiveOutcome(0, "shed", 0.0, math.nan)], 1.0)


def test_calibration_requests_come_at_the_compared_rate_under_new_ids():
    w = workload()
    rate = 0.8 * len(w.requests) / w.duration_s
    requests = calibration_requests(w, rate, 2.0)
    assert len(requests) == round(rate * 2.0)
    assert all(0 <= r.at_s < 2.0 for r in requests)
    assert [r.at_s for r in requests] == sorted(r.at_s for r in requests)
    assert all(r.request_id.startswith("calibration-") for r in requests)
    assert [r.index for r in requests] == list(range(len(requests)))
    # longer than the workload, or more requests than it has: all of it, at the rate
    everything = calibration_requests(w, 2 * len(w.requests) / w.duration_s, 10 * w.duration_s)
    assert len(everything) == len(w.requests)
    with pytest.raises(ValueError, match="no requests"):
        calibration_requests(w, 0.0, 1.0)
