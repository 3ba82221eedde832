"""Admission: refuse at arrival what cannot meet its deadline, rather than time it out late, and
start what it accepts at the threshold the predicted load calls for.

The rule. An arrival is feasible when now + (wait + service) x step time x (1 + headroom) <= its
deadline, where
  service = its predicted steps at its starting threshold (and starting block size),
  wait    = when a row slot frees up for it: the work ahead of it (the resident rows' steps left
            at their current settings, which load control keeps unless they run late, and the
            planned steps of every queued request the ordering puts before it) list-scheduled onto
            the row slots it can have (max_rows, fewer when its length limits it by max_tokens);
            and no sooner than the refresh bound lets it in: a queued request joins the batch
            through a refresh step, at most `max_refresh_rows` of them a step (block starts of
            resident rows first: `batching`), so a queue of short requests waits for entry, not
            for slots,
  step time = the predicted step time of the current batch with it added, filled to as many rows
            as the work ahead will keep busy or as recent steps have had (the arrivals that will
            join during its service), whichever is more.
The starting threshold (with load control on): the highest rung of its ladder at which it is
predicted to finish with load control's slack margin to spare (slack >= slack_margin x its
service time), among the rungs its class's accuracy budget allows (`budget`); when none has the
margin, the lowest rung the budget allows, and the rule above decides. So admission predicts with
the threshold the request will run at: it neither counts on a floor the request would only reach
once late, nor refuses what a lower allowed threshold serves in time.
With `admission_protects_queue`, an arrival is also infeasible when it would push a queued request
behind it (edf puts an urgent arrival ahead of others) from meeting its deadline to missing it:
the same list schedule is run with and without the arrival. Resident requests are not re-examined
(they already hold their slots; arrivals wait for a slot).
An infeasible arrival is rejected, or accepted demoted when its class allows best effort.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable
from operator import itemgetter

from dilaserve.core.steps import EngineLimits
from dilaserve.policy.scheduler_config import SchedulerConfig
from worker.scheduler.budget import Budget
from worker.scheduler.ordering import order_key
from worker.scheduler.predictor import BatchShape, Predictor
from worker.scheduler.requests import AdmissionDecision, RequestSpec, RequestState, Verdict


def shape_problem(spec: RequestSpec, limits: EngineLimits) -> str | None:
    """Why the engine could never run this request, or None."""
    if spec.seq_len > limits.max_seq_len:
        return (
            f"rejected: prompt + canvas is {spec.seq_len} tokens, over the engine's "
            f"max_seq_len {limits.max_seq_len}"
        )
    if spec.seq_len > limits.max_tokens:
        return (
            f"rejected: prompt + canvas is {spec.seq_len} tokens, over the engine's "
            f"max_tokens {limits.max_tokens}"
        )
    return None


class Admission:
    def __init__(
        self,
        config: SchedulerConfig,
        limits: EngineLimits,
        predictor: Predictor,
        budget: Budget | None = None,
    ) -> None:
        self.config = config
        self.limits = limits
        self.predictor = predictor
        self.budget = budget or Budget(predictor.quality)

    def decide(
        self,
        state: RequestState,
        now: float,
        resident: Collection[RequestState],
        queued: Iterable[RequestState],
        typical_rows: float = 0.0,
        resident_shape: BatchShape | None = None,
    ) -> AdmissionDecision:
        """`resident_shape`: `predictor.shape_of(resident)`, when the caller has it at hand."""
        spec = state.spec
        rid = spec.request_id
        if not self.config.admission:
            return AdmissionDecision(rid, Verdict.ACCEPTED, "accepted: admission control is off")
        if spec.deadline_s <= now:
            return self._infeasible(state, "its deadline has already passed", None)

        slots = max(1, min(self.limits.max_rows, self.limits.max_tokens // spec.seq_len))
        if resident_shape is None:
            resident_shape = self.predictor.shape_of(resident)
        shape = self.predictor.shape_with(resident_shape, state)
        step_s = self.predictor.step_seconds(shape)
        ordering = self.config.ordering
        mine = order_key(state, ordering, now, step_s)
        keyed = sorted(
            ((order_key(q, ordering, now, step_s), q) for q in queued), key=itemgetter(0)
        )
        ahead = [q for key, q in keyed if key < mine]
        behind = [q for key, q in keyed if key > mine]
        busy = min(slots, max(len(resident) + len(ahead) + 1, typical_rows))
        step_s = self.predictor.step_seconds(shape.filled_to(busy))
        stretch = step_s * (1.0 + self.config.admission_headroom)

        free_at = sorted(r.steps_left for r in resident)[-slots:]
        free_at = [0.0] * (slots - len(free_at)) + free_at
        heapq.heapify(free_at)
        for q in ahead:
            heapq.heappush(free_at, heapq.heappop(free_at) + q.planned_steps)
        without = list(free_at)
        wait_steps = max(heapq.heappop(free_at), self._entry_steps(spec.seq_len, ahead, resident))
        service_steps = self._start(state, now, wait_steps, step_s, stretch)
        heapq.heappush(free_at, wait_steps + service_steps)
        finish = now + (wait_steps + service_steps) * stretch
        detail = (
            f"predicted finish in {(finish - now) * 1e3:.1f} ms (wait {wait_steps:.0f} + "
            f"service {service_steps:.0f} steps of {step_s * 1e3:.2f} ms at threshold "
            f"{state.threshold:g}) against a deadline in "
            f"{(spec.deadline_s - now) * 1e3:.1f} ms"
        )
        if finish > spec.deadline_s:
            return self._infeasible(state, detail, finish)
        if self.config.admission_protects_queue:
            victim = _first_victim(behind, free_at, without, now, stretch)
            if victim is not None:
                return self._infeasible(
                    state, f"admitting it would make {victim} late; {detail}", finish
                )
        return AdmissionDecision(rid, Verdict.ACCEPTED, f"accepted: {detail}", finish)

    def _entry_steps(
        self, seq_len: int, ahead: list[RequestState], resident: Collection[RequestState]
    ) -> float:
        """Steps before the refresh bound lets the arrival into the batch (0: the next one)."""
        per_step = self.config.max_refresh_rows
        budget = self.config.refresh_token_budget
        if budget is not None:
            fit = max(1, budget // seq_len)
            per_step = fit if per_step is None else min(per_step, fit)
        if per_step is None:
            return 0.0
        block_starts = sum(1 for r in resident if r.at_block_start and r.cache_mode != "none")
        return float((len(ahead) + block_starts) // per_step)

    def _start(
        self, state: RequestState, now: float, wait_steps: float, step_s: float, stretch: float
    ) -> float:
        """Set the arrival's starting rung (see the module's rule); returns its service steps.
        Block sizes as they are: a larger block can only be reached at aligned block starts, so
        it is a bonus, not counted on."""
        rungs = state.threshold_rungs
        if len(rungs) == 1:
            return state.planned_steps
        margin = self.config.slack_margin
        chosen = 0
        steps = state.planned_steps
        for rung, threshold in enumerate(rungs):
            if rung and not self.budget.allows(state, threshold):
                break
            chosen = rung
            steps, _ = self.predictor.work(state, threshold)
            service_s = steps * step_s
            if state.deadline_s - now - (wait_steps + steps) * stretch >= margin * service_s:
                break
        if chosen:
            state.threshold_rung = chosen
            state.threshold = rungs[chosen]
            self.predictor.update(state)
            state.planned_steps = steps
        return steps

    def _infeasible(
        self, state: RequestState, detail: str, finish: float | None
    ) -> AdmissionDecision:
        spec = state.spec
        if spec.best_effort:
            return AdmissionDecision(
                spec.request_id,
                Verdict.BEST_EFFORT,
                f"accepted best-effort (class {spec.slo_class}) although infeasible: {detail}",
                finish,
            )
        return AdmissionDecision(
            spec.request_id,
            Verdict.REJECTED,
            "rejected: infeasible even at the lowest threshold its floor and budget allow: "
            f"{detail}",
            finish,
        )


def _first_victim(
    behind: list[RequestState],
    with_new: list[float],
    without_new: list[float],
    now: float,
    stretch: float,
) -> str | None:
    """The first queued request behind the arrival that meets its deadline without the arrival
    and misses it with it (list-scheduled over the same slots), or None."""
    for q in behind:
        start_with = heapq.heappop(with_new)
        start_without = heapq.heappop(without_new)
        heapq.heappush(with_new, start_with + q.planned_steps)
        heapq.heappush(without_new, start_without + q.planned_steps)
        if q.spec.best_effort or q.deadline_s == math.inf:
            continue  # nothing to protect, but its work still holds a slot
        late_with = now + (start_with + q.planned_steps) * stretch > q.deadline_s
        late_without = now + (start_without + q.planned_steps) * stretch > q.deadline_s
        if late_with and not late_without:
            return q.request_id
    return None
