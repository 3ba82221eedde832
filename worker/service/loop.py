"""The serving loop: one thread drives the scheduler and the engine, step after step.

    handlers (asyncio thread)  --submit/cancel/stats/stop-->  inbox  -->  loop thread
    loop thread  --PartialResult/FinalResult/FailedResult-->  each request's sink

The scheduler is not thread-safe and the engine holds torch state, so both are touched only here.
Each turn takes every waiting command, then plans one step, runs it, streams a partial for every
finished block and ends the requests the scheduler reports ended (`scheduler` explains the
contract: every accepted request ends exactly once). With nothing to run the thread blocks on the
inbox (up to the next deadline when requests wait), so an idle worker does not spin.

If engine.step raises, every request in flight fails with the error's message (ENGINE_ERROR ->
INTERNAL), a fresh engine and scheduler are built, and serving goes on. Stopping: admission closes,
requests in flight get `grace_s` to finish, and those still running after it are stopped with a
final message whose finish reason is "cancelled".
"""

from __future__ import annotations

import heapq
import math
import queue
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future

from dilaserve.core.steps import Engine, EngineLimits, FinishReason, StepPlan, StepResult
from dilaserve.core.tokenizer import Tokenizer, cut_at_stop
from dilaserve.profiles.machine_scale import ScaledStepCost
from worker.scheduler import (
    RequestSpec,
    Scheduler,
    TerminalEvent,
    TerminalKind,
    plan_has_work,
)
from worker.service.events import (
    Cancel,
    Command,
    FailedResult,
    Failure,
    LoopStats,
    RequestSink,
    Stop,
    Submit,
    TakeStats,
)
from worker.service.text_stream import TextStream
from worker.service.tracking import Counters, Tracked

IDLE_POLL_S = 0.05  # the longest an idle wait lasts while requests wait (a safety net only)

EngineFactory = Callable[[], Engine]
SchedulerFactory = Callable[[EngineLimits], Scheduler]


class ServingLoop:
    def __init__(
        self,
        make_engine: EngineFactory,
        make_scheduler: SchedulerFactory,
        tokenizer: Tokenizer | None,
        stop_ids: frozenset[int],
        class_targets: dict[str, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_engine = make_engine
        self._make_scheduler = make_scheduler
        self.engine = make_engine()
        self.scheduler = make_scheduler(self.engine.limits)
        self._tokenizer = tokenizer
        self._stop_ids = stop_ids
        self.clock = clock
        self.counters = Counters(dict(class_targets))
        self._tracked: dict[str, Tracked] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._gate = threading.Lock()  # orders "is it running?" against "it has stopped"
        self._stopped = False
        self._stop_at: float | None = None
        self._had_work = False
        self._thread = threading.Thread(target=self._run, name="dilaserve-loop", daemon=True)

    # ---- thread-safe API ---------------------------------------------------------------------

    @property
    def limits(self) -> EngineLimits:
        return self.engine.limits

    def start(self) -> None:
        self._thread.start()

    def submit(self, spec: RequestSpec, sink: RequestSink) -> None:
        if not self._put(Submit(spec, sink)):
            rid = spec.request_id
            sink.send(FailedResult(rid, Failure.UNAVAILABLE, "worker is shutting down"))

    def cancel(self, request_id: str, sink: RequestSink) -> None:
        """The client of this submission (`sink`) is gone. A request id names a request only
        while it is in flight, so the sink says which submission: a late cancel from a duplicate
        that was refused, or from an earlier request of the same id, must not stop another
        client's request (that client would wait for ever: a cancelled request gets no reply)."""
        self._put(Cancel(request_id, sink))

    def stats_future(self) -> Future[LoopStats]:
        future: Future[LoopStats] = Future()
        if not self._put(TakeStats(future)):
            future.set_exception(RuntimeError("the serving loop has stopped"))
        return future

    def stop(self, grace_s: float = 0.0) -> None:
        """Close admission; let requests in flight finish for up to grace_s, then stop them."""
        self._put(Stop(grace_s))

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _put(self, command: Command) -> bool:
        with self._gate:
            if self._stopped:
                return False
            self._inbox.put(command)
            return True

    # ---- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                wait_s = self._wait_s()
                started = time.perf_counter()
                self._take_commands(wait_s)
                if wait_s != 0:  # it waited idle: the turn starts when the wait ended
                    started = time.perf_counter()
                if self._stop_at is not None:
                    if not self._tracked:
                        break
                    if self.clock() >= self._stop_at:
                        self._stop_all()
                self._turn()
                if self._had_work:
                    self.counters.busy_seconds += time.perf_counter() - started
        except BaseException as err:  # the loop must not die silently: report, then fail the rest
            _log_error("serving loop stopped by an error", err)
            self._fail_all(Failure.UNAVAILABLE, f"worker loop stopped: {err}")
        finally:
            with self._gate:
                self._stopped = True
            self._answer_leftovers()

    def _wait_s(self) -> float | None:
        """How long to block on the inbox: not at all while there is work."""
        if self._had_work:
            return 0.0
        now = self.clock()
        wake = []
        if self._stop_at is not None:
            wake.append(self._stop_at - now)
        if self.scheduler.active_count:
            while self._deadlines and self._deadlines[0][1] not in self._tracked:
                heapq.heappop(self._deadlines)
            nearest = self._deadlines[0][0] - now if self._deadlines else IDLE_POLL_S
            wake.append(min(nearest, IDLE_POLL_S))
        return max(0.0, min(wake)) if wake else None

    def _take_commands(self, wait_s: float | None) -> None:
        try:
            command = self._inbox.get(timeout=wait_s) if wait_s != 0 else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            try:
                self._handle(command)
            except Exception as err:  # one bad command must not stop the loop
                what = type(command).__name__.lower()
                _log_error(f"serving loop: {what} failed", err)
                if isinstance(command, Submit):
                    rid = command.spec.request_id
                    command.sink.send(FailedResult(rid, Failure.ENGINE_ERROR, f"{what}: {err}"))
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, command: Command) -> None:
        match command:
            case Submit(spec, sink):
                self._submit(spec, sink)
            case Cancel(request_id, sink):
                tracked = self._tracked.get(request_id)
                if tracked is not None and tracked.sink is sink:
                    self.scheduler.cancel(request_id)
            case TakeStats(future):
                if future.set_running_or_notify_cancel():  # False: the caller gave up on it
                    future.set_result(self.snapshot())
            case Stop(grace_s):
                if self._stop_at is None:
                    self._stop_at = self.clock() + max(0.0, grace_s)

    def _submit(self, spec: RequestSpec, sink: RequestSink) -> None:
        rid = spec.request_id
        if self._stop_at is not None:
            sink.send(FailedResult(rid, Failure.UNAVAILABLE, "worker is shutting down"))
            return
        if rid in self._tracked:
            sink.send(
                FailedResult(rid, Failure.DUPLICATE, f"request_id {rid!r} is already in flight")
            )
            return
        decision = self.scheduler.submit(spec, self.clock())
        if not decision.accepted:
            self.counters.on_rejected(spec.slo_class)
            sink.send(FailedResult(rid, Failure.REJECTED, decision.reason))
            return
        self.counters.accepted += 1
        self._tracked[rid] = Tracked(spec, sink, TextStream(self._tokenizer))
        if math.isfinite(spec.deadline_s):
            heapq.heappush(self._deadlines, (spec.deadline_s, rid))

    def _turn(self) -> None:
        """plan -> step -> stream the finished blocks -> end the requests that ended."""
        planned_at = self.clock()
        plan = self.scheduler.plan(planned_at)
        self._had_work = plan_has_work(plan)
        if not self._had_work:
            self._end(self.scheduler.take_events())
            return
        result = self._step(plan, planned_at)
        if result is None:
            return
        now = self.clock()
        self._stream_blocks(result, now)
        self._end(self.scheduler.observe(result, now))

    def _step(self, plan: StepPlan, planned_at: float) -> StepResult | None:
        """Run the plan on the engine, with each request's and the step's bookkeeping; None when
        the engine failed (every request in flight has then failed too)."""
        for admit in plan.admit:
            self._tracked[admit.request_id].admitted_at = planned_at
        for rid in plan.run:
            self._tracked[rid].ran_at(self.scheduler.state(rid).threshold)
        try:
            result = self.engine.step(plan)
        except Exception as err:
            self._engine_failed(err)
            return None
        self.counters.on_step(result, self.scheduler.step_cost.prior)
        return result

    def _stream_blocks(self, result: StepResult, now: float) -> None:
        for outcome in result.outcomes:
            if not outcome.block_finished:
                continue
            tracked = self._tracked[outcome.request_id]
            tokens = cut_at_stop(outcome.block_tokens, self._stop_ids)
            if tracked.saw_eos:
                tokens = ()  # the answer ended in an earlier block; the final has what came before
            tracked.saw_eos = tracked.saw_eos or len(tokens) < len(outcome.block_tokens)
            text = tracked.text.push(tokens, last=tracked.saw_eos or outcome.done)
            threshold = self.scheduler.state(outcome.request_id).threshold
            tracked.sink.send(tracked.partial(tokens, text, now, threshold))

    def _end(self, events: list[TerminalEvent]) -> None:
        for event in events:
            tracked = self._tracked.pop(event.request_id, None)
            if tracked is None:
                continue
            if event.kind is TerminalKind.FINISHED:
                self.counters.on_finished(tracked.spec.slo_class, event.deadline_met)
                reason = event.finish_reason or FinishReason.LENGTH
                tracked.sink.send(tracked.final(event, self._final_text(tracked, event), reason))
            elif event.kind is TerminalKind.EXPIRED:
                self.counters.on_expired(tracked.spec.slo_class)
                message = (
                    f"SLO deadline of {tracked.spec.relative_deadline_s * 1e3:.1f} ms passed "
                    f"{tracked.elapsed_ms(event.at_s):.1f} ms after arrival "
                    f"({event.steps} steps done, class {tracked.spec.slo_class} is not best-effort)"
                )
                tracked.sink.send(FailedResult(event.request_id, Failure.EXPIRED, message))
            elif event.kind is TerminalKind.FAILED:
                self.counters.failed += 1
                failure = FailedResult(event.request_id, Failure.ENGINE_ERROR, event.reason)
                tracked.sink.send(failure)
            else:
                self.counters.cancelled += 1
                if tracked.stopped_by_server:
                    tracked.sink.send(tracked.final(event, "", FinishReason.CANCELLED))

    def _final_text(self, tracked: Tracked, event: TerminalEvent) -> str:
        """What the partials carried, concatenated (every block of the answer was streamed);
        decoded afresh only if they did not cover the answer."""
        tracked.text.push((), last=True)
        if tracked.text.ids == event.output_ids or self._tokenizer is None:
            return tracked.text.text
        return self._tokenizer.decode(event.output_ids)

    def _stop_all(self) -> None:
        for rid, tracked in self._tracked.items():
            if not tracked.stopped_by_server:
                tracked.stopped_by_server = True
                self.scheduler.cancel(rid)

    def _engine_failed(self, err: Exception) -> None:
        _log_error("engine step failed; failing the requests in flight", err)
        self._fail_all(Failure.ENGINE_ERROR, f"engine step failed: {type(err).__name__}: {err}")
        self.engine = self._make_engine()
        self.scheduler = self._make_scheduler(self.engine.limits)
        self._had_work = False

    def _fail_all(self, failure: Failure, message: str) -> None:
        for rid, tracked in self._tracked.items():
            self.counters.failed += 1
            tracked.sink.send(FailedResult(rid, failure, message))
        self._tracked.clear()
        self._deadlines.clear()

    def _answer_leftovers(self) -> None:
        self._fail_all(Failure.UNAVAILABLE, "worker is shutting down")
        while True:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, Submit):
                rid = command.spec.request_id
                command.sink.send(FailedResult(rid, Failure.UNAVAILABLE, "worker is shutting down"))
            elif isinstance(command, TakeStats) and command.future.set_running_or_notify_cancel():
                command.future.set_exception(RuntimeError("the serving loop has stopped"))

    # ---- stats -------------------------------------------------------------------------------

    def snapshot(self) -> LoopStats:
        """Taken on the loop thread (via stats_future) or when the loop is not running."""
        scheduler = self.scheduler
        resident = [scheduler.state(rid) for rid in scheduler.resident_ids]
        queued = [scheduler.state(rid) for rid in scheduler.queued_ids]
        states = [s for s in resident + queued if s is not None]
        max_rows = self.limits.max_rows
        predictor = scheduler.predictor
        step_s = predictor.step_seconds(predictor.shape_of(states[:max_rows]))
        steps_left = [s.steps_left for s in states]
        drain_steps = max(max(steps_left, default=0.0), sum(steps_left) / max_rows)
        cost = scheduler.step_cost
        machine = cost.machine if isinstance(cost, ScaledStepCost) else None
        c = self.counters
        return LoopStats(
            queued=len(queued),
            running=len(resident),
            max_rows=max_rows,
            in_flight=len(self._tracked),
            accepted=c.accepted,
            rejected=c.rejected,
            finished=c.finished,
            deadline_met=c.deadline_met,
            expired=c.expired,
            cancelled=c.cancelled,
            failed=c.failed,
            classes=c.classes(),
            predicted_step_ms=scheduler.last_predicted_step_s * 1e3,
            predicted_drain_ms=drain_steps * step_s * 1e3,
            backlog_steps=sum(steps_left),
            step_cost_error=cost.median_abs_rel_error(),
            step_cost_samples=cost.error_count(),
            step_cost_coef=tuple(cost.coef),
            step_cost_prior_error=(
                statistics.median(c.prior_errors) if c.prior_errors else math.nan
            ),
            median_step_ms=statistics.median(c.step_times) * 1e3 if c.step_times else math.nan,
            steps=c.steps,
            step_seconds=c.step_seconds,
            busy_seconds=c.busy_seconds,
            step_prior_seconds=c.step_prior_seconds,
            machine_scale=machine.applied if machine else 1.0,
            machine_scale_measured=machine.measured if machine else math.nan,
            workload_speed=predictor.speed,
        )


def _log_error(what: str, err: BaseException) -> None:
    print(f"dilaserve worker: {what}:", file=sys.stderr)
    traceback.print_exception(err, file=sys.stderr)
