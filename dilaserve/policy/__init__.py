"""SLO policy: the classes a worker serves (deadline, quality floor, priority, best effort), the
worker's settings with its scheduler's (`scheduler_config`), and the cluster's (`cluster`).
Bottom layer: validated YAML at the boundary (`schema`, `loader`), frozen dataclasses inside."""

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
