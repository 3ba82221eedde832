"""The cluster as the controller sees it: nodes (indexed as the pure controller indexes them),
their device count and type, and how to pin a replica's bundles to a node.

From the policy's `cluster.nodes` when it lists them (a planned shape: bundles go wherever Ray
fits them), else from what Ray reports: GPU nodes grouped by accelerator type, each pinned by its
`node:IP` resource. A cluster without GPUs (the embedded default) is one node of `cpu_slots`
CPU replicas, whose node type is the CPU hardware the step-cost profiles were measured on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dilaserve.policy.cluster import ClusterSettings
from solver.types import Cluster, NodeType

GPU, CPU = "gpu", "cpu"


@dataclass(frozen=True)
class Node:
    index: int
    name: str  # the solver's node-type name, e.g. "H100x8"; plans refer to nodes by it
    hardware: str  # the step-cost profiles' hardware name
    devices: int
    pin: str | None = None  # a Ray resource that only this node has (bundles ask for a bit of it)


@dataclass(frozen=True)
class ClusterShape:
    nodes: tuple[Node, ...]
    device: str  # GPU: bundles ask for {"GPU": 1}; CPU: for {"CPU": threads}

    @property
    def node_types(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def devices_per_node(self) -> tuple[int, ...]:
        return tuple(n.devices for n in self.nodes)

    def solver_cluster(self) -> Cluster:
        groups: dict[str, NodeType] = {}
        for n in self.nodes:
            g = groups.get(n.name)
            groups[n.name] = NodeType((g.count if g else 0) + 1, n.devices, n.hardware, n.name)
        return Cluster(tuple(groups.values()))

    def describe(self) -> str:
        unit = "GPUs" if self.device == GPU else "CPU replica slots"
        return ", ".join(f"node {n.index}: {n.devices} {unit} ({n.hardware})" for n in self.nodes)


def _cpu_hardware(profiled: Sequence[str]) -> str:
    cpu = [h for h in profiled if h.lower().startswith("cpu")]
    if not cpu:
        raise ValueError(f"the cluster has no GPUs and the profiles have no CPU step-cost profile "
                         f"(profiled hardware: {list(profiled)}); run `dilaserve profile` here")
    return sorted(cpu)[0]


def _gpu_hardware(resources: Mapping[str, float], profiled: Sequence[str]) -> str:
    labels = [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
    if labels:
        return labels[0]
    gpu = [h for h in profiled if not h.lower().startswith("cpu")]
    if len(gpu) == 1:
        return gpu[0]
    raise ValueError("a GPU node reports no accelerator type and the profiles do not name exactly "
                     "one GPU; list the nodes in the policy's cluster.nodes")


def cluster_shape(settings: ClusterSettings, ray_nodes: Sequence[Mapping],
                  profiled_hardware: Sequence[str]) -> ClusterShape:
    """`ray_nodes`: `ray.nodes()`; `profiled_hardware`: the step-cost profiles' hardware names."""
    alive = [n for n in ray_nodes if n.get("Alive", True)]
    has_gpus = any(n.get("Resources", {}).get("GPU", 0) >= 1 for n in alive)
    if settings.nodes:
        nodes = []
        for group in settings.nodes:
            for _ in range(group.count):
                nodes.append(Node(len(nodes), f"{group.node_type}x{group.gpus_per_node}",
                                  group.node_type, group.gpus_per_node))
        return ClusterShape(tuple(nodes), GPU if has_gpus else CPU)
    if not has_gpus:
        hardware = _cpu_hardware(profiled_hardware)
        return ClusterShape((Node(0, f"{hardware}x{settings.cpu_slots}", hardware,
                                  settings.cpu_slots),), CPU)
    nodes = []
    for n in sorted(alive, key=lambda n: n.get("NodeManagerAddress", "")):
        resources = n.get("Resources", {})
        gpus = int(resources.get("GPU", 0))
        if gpus < 1:
            continue
        hardware = _gpu_hardware(resources, profiled_hardware)
        pin = next((k for k in resources
                    if k.startswith("node:") and k != "node:__internal_head__"), None)
        nodes.append(Node(len(nodes), f"{hardware}x{gpus}", hardware, gpus, pin))
    return ClusterShape(tuple(nodes), GPU)
