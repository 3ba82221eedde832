"""The planner's step costs scaled to the machines the replicas run on.

Each worker measures how far its steps are off its step-cost profile and reports the factor it
scales the profile by (`ReplicaView.machine_scale`, from its Stats; see
`dilaserve.profiles.machine_scale`). The controller plans with the same profiles scaled per
hardware by the median factor of that hardware's reporting replicas, and changes the factor it
plans with only when that median moves more than the workers' own 10% dead band from it (each
change re-plans).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from dilaserve.profiles.machine_scale import DEAD_BAND, outside_dead_band
from dilaserve.profiles.step_cost import StepCostModel
from orchestrator.types import ReplicaState, ReplicaView
from solver.profile_set import ProfileSet


def measured_scales(views: Sequence[ReplicaView], node_hardware: Sequence[str]
                    ) -> dict[str, float]:
    """{hardware: the median factor of its serving replicas that reported one}."""
    by_hardware: dict[str, list[float]] = {}
    for v in views:
        scale = v.machine_scale
        if v.state is ReplicaState.LOADING or not (math.isfinite(scale) and scale > 0):
            continue
        by_hardware.setdefault(node_hardware[v.node], []).append(scale)
    return {hw: statistics.median(scales) for hw, scales in by_hardware.items()}


def planning_scales(current: Mapping[str, float], measured: Mapping[str, float],
                    dead_band: float = DEAD_BAND) -> dict[str, float]:
    """The factors to plan with: each hardware's current one (1 when none yet) unless its
    replicas' median is outside the dead band around it; a hardware no replica reports on
    keeps its factor."""
    out = dict(current)
    for hw, scale in measured.items():
        if outside_dead_band(current.get(hw, 1.0), scale, dead_band):
            out[hw] = scale
    return out


def scaled_profiles(profiles: ProfileSet, scales: Mapping[str, float]) -> ProfileSet:
    """`profiles` with each step-cost profile of a hardware in `scales` scaled by its factor."""
    by_name = {hw.lower(): s for hw, s in scales.items()}
    if all(s == 1.0 for s in by_name.values()):
        return profiles
    steps = []
    for p in profiles.step_costs:
        factor = by_name.get(p.hardware.lower(), 1.0)
        cost = StepCostModel(tuple(c * factor for c in p.cost.coef))  # type: ignore[arg-type]
        steps.append(dataclasses.replace(p, cost=cost) if factor != 1.0 else p)
    return dataclasses.replace(profiles, step_costs=tuple(steps))


def describe_scales(scales: Mapping[str, float]) -> str:
    return ", ".join(f"{hw} x{s:.2f}" for hw, s in sorted(scales.items())) or "none measured"
