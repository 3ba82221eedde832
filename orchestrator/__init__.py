"""The cluster's pure decision logic: routing and the controller loop (no Ray, no gRPC).

The simulator (`sim/`) drives these classes with a modelled clock; the orchestrator service wraps
the very same classes in Ray actors and a gRPC router.
"""

from orchestrator.controller import (
    Controller,
    ControllerConfig,
    Observation,
    PlanRecord,
    plan_replicas,
    plan_routes,
)
from orchestrator.load import Arrival, ClassLoad, LoadEstimator
from orchestrator.reconcile import reconcile
from orchestrator.router import (
    DeadlineAwareRouter,
    LeastLoadedRouter,
    RoundRobinRouter,
    Router,
    predicted_latency,
)
from orchestrator.types import (
    Action,
    AddReplica,
    RemoveReplica,
    ReplicaConfig,
    ReplicaState,
    ReplicaView,
    Route,
    RouteDecision,
    RouteRequest,
    SetRoutes,
    SetThresholdRange,
)

__all__ = [
    "Action", "AddReplica", "Arrival", "ClassLoad", "Controller", "ControllerConfig",
    "DeadlineAwareRouter", "LeastLoadedRouter", "LoadEstimator", "Observation", "PlanRecord",
    "RemoveReplica", "ReplicaConfig", "ReplicaState", "ReplicaView", "RoundRobinRouter", "Route",
    "RouteDecision", "RouteRequest", "Router", "SetRoutes", "SetThresholdRange",
    "plan_replicas", "plan_routes", "predicted_latency", "reconcile",
]
