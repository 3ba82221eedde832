"""One simulated replica: the real worker scheduler in front of a simulated engine.

The replica runs the scheduler's loop (see worker/scheduler/scheduler.py) with the simulator's
clock: `start_step(now)` plans and executes a step and returns when it will end; `finish_step(end)`
observes the result at that time. A step's plan is made at its start, so requests that arrive
during a step wait for the next one, as on a real worker. It also keeps the load figures its
`ReplicaView` reports (the backlog, from committed tokens; the step-time model, from the cost
coefficients and the rows it has admitted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from dilaserve.core.steps import EngineLimits, StepResult
from dilaserve.profiles.step_cost import StepCostModel
from orchestrator.step_model import step_time_model
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView
from sim.engine import QualityTable, RequestTruth, SimulatedEngine
from sim.workload import SpecFactory
from traces.jobs import Job
from worker.scheduler import (
    AdmissionDecision,
    Scheduler,
    SchedulerConfig,
    TerminalEvent,
    plan_has_work,
)

SEQ_AVERAGING = 0.02  # weight of the newest admitted row in the mean row length


class SimReplica:
    def __init__(self, replica_id: int, config: ReplicaConfig, node: int,
                 scheduler_config: SchedulerConfig, cost: StepCostModel, limits: EngineLimits,
                 quality: QualityTable, truths: Mapping[str, RequestTruth], cache_mode: str,
                 seed: int, step_jitter: float = 0.0, state: ReplicaState = ReplicaState.ACTIVE,
                 step_scale: float = 1.0, loop_s_per_request: float = 0.0,
                 budget_start: float | None = None) -> None:
        self.replica_id = replica_id
        self.node = node
        self.state = state
        self.cost = cost
        self.limits = limits
        self.quality = quality
        self.cache_mode = cache_mode
        self.scheduler_config = scheduler_config
        self.scheduler = Scheduler(scheduler_config, limits, quality.quality, cost)
        self.engine = SimulatedEngine(cost, quality, limits, truths, seed, step_jitter,
                                      step_scale)
        self.loop_s_per_request = loop_s_per_request
        self.budget_start = budget_start
        self.busy = False
        self._result: StepResult | None = None
        self._masked: dict[str, int] = {}
        self._backlog_tokens = 0
        self._mean_seq = 0.0
        self.steps = 0
        self.scheduler_s = 0.0  # wall time inside the scheduler's calls (for the speed report)
        self.set_config(config)

    def set_config(self, config: ReplicaConfig) -> None:
        """Decode settings for new requests (resident ones keep theirs)."""
        self.config = config
        lowers = self.scheduler_config.lowers_threshold
        self.specs = SpecFactory(config.threshold_max, config.threshold_min if lowers else None,
                                 config.block_size, self.cache_mode, self.budget_start)
        self._start_rate = self.quality.at(config.threshold_max, config.block_size)[0]
        self._view: ReplicaView | None = None

    # -- the scheduler's loop ---------------------------------------------------------------------

    def submit(self, job: Job, class_floor: float | None, now: float,
               budget: float | None = None) -> AdmissionDecision:
        spec = self.specs.spec(job, class_floor, budget)
        t0 = time.perf_counter()
        decision = self.scheduler.submit(spec, now)
        self.scheduler_s += time.perf_counter() - t0
        if decision.accepted:
            self._masked[job.request_id] = job.canvas_len
            self._backlog_tokens += job.canvas_len
            seq = job.prompt_len + job.canvas_len
            self._mean_seq += (seq - self._mean_seq) * (1.0 if self._mean_seq == 0
                                                         else SEQ_AVERAGING)
            self._view = None
        return decision

    def start_step(self, now: float) -> tuple[float | None, list[TerminalEvent]]:
        """Plan and execute a step; (its end time or None when idle, requests that ended now)."""
        t0 = time.perf_counter()
        plan = self.scheduler.plan(now)
        self.scheduler_s += time.perf_counter() - t0
        if not plan_has_work(plan):
            return None, self._ended(self.scheduler.take_events())
        self._result = self.engine.step(plan)
        self.busy = True
        self.steps += 1
        # the serving loop's own work for the requests it takes in (outside the step, which is
        # what the scheduler observes)
        return now + self._result.elapsed_s + self.loop_s_per_request * len(plan.admit), []

    def finish_step(self, now: float) -> list[TerminalEvent]:
        result = self._result
        if result is None:
            raise RuntimeError(f"replica {self.replica_id}: no step in flight")
        self._result = None
        self.busy = False
        masked = self._masked
        for outcome in result.outcomes:
            rid = outcome.request_id
            if rid in masked:
                masked[rid] -= outcome.committed
                self._backlog_tokens -= outcome.committed
        t0 = time.perf_counter()
        events = self.scheduler.observe(result, now)
        self.scheduler_s += time.perf_counter() - t0
        return self._ended(events)

    def _ended(self, events: list[TerminalEvent]) -> list[TerminalEvent]:
        for event in events:
            left = self._masked.pop(event.request_id, 0)
            self._backlog_tokens -= left
        self._view = None
        return events

    # -- what it reports --------------------------------------------------------------------------

    @property
    def active(self) -> int:
        return self.scheduler.active_count

    def view(self) -> ReplicaView:
        if self._view is None:
            self._view = self._make_view()
        return self._view

    def mark(self, state: ReplicaState) -> None:
        self.state = state
        self._view = None

    def _make_view(self) -> ReplicaView:
        rate = min(self._start_rate * self.scheduler.predictor.speed, self.config.block_size)
        seq = self._mean_seq or float(self.limits.max_seq_len // 2)
        base, row = step_time_model(self.cost.coef, self.config.block_size, rate, seq,
                                    self.cache_mode)
        return ReplicaView(self.replica_id, self.config, self.state, self.node, self.active,
                           self.scheduler.resident_count, self.limits.max_rows,
                           max(0.0, self._backlog_tokens) / rate, base, row, rate)
