"""The planner's step costs follow the replicas' machine factors: a median per hardware, the same
10% dead band as the workers, and profiles scaled by it (the router's view carries the factor)."""

from __future__ import annotations

import math

import pytest

from dilaserve.core.locations import SHIPPED_PROFILES_DIR
from orchestrator.profile_scale import (
    describe_scales,
    measured_scales,
    planning_scales,
    scaled_profiles,
)
from orchestrator.service.views import TypicalRequest, replica_view
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView
from proto import dilaserve_pb2 as pb
from solver.profile_set import load_profile_set

CONFIG = ReplicaConfig("cpu", 1, 32, 0.5, 0.9)
NODES = ("cpu-a", "cpu-b")


def view(replica_id: int, node: int, scale: float,
         state: ReplicaState = ReplicaState.ACTIVE) -> ReplicaView:
    return ReplicaView(replica_id, CONFIG, state, node, 0, 0, 4, 0.0, 1e-3, 1e-3, 4.0, scale)


def test_median_per_hardware_of_the_replicas_that_reported():
    views = [view(0, 0, 1.9), view(1, 0, 2.0), view(2, 0, 5.0),
             view(3, 1, 1.0), view(4, 1, math.nan),  # not polled yet
             view(5, 1, 3.0, ReplicaState.LOADING)]
    assert measured_scales(views, NODES) == {"cpu-a": 2.0, "cpu-b": 1.0}


def test_planning_scales_move_only_past_the_dead_band():
    assert planning_scales({}, {"cpu-a": 1.08}) == {}
    assert planning_scales({}, {"cpu-a": 1.9}) == {"cpu-a": 1.9}
    assert planning_scales({"cpu-a": 1.9}, {"cpu-a": 2.05}) == {"cpu-a": 1.9}
    assert planning_scales({"cpu-a": 1.9}, {"cpu-a": 1.0}) == {"cpu-a": 1.0}
    # a hardware no replica reports on keeps its factor
    assert planning_scales({"cpu-a": 1.9}, {"cpu-b": 1.5}) == {"cpu-a": 1.9, "cpu-b": 1.5}


def test_scaled_profiles_scale_that_hardware_only():
    profiles = load_profile_set(SHIPPED_PROFILES_DIR)
    hardware = profiles.hardware[0]
    scaled = scaled_profiles(profiles, {hardware: 2.0, "gpu-elsewhere": 3.0})
    for before, after in zip(profiles.step_costs, scaled.step_costs, strict=True):
        factor = 2.0 if before.hardware == hardware else 1.0
        assert after.cost.coef == pytest.approx(tuple(factor * c for c in before.cost.coef))
    assert scaled_profiles(profiles, {hardware: 1.0}) is profiles
    # what the planner's capacity model reads: a step there is twice as long
    assert scaled.cost(hardware, 1).coef == pytest.approx(
        tuple(2 * c for c in profiles.cost(hardware, 1).coef))
    assert describe_scales({hardware: 2.0}) == f"{hardware} x2.00"


class _Endpoint:
    replica_id, config, node, state = 7, CONFIG, 0, ReplicaState.ACTIVE


def test_the_router_view_carries_the_workers_factor():
    typical = TypicalRequest(32.0, 64.0)
    stats = pb.StatsReply(step_cost_coef=[1e-3, 1e-5, 1e-5, 1e-8], max_rows=4,
                          tokens_per_step=4.0, block_size=32, machine_scale=1.8)
    assert replica_view(_Endpoint, stats, 0, True, typical, "dual").machine_scale == 1.8
    stats.machine_scale = 0.0  # a worker from before the field: unscaled
    assert replica_view(_Endpoint, stats, 0, True, typical, "dual").machine_scale == 1.0
    assert math.isnan(replica_view(_Endpoint, None, 0, True, typical, "dual").machine_scale)
