"""The cluster controller as a named Ray actor: it owns the plan, the replicas and the router.

It runs the pure `orchestrator.controller.Controller` (the class the simulator runs) on a loop
thread: every `reconfigure.period_s` it hands the controller what the router saw arrive and the
replicas' load, and executes the actions it returns on the fleet (`fleet.LiveFleet`); between
ticks it advances the fleet (placement, loading, draining, dead replicas) every `POLL_S`, and
re-reads the policy file when it changed (hot reload: a bad file is reported and the running
policy stays). Every new plan is logged with its reason and its predicted effect.

The planner plans on the model's step-cost profiles scaled to the machines the replicas run on:
when a hardware's replicas report that they step more than 10% off their profile
(`orchestrator.profile_scale`), the planner is rebuilt on the scaled profiles and re-plans (at
most once per `min_interval_s`: sooner, the next plan uses them).
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from dilaserve.policy.changes import RESTART_CLUSTER_FIELDS
from dilaserve.policy.cluster import ClusterPolicy, ClusterSettings
from dilaserve.policy.security import ReplicaTls
from orchestrator.controller import Controller, ControllerConfig, Observation, PlanRecord
from orchestrator.load import Arrival
from orchestrator.planning import LivePlanner, class_templates
from orchestrator.profile_scale import (
    describe_scales,
    measured_scales,
    planning_scales,
    scaled_profiles,
)

CONTROLLER_NAME = "dilaserve-controller"
POLL_S = 0.5
LOG_LINES = 200
log = logging.getLogger("dilaserve.controller")

# (cluster, profiles, policy, settings) -> Planner; tests inject fixed plans through it
PlannerFactory = Callable


def controller_config(settings: ClusterSettings) -> ControllerConfig:
    r = settings.reconfigure
    return ControllerConfig(tick_s=r.period_s, window_s=r.window_s, drift=r.drift,
                            min_interval_s=r.min_interval_s, headroom=r.headroom,
                            max_draining_fraction=r.max_draining_fraction,
                            min_requests=r.min_requests, sustain_s=r.sustain_s)


def describe_plan(record: PlanRecord) -> str:
    plan = record.plan
    groups = ", ".join(f"{g.count} x TP{g.tp} tau {g.threshold_min:g}-{g.threshold_max:g}"
                       for g in plan.groups) or "no replicas"
    effect = ", ".join(f"{c.name} {c.predicted_attainment:.0%} at {c.offered_rate:.3g} req/s"
                       for c in plan.classes)
    return (f"plan ({record.reason}): {groups}; predicted attainment {effect}; "
            f"accuracy drop {plan.accuracy_drop * 100:.2f} pts")


class ControllerActor:
    def __init__(self, cluster_policy: ClusterPolicy, policy_path: str | None = None,
                 planner_factory: PlannerFactory | None = None, host: str | None = None,
                 overrides: dict | None = None) -> None:
        self.cluster_policy = cluster_policy
        self.overrides = dict(overrides or {})  # cluster fields set on the command line
        self.policy_path = policy_path
        self.planner_factory = planner_factory or LivePlanner
        self.host = host
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self.logged = 0  # lines logged since the start (the deque keeps the last LOG_LINES)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.router = None
        self.fleet = None
        self.controller: Controller | None = None
        self.watcher = None
        self.error = ""
        self.machine_scales: dict[str, float] = {}  # hardware -> factor the planner plans with
        self._target = ""
        self._http_url = ""

    # -- start and stop ---------------------------------------------------------------------

    def start(self) -> str:
        """Start the router and the first replicas; returns where the router listens."""
        import ray

        from orchestrator.runtime.fleet import LiveFleet
        from orchestrator.runtime.ray_env import is_local_cluster
        from orchestrator.runtime.router_actor import RouterActor
        from orchestrator.runtime.shape import cluster_shape

        if self.host is None:  # replicas bind loopback on the embedded default, else their IP
            self.host = "127.0.0.1" if is_local_cluster() else "auto"

        policy, settings = self.cluster_policy.policy, self.cluster_policy.cluster
        self.profiles = _load_profiles(settings)
        self.shape = cluster_shape(settings, ray.nodes(), self.profiles.hardware)
        self._log(f"cluster: {self.shape.describe()}")
        # the router listens where the controller runs: the driver's node (see cluster.py)
        self.router = ray.remote(RouterActor).options(
            num_cpus=0, scheduling_strategy=this_node()).remote(policy, settings)
        target = ray.get(self.router.start.remote())
        self._target = target
        self._http_url = ray.get(self.router.http_url.remote())
        http = f"; OpenAI-compatible HTTP API on {self._http_url}" if self._http_url else ""
        self._log(f"router listening on {target}{secured(settings)}{http}")
        if self.host != "127.0.0.1" and settings.replica_tls is None:
            self._log("warning: replicas serve plaintext on their nodes' addresses, and take "
                      "Control from anyone who reaches them: set cluster.replica_tls "
                      "(docs/deploy.md)")
        control = functools.partial(_control, tls=settings.replica_tls)
        self.fleet = LiveFleet(self.shape, settings, policy, self.host, self.router,
                               control, time.monotonic)
        self.controller = Controller(
            class_templates(policy), self._planner(self.cluster_policy),
            self.shape.node_types, self.shape.devices_per_node, controller_config(settings))
        with self._lock:
            self._apply(self.controller.cold_start(time.monotonic()))
        if self.policy_path:
            from dilaserve.policy.watcher import PolicyWatcher

            self.watcher = PolicyWatcher(Path(self.policy_path))
            self.watcher.load()  # the file as it is now is the running policy, not a change
            self.watcher.running = self.cluster_policy
        self._thread = threading.Thread(target=self._main, name="dilaserve-controller",
                                        daemon=True)
        self._thread.start()
        return target

    def stop(self, grace_s: float = 5.0) -> None:
        import ray

        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        with self._lock:
            if self.fleet is not None:
                self.fleet.stop_all(grace_s)
            if self.router is not None:
                ray.get(self.router.stop.remote(grace_s))

    def _planner(self, cluster_policy: ClusterPolicy):
        profiles = scaled_profiles(self.profiles, self.machine_scales)
        return self.planner_factory(self.shape.solver_cluster(), profiles,
                                    cluster_policy.policy, cluster_policy.cluster)

    # -- the loop ---------------------------------------------------------------------------

    def _main(self) -> None:
        last_tick = time.monotonic()
        while not self._stop.wait(POLL_S):
            try:
                with self._lock:
                    self.fleet.poll()
                    self._drain_fleet_events()
                    self._check_policy()
                    # read every time: a reloaded policy may change the period
                    if time.monotonic() - last_tick >= \
                            self.cluster_policy.cluster.reconfigure.period_s:
                        last_tick = time.monotonic()
                        self._tick()
            except Exception:  # noqa: BLE001 - keep serving; the error is in status and the log
                self.error = traceback.format_exc(limit=3)
                self._log(f"controller error: {self.error.strip().splitlines()[-1]}")

    def tick(self) -> None:
        """One controller step now (tests and `dilaserve status --tick` call it)."""
        with self._lock:
            self._tick()

    def _tick(self) -> None:
        import ray

        raw, router_now = ray.get(self.router.take_arrivals.remote())
        now = time.monotonic()
        offset = now - router_now  # the router's clock may be another machine's
        arrivals = tuple(Arrival(a.at_s + offset, a.slo_class, a.prompt_len, a.canvas_len)
                         for a in raw)
        obs = Observation(now, arrivals, self.fleet.views(), self.fleet.free_devices())
        self._follow_machine_scales(obs)
        plans = len(self.controller.history)
        actions = self.controller.tick(obs)
        self._apply(actions, plans)

    def _follow_machine_scales(self, obs: Observation) -> None:
        measured = measured_scales(obs.replicas, [n.hardware for n in self.shape.nodes])
        scales = planning_scales(self.machine_scales, measured)
        if scales == self.machine_scales:
            return
        self.machine_scales = scales
        reason = f"replicas step off their step-cost profile: {describe_scales(scales)}"
        planner = self._planner(self.cluster_policy)
        history = self.controller.history
        # re-plan now only as often as the controller re-plans for load (a shared box's factor
        # moves with its neighbours); sooner, the next plan is made on the scaled profiles
        if history and obs.now - history[-1].at_s < self.controller.config.min_interval_s:
            self.controller.planner = planner
            self._log(f"{reason}; the next plan is made on the profile scaled by it")
            return
        self.controller.update(planner=planner, reason=reason)
        self._log(f"{reason}; re-planning on the profile scaled by it")

    def _apply(self, actions: list, plans_before: int = 0) -> None:
        history = self.controller.history
        reason = history[-1].reason if history else "reconcile"
        if len(history) > plans_before:
            self._log(describe_plan(history[-1]))
        elif actions:
            reason = "rolling the plan out"
        self.fleet.apply(actions, reason)
        self._drain_fleet_events()

    def _drain_fleet_events(self) -> None:
        for line in self.fleet.events:
            self._log(line)
        self.fleet.events.clear()

    def _check_policy(self) -> None:
        if self.watcher is None:
            return
        result = self.watcher.poll()
        if result is None:
            return
        if not result.ok:
            self._log(f"policy reload rejected, the running policy stays: "
                      f"{' | '.join(result.error.splitlines())}")
            return
        self._log(result.message())
        self.apply_policy(result.policy, "policy file reloaded")

    def apply_policy(self, cluster_policy: ClusterPolicy, reason: str = "policy changed") -> None:
        """Classes, threshold levels and reconfiguration knobs take effect now (router, workers,
        a re-plan at the next tick); the router address, model and cluster shape need a
        restart and are kept."""
        import dataclasses

        import ray

        with self._lock:
            old = self.cluster_policy.cluster
            # what the command line set stands over the file, reloaded or not
            new = dataclasses.replace(cluster_policy.cluster, **self.overrides)
            kept = [f for f in (*RESTART_CLUSTER_FIELDS, "router_kind")
                    if getattr(old, f) != getattr(new, f)]
            if kept:
                self._log(f"policy: {', '.join(kept)} changed; that takes a restart, the "
                          f"running values stay")
                new = dataclasses.replace(new, **{f: getattr(old, f) for f in kept})
            cluster_policy = dataclasses.replace(cluster_policy, cluster=new)
            planner = self._planner(cluster_policy)  # raises on a policy it cannot plan for
            self.cluster_policy = cluster_policy
            ray.get(self.router.set_policy.remote(cluster_policy.policy))
            self.fleet.set_policy(cluster_policy.policy)
            self.fleet.cluster = new
            self.controller.config = controller_config(new)
            self.controller.update(class_templates(cluster_policy.policy), planner, reason)
            self._log(f"policy applied ({reason}); re-planning at the next tick")

    # -- what status shows ------------------------------------------------------------------

    def _log(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        self.lines.append(stamped)
        self.logged += 1
        log.info(line)

    def events(self, since: int = 0) -> tuple[int, list[str]]:
        """The log lines after the first `since` ever logged (those still kept), and how many
        have been logged: `dilaserve serve` prints them as they come."""
        with self._lock:
            kept = list(self.lines)
            first_kept = self.logged - len(kept)
            return self.logged, kept[max(0, since - first_kept):]

    def wait_ready(self, timeout_s: float = 120.0) -> bool:
        """True once no replica is being placed or loaded and at least one serves."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                phases = [r.phase for r in self.fleet.replicas.values()]
            if phases and all(p in ("active", "draining") for p in phases):
                return True
            time.sleep(0.2)
        return False

    def router_target(self) -> str:
        """Where the router listens ("" before start)."""
        return self._target

    def router_http_url(self) -> str:
        """The router's OpenAI-compatible API, as a base URL ("" when off or before start)."""
        return self._http_url

    def replica(self, replica_id: int):
        """A replica's actor handle (for operators' tools and tests; None: no such replica)."""
        with self._lock:
            r = self.fleet.replicas.get(replica_id) if self.fleet else None
            return r.actor if r is not None else None

    def summary(self) -> dict:
        import ray

        with self._lock:
            plan = self.controller.plan if self.controller else None
            router = ray.get(self.router.summary.remote()) if self.router else {}
            return {
                "policy": self.cluster_policy.source,
                "cluster": self.shape.describe() if self.fleet else "",
                "plan": describe_plan(self.controller.history[-1]) if plan else "",
                "plans": len(self.controller.history) if self.controller else 0,
                "replicas": self.fleet.describe() if self.fleet else [],
                "router": router,
                "log": list(self.lines)[-30:],
                "error": self.error,
                "machine_scales": dict(self.machine_scales),
            }


def secured(settings: ClusterSettings) -> str:
    """' (TLS, tokens required)' as the router is set, for the lines that say where it is."""
    said = [what for what, on in (("TLS", settings.router_tls), ("tokens required",
                                                                 settings.router_tokens)) if on]
    return f" ({', '.join(said)})" if said else ""


def this_node():
    """A scheduling strategy that keeps an actor on the caller's node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _load_profiles(settings: ClusterSettings):
    from dilaserve.core.locations import SHIPPED_MODEL_DIR
    from solver.profile_set import load_profile_set

    if settings.profiles:
        return load_profile_set(settings.profiles)
    return load_profile_set(Path(settings.model or SHIPPED_MODEL_DIR) / "profiles")


def _control(target: str, threshold_range, drain, tls: ReplicaTls | None = None) -> int:
    """The worker's Control RPC (over mutual TLS with the policy's cluster.replica_tls):
    returns its in-flight count."""
    from worker.client.connection import ClientTls
    from worker.client.sync_client import WorkerClient

    with WorkerClient(target, tls=ClientTls.for_replicas(tls) if tls else None) as client:
        return client.control(threshold_range=threshold_range, drain=drain, timeout=5.0).in_flight
