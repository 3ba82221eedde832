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
      router:
        host: 0.0.0.0                     # off loopback: tls and tokens are required
        port: 50051
        http_port: 8000                   # null: no HTTP API
        tls: {cert_file: ~/s/router.crt, key_file: ~/s/router.key}
        tokens: {client: {file: ~/s/client.token}, admin: {env: DILASERVE_ADMIN_TOKEN}}
      replica_tls: {cert_file: ~/s/cluster.crt, key_file: ~/s/cluster.key, ca_file: ~/s/ca.crt}
      metrics_port: 9464                  # null: off
      reconfigure: {period_s: 15, drift: 0.25, ...}

`deploy/policies/default.yaml` explains every field.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from dilaserve.core.checks import check_unique
from dilaserve.policy import security
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


def _existing_file(value: str) -> str:
    """The path made absolute (`~` expanded; relative to where the policy is loaded), once it
    names a readable file: secrets and certificates are checked where the policy is read."""
    path = os.path.abspath(os.path.expanduser(value))
    shown = repr(value) if path == value else f"{value!r} ({path})"
    if not os.path.isfile(path):
        raise ValueError(f"no such file {shown}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{shown} is not readable by this user")
    return path


File = Annotated[str, Field(min_length=1), AfterValidator(_existing_file)]


def _as_field(name: str, check: Callable[..., object], *args: object) -> None:
    """Runs a certificate check; its ValueError names the field `name`."""
    try:
        check(*args)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


class SecretModel(StrictModel):
    file: File | None = Field(None, description="a file holding the token (whitespace stripped)")
    env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="an environment variable holding the token, where the router runs")

    @model_validator(mode="before")
    @classmethod
    def _never_inline(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a token is never written in the policy: give {file: PATH} or "
                             "{env: NAME}")
        return data

    @model_validator(mode="after")
    def _there(self) -> SecretModel:
        if (self.file is None) == (self.env is None):
            raise ValueError("give one of file and env")
        self.secret().read()  # present and not empty (its value is not kept)
        return self

    def secret(self) -> security.Secret:
        return security.Secret(self.file, self.env)


class TokensModel(StrictModel):
    client: SecretModel = Field(description="Generate, Stats and the HTTP API")
    admin: SecretModel = Field(description="Control and all a client may call")

    @model_validator(mode="after")
    def _distinct(self) -> TokensModel:
        if self.client.secret().read() == self.admin.secret().read():
            raise ValueError("admin: the same token as client; the admin token must be its own")
        return self


class RouterTlsModel(StrictModel):
    cert_file: File = Field(description="the router's certificate (PEM; its chain after it)")
    key_file: File = Field(description="its private key (PEM)")
    client_ca_file: File | None = Field(
        None, description="set: clients must present a certificate this CA signed (mutual TLS)")

    @model_validator(mode="after")
    def _usable(self) -> RouterTlsModel:
        _as_field("key_file", security.check_pair, self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            _as_field("client_ca_file", security.check_ca, self.client_ca_file)
        return self


class ReplicaTlsModel(StrictModel):
    cert_file: File = Field(description="the cluster certificate: every replica serves it, the "
                                        "router and the controller present it")
    key_file: File = Field(description="its private key (PEM), on every node")
    ca_file: File = Field(description="the CA that signed it: each side accepts only its peers")
    server_name: str = Field(
        security.REPLICA_SERVER_NAME, min_length=1,
        description="a name the certificate carries (the router dials replicas by address)")

    @model_validator(mode="after")
    def _usable(self) -> ReplicaTlsModel:
        _as_field("key_file", security.check_pair, self.cert_file, self.key_file)
        try:
            security.check_handshake(self.settings())
        except ValueError as err:
            raise ValueError(f"ca_file: the certificate does not verify against it as "
                             f"{self.server_name!r}: {err}") from None
        return self

    def settings(self) -> security.ReplicaTls:
        return security.ReplicaTls(self.cert_file, self.key_file, self.ca_file, self.server_name)


class RouterModel(StrictModel):
    host: str = Field(
        _CLUSTER.router_host,
        min_length=1,
        description="address the router binds (0.0.0.0: every interface, for remote clients; "
        "off loopback, tls and tokens are required)",
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
        description="Generate calls (gRPC and HTTP) in the router's hands at once; past it a "
        "call is refused at once (RESOURCE_EXHAUSTED, a retry hint) and counted, instead of "
        "queueing (docs/reliability.md)",
    )
    tls: RouterTlsModel | None = Field(None, description="TLS on gRPC and HTTP; null: plaintext")
    tokens: TokensModel | None = Field(
        None, description="bearer tokens for every call but health; null: none (loopback only)")

    @model_validator(mode="after")
    def _consistent(self) -> RouterModel:
        if self.http_port and self.http_port == self.port:
            raise ValueError(f"http_port: {self.http_port} is also the router's gRPC port")
        if not security.is_loopback(self.host):
            missing = [name for name in ("tls", "tokens") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"host: {self.host} serves other machines, so the router needs "
                                 f"{' and '.join(missing)} (docs/deploy.md, \"TLS and tokens\"); "
                                 f"or serve on 127.0.0.1")
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
    replica_tls: ReplicaTlsModel | None = Field(
        None, description="mutual TLS between router/controller and replicas; null: plaintext")
    reconfigure: ReconfigureModel = ReconfigureModel()

    @model_validator(mode="after")
    def _consistent(self) -> ClusterModel:
        check_unique([n.type for n in self.nodes], "nodes: one entry per node type")
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
