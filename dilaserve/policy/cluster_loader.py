"""A cluster policy file: YAML -> `ClusterPolicyModel` -> `dilaserve.policy.cluster.ClusterPolicy`.

Errors are the worker loader's: ValueErrors naming file, line and field, one line per problem:
    default.yaml:61: cluster.reconfigure.drift: Input should be greater than or equal to 0 (got -1)
"""

from __future__ import annotations

import os
from pathlib import Path

from dilaserve.policy.cluster import ClusterPolicy, ClusterSettings, NodeGroup, ReconfigureSettings
from dilaserve.policy.cluster_schema import ClusterModel, ClusterPolicyModel
from dilaserve.policy.loader import to_policy, validate_text
from dilaserve.policy.security import ServerTls, Tokens


def load_cluster_policy(path: Path | str) -> ClusterPolicy:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy: no such file {str(path)!r}")
    return parse_cluster_policy(path.read_text(), str(path))


def parse_cluster_policy(text: str, source: str = "policy") -> ClusterPolicy:
    validated = validate_text(text, source, ClusterPolicyModel)
    return ClusterPolicy(to_policy(validated), to_cluster_settings(validated.cluster), source)


def to_cluster_settings(c: ClusterModel) -> ClusterSettings:
    r = c.reconfigure
    return ClusterSettings(
        model=_home(c.model),
        profiles=_home(c.profiles),
        nodes=tuple(NodeGroup(n.type, n.count, n.gpus_per_node) for n in c.nodes),
        max_tp=c.max_tp,
        thresholds=tuple(sorted(c.thresholds, reverse=True)),
        cpu_slots=c.cpu_slots,
        cpu_threads=c.cpu_threads,
        device=c.device,
        dtype=c.dtype,
        router_host=c.router.host,
        router_port=c.router.port,
        router_http_port=c.router.http_port,
        router_max_calls=c.router.max_concurrent_calls,
        metrics_port=c.metrics_port,
        router_tls=_router_tls(c),
        router_tokens=_tokens(c),
        replica_tls=c.replica_tls.settings() if c.replica_tls else None,
        reconfigure=ReconfigureSettings(
            period_s=r.period_s,
            drift=r.drift,
            min_interval_s=r.min_interval_s,
            window_s=r.window_s,
            headroom=r.headroom,
            drain_timeout_s=r.drain_timeout_s,
            placement_timeout_s=r.placement_timeout_s,
            max_draining_fraction=r.max_draining_fraction,
            min_requests=r.min_requests,
            sustain_s=r.sustain_s,
        ),
    )


def _router_tls(c: ClusterModel) -> ServerTls | None:
    t = c.router.tls
    return ServerTls(t.cert_file, t.key_file, t.client_ca_file) if t else None


def _tokens(c: ClusterModel) -> Tokens | None:
    t = c.router.tokens
    return Tokens(t.client.secret(), t.admin.secret()) if t else None


def _home(path: str | None) -> str | None:
    """Expand `~` where the policy is loaded; a `ray up` cluster's nodes share user and home."""
    return os.path.expanduser(path) if path else path
