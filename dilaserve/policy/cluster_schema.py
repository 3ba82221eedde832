"""The cluster policy file's schema: the worker policy (`schema.PolicyModel`) plus a strict
`cluster:` section, which maps one to one onto `dilaserve.policy.cluster.ClusterSettings`.

    cluster:
      model: /shared/models/llada-8b      # as every node sees it; null: the shipped tiny model
      profiles: null                      # null: MODEL/profiles
      nodes: [{type: H100, count: 4, gpus_per_node: 8}]   # empty: what Ray reports
      max_tp: 8
      thresholds: [0.9, 0.8, 0.7, 0.6, 0.5]
      cpu_slots: 2
      cpu_threads: 1
      router: {host: 0.0.0.0, port: 50051, http_port: 8000}   # http_port null: no HTTP API
      metrics_port: 9464                  # null: off
      reconfigure: {period_s: 15, drift: 0.25, ...}

`deploy/policies/default.yaml` explains every field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dilaserve.policy.cluster import ClusterSettings, ReconfigureSettings
from dilaserve.policy.schema import PolicyModel, StrictModel

_RECONFIGURE = ReconfigureSettings()
_CLUSTER = ClusterSettings()


class NodeGroupModel(StrictModel):
    type: str = Field(
        min_length=1,
        description="accelerator name, e.g. H100: the hardware of a step-cost profile",
    )
    count: int = Field(ge=1, description="nodes of this type")
    gpus_per_node: int = Field(ge=1, description="accelerators on each node")


class RouterModel(StrictModel):
    host: str = Field(
        _CLUSTER.router_host,
        min_length=1,
        description="address the router binds (0.0.0.0: every interface, for remote clients)",
    )
    port: int = Field(_CLUSTER.router_port, ge=0, le=65535, description="0: any free port")
    http_port: int | None = Field(
        _CLUSTER.router_http_port,
        ge=0,
        le=65535,
        description="the OpenAI-compatible HTTP API (docs/http.md); 0: any free port; null: off",
    )
    max_concurrent_calls: int = Field(
        _CLUSTER.router_max_calls,
        ge=1,
        description="gRPC calls in flight at once; past it a call is refused at once "
        "(RESOURCE_EXHAUSTED) instead of queueing (docs/reliability.md)",
    )

    @model_validator(mode="after")
    def _distinct(self) -> RouterModel:
        if self.http_port and self.http_port == self.port:
            raise ValueError(f"http_port: {self.http_port} is also the router's gRPC port")
        return self


class ReconfigureModel(StrictModel):
    period_s: float = Field(
        _RECONFIGURE.period_s, gt=0, description="controller tick: observe, maybe re-plan"
    )
    drift: float = Field(
        _RECONFIGURE.drift, ge=0, description="re-plan when a class's rate moves this much"
    )
    min_interval_s: float = Field(
        _RECONFIGURE.min_interval_s, ge=0, description="the shortest time between re-plans"
    )
    window_s: float = Field(_RECONFIGURE.window_s, gt=0, description="arrival-rate window")
    headroom: float = Field(_RECONFIGURE.headroom, ge=0, description="plan for rate x (1 + it)")
    drain_timeout_s: float = Field(
        _RECONFIGURE.drain_timeout_s, gt=0, description="a draining replica's grace"
    )
    placement_timeout_s: float = Field(
        _RECONFIGURE.placement_timeout_s, gt=0, description="wait for a placement group / load"
    )
    max_draining_fraction: float = Field(
        _RECONFIGURE.max_draining_fraction,
        gt=0,
        le=1,
        description="of the cluster's devices draining at once",
    )
    min_requests: int = Field(
        _RECONFIGURE.min_requests, ge=0,
        description="a rate change re-plans only when seen over this many requests",
    )
    sustain_s: float = Field(
        _RECONFIGURE.sustain_s, ge=0, description="... and only once it has lasted this long"
    )


class ClusterModel(StrictModel):
    model: str | None = Field(None, min_length=1, description="model directory on every node")
    profiles: str | None = Field(None, min_length=1, description="profile directory")
    nodes: list[NodeGroupModel] = Field(default_factory=list, description="empty: ask Ray")
    max_tp: Literal[1, 2, 4, 8] = Field(_CLUSTER.max_tp, description="largest TP degree planned")
    thresholds: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        list(_CLUSTER.thresholds), min_length=1, description="levels the solver chooses among"
    )
    cpu_slots: int = Field(_CLUSTER.cpu_slots, ge=1, description="CPU replicas without GPUs")
    cpu_threads: int = Field(_CLUSTER.cpu_threads, ge=1, description="torch threads each")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="replicas' device; auto: cuda on GPU bundles, else cpu")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: on cuda the checkpoint's torch_dtype, else bfloat16; "
        "on cpu float32")
    router: RouterModel = RouterModel()
    metrics_port: int | None = Field(
        _CLUSTER.metrics_port, ge=1, le=65535, description="router's Prometheus port; null: off"
    )
    reconfigure: ReconfigureModel = ReconfigureModel()

    @model_validator(mode="after")
    def _consistent(self) -> ClusterModel:
        types = [n.type for n in self.nodes]
        repeated = sorted({t for t in types if types.count(t) > 1})
        if repeated:
            raise ValueError(f"nodes: one entry per node type, repeated: {repeated}")
        if len(set(self.thresholds)) != len(self.thresholds):
            raise ValueError(f"thresholds: levels must be distinct, got {self.thresholds}")
        if self.metrics_port is not None and self.metrics_port == self.router.port:
            raise ValueError(f"metrics_port: {self.metrics_port} is also the router's port")
        if self.metrics_port is not None and self.metrics_port == self.router.http_port:
            raise ValueError(f"metrics_port: {self.metrics_port} is also the router's HTTP port")
        return self


class ClusterPolicyModel(PolicyModel):
    cluster: ClusterModel = Field(  # type: ignore[assignment]  # narrows the worker's free dict
        default_factory=ClusterModel, description="the cluster: shape, limits, reconfiguration"
    )
