"""The simulated cluster's replicas and GPUs: which replica runs on which node, and carrying out the
controller's actions (adding a replica takes the modelled reload time; removing one drains it).

Nodes are the cluster's node types expanded (a `4x8:A100` cluster is nodes 0..3 of 8 GPUs); a
replica of TP t holds t GPUs of one node until it stops. A layout that does not fit is an error,
not a silently smaller cluster.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestrator.actions import Action, AddReplica, RemoveReplica, SetRoutes, SetThresholdRange
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView
from sim.engine import QualityTable
from sim.replica import SimReplica
from sim.workload import SimWorkload
from solver.profile_set import ProfileSet
from solver.types import Cluster
from worker.scheduler import SchedulerConfig


@dataclass(frozen=True)
class Node:
    name: str  # the node type's name (what ReplicaConfig.node_type refers to)
    gpu_type: str
    gpus: int


def expand_nodes(cluster: Cluster) -> tuple[Node, ...]:
    return tuple(Node(n.name, n.gpu_type, n.gpus_per_node)
                 for n in cluster.nodes for _ in range(n.count))


class Fleet:
    def __init__(self, cluster: Cluster, profiles: ProfileSet, workload: SimWorkload,
                 scheduler_config: SchedulerConfig, seed: int, step_jitter: float,
                 step_scale: float = 1.0, loop_s_per_request: float = 0.0) -> None:
        self.nodes = expand_nodes(cluster)
        self.profiles = profiles
        self.workload = workload
        self.scheduler_config = scheduler_config
        self.seed = seed
        self.step_jitter = step_jitter
        self.step_scale = step_scale
        self.loop_s_per_request = loop_s_per_request
        self.quality = QualityTable(profiles.quality)
        self.cache_mode = min(profiles.step_costs, key=lambda p: p.tp).cache_mode
        self.used = [0] * len(self.nodes)
        self.replicas: dict[int, SimReplica] = {}
        self.live: list[SimReplica] = []  # not stopped, in id order
        self.counters: Counter[str] = Counter()
        self._next_id = 0
        self.ready_at: dict[int, float] = {}  # replica id -> when it began to serve
        self._stopped_steps = 0
        self._stopped_scheduler_s = 0.0
        # a planned policy's budgeted classes start from this threshold up (see SpecFactory)
        self.budget_start: float | None = None

    # -- GPUs --------------------------------------------------------------------------------------

    def free_gpus(self) -> tuple[int, ...]:
        return tuple(n.gpus - u for n, u in zip(self.nodes, self.used))

    def node_types(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def gpus_per_node(self) -> tuple[int, ...]:
        return tuple(n.gpus for n in self.nodes)

    def views(self) -> tuple[ReplicaView, ...]:
        return tuple(r.view() for r in self.live)

    # -- replicas ----------------------------------------------------------------------------------

    def add(self, config: ReplicaConfig, node: int, state: ReplicaState,
            ready_at: float = 0.0) -> SimReplica:
        info = self.nodes[node]
        if info.name != config.node_type:
            raise ValueError(f"replica {config.describe()} placed on node {node} of type "
                             f"{info.name}")
        if self.used[node] + config.tp > info.gpus:
            raise ValueError(f"node {node} has {info.gpus - self.used[node]} free GPUs, "
                             f"replica {config.describe()} needs {config.tp}")
        replica = SimReplica(
            self._next_id, config, node, self.scheduler_config,
            self.profiles.cost(info.gpu_type, config.tp), self.profiles.limits(config.tp),
            self.quality, self.workload.truths, self.cache_mode,
            seed=hash((self.seed, self._next_id)) & 0xFFFFFFFF, step_jitter=self.step_jitter,
            state=state, step_scale=self.step_scale, loop_s_per_request=self.loop_s_per_request,
            budget_start=self.budget_start)
        self._next_id += 1
        self.ready_at[replica.replica_id] = ready_at
        self.used[node] += config.tp
        self.replicas[replica.replica_id] = replica
        self.live.append(replica)
        return replica

    def place_uniform(self, config_for_node) -> None:
        """Fill every node with as many replicas as fit (`config_for_node(node)` gives the
        configuration, or None to leave the node empty)."""
        for i, node in enumerate(self.nodes):
            config = config_for_node(node)
            if config is None:
                continue
            for _ in range(node.gpus // config.tp):
                self.add(config, i, ReplicaState.ACTIVE)

    @property
    def steps_total(self) -> int:
        return self._stopped_steps + sum(r.steps for r in self.live)

    @property
    def scheduler_s_total(self) -> float:
        return self._stopped_scheduler_s + sum(r.scheduler_s for r in self.live)

    def stop(self, replica: SimReplica) -> None:
        self._stopped_steps += replica.steps
        self._stopped_scheduler_s += replica.scheduler_s
        replica.mark(ReplicaState.DRAINING)
        self.used[replica.node] -= replica.config.tp
        self.live.remove(replica)
        del self.replicas[replica.replica_id]

    def drained(self, replica: SimReplica) -> bool:
        return (replica.state is ReplicaState.DRAINING and not replica.busy
                and replica.active == 0)

    # -- actions -----------------------------------------------------------------------------------

    def apply(self, actions: list[Action], router, now: float,
              reload_s: float) -> list[SimReplica]:
        """Carry out the controller's actions; returns the replicas added (ready at
        now + `reload_s`). Actions on replicas that have stopped meanwhile are dropped."""
        added = []
        for action in actions:
            if isinstance(action, SetRoutes):
                set_routes = getattr(router, "set_routes", None)
                if set_routes is not None:
                    set_routes(action.routes)
            elif isinstance(action, SetThresholdRange):
                replica = self.replicas.get(action.replica_id)
                if replica is not None and replica.config != action.config:
                    replica.set_config(action.config)
                    self.counters["threshold_changes"] += 1
            elif isinstance(action, AddReplica):
                state = ReplicaState.LOADING if reload_s > 0 else ReplicaState.ACTIVE
                added.append(self.add(action.config, action.node, state, now + reload_s))
                self.counters["replicas_added"] += 1
            elif isinstance(action, RemoveReplica):
                replica = self.replicas.get(action.replica_id)
                if replica is None:
                    continue
                self.counters["replicas_removed"] += 1
                if replica.state is ReplicaState.LOADING:
                    self.stop(replica)
                    continue
                if not action.drain:  # its requests end now, as cancelled, at its next plan
                    for rid in (*replica.scheduler.queued_ids, *replica.scheduler.resident_ids):
                        replica.scheduler.cancel(rid)
                replica.mark(ReplicaState.DRAINING)
                if self.drained(replica):
                    self.stop(replica)
        return added

    def describe(self) -> str:
        counts = Counter(r.config.describe() for r in self.live
                         if r.state is not ReplicaState.DRAINING)
        return ", ".join(f"{n} x {d}" for d, n in sorted(counts.items())) or "no replicas"
