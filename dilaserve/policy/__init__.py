"""SLO policy: the classes a worker serves (deadline, quality floor, priority, best effort)."""

from dilaserve.policy.loader import load_policy, parse_policy
from dilaserve.policy.types import (
    Policy,
    SloClass,
    ThresholdRange,
    WorkerSettings,
    default_policy,
    profiled_block,
)

__all__ = [
    "Policy",
    "SloClass",
    "ThresholdRange",
    "WorkerSettings",
    "default_policy",
    "load_policy",
    "parse_policy",
    "profiled_block",
]
