"""The worker's deadline-aware step scheduler. Pure: no torch, no gRPC, no clock (`now` is input).

The loop that drives it (the gRPC worker, or a simulator with a modelled clock):

    decision = scheduler.submit(spec, now)          # at arrival; reject at once if not accepted
    scheduler.cancel(request_id)                    # any time; takes effect at the next plan
    plan = scheduler.plan(now)
    if plan_has_work(plan):
        events = scheduler.observe(engine.step(plan), now)
    else:
        events = scheduler.take_events()            # idle: queued requests may still expire
    for event in events: ...                        # finished / expired / cancelled, once each

Nothing is lost: every accepted request ends in exactly one TerminalEvent. Requests that end
without the engine (expired or cancelled while queued) go to an outbox at plan time; requests the
engine holds are listed in the plan's `evict` and their event comes from the `observe` of that plan,
once the engine has dropped them; finished ones come from the outcome that finished them. Both
`observe` and `take_events` drain the outbox. A plan with work must be observed before the next
plan (a second `plan` raises), so a step's outcomes cannot be skipped.

Deadlines: at each plan, a request whose deadline has passed is expired (evicted if resident)
unless it is best-effort, which carries on demoted and later finishes with deadline_met=False.
Batching and phase grouping: see `batching`; ordering: `ordering`; load control: `load_control`;
admission: `admission`; time prediction: `predictor`.
"""

from __future__ import annotations

import heapq
import math
from itertools import islice

from dilaserve.core.steps import (
    AdmitRow,
    EngineLimits,
    FinishReason,
    Phase,
    SettingsChange,
    StepPlan,
    StepResult,
)
from dilaserve.policy.scheduler_config import SchedulerConfig
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCost
from worker.scheduler.admission import Admission, shape_problem
from worker.scheduler.batching import fill_step
from worker.scheduler.budget import Budget
from worker.scheduler.load_control import LoadController, ladders
from worker.scheduler.ordering import order_key, refresh_order
from worker.scheduler.predictor import BatchShape, Predictor
from worker.scheduler.requests import (
    AdmissionDecision,
    RequestSpec,
    RequestState,
    TerminalEvent,
    TerminalKind,
    Verdict,
    terminal_event,
)

ROWS_AVERAGING = 0.05  # weight of the newest step in the moving average of rows per step


def plan_has_work(plan: StepPlan) -> bool:
    """Whether the engine must execute this plan (and the scheduler then observe its result)."""
    return bool(plan.run or plan.admit or plan.evict or plan.changes)


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        limits: EngineLimits,
        quality: QualityProfile,
        step_cost: StepCost,
    ) -> None:
        self.config = config
        self.limits = limits
        self.step_cost = step_cost
        self.predictor = Predictor(
            quality, step_cost, config.rate_prior_tokens, config.speed_memory_steps
        )
        self.budget = Budget(quality)
        self.load_control = LoadController(config, self.predictor, self.budget)
        self.admission = Admission(config, limits, self.predictor, self.budget)
        self._active: dict[str, RequestState] = {}
        self._queued: dict[str, RequestState] = {}
        self._resident: dict[str, RequestState] = {}
        self._deadlines: list[tuple[float, int, str]] = []
        self._cancels: set[str] = set()
        self._outbox: list[TerminalEvent] = []
        self._evicting: list[TerminalEvent] = []
        self._in_flight: StepPlan | None = None
        self._seq = 0
        self.last_predicted_step_s = 0.0
        self._typical_rows = 0.0  # moving average of rows per step: the load admission plans for
        # the resident rows' BatchShape for admission, kept while they are unchanged (from one
        # plan or observe to the next, arrivals all see the same resident rows)
        self._resident_shape: BatchShape | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def submit(self, spec: RequestSpec, now: float) -> AdmissionDecision:
        rid = spec.request_id
        if rid in self._active:
            return AdmissionDecision(rid, Verdict.REJECTED, "rejected: request id already active")
        problem = shape_problem(spec, self.limits)
        if problem is not None:
            return AdmissionDecision(rid, Verdict.REJECTED, problem)
        self._seq += 1
        state = RequestState(spec, *ladders(spec, self.config), seq=self._seq)
        self.predictor.update(state)
        state.planned_steps = state.steps_left
        if self._resident_shape is None:
            self._resident_shape = self.predictor.shape_of(self._resident.values())
        decision = self.admission.decide(
            state,
            now,
            self._resident.values(),
            self._queued.values(),
            self._typical_rows,
            self._resident_shape,
        )
        if not decision.accepted:
            return decision
        state.demoted = decision.verdict is Verdict.BEST_EFFORT
        self.budget.admit(state)
        self._active[rid] = self._queued[rid] = state
        if math.isfinite(spec.deadline_s):
            heapq.heappush(self._deadlines, (spec.deadline_s, state.seq, rid))
        return decision

    def cancel(self, request_id: str) -> bool:
        """Ask for a request to end; False when it is not active (unknown or already ended)."""
        state = self._active.get(request_id)
        if state is None:
            return False
        self._cancels.add(request_id)
        return True

    # -- the step ---------------------------------------------------------------------------------

    def plan(self, now: float) -> StepPlan:
        """The next step: expire and cancel (evict), adjust settings, fill the step. A plan with
        work (`plan_has_work`) must be executed by the engine and its result observed."""
        if self._in_flight is not None:
            raise RuntimeError("plan() called again before observe() of the plan in flight")
        self._resident_shape = None
        evicting = self._end_cancelled(now) + self._end_expired(now)
        resident = self._resident
        # an idle engine: the queue's first requests are the batch that slack is measured against
        batch = (
            resident.values() if resident else islice(self._queued.values(), self.limits.max_rows)
        )
        shape = self.predictor.shape_of(batch)
        step_s = self.predictor.step_seconds(shape)
        changes: list[SettingsChange] = []
        if self.config.lowers_threshold:
            for state in resident.values():
                change = self.load_control.decide(state, now, step_s)
                if change is not None:
                    changes.append(change)

        ordering, max_deferrals = self.config.ordering, self.config.max_refresh_deferrals

        def ordered_refresh(states: list[RequestState]) -> list[RequestState]:
            return refresh_order(states, ordering, now, step_s, max_deferrals)

        def queue_head(k: int) -> list[RequestState]:
            return heapq.nsmallest(
                k, self._queued.values(), key=lambda s: order_key(s, ordering, now, step_s)
            )

        fill = fill_step(
            list(resident.values()), ordered_refresh, queue_head, self.limits, self.config, evicting
        )
        for state in fill.admit:
            del self._queued[state.request_id]
            resident[state.request_id] = state
            state.resident = True
        if fill.admit and self.config.lowers_threshold:
            step_s = self.predictor.step_seconds(self.predictor.shape_of(resident.values()))
            for state in fill.admit:
                self.load_control.settle_before_admission(state, now, step_s)
        admit = tuple(
            AdmitRow(s.request_id, s.spec.prompt_ids, s.spec.canvas_len, s.settings_now())
            for s in fill.admit
        )
        plan = StepPlan(
            admit=admit,
            run=tuple(s.request_id for s in fill.run),
            evict=tuple(s.request_id for s in evicting),
            changes=tuple(changes),
        )
        self.last_predicted_step_s = self.step_cost.predict(fill.features) if fill.run else 0.0
        self._typical_rows += ROWS_AVERAGING * (len(fill.run) - self._typical_rows)
        if plan_has_work(plan):
            self._in_flight = plan
        return plan

    def observe(self, result: StepResult, now: float) -> list[TerminalEvent]:
        """Take the engine's result of the plan in flight; returns every request that ended since
        the last call (finished by this step, evicted by its plan, or ended while queued)."""
        plan = self._in_flight
        if plan is None:
            if result.outcomes:
                raise ValueError("observe() got outcomes but no plan is in flight")
            return self.take_events()
        reported = [o.request_id for o in result.outcomes]
        unique = set(reported)
        if len(unique) != len(reported) or not unique.issubset(plan.run):
            # checked before anything changes, so the plan stays in flight for a corrected result
            raise ValueError(f"engine reported rows {reported} for a plan that ran {plan.run}")
        self._in_flight = None
        self._resident_shape = None
        events = self._evicting
        self._evicting = []
        for outcome in result.outcomes:
            state = self._resident[outcome.request_id]
            state.steps += 1
            state.refreshes += outcome.phase is Phase.REFRESH
            self.budget.commit(state, outcome.committed)
            state.committed += outcome.committed
            if state.topk:
                expected = self.predictor.prior_rate(state.threshold, state.block_size, state)
            else:  # one profile lookup for both: this runs for every row of every step
                profiled = self.predictor.profile_rate(state.threshold, state.block_size)
                self.predictor.learn_speed(outcome.committed, profiled)
                expected = self.predictor.at_speed(profiled, state.block_size)
            state.expected_committed += expected
            state.masked_left = outcome.masked_left
            if outcome.error:  # the engine ended this row alone and freed it
                self._forget(state)
                events.append(terminal_event(state, TerminalKind.FAILED, now, outcome.error))
                continue
            if outcome.done:  # the engine frees the row itself
                self._forget(state, finished=True)
                events.append(
                    terminal_event(
                        state,
                        TerminalKind.FINISHED,
                        now,
                        f"finished: {_reason(outcome.finish_reason)}",
                        outcome.output_ids,
                        outcome.finish_reason,
                    )
                )
                continue
            state.at_block_start = outcome.block_finished
            if outcome.block_finished:
                state.block_start += state.block_size
                state.block_size = state.next_block
                state.pending_block = None
            self.predictor.update(state)
        if result.outcomes and result.elapsed_s > 0:
            self.step_cost.update(result.features, result.elapsed_s)
        return self.take_events() + events

    def take_events(self) -> list[TerminalEvent]:
        events, self._outbox = self._outbox, []
        return events

    # -- views ------------------------------------------------------------------------------------

    def state(self, request_id: str) -> RequestState | None:
        return self._active.get(request_id)

    @property
    def queued_ids(self) -> tuple[str, ...]:
        return tuple(self._queued)

    @property
    def resident_ids(self) -> tuple[str, ...]:
        return tuple(self._resident)

    @property
    def resident_count(self) -> int:
        return len(self._resident)

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    # -- endings ----------------------------------------------------------------------------------

    def _end_cancelled(self, now: float) -> list[RequestState]:
        """End the cancelled requests; returns those the engine must evict."""
        evict = []
        for rid in sorted(self._cancels):
            state = self._active.get(rid)
            if state is not None and self._end(state, TerminalKind.CANCELLED, now, "cancelled"):
                evict.append(state)
        self._cancels.clear()
        return evict

    def _end_expired(self, now: float) -> list[RequestState]:
        """End the requests whose deadline has passed (best-effort ones carry on, demoted)."""
        evict = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, seq, rid = heapq.heappop(self._deadlines)
            state = self._active.get(rid)
            if state is None or state.seq != seq:
                continue
            if state.spec.best_effort:
                state.demoted = True
            elif self._end(state, TerminalKind.EXPIRED, now, "expired: deadline passed"):
                evict.append(state)
        return evict

    def _end(self, state: RequestState, kind: TerminalKind, now: float, reason: str) -> bool:
        """End a request; True when the engine holds it (its event waits for the eviction)."""
        was_resident = state.resident
        self._forget(state)
        event = terminal_event(state, kind, now, reason)
        (self._evicting if was_resident else self._outbox).append(event)
        return was_resident

    def _forget(self, state: RequestState, finished: bool = False) -> None:
        rid = state.request_id
        self.budget.end(state, finished)
        del self._active[rid]
        self._queued.pop(rid, None)
        self._resident.pop(rid, None)
        self._cancels.discard(rid)
        state.resident = False


def _reason(reason: FinishReason | None) -> str:
    return "unknown" if reason is None else reason.value
