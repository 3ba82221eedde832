"""Quality-aware placement: how a cluster is split into dLLM replicas and how load is routed.

`solve(cluster, workload, profiles, policy, current=None) -> Plan` is the entry point; see
docs/solver.md for the model.
"""

from __future__ import annotations

from solver.capacity import Capacity, CapacityQuery, replica_capacity
from solver.plan import ClassOutcome, Plan, ReplicaGroup, Route
from solver.solve import solve
from solver.tp_extrapolation import TpOverhead
from solver.types import (
    Cluster,
    LengthDist,
    NodeType,
    ObjectiveWeights,
    Policy,
    Profiles,
    SloClass,
    SolverOptions,
    Workload,
)

__all__ = [
    "Capacity", "CapacityQuery", "ClassOutcome", "Cluster", "LengthDist", "NodeType",
    "ObjectiveWeights", "Plan", "Policy", "Profiles", "ReplicaGroup", "Route", "SloClass",
    "SolverOptions", "TpOverhead", "Workload", "replica_capacity", "solve",
]
