"""The live bench's notes say each replica's machine factor beside its step time."""

from __future__ import annotations

from dilaserve.livebench.run import _step_notes, machine_words
from proto import dilaserve_pb2 as pb


def stats(measured: float, applied: float) -> pb.StatsReply:
    return pb.StatsReply(median_step_ms=5.0, step_cost_prior_error=0.48, step_seconds=10.0,
                         step_prior_seconds=5.2, busy_seconds=12.0, accepted=100,
                         machine_scale_measured=measured, machine_scale=applied)


def test_each_replicas_factor_is_in_the_notes():
    before = {"a": pb.StatsReply(), "b": pb.StatsReply()}
    after = {"a": stats(1.93, 1.93), "b": stats(1.04, 1.0)}
    notes = _step_notes(before, after)
    assert notes[0] == ("median step per replica: 5.0 ms (profile off by 48%; measured x1.93 "
                        "the profile, profile scaled x1.93), 5.0 ms (profile off by 48%; "
                        "measured x1.04 the profile, within 10%: profile as is)")


def test_a_replica_without_calibration_says_so():
    assert machine_words(pb.StatsReply(machine_scale_measured=float("nan"))) == "not calibrated"
    assert machine_words(pb.StatsReply()) == "not calibrated"  # a worker before the field
