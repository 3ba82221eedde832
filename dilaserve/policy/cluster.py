"""The cluster part of an SLO policy, as the orchestrator uses it: frozen dataclasses.

A cluster policy is the worker policy (classes, worker settings; `dilaserve.policy`) plus where the
model is, what the cluster looks like and how the controller reconfigures it. The YAML schema and
its loader live in `dilaserve.policy.cluster_schema`; this module is what the code reads.

Cluster shape: `nodes` lists node groups (type, count, GPUs per node). Empty means "ask Ray": the
runtime reads the GPUs Ray reports; with none (the embedded default on a laptop or CI box) it
plans `cpu_slots` CPU replicas of `cpu_threads` torch threads each on one node of type "cpu".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dilaserve.core.checks import check_ranges
from dilaserve.policy.security import ReplicaTls, ServerTls, Tokens
from dilaserve.policy.types import Policy

CPU_NODE_TYPE = "cpu"
# the router implementations by name (`orchestrator.router.make_router`)
ROUTER_KINDS = ("round_robin", "least_loaded", "deadline_aware")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class NodeGroup:
    node_type: str  # e.g. "H100"; the step-cost profile's hardware name must match
    count: int
    gpus_per_node: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.gpus_per_node < 1:
            raise ValueError(f"node group {self.node_type!r}: count and gpus_per_node must be >= 1")


@dataclass(frozen=True)
class ReconfigureSettings:
    period_s: float = 15.0  # controller tick: observe load, maybe re-plan, reconcile
    drift: float = 0.25  # re-plan when a class's arrival rate moved this much (relative)
    min_interval_s: float = 30.0  # between re-plans
    window_s: float = 60.0  # the arrival-rate window
    headroom: float = 0.1  # plan for rate x (1 + headroom)
    drain_timeout_s: float = 60.0  # a draining replica's requests get this long, then it stops
    placement_timeout_s: float = 60.0  # waiting for a placement group / a replica to load
    max_draining_fraction: float = 0.5  # of the cluster's devices draining at once
    min_requests: int = 10  # a rate change re-plans only when seen over this many requests
    sustain_s: float = 0.0  # ... and once it has lasted this long (0: when first seen)

    def __post_init__(self) -> None:
        check_ranges(self, "reconfigure",
                     positive=("period_s", "window_s", "drain_timeout_s", "placement_timeout_s"),
                     non_negative=("drift", "min_interval_s", "headroom", "min_requests",
                                   "sustain_s"),
                     fraction=("max_draining_fraction",))


@dataclass(frozen=True)
class ClusterSettings:
    model: str | None = None  # model directory as every node sees it; None: the shipped model
    profiles: str | None = None  # profile directory; None: MODEL/profiles
    nodes: tuple[NodeGroup, ...] = ()  # empty: what Ray reports (see the module docstring)
    max_tp: int = 8
    thresholds: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)  # levels the solver chooses among
    cpu_slots: int = 2  # CPU replicas on a cluster without GPUs
    cpu_threads: int = 1  # torch threads per CPU replica
    # where replicas run: auto = cuda on a GPU bundle, cpu on a CPU one; dtype auto = on cuda the
    # checkpoint's torch_dtype (bfloat16 without one), on cpu float32 (worker.models.device)
    device: str = "auto"
    dtype: str = "auto"
    router_host: str = "127.0.0.1"
    router_port: int = 50051  # 0: any free port
    # the router's OpenAI-compatible HTTP API (docs/http.md); None: off; 0: any free port
    router_http_port: int | None = None
    # calls the router takes at once; past it gRPC answers RESOURCE_EXHAUSTED before any handler
    # runs, so an overload is refused in milliseconds instead of queueing (docs/reliability.md)
    router_max_calls: int = 512
    metrics_port: int | None = None  # the router's Prometheus endpoint; None: off
    # who may call the router and over what (dilaserve.policy.security): TLS on its gRPC and
    # HTTP, bearer tokens (client; admin for Control), mutual TLS between router and replicas;
    # None: plaintext / no tokens, which the policy file allows on loopback only
    router_tls: ServerTls | None = None
    router_tokens: Tokens | None = None
    replica_tls: ReplicaTls | None = None
    # how the router picks a replica; the policy file has no field for it (always the default):
    # `dilaserve bench --mode live` sets it to run the baselines' routers
    router_kind: str = "deadline_aware"
    reconfigure: ReconfigureSettings = field(default_factory=ReconfigureSettings)

    def __post_init__(self) -> None:
        if self.max_tp < 1:
            raise ValueError("cluster.max_tp must be >= 1")
        if not self.thresholds or not all(0 < t <= 1 for t in self.thresholds):
            raise ValueError("cluster.thresholds must be a non-empty list of values in (0, 1]")
        if self.cpu_slots < 1 or self.cpu_threads < 1:
            raise ValueError("cluster.cpu_slots and cluster.cpu_threads must be >= 1")
        if self.device not in DEVICES or self.dtype not in DTYPES:
            raise ValueError(f"cluster.device must be one of {', '.join(DEVICES)} and "
                             f"cluster.dtype one of {', '.join(DTYPES)}, got {self.device!r}, "
                             f"{self.dtype!r}")
        if not 0 <= self.router_port < 65536:
            raise ValueError("cluster.router_port must be in [0, 65535]")
        if self.router_max_calls < 1:
            raise ValueError(f"cluster.router_max_calls must be >= 1, got {self.router_max_calls}")
        http = self.router_http_port
        if http is not None and not 0 <= http < 65536:
            raise ValueError(f"cluster.router_http_port must be in [0, 65535], got {http}")
        if http and http in (self.router_port, self.metrics_port):
            raise ValueError(f"cluster.router_http_port: {http} is also the router's gRPC or "
                             f"metrics port")
        if self.router_kind not in ROUTER_KINDS:
            raise ValueError(f"cluster.router_kind must be one of {', '.join(ROUTER_KINDS)}, "
                             f"got {self.router_kind!r}")

    @property
    def tp_degrees(self) -> tuple[int, ...]:
        return tuple(t for t in (1, 2, 4, 8) if t <= self.max_tp)


@dataclass(frozen=True)
class ClusterPolicy:
    """What `dilaserve serve` runs: the SLO classes and worker settings, and the cluster's."""

    policy: Policy
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    source: str = ""  # the file it was read from, for messages
