"""The controller's actions: what it asks of whatever runs the replicas (the simulated fleet, the
Ray fleet). `reconcile` and the controller make them; each fleet's `apply` carries them out."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.types import ReplicaConfig, Route


@dataclass(frozen=True, slots=True)
class AddReplica:
    """Start a replica of this configuration on a node of its type (it serves after loading)."""

    config: ReplicaConfig
    node: int


@dataclass(frozen=True, slots=True)
class RemoveReplica:
    """Stop routing to a replica; with drain, it finishes its requests before its GPUs free up."""

    replica_id: int
    drain: bool = True


@dataclass(frozen=True, slots=True)
class SetThresholdRange:
    """New decode settings for a replica's new requests (free: no reload)."""

    replica_id: int
    config: ReplicaConfig


@dataclass(frozen=True, slots=True)
class SetRoutes:
    routes: tuple[Route, ...]


Action = AddReplica | RemoveReplica | SetThresholdRange | SetRoutes
