"""The serving policies the bench compares, defined once and run by the same simulator code.

- `static`: even TP1 replicas at tau 0.9, FCFS, round-robin routing, no admission control (how
  Fast-dLLM would be served today; a client gives up at its deadline, so late requests end as
  expired rather than hold a slot for ever);
- `static+edf`: + least-slack-first scheduling and admission control;
- `static+edf+threshold`: + threshold control (each request starts at the threshold the
  predicted load calls for and load control lowers a late one toward its class's floor, both
  within the class's accuracy budget when it has one);
- `best-static`: the strong baseline: one fixed TP x threshold range for the whole run, the best
  of a sweep over every TP degree and every range top the class allows (down to its floor; with
  an accuracy budget, every top on the 0.05 ladder whose own drop fits the budget), chosen in
  hindsight on the very workload it is scored on among the runs whose spent budget fits;
  least-slack scheduling, admission, threshold control under the same budget, least-loaded
  routing;
- `dilaserve`: ILP placement (`solver.solve`, its capacity model) re-planned by the controller
  as load moves, with modelled reloads; deadline-aware routing; least-slack scheduling,
  admission, threshold control within each replica's planned range;
- `dilaserve+sim`: the same, but the controller scores the solver's candidate plans by
  simulating the recent arrivals on each (`sim.planning.SimEvaluator`): the optional refinement,
  at several times the run's wall time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from orchestrator.controller import ControllerConfig
from orchestrator.router import ROUTER_KINDS, Router, make_router
from worker.scheduler import SchedulerConfig

ROUTERS = ROUTER_KINDS
TP_SWEEP = (1, 2, 4, 8)


@dataclass(frozen=True)
class Layout:
    """A fixed layout: every replica TP `tp`, starting requests at `threshold`."""

    tp: int
    threshold: float

    def describe(self) -> str:
        return f"TP{self.tp} x tau {self.threshold:g}"


@dataclass(frozen=True)
class PolicySpec:
    name: str
    ordering: str  # fcfs | edf
    admission: bool
    load_control: str  # none | threshold
    router: str
    layout: Layout | None = None  # None: the ILP plans the layout and the controller runs it
    hindsight: bool = False  # the layout is chosen by a sweep over fixed layouts
    controller: ControllerConfig | None = None
    evaluate_plans: bool = False  # score the planner's candidates by simulating recent arrivals
    shed_margin: float = 1.0  # deadline-aware router: shed when predicted > budget x (1 + m)

    def __post_init__(self) -> None:
        if self.router not in ROUTERS:
            raise ValueError(f"policy {self.name}: router must be one of {ROUTERS}")

    @property
    def planned(self) -> bool:
        return self.controller is not None

    def scheduler_config(self, max_rows: int) -> SchedulerConfig:
        """The worker scheduler's defaults, but for what the policy sets and the refresh bound:
        a quarter of the row slots (the default, 4, is for small batches; at 64 rows of LLaDA-8B,
        one block start per 6-10 steps each, it defers block starts step after step)."""
        return SchedulerConfig(ordering=self.ordering, load_control=self.load_control,
                               admission=self.admission,
                               max_refresh_rows=max(4, max_rows // 4))

    def make_router(self) -> Router:
        return make_router(self.router, self.shed_margin)

    def with_layout(self, layout: Layout) -> PolicySpec:
        return replace(self, layout=layout)

    def describe(self) -> str:
        where = (self.layout.describe() if self.layout else
                 "best fixed layout in hindsight" if self.hindsight else "ILP + controller")
        parts = [where, self.ordering, f"admission {'on' if self.admission else 'off'}",
                 f"load control {self.load_control}", self.router.replace("_", " ")]
        return ", ".join(parts)


REFERENCE = Layout(1, 0.9)
# A plan has to hold until the controller re-plans, which it does once a class's rate has moved
# by `drift`: so the solver plans for the rate x (1 + drift). (Its capacities are for exactly
# the planned rate; without this margin a plan made at the rate of a rising load is short
# until the next one.)
PLANNED = ControllerConfig(headroom=ControllerConfig().drift)

POLICIES: dict[str, PolicySpec] = {
    "static": PolicySpec("static", "fcfs", False, "none", "round_robin", REFERENCE),
    "static+edf": PolicySpec("static+edf", "edf", True, "none", "round_robin", REFERENCE),
    "static+edf+threshold": PolicySpec("static+edf+threshold", "edf", True, "threshold",
                                       "round_robin", REFERENCE),
    "best-static": PolicySpec("best-static", "edf", True, "threshold", "least_loaded",
                              hindsight=True),
    "dilaserve": PolicySpec("dilaserve", "edf", True, "threshold", "deadline_aware",
                            controller=PLANNED),
    "dilaserve+sim": PolicySpec("dilaserve+sim", "edf", True, "threshold", "deadline_aware",
                                controller=PLANNED, evaluate_plans=True),
}


def parse_policies(text: str) -> list[PolicySpec]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError("--policies: give at least one policy")
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"--policies: unknown {unknown}; known: {', '.join(POLICIES)}")
    return [POLICIES[n] for n in names]
