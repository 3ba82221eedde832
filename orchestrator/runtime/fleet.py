"""The running replicas, and the controller's actions executed on them with Ray.

A replica's life: PLACING (its placement group is pending) -> LOADING (its actor loads the model
and starts the worker service) -> ACTIVE (the router sends it requests) -> DRAINING (no new
requests; those in flight finish, up to the drain timeout) -> gone (actor stopped, placement
group removed). Nothing here blocks on a slow step: `poll` checks each pending step without
waiting, so one replica that cannot be placed or loaded holds nobody else up; it is given up after
the placement timeout, logged, and the controller's next reconcile asks for it again; starts of
that kind on that node that keep failing are spaced out (`backoff.StartBackoff`).

A replica whose actor dies is dropped at the next `poll`; the router retries its requests on the
others, and the controller's next tick adds a replacement (the plan still wants it).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from dilaserve.policy import Policy
from dilaserve.policy.cluster import ClusterSettings
from orchestrator.actions import Action, AddReplica, RemoveReplica, SetRoutes, SetThresholdRange
from orchestrator.runtime.backoff import StartBackoff
from orchestrator.runtime.placement import PlacementError, release, replica_resources
from orchestrator.runtime.replica_actor import ReplicaActor
from orchestrator.runtime.shape import GPU, ClusterShape
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView

log = logging.getLogger("dilaserve.fleet")


class ReplicaPhase(enum.StrEnum):
    PLACING = "placing"
    LOADING = "loading"
    ACTIVE = "active"
    DRAINING = "draining"


@dataclass
class LiveReplica:
    replica_id: int
    config: ReplicaConfig
    node: int
    phase: ReplicaPhase
    since: float
    group: object = None
    # ObjectRef of group.ready(), asked for once: a fresh one each poll would never be seen
    # ready by a zero-timeout wait (the GCS has not answered it yet)
    placed: object = None
    actor: object = None
    starting: object = None  # ObjectRef of actor.start()
    ping: object = None  # ObjectRef of the last actor.ping()
    target: str = ""
    metrics: str = ""  # host:port of the worker's Prometheus endpoint, if it serves one
    resources: object = None  # placement.ReplicaResources
    history: list[str] = field(default_factory=list)

    @property
    def state(self) -> ReplicaState:
        if self.phase is ReplicaPhase.ACTIVE:
            return ReplicaState.ACTIVE
        if self.phase is ReplicaPhase.DRAINING:
            return ReplicaState.DRAINING
        return ReplicaState.LOADING


class LiveFleet:
    """`router`: what the controller pushes replicas and routes to (the router actor's handle
    or a RouterServer; it must have set_replicas, set_routes, in_flight and replica_views);
    `control`: (target, threshold range or None, drain or None) -> in-flight count, the worker's
    Control RPC."""

    def __init__(self, shape: ClusterShape, cluster: ClusterSettings, policy: Policy,
                 host: str, router, control: Callable, clock: Callable[[], float],
                 call: Callable = None) -> None:
        import ray

        self.ray = ray
        self.shape = shape
        self.cluster = cluster
        self.policy = policy
        self.host = host
        self.router = router
        self.control = control
        self.clock = clock
        self.call = call or (lambda ref: ray.get(ref))
        self.replicas: dict[int, LiveReplica] = {}
        self.next_id = 0
        self.events: list[str] = []  # what happened, for the controller's log and status
        self._pushed: tuple = ()
        self.backoff = StartBackoff()
        self._held_back: set[tuple] = set()  # (node, tp) whose wait was logged

    # -- what the controller observes ---------------------------------------------------------

    def free_devices(self) -> tuple[int, ...]:
        used = [0] * len(self.shape.nodes)
        for r in self.replicas.values():
            used[r.node] += r.config.tp
        return tuple(n.devices - u for n, u in zip(self.shape.nodes, used))

    def views(self) -> tuple[ReplicaView, ...]:
        """ACTIVE and DRAINING replicas as the router sees them; others as loading, empty."""
        seen = {v.replica_id: v for v in self.router_views()}
        out = []
        for r in sorted(self.replicas.values(), key=lambda r: r.replica_id):
            view = seen.get(r.replica_id)
            if view is None:
                view = ReplicaView(r.replica_id, r.config, r.state, r.node, 0, 0, 1, 0.0,
                                   math.nan, math.nan, 1.0)
            out.append(replace(view, state=r.state, config=r.config, node=r.node))
        return tuple(out)

    def router_views(self) -> Sequence[ReplicaView]:
        return self.call(self.router.replica_views.remote())

    # -- executing actions --------------------------------------------------------------------

    def apply(self, actions: Sequence[Action], reason: str) -> None:
        for action in actions:
            if isinstance(action, SetRoutes):
                self.call(self.router.set_routes.remote(list(action.routes)))
            elif isinstance(action, AddReplica):
                self._add(action, reason)
            elif isinstance(action, RemoveReplica):
                self._remove(action, reason)
            elif isinstance(action, SetThresholdRange):
                self._set_range(action, reason)
        self._push()

    def _note(self, replica: LiveReplica | None, text: str) -> None:
        line = f"replica {replica.replica_id}: {text}" if replica else text
        self.events.append(line)
        if replica is not None:
            replica.history.append(text)
        log.info(line)

    def _add(self, action: AddReplica, reason: str) -> None:
        key = (action.node, action.config.tp)
        wait = self.backoff.wait_s(key, self.clock())
        if wait > 0:  # reconcile asks again every tick; say it once per wait
            if key not in self._held_back:
                self._held_back.add(key)
                self._note(None, f"node {action.node}: next TP{action.config.tp} replica start "
                                 f"in {wait:.0f} s ({self.backoff.failures(key)} failed in a row)")
            return
        self._held_back.discard(key)
        node = self.shape.nodes[action.node]
        rid = self.next_id
        self.next_id += 1
        resources = replica_resources(action.config.tp, self.shape.device,
                                      self.cluster.cpu_threads,
                                      node if node.pin else None)
        from ray.util.placement_group import placement_group

        group = placement_group(list(resources.bundles), strategy="STRICT_PACK",
                                name=f"dilaserve-replica-{rid}")
        replica = LiveReplica(rid, action.config, action.node, ReplicaPhase.PLACING, self.clock(),
                              group=group, placed=group.ready(), resources=resources)
        self.replicas[rid] = replica
        self._note(replica, f"add {action.config.describe()} on node {action.node} ({reason})")

    def _start_actor(self, replica: LiveReplica) -> None:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        options = dict(replica.resources.actor_options)
        strategy = PlacementGroupSchedulingStrategy(replica.group, placement_group_bundle_index=0)
        actor_class = self.ray.remote(ReplicaActor)
        node = self.shape.nodes[replica.node]
        replica.actor = actor_class.options(scheduling_strategy=strategy, max_restarts=0,
                                            **options).remote(
            replica.replica_id, self.cluster, self.policy, replica.config, self.host, options,
            on_gpu=self.shape.device == GPU, hardware=node.hardware)
        replica.starting = replica.actor.start.remote()
        replica.phase = ReplicaPhase.LOADING
        replica.since = self.clock()

    def _remove(self, action: RemoveReplica, reason: str) -> None:
        replica = self.replicas.get(action.replica_id)
        if replica is None or replica.phase is ReplicaPhase.DRAINING:
            return
        if replica.phase in (ReplicaPhase.PLACING, ReplicaPhase.LOADING) or not action.drain:
            self._note(replica, f"remove ({reason})")
            self._stop(replica)
            return
        replica.phase = ReplicaPhase.DRAINING
        replica.since = self.clock()
        self._note(replica, f"drain ({reason})")
        try:
            self.control(replica.target, None, True)
        except Exception as err:  # noqa: BLE001 - a dead worker is stopped at the next poll
            self._note(replica, f"drain request failed: {err}")

    def _set_range(self, action: SetThresholdRange, reason: str) -> None:
        replica = self.replicas.get(action.replica_id)
        if replica is None:
            return
        old = replica.config
        replica.config = action.config
        if replica.phase in (ReplicaPhase.ACTIVE, ReplicaPhase.DRAINING):
            try:
                self.control(replica.target, (action.config.threshold_min,
                                              action.config.threshold_max), None)
            except Exception as err:  # noqa: BLE001 - see _remove
                self._note(replica, f"threshold change failed: {err}")
                return
        self._note(replica, f"thresholds {old.threshold_min:g}-{old.threshold_max:g} -> "
                            f"{action.config.threshold_min:g}-{action.config.threshold_max:g} "
                            f"({reason})")

    def _stop(self, replica: LiveReplica) -> None:
        self.replicas.pop(replica.replica_id, None)
        if replica.actor is not None:
            try:
                self.ray.kill(replica.actor)
            except Exception:  # noqa: BLE001 - already dead
                pass
        if replica.group is not None:
            release(replica.group)

    # -- progress -----------------------------------------------------------------------------

    def poll(self) -> None:
        """Advance every replica that can move on; push the replica set when it changed."""
        now = self.clock()
        timeout = self.cluster.reconfigure.placement_timeout_s
        in_flight = None
        for replica in list(self.replicas.values()):
            if replica.phase is ReplicaPhase.PLACING:
                ready, _ = self.ray.wait([replica.placed], timeout=0)
                if ready:
                    self._start_actor(replica)
                elif now - replica.since > timeout:
                    free = self.ray.available_resources()
                    err = PlacementError(
                        f"could not place {replica.resources.describe()} within {timeout:g} s "
                        f"(free: GPU {free.get('GPU', 0):g}, CPU {free.get('CPU', 0):g})")
                    self._note(replica, str(err))
                    self._start_failed(replica)
            elif replica.phase is ReplicaPhase.LOADING:
                ready, _ = self.ray.wait([replica.starting], timeout=0)
                if ready:
                    try:
                        replica.target = self.ray.get(replica.starting)
                    except Exception as err:  # noqa: BLE001 - reported, then retried by reconcile
                        self._note(replica, f"failed to start: {_first_line(err)}")
                        self._start_failed(replica)
                        continue
                    replica.metrics = self.call(replica.actor.metrics_address.remote())
                    replica.phase = ReplicaPhase.ACTIVE
                    replica.since = now
                    self.backoff.succeeded((replica.node, replica.config.tp))
                    self._note(replica, f"serving on {replica.target}")
                elif now - replica.since > timeout:
                    self._note(replica, f"not ready within {timeout:g} s: stopped")
                    self._start_failed(replica)
            elif replica.phase is ReplicaPhase.DRAINING:
                if in_flight is None:
                    in_flight = self.call(self.router.in_flight.remote())
                idle = in_flight.get(replica.replica_id, 0) == 0 and self._worker_idle(replica)
                if idle or now - replica.since > self.cluster.reconfigure.drain_timeout_s:
                    self._note(replica, "drained: stopped" if idle else
                               "drain timeout: stopped (its requests are retried elsewhere)")
                    self._stop(replica)
            if replica.phase in (ReplicaPhase.ACTIVE, ReplicaPhase.DRAINING) and \
                    replica.replica_id in self.replicas:
                self._check_alive(replica)
        self._push()

    def _start_failed(self, replica: LiveReplica) -> None:
        self._stop(replica)
        self.backoff.failed((replica.node, replica.config.tp), self.clock())

    def _worker_idle(self, replica: LiveReplica) -> bool:
        try:
            return self.control(replica.target, None, None) == 0
        except Exception:  # noqa: BLE001 - unreachable: nothing left to wait for
            return True

    def _check_alive(self, replica: LiveReplica) -> None:
        if replica.ping is not None:
            ready, _ = self.ray.wait([replica.ping], timeout=0)
            if not ready:
                return
            try:
                self.ray.get(replica.ping)
            except Exception as err:  # noqa: BLE001 - the actor died
                self._note(replica, f"died ({_first_line(err)}): its requests are retried")
                self._stop(replica)
                return
        replica.ping = replica.actor.ping.remote()

    def endpoints(self) -> list:
        from orchestrator.service import ReplicaEndpoint

        return [ReplicaEndpoint(r.replica_id, r.target, r.config, r.node, r.state)
                for r in sorted(self.replicas.values(), key=lambda r: r.replica_id)
                if r.phase in (ReplicaPhase.ACTIVE, ReplicaPhase.DRAINING)]

    def _push(self) -> None:
        endpoints = self.endpoints()
        key = tuple((e.replica_id, e.target, e.config, e.state) for e in endpoints)
        if key != self._pushed:
            self.call(self.router.set_replicas.remote(endpoints))
            self._pushed = key

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy
        for r in self.replicas.values():
            if r.actor is not None:
                r.actor.set_policy.remote(policy)

    def stop_all(self, grace_s: float) -> None:
        stops = [r.actor.stop.remote(grace_s) for r in self.replicas.values()
                 if r.actor is not None and r.phase in (ReplicaPhase.ACTIVE, ReplicaPhase.DRAINING)]
        if stops:
            self.ray.wait(stops, num_returns=len(stops), timeout=grace_s + 10)
        for r in list(self.replicas.values()):
            self._stop(r)
        self._push()

    def describe(self) -> list[dict]:
        return [{"id": r.replica_id, "config": r.config.describe(), "tp": r.config.tp,
                 "threshold_min": r.config.threshold_min,
                 "threshold_max": r.config.threshold_max, "node": r.node,
                 "phase": str(r.phase), "target": r.target, "metrics": r.metrics,
                 "history": r.history[-5:]}
                for r in sorted(self.replicas.values(), key=lambda r: r.replica_id)]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
