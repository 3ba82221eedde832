"""Cold start (a cluster that has seen no request) and policy updates (a reloaded policy)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.actions import AddReplica, SetRoutes
from orchestrator.controller import Controller, ControllerConfig, Observation
from tests.orchestrator.test_controller import CHAT, RecordingPlanner, arrivals, make_plan


def test_cold_start_plans_at_the_nominal_rate_with_template_lengths():
    planner = RecordingPlanner(make_plan(count=3))
    ctl = Controller([CHAT], planner, ["n"], [8], ControllerConfig())
    actions = ctl.cold_start(0.0, rate=0.5)
    workload, current = planner.calls[0]
    assert current is None
    assert [c.rate for c in workload.classes] == [0.5]
    assert workload.classes[0].output == CHAT.output
    assert isinstance(actions[0], SetRoutes)
    assert sum(isinstance(a, AddReplica) for a in actions) == 3
    assert ctl.history[-1].reason == "cold start"


def test_update_replans_at_the_next_tick_inside_the_min_interval():
    planner = RecordingPlanner(make_plan())
    ctl = Controller([CHAT], planner, ["n"], [8],
                     ControllerConfig(window_s=60.0, min_interval_s=600.0))
    ctl.tick(Observation(30.0, arrivals(0.0, 30.0, 2.0), (), (8,)))
    ctl.tick(Observation(45.0, arrivals(30.0, 45.0, 2.0), (), (8,)))
    assert len(planner.calls) == 1  # inside min_interval, no drift: no re-plan

    stricter = replace(CHAT, max_accuracy_drop=0.0)
    other = RecordingPlanner(make_plan(count=1))
    ctl.update([stricter], other, "policy file reloaded")
    ctl.tick(Observation(60.0, arrivals(45.0, 60.0, 2.0), (), (8,)))
    assert len(other.calls) == 1 and len(planner.calls) == 1
    assert other.calls[0][0].classes[0].max_accuracy_drop == 0.0
    assert ctl.history[-1].reason == "policy file reloaded"
    ctl.tick(Observation(75.0, arrivals(60.0, 75.0, 2.0), (), (8,)))
    assert len(other.calls) == 1  # the request is used up


def test_update_needs_a_class():
    ctl = Controller([CHAT], RecordingPlanner(make_plan()), ["n"], [8])
    with pytest.raises(ValueError, match="at least one SLO class"):
        ctl.update([])
