"""What changed between two cluster policies, and which changes a running cluster can take live.

Applied live (to what comes after the reload; requests in flight keep the settings they were
admitted with):
- `classes` and `default_class`: deadlines, quality floors, priorities, best-effort, targets;
- `cluster.thresholds` and `cluster.max_tp`: the options of the next re-plan;
- `cluster.reconfigure.*`: the controller's period, drift bound, intervals, timeouts.

Need a restart of `dilaserve serve` (the running value stays until then):
- `cluster.model`, `cluster.profiles`, `cluster.device`, `cluster.dtype`: every replica loads
  them at start;
- `cluster.router.*` (TLS and tokens too), `cluster.metrics_port`, `cluster.replica_tls`:
  sockets bound, certificates and tokens read at start;
- `cluster.nodes`, `cluster.cpu_slots`, `cluster.cpu_threads`: the cluster model built at start;
- `worker.*`: the engine and scheduler settings each replica was built with.

Paths are the YAML's (`cluster.router.port`, `classes[chat].deadline.ms`), so a message points at
what the person edits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dilaserve.policy.cluster import ClusterPolicy, ClusterSettings
from dilaserve.policy.types import Policy, SloClass, WorkerSettings

LIVE_PREFIXES = ("classes", "default_class", "cluster.thresholds", "cluster.max_tp",
                 "cluster.reconfigure.")
# the ClusterSettings fields that keep their running value until a restart
RESTART_CLUSTER_FIELDS = ("model", "profiles", "nodes", "cpu_slots", "cpu_threads", "router_host",
                          "router_port", "router_http_port", "router_max_calls", "metrics_port",
                          "device", "dtype", "router_tls", "router_tokens", "replica_tls")
_CLASS_PATHS = {
    "deadline_ms": "deadline.ms",
    "deadline_per_token_ms": "deadline.per_token_ms",
    "min_threshold": "quality_floor.min_threshold",
    "max_accuracy_drop": "quality_floor.max_accuracy_drop",
}
_CLUSTER_PATHS = {"router_host": "router.host", "router_port": "router.port",
                  "router_http_port": "router.http_port",
                  "router_max_calls": "router.max_concurrent_calls",
                  "router_tls": "router.tls", "router_tokens": "router.tokens"}
_ABSENT = "(absent)"
_DEFINED = "(defined)"  # a class's own entry: it exists


@dataclass(frozen=True)
class Change:
    path: str
    old: object
    new: object

    @property
    def live(self) -> bool:
        return self.path.startswith(LIVE_PREFIXES)

    def __str__(self) -> str:
        if self.old == _DEFINED or self.new == _DEFINED:
            return f"{self.path}: {'added' if self.new == _DEFINED else 'removed'}"
        return f"{self.path}: {self.old} -> {self.new}"


def policy_changes(old: ClusterPolicy, new: ClusterPolicy) -> tuple[Change, ...]:
    before, after = flatten(old), flatten(new)
    changes = [
        Change(path, before.get(path, _ABSENT), after.get(path, _ABSENT))
        for path in sorted(before.keys() | after.keys())
        if before.get(path, _ABSENT) != after.get(path, _ABSENT)
    ]
    # a class added or removed is one change, not one per field
    whole = tuple(f"{c.path}." for c in changes if c.path.endswith("]"))
    return tuple(c for c in changes if not c.path.startswith(whole))


def live_policy(running: ClusterPolicy, new: ClusterPolicy) -> ClusterPolicy:
    """The new file's live settings with the running restart-only ones: run this until restart."""
    kept = {name: getattr(running.cluster, name) for name in RESTART_CLUSTER_FIELDS}
    return ClusterPolicy(
        policy=Policy(new.policy.classes, new.policy.default_class, running.policy.worker),
        cluster=dataclasses.replace(new.cluster, **kept),
        source=new.source,
    )


def flatten(cp: ClusterPolicy) -> dict[str, object]:
    out: dict[str, object] = {"default_class": cp.policy.default_class}
    for c in cp.policy.classes:
        out.update(_class_fields(c))
    out.update(_worker_fields(cp.policy.worker))
    out.update(_cluster_fields(cp.cluster))
    return out


def _class_fields(c: SloClass) -> dict[str, object]:
    out: dict[str, object] = {f"classes[{c.name}]": _DEFINED}
    for f in dataclasses.fields(c):
        if f.name != "name":
            out[f"classes[{c.name}].{_CLASS_PATHS.get(f.name, f.name)}"] = getattr(c, f.name)
    return out


def _worker_fields(w: WorkerSettings) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(w):
        value = getattr(w, f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                out[f"worker.{f.name}.{sub.name}"] = getattr(value, sub.name)
        else:
            out[f"worker.{f.name}"] = value
    return out


def _cluster_fields(c: ClusterSettings) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if f.name == "reconfigure":
            for sub in dataclasses.fields(value):
                out[f"cluster.reconfigure.{sub.name}"] = getattr(value, sub.name)
        elif f.name == "nodes":
            out["cluster.nodes"] = [f"{n.count}x {n.node_type}/{n.gpus_per_node}" for n in value]
        else:
            out[f"cluster.{_CLUSTER_PATHS.get(f.name, f.name)}"] = value
    return out
