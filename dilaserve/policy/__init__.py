"""SLO policy: the classes a worker serves (deadline, quality floor, priority, best effort), the
worker's settings with its scheduler's (`scheduler_config`), and the cluster's (`cluster`, with
who may call it and over what in `security`).
Bottom layer: validated YAML at the boundary (`schema`, `loader`), frozen dataclasses inside."""

from dilaserve.policy.types import (
    Policy,
    SloClass,
    ThresholdRange,
    WorkerSettings,
    default_policy,
    profiled_block,
)


def __getattr__(name: str):
    """The YAML loader (pydantic, yaml) loads on first use: the scheduler and the serving loop
    read only the types, and run where pydantic is not installed."""
    if name in ("load_policy", "parse_policy"):
        from dilaserve.policy import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
