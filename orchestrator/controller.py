"""The cluster controller's loop: observe load, decide when to re-plan, turn a plan into actions.

    actions = controller.tick(observation)      # every `tick_s` of the injected clock

Pure: the planner (in practice `solver.solve` bound to a cluster, profiles and policy) and the
optional plan evaluator are injected, time comes in with the observation, and the output is plain
actions (`orchestrator.types`) that the runtime executes: the simulator here, Ray actors later.

When to re-plan: at the first tick with any load; then when some class's estimated rate has moved
more than `drift` (relative) from the rate the plan was made for, or a class appeared, and at least
`min_interval_s` after the last plan. A change counts only when it is sustained: measured over at
least `min_requests` requests (the larger of the rates, old and new, over the window: one request
and then none is not a load change) and still there `sustain_s` after it was first seen. The
plan is made for the estimated rate x (1 + headroom), with the running plan as `current`, so
that the solver weighs reloads against gains.

Choosing among candidates: the planner may offer several plans (the solver's own first, then e.g.
the best plan that keeps the running TP layout). With an evaluator (AlpaServe's approach: score a
placement by simulating it on the recent arrivals), the controller takes the best-scoring one; a
plan that changes the TP layout must beat the best plan that keeps it by `min_gain`, since its
reloads idle GPUs the score does not see. Without an evaluator it takes the planner's first.

Every tick (not only after a re-plan) reconciles the running replicas with the plan
(`reconcile`), since rolling changes and adds waiting for GPUs spread over several ticks; routes
are sent whenever the plan changes.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from dilaserve.core.checks import check_ranges
from orchestrator.actions import Action, SetRoutes
from orchestrator.load import Arrival, ClassLoad, LoadEstimator
from orchestrator.reconcile import reconcile
from orchestrator.types import ReplicaConfig, ReplicaView, Route
from solver.length_mix import LengthMix
from solver.plan import Plan
from solver.types import LengthDist, Workload, WorkloadClass

# (workload, running plan) -> candidate plans, the planner's own choice first
Planner = Callable[[Workload, Plan | None], Sequence[Plan]]
# (plan, recent arrivals, now) -> the attainment the plan would reach on them
Evaluator = Callable[[Plan, Sequence[Arrival], float], float]


@dataclass(frozen=True)
class ControllerConfig:
    tick_s: float = 15.0
    window_s: float = 120.0  # arrival-rate window
    drift: float = 0.15  # re-plan when a class's rate moved this much (relative)
    min_interval_s: float = 60.0
    headroom: float = 0.0  # plan for rate x (1 + headroom)
    max_draining_fraction: float = 0.25  # of the cluster's GPUs draining at once
    min_gain: float = 0.02  # attainment a TP-layout change must add over keeping the layout
    min_requests: int = 0  # a rate change counts only when seen over this many requests
    sustain_s: float = 0.0  # ... and only once it has lasted this long

    def __post_init__(self) -> None:
        check_ranges(self, "ControllerConfig", positive=("tick_s", "window_s"),
                     non_negative=("drift", "min_interval_s", "headroom", "min_requests",
                                   "sustain_s"),
                     fraction=("max_draining_fraction",))


@dataclass(frozen=True)
class Observation:
    now: float
    arrivals: tuple[Arrival, ...]  # since the previous tick
    replicas: tuple[ReplicaView, ...]
    free_gpus: tuple[int, ...]  # per node


@dataclass(frozen=True)
class PlanRecord:
    at_s: float
    plan: Plan
    rates: dict[str, float]  # the estimated rates it was made for (before headroom)
    reason: str
    scores: tuple[float, ...] = field(default=())  # evaluator's score per candidate, if any
    chosen: int = 0  # index of the chosen candidate


def plan_replicas(plan: Plan) -> list[ReplicaConfig]:
    """One wanted replica configuration per replica of the plan."""
    out = []
    for g in plan.groups:
        cfg = ReplicaConfig(g.node_type, g.tp, g.block_size, g.threshold_min, g.threshold_max)
        out.extend([cfg] * g.count)
    return out


def slots(plan: Plan | None) -> Counter[tuple[str, int]]:
    """Replicas per (node type, TP degree): what changing costs reloads."""
    out: Counter[tuple[str, int]] = Counter()
    for g in plan.groups if plan is not None else ():
        out[(g.node_type, g.tp)] += g.count
    return out


def plan_routes(plan: Plan) -> tuple[Route, ...]:
    out = []
    for r in plan.routes:
        g = plan.groups[r.group]
        cfg = ReplicaConfig(g.node_type, g.tp, g.block_size, g.threshold_min, g.threshold_max)
        out.append(Route(r.class_name, cfg, r.fraction))
    return tuple(out)


class Controller:
    def __init__(self, classes: Sequence[WorkloadClass], planner: Planner,
                 node_types: Sequence[str], gpus_per_node: Sequence[int],
                 config: ControllerConfig | None = None,
                 evaluator: Evaluator | None = None) -> None:
        if not classes:
            raise ValueError("Controller needs at least one SLO class")
        self.templates = {c.name: c for c in classes}
        self.planner = planner
        self.node_types = tuple(node_types)
        self.gpus_per_node = tuple(gpus_per_node)
        self.total_gpus = sum(gpus_per_node)
        self.config = config or ControllerConfig()
        self.evaluator = evaluator
        self.load = LoadEstimator(self.config.window_s)
        self.recent: deque[Arrival] = deque()  # arrivals within the window, for the evaluator
        self.history: list[PlanRecord] = []
        self._pending_reason = ""  # a re-plan asked for from outside (a policy reload)
        self._drift_since: dict[str, float] = {}  # when each drifting class was first seen so

    @property
    def plan(self) -> Plan | None:
        return self.history[-1].plan if self.history else None

    def tick(self, obs: Observation) -> list[Action]:
        for arrival in obs.arrivals:
            self.load.add(arrival)
            self.recent.append(arrival)
        while self.recent and self.recent[0].at_s < obs.now - self.config.window_s:
            self.recent.popleft()
        loads = {name: load for name in self.load.classes()
                 if (load := self.load.load(name, obs.now)) is not None}
        actions: list[Action] = []
        reason = self._replan_reason(loads, obs.now)
        if reason:
            self._replan(loads, tuple(self.recent), obs.now, reason)
            actions.append(SetRoutes(plan_routes(self.plan)))
        if self.plan is None:
            return actions
        budget = max(1, int(self.config.max_draining_fraction * self.total_gpus))
        actions.extend(reconcile(plan_replicas(self.plan), obs.replicas, self.node_types,
                                 obs.free_gpus, budget))
        return actions

    def warm_start(self, history: Sequence[Arrival], now: float) -> list[Action]:
        """The first plan from arrivals seen before `now` (a cluster that has been serving):
        the actions bring the replicas up; the rate estimator starts empty at `now`."""
        estimator = LoadEstimator(self.config.window_s)
        for arrival in history:
            estimator.add(arrival)
        loads = {name: load for name in estimator.classes()
                 if (load := estimator.load(name, now)) is not None}
        if not loads:
            return []
        self._replan(loads, tuple(history), now, "warm start")
        plan = self.plan
        budget = self.total_gpus  # nothing runs yet: no capacity to protect
        return [SetRoutes(plan_routes(plan)),
                *reconcile(plan_replicas(plan), (), self.node_types,
                           self._all_free(), budget)]

    def cold_start(self, now: float, rate: float = 0.0) -> list[Action]:
        """The first plan of a cluster that has seen no request yet: every class at `rate` req/s
        with its template's lengths. With no load to serve, the solver spreads the cluster over
        replicas for headroom; the first re-plan follows once load is measured."""
        loads = {name: ClassLoad(name, rate, t.prompt.mean, t.prompt.p90 or t.prompt.mean,
                                 t.output.mean, t.output.p90 or t.output.mean, 0)
                 for name, t in self.templates.items()}
        self._replan(loads, (), now, "cold start")
        return [SetRoutes(plan_routes(self.plan)),
                *reconcile(plan_replicas(self.plan), (), self.node_types, self._all_free(),
                           self.total_gpus)]

    def update(self, classes: Sequence[WorkloadClass] | None = None,
               planner: Planner | None = None, reason: str = "policy changed") -> None:
        """New class templates and/or planner (a reloaded policy): the next tick re-plans, even
        within `min_interval_s` of the last plan and without drift."""
        if classes is not None:
            if not classes:
                raise ValueError("Controller needs at least one SLO class")
            self.templates = {c.name: c for c in classes}
        if planner is not None:
            self.planner = planner
        self._pending_reason = reason

    def _replan(self, loads: dict[str, ClassLoad], recent: tuple[Arrival, ...], now: float,
                reason: str) -> None:
        offered = self.planner(self._workload(loads), self.plan)
        candidates = [offered] if isinstance(offered, Plan) else list(offered)
        if not candidates:
            raise ValueError("planner returned no plan")
        scores: tuple[float, ...] = ()
        chosen = 0
        if self.evaluator is not None and len(candidates) > 1 and recent:
            scores = tuple(self.evaluator(p, recent, now) for p in candidates)
            chosen = self._choose(candidates, scores)
        self.history.append(PlanRecord(now, candidates[chosen],
                                       {n: ld.rate for n, ld in loads.items()}, reason, scores,
                                       chosen))

    def _choose(self, candidates: list[Plan], scores: tuple[float, ...]) -> int:
        """The best score; among near-equal scores, the fewest slot changes. A layout change
        must beat the best plan that keeps the running layout by `min_gain`."""
        running = slots(self.plan)

        def moves(i: int) -> int:
            return sum(((slots(candidates[i]) - running) + (running - slots(candidates[i])))
                       .values())

        order = sorted(range(len(candidates)), key=lambda i: (-round(scores[i], 3), moves(i), i))
        best = order[0]
        if self.plan is None or moves(best) == 0:
            return best
        keep = [i for i in order if moves(i) == 0]
        if keep and scores[best] < scores[keep[0]] + self.config.min_gain:
            return keep[0]
        return best

    def _all_free(self) -> tuple[int, ...]:
        return tuple(self.gpus_per_node)

    def _replan_reason(self, loads: dict[str, ClassLoad], now: float) -> str:
        if not loads:
            return self._take_pending() if self.history else ""
        if not self.history:
            return "first plan"
        if self._pending_reason:
            return self._take_pending()
        last = self.history[-1]
        reason = ""
        for name, load in sorted(loads.items()):
            change = self._rate_change(name, load, last.rates.get(name))
            if not change:
                self._drift_since.pop(name, None)
                continue
            since = self._drift_since.setdefault(name, now)
            if not reason and now - since >= self.config.sustain_s:
                reason = change
        if not reason or now - last.at_s < self.config.min_interval_s:
            return ""
        self._drift_since.clear()
        return reason

    def _rate_change(self, name: str, load: ClassLoad, planned: float | None) -> str:
        """Why this class's load differs from the plan's ("" when it does not, or when too few
        requests show it)."""
        seen = max(load.rate, planned or 0.0) * self.config.window_s
        if seen < self.config.min_requests:
            return ""
        if planned is None:
            return f"class {name} appeared"
        if abs(load.rate - planned) > self.config.drift * max(planned, 1e-9):
            return f"class {name}: rate {planned:.3g} -> {load.rate:.3g} req/s"
        return ""

    def _take_pending(self) -> str:
        reason, self._pending_reason = self._pending_reason, ""
        return reason

    def _workload(self, loads: dict[str, ClassLoad]) -> Workload:
        classes = []
        for name, template in sorted(self.templates.items()):
            load = loads.get(name)
            if load is None:
                classes.append(replace(template, rate=0.0))
                continue
            classes.append(replace(
                template, rate=load.rate * (1.0 + self.config.headroom),
                prompt=LengthDist(max(1.0, load.prompt_mean), max(1.0, load.prompt_p90,
                                                                  load.prompt_mean)),
                output=LengthDist(max(1.0, load.canvas_mean), max(1.0, load.canvas_p90,
                                                                  load.canvas_mean)),
                lengths=LengthMix.from_pairs(load.lengths) if load.lengths else None))
        return Workload(tuple(classes))
