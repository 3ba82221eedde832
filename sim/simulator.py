"""The discrete-event cluster simulator: the real router, controller, solver and worker scheduler,
driven by a modelled clock.

Events, in time order (ties: arrivals first, then in the order they were scheduled):
- an arrival: the router picks a replica (or sheds); the replica's scheduler admits or rejects;
  an idle replica starts a step at once;
- a step's end: the replica's scheduler observes the result, and the replica starts its next step;
- a replica becomes ready after its modelled reload;
- a controller tick (planned policies): the controller sees the arrivals since the last tick and
  the replicas' views, and its actions are carried out (`Fleet.apply`).
The run ends when every request has ended; each ends exactly once (`Records.end` checks).
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from orchestrator.actions import SetRoutes
from orchestrator.controller import Controller, Observation, plan_replicas, plan_routes
from orchestrator.load import Arrival
from orchestrator.planning import CandidatePlanner
from orchestrator.reconcile import reconcile
from orchestrator.types import ReplicaConfig, ReplicaState, RouteRequest
from sim.fleet import Fleet
from sim.metrics import Outcome, Records, RunSummary, summarize
from sim.planning import SimEvaluator, serving_model
from sim.policies import PolicySpec
from sim.replica import SimReplica
from sim.workload import SimWorkload
from solver.plan import Plan
from solver.profile_set import ProfileSet, solver_policy
from solver.types import Cluster
from worker.scheduler import TerminalEvent, TerminalKind

_STEP_DONE, _READY, _TICK, _WAKE = 0, 1, 2, 3
_IDLE_RETRY_S = 0.01  # an idle replica with requests (never expected) is looked at again


@dataclass(frozen=True)
class SimOptions:
    seed: int = 0
    step_jitter: float = 0.02  # relative sd of step times around the cost model (assumed)
    progress: bool = False  # a progress line on stderr
    label: str = ""
    # A request's time outside the worker: client -> router -> worker, and the final message
    # back (half each way). Milliseconds over gRPC on one host, which a request of the shipped
    # tiny model feels (its steps take ~5 ms); the live bench measures it. 0: not modelled.
    rpc_s: float = 0.0
    # The same path's spread, where measured: each request's RPC time is drawn from these
    # (seeded); the first rpc_s / 2 of it on the way in (so that arrivals keep their order), the
    # rest, at least nothing, on the way back. Empty: every request takes rpc_s.
    rpc_samples_s: tuple[float, ...] = ()
    # The machine around the steps, where it is not a GPU of its own (the embedded default's CPU
    # replicas share two cores with the request traffic): steps take step_scale times their
    # profile's prediction, and the worker's serving loop spends loop_s_per_request of its own
    # time on each request it takes in (outside the steps). Both measured by the live bench under
    # traffic at the compared rate; the defaults model nothing.
    step_scale: float = 1.0
    loop_s_per_request: float = 0.0

    def __post_init__(self) -> None:
        if not self.rpc_s >= 0:
            raise ValueError(f"SimOptions.rpc_s must be >= 0, got {self.rpc_s}")
        if any(not t >= 0 for t in self.rpc_samples_s):
            raise ValueError("SimOptions.rpc_samples_s: times must be >= 0")
        if not self.step_scale > 0:
            raise ValueError(f"SimOptions.step_scale must be > 0, got {self.step_scale}")
        if not self.loop_s_per_request >= 0:
            raise ValueError(f"SimOptions.loop_s_per_request must be >= 0, got "
                             f"{self.loop_s_per_request}")


class Simulation:
    def __init__(self, workload: SimWorkload, cluster: Cluster, profiles: ProfileSet,
                 policy: PolicySpec, options: SimOptions | None = None,
                 plan: Plan | None = None) -> None:
        """`plan`: run this plan's replicas and routes as they are (no controller)."""
        self.workload = workload
        self.cluster = cluster
        self.profiles = profiles
        self.policy = policy
        self.options = options or SimOptions()
        options = self.options
        self.fleet = Fleet(cluster, profiles, workload, policy.scheduler_config(profiles.max_rows),
                           options.seed, options.step_jitter, options.step_scale,
                           options.loop_s_per_request)
        if policy.planned:
            self.fleet.budget_start = profiles.quality.reference.threshold
        self.router = policy.make_router()
        self.records = Records(len(workload.jobs))
        self.block = profiles.reference_block
        self.floors = {c.name: c.floor(profiles.quality, self.block) for c in workload.classes}
        self.budgets = {c.name: c.accuracy_budget for c in workload.classes}
        self._index = {j.request_id: j.index for j in workload.jobs}
        self._back = self._ways_back(len(workload.jobs))
        self._heap: list[tuple[float, int, int, SimReplica | None]] = []
        self._seq = 0
        self._arrivals: list[Arrival] = []
        self.controller: Controller | None = None
        self.fixed_plan = plan
        self.planning_s = 0.0

    # -- set-up -----------------------------------------------------------------------------------

    def _ways_back(self, n: int) -> np.ndarray:
        """Each request's final message's time back to the client."""
        options = self.options
        half = options.rpc_s / 2
        if not options.rpc_samples_s:
            return np.full(n, half)
        rng = np.random.default_rng([options.seed, 0x52504321])
        drawn = rng.choice(np.asarray(options.rpc_samples_s, dtype=float), size=n)
        return np.maximum(0.0, drawn - half)

    def _place(self) -> None:
        policy = self.policy
        lowest = min(self.floors.values())
        if policy.layout is not None:
            layout = policy.layout
            self.fleet.place_uniform(lambda node: ReplicaConfig(
                node.name, layout.tp, self.block, min(lowest, layout.threshold),
                layout.threshold) if layout.tp <= node.gpus else None)
            return
        if self.fixed_plan is not None:
            plan = self.fixed_plan
            actions = [SetRoutes(plan_routes(plan)),
                       *reconcile(plan_replicas(plan), (), self.fleet.node_types(),
                                  self.fleet.free_gpus(), self.cluster.gpus)]
            self.fleet.apply(actions, self.router, 0.0, reload_s=0.0)
            return
        if policy.controller is None:
            raise ValueError(f"policy {policy.name}: no layout, plan or controller (best-static "
                             f"runs through run_grid's sweep)")
        serving = serving_model(policy, self.profiles.max_rows, _speed_cv(self.workload))
        solver = solver_policy(self.profiles, self.cluster, serving)
        planner = CandidatePlanner(self.cluster, self.profiles, solver,
                                   alternatives=policy.evaluate_plans)
        evaluator = (SimEvaluator(self.cluster, self.profiles, self.workload.classes, policy,
                                  self.options.seed) if policy.evaluate_plans else None)
        classes = [c.to_workload_class() for c in self.workload.classes]
        self.controller = Controller(classes, planner, self.fleet.node_types(),
                                     self.fleet.gpus_per_node(), policy.controller, evaluator)
        # warm start: a cluster that has been serving this load, planned from its first window
        window = policy.controller.window_s
        warm = tuple(Arrival(j.arrival_s - window, j.slo_class, j.prompt_len, j.canvas_len)
                     for j in self.workload.jobs if j.arrival_s < window)
        t0 = time.perf_counter()
        actions = self.controller.warm_start(warm, 0.0)
        self.planning_s += time.perf_counter() - t0
        self.fleet.apply(actions, self.router, 0.0, reload_s=0.0)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        wall0 = time.perf_counter()
        self._place()
        jobs = self.workload.jobs
        n = len(jobs)
        heap = self._heap
        if self.controller is not None:
            self._push(self.policy.controller.tick_s, _TICK, None)
        i = 0
        now = 0.0
        last_report = wall0
        loops = 0
        delivery = self.options.rpc_s / 2  # the router and the worker see it this much later
        while i < n or heap:
            next_arrival = jobs[i].arrival_s + delivery if i < n else math.inf
            if heap and heap[0][0] < next_arrival:
                now, _, kind, replica = heapq.heappop(heap)
                if kind == _STEP_DONE:
                    self._step_done(replica, now)
                elif kind == _READY:
                    if replica.state is ReplicaState.LOADING and \
                            replica.replica_id in self.fleet.replicas:
                        replica.mark(ReplicaState.ACTIVE)
                elif kind == _TICK:
                    self._tick(now, more=i < n)
                elif kind == _WAKE and not replica.busy:
                    self._kick(replica, now)
            else:
                now = next_arrival
                self._arrive(jobs[i], now)
                i += 1
            loops += 1
            if self.options.progress and loops % 4096 == 0:
                wall = time.perf_counter()
                if wall - last_report > 0.5:
                    last_report = wall
                    self._progress(now, wall - wall0)
        if self.options.progress:
            self._progress(now, time.perf_counter() - wall0, final=True)
        return self._summary(now, time.perf_counter() - wall0)

    def _push(self, at: float, kind: int, replica: SimReplica | None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, replica))

    def _arrive(self, job, now: float) -> None:
        if self.controller is not None:
            self._arrivals.append(Arrival(now, job.slo_class, job.prompt_len, job.canvas_len))
        request = RouteRequest(job.request_id, job.slo_class, job.prompt_len, job.canvas_len,
                               job.arrival_s, job.deadline_s)
        decision = self.router.route(request, self.fleet.views(), now)
        if decision.replica_id is None:
            self.records.end(job.index, Outcome.SHED, now)
            return
        floor = self.floors[job.slo_class]
        budget = self.budgets[job.slo_class]
        for replica_id in (decision.replica_id, *decision.fallbacks):
            replica = self.fleet.replicas[replica_id]
            if replica.submit(job, floor, now, budget).accepted:
                break
        else:
            self.records.end(job.index, Outcome.REJECTED, now)
            return
        self.records.replica[job.index] = replica.replica_id
        if not replica.busy:
            self._kick(replica, now)

    def _kick(self, replica: SimReplica, now: float) -> None:
        end, events = replica.start_step(now)
        self._record(replica, events)
        if end is not None:
            self._push(end, _STEP_DONE, replica)
        elif replica.active:
            self._push(now + _IDLE_RETRY_S, _WAKE, replica)
        self._maybe_stop(replica)

    def _step_done(self, replica: SimReplica, now: float) -> None:
        self._record(replica, replica.finish_step(now))
        self._kick(replica, now)

    def _maybe_stop(self, replica: SimReplica) -> None:
        if self.fleet.drained(replica) and replica.replica_id in self.fleet.replicas:
            self.fleet.stop(replica)

    def _record(self, replica: SimReplica, events: list[TerminalEvent]) -> None:
        records = self.records
        finished = replica.engine.finished
        for event in events:
            index = self._index[event.request_id]
            if event.kind is TerminalKind.FINISHED:
                met = event.deadline_met
                back = self._back[index]  # the final message's way back to the client
                if back > 0:
                    met = met and event.at_s + back <= self.workload.jobs[index].deadline_s
                records.end(index, Outcome.MET if met else Outcome.LATE, event.at_s + back)
                accuracy, threshold = finished.pop(event.request_id)
                records.accuracy[index] = accuracy
                records.threshold[index] = threshold
            elif event.kind is TerminalKind.EXPIRED:
                records.end(index, Outcome.EXPIRED, event.at_s)
            elif event.kind is TerminalKind.FAILED:
                raise RuntimeError(f"simulated engine failed request {event.request_id}: "
                                   f"{event.reason}")
            else:
                records.end(index, Outcome.CANCELLED, event.at_s)

    def _tick(self, now: float, more: bool) -> None:
        fleet = self.fleet
        obs = Observation(now, tuple(self._arrivals), fleet.views(), fleet.free_gpus())
        self._arrivals = []
        t0 = time.perf_counter()
        actions = self.controller.tick(obs)
        self.planning_s += time.perf_counter() - t0
        for replica in fleet.apply(actions, self.router, now, self.profiles.reload_s):
            if replica.state is ReplicaState.LOADING:
                self._push(now + self.profiles.reload_s, _READY, replica)
        for replica in list(fleet.live):
            if not replica.busy and replica.active:
                self._kick(replica, now)
            else:
                self._maybe_stop(replica)
        if more or any(r.active or r.busy for r in fleet.live):
            self._push(now + self.policy.controller.tick_s, _TICK, None)

    # -- results ----------------------------------------------------------------------------------

    def _progress(self, now: float, wall: float, final: bool = False) -> None:
        span = max(self.workload.duration_s, 1e-9)
        steps = self.fleet.steps_total  # stopped replicas' steps included
        label = self.options.label or self.policy.name
        end = "\n" if final else "\r"
        sys.stderr.write(f"  {label}: simulated {now:7.0f} / {span:.0f} s "
                         f"({min(1.0, now / span):4.0%}), wall {wall:5.1f} s, "
                         f"{steps} steps{' ' * 8}{end}")
        sys.stderr.flush()

    def _summary(self, now: float, wall: float) -> RunSummary:
        jobs = self.workload.jobs
        arrivals = np.array([j.arrival_s for j in jobs])
        counters = dict(self.fleet.counters)
        if self.controller is not None:
            counters["plans"] = len(self.controller.history)
        steps = self.fleet.steps_total
        sched = self.fleet.scheduler_s_total
        layout = (self.policy.layout.describe() if self.policy.layout is not None
                  else self._plans_described())
        return summarize(self.records, policy=self.policy.name, layout=layout,
                         arrivals=arrivals, draws=np.array(self.workload.correct_draws),
                         duration_s=self.workload.duration_s,
                         reference_accuracy=self.profiles.quality.reference.accuracy,
                         reconfigurations=counters, replica_steps=steps, wall_s=wall,
                         sim_s=now, scheduler_s=sched, planning_s=self.planning_s,
                         classes=np.array([j.slo_class for j in jobs]),
                         accuracy_budget=min((b for b in self.budgets.values()
                                              if b is not None), default=None))

    def _plans_described(self) -> str:
        if self.controller is None or not self.controller.history:
            return "-"
        first = self.controller.history[0].plan
        groups = ", ".join(f"{g.count} x TP{g.tp} tau {g.threshold_min:g}-{g.threshold_max:g}"
                           for g in first.groups)
        return f"ILP ({len(self.controller.history)} plans; first: {groups})"


def run_policy(workload: SimWorkload, cluster: Cluster, profiles: ProfileSet,
               policy: PolicySpec, options: SimOptions | None = None) -> RunSummary:
    return Simulation(workload, cluster, profiles, policy, options).run()


def _speed_cv(workload: SimWorkload) -> float:
    """The spread of tokens per step between the workload's requests (the capacity model's)."""
    speeds = np.array([t.speed for t in workload.truths.values()])
    return float(speeds.std() / speeds.mean()) if len(speeds) > 1 else 0.0
