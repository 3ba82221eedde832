"""One Generate call through the router: route, offer to the chosen replicas in order, stream the
chosen one's messages back, restart on another replica when one fails (proto rules, "At the
router").

An attempt on one replica ends in one of five ways:
- done: its final message went to the client;
- refused: RESOURCE_EXHAUSTED before any message (its admission said no): offer the next choice;
- unreachable: UNAVAILABLE or a dropped connection before any message (dead, or draining): offer
  the next choice; nothing reached the client, so nothing needs saying;
- failed: the replica died or was removed after it took the request, or it stopped the request
  when it shut down (a CANCELLED final): the client gets a Restarted message and the request
  starts again on a replica routed afresh, with its original deadline;
- error: any other status (INVALID_ARGUMENT, DEADLINE_EXCEEDED, INTERNAL, ...): passed on as is.

The client's side is a `Sink`: a grpc.aio ServicerContext is one as it is; the OpenAI-compatible
HTTP API (`http_api.py`) has its own, so both transports run this one code path.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

import grpc

from orchestrator.router import LeastLoadedRouter, Router
from orchestrator.service.bookkeeping import Ending, RouterBook
from orchestrator.service.channels import Channels
from orchestrator.service.overload import RETRY_HINT
from orchestrator.service.replica_pool import ReplicaPool
from orchestrator.service.request import RoutedRequest
from proto import dilaserve_pb2 as pb

UNAVAILABLE, RESOURCE_EXHAUSTED = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED
CODES_ENDINGS = {
    grpc.StatusCode.DEADLINE_EXCEEDED: Ending.EXPIRED,
    grpc.StatusCode.INVALID_ARGUMENT: Ending.INVALID,
    grpc.StatusCode.CANCELLED: Ending.CANCELLED,
}


class Sink(Protocol):
    """Where one call's messages go, and how it ends with an error (the part of
    grpc.aio.ServicerContext the proxy uses). A client that goes away cancels the task."""

    async def write(self, message: pb.GenerateResponse) -> None: ...

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...

    def time_remaining(self) -> float | None: ...

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None: ...


class Kind(enum.Enum):
    DONE = "done"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    ERROR = "error"


@dataclass(frozen=True)
class AttemptOutcome:
    kind: Kind
    details: str = ""
    code: grpc.StatusCode | None = None


class _Attempt:
    """A call in flight on one replica; `abandon` ends it when the replica leaves the set."""

    def __init__(self, call) -> None:
        self.call = call
        self.removed = False

    def abandon(self) -> None:
        self.removed = True
        self.call.cancel()


class _Booking:
    """Counts a request's one ending as soon as it is known, before the client hears of it."""

    def __init__(self, book: RouterBook, slo_class: str) -> None:
        self.book, self.slo_class = book, slo_class
        self.done = False

    def end(self, ending: Ending) -> None:
        if not self.done:
            self.done = True
            self.book.ended(self.slo_class, ending)


class _End(Exception):
    """Ends the call with a status; the ending is what the bookkeeping counts."""

    def __init__(self, code: grpc.StatusCode, details: str, ending: Ending) -> None:
        super().__init__(details)
        self.code, self.details, self.ending = code, details, ending


class Proxy:
    def __init__(self, pool: ReplicaPool, channels: Channels, book: RouterBook,
                 router: Router, clock: Callable[[], float],
                 on_e2e: Callable[[str, float], None] = lambda slo_class, seconds: None,
                 on_decision: Callable[[float, bool], None] = lambda seconds, refused: None,
                 ) -> None:
        self.pool = pool
        self.channels = channels
        self.book = book
        self.router = router
        self.clock = clock
        self.on_e2e = on_e2e
        self._best_effort_router = LeastLoadedRouter()
        self._attempts: dict[int, set[_Attempt]] = {}
        # (seconds from the handler's start to the decision, refused) once per request
        self.on_decision = on_decision

    def abandon(self, replica_ids) -> None:
        """The replicas left the set: restart their requests elsewhere (event loop thread)."""
        for replica_id in replica_ids:
            for attempt in list(self._attempts.get(replica_id, ())):
                attempt.abandon()

    async def run(self, routed: RoutedRequest, context: Sink) -> None:
        booking = _Booking(self.book, routed.slo.name)
        try:
            await self._serve(routed, context, booking)
        except _End as end:
            booking.end(end.ending)
            if end.code is RESOURCE_EXHAUSTED:
                context.set_trailing_metadata(RETRY_HINT)
            await context.abort(end.code, end.details)
        except Exception:
            booking.end(Ending.FAILED)
            raise
        finally:
            booking.end(Ending.CANCELLED)  # the client went away (or its gRPC deadline passed)

    async def _serve(self, routed: RoutedRequest, context: Sink, booking: _Booking) -> None:
        excluded: set[int] = set()
        restarts = 0
        restart_reason = ""
        while True:
            arrival = not excluded and not restarts
            try:
                self._check_deadline(routed, restarts, at_arrival=arrival)
                order = self._choose(routed, excluded, restarted=restarts > 0)
            except _End:
                if arrival:
                    self.on_decision(self._in_hand(routed), True)
                raise
            if arrival:
                self.on_decision(self._in_hand(routed), False)
            if restart_reason:  # said once a replica is chosen to start again on
                self.book.restarted()
                await context.write(pb.GenerateResponse(restarted=pb.Restarted(
                    request_id=routed.request_id, attempt=restarts, reason=restart_reason)))
            elif not excluded:
                self.book.routed()
            refusals = []
            restart_reason = ""
            for i, replica_id in enumerate(order):
                if i:
                    self._check_deadline(routed, restarts)
                outcome = await self._attempt(routed, replica_id, context, booking)
                if outcome.kind is Kind.DONE:
                    return
                if outcome.kind is Kind.ERROR:
                    raise _End(outcome.code, outcome.details,
                               CODES_ENDINGS.get(outcome.code, Ending.FAILED))
                excluded.add(replica_id)
                if outcome.kind is Kind.REFUSED:
                    refusals.append(f"replica {replica_id}: {outcome.details}")
                elif outcome.kind is Kind.FAILED:
                    restart_reason = f"replica {replica_id} failed: {outcome.details}"
                    break
            if restart_reason:
                restarts += 1
            elif refusals:
                # a restarted request that no replica takes ends as "nothing can take it": a
                # replica took it once, so it failed (as a client counts UNAVAILABLE), it was not
                # refused at arrival
                code, ending = ((UNAVAILABLE, Ending.FAILED) if restarts
                                else (RESOURCE_EXHAUSTED, Ending.REJECTED))
                raise _End(code, "every replica offered the request refused it: "
                           + "; ".join(refusals), ending)
            # else every choice was unreachable: route again among the others

    def _in_hand(self, routed: RoutedRequest) -> float:
        """Seconds since the router's handler took the request."""
        return self.clock() - routed.arrival_s - routed.waited_s

    def _choose(self, routed: RoutedRequest, excluded: set[int], restarted: bool) -> list[int]:
        """The replicas to offer it to, in order. A best-effort request is never shed, and
        neither is a restarted one (a replica took it once; the replicas' admission decides)."""
        now = self.clock()
        views = [v for v in self.pool.views() if v.replica_id not in excluded]
        if not any(v.accepting for v in views):
            others = f" besides replicas {sorted(excluded)}, which failed it" if excluded else ""
            raise _End(grpc.StatusCode.UNAVAILABLE,
                       f"no replica can take the request: none is accepting{others}",
                       Ending.FAILED)
        decision = self.router.route(routed.route, views, now)
        if decision.shed:
            if not (routed.slo.best_effort or restarted):
                raise _End(grpc.StatusCode.RESOURCE_EXHAUSTED, decision.reason, Ending.SHED)
            decision = self._best_effort_router.route(routed.route, views, now)
        return [decision.replica_id, *decision.fallbacks]

    def _check_deadline(self, routed: RoutedRequest, restarts: int,
                        at_arrival: bool = False) -> None:
        now = self.clock()
        if now < routed.deadline_s or routed.slo.best_effort:
            return
        if at_arrival:  # never offered: refused at arrival, as a worker's admission refuses it
            raise _End(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"shed: the SLO deadline of {routed.relative_deadline_ms:.3g} ms leaves no "
                       f"time to serve the request", Ending.SHED)
        why = f"a replica failed it {restarts} time(s); " if restarts else ""
        raise _End(grpc.StatusCode.DEADLINE_EXCEEDED,
                   f"SLO deadline of {routed.relative_deadline_ms:.1f} ms passed "
                   f"{(now - routed.arrival_s) * 1e3:.1f} ms after arrival at the router "
                   f"({why}class {routed.slo.name} is not best-effort)",
                   Ending.EXPIRED)

    async def _attempt(self, routed: RoutedRequest, replica_id: int, context: Sink,
                       booking: _Booking) -> AttemptOutcome:
        endpoint = self.pool.endpoint(replica_id)
        priority = routed.route.priority
        if endpoint is None or not self.pool.started(replica_id, endpoint.target, priority):
            return AttemptOutcome(Kind.UNREACHABLE, "it left the replica set")
        sent_at = self.clock()
        offset_ms = (sent_at - routed.arrival_s) * 1e3
        call = self.channels.stub(endpoint.target).Generate(
            routed.upstream(sent_at), timeout=context.time_remaining())
        attempt = _Attempt(call)
        self._attempts.setdefault(replica_id, set()).add(attempt)
        streamed = False
        finished = False
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return AttemptOutcome(Kind.FAILED if streamed else Kind.UNREACHABLE,
                                   "its stream ended without a final message")
                if message.HasField("partial"):
                    message.partial.elapsed_ms += offset_ms
                    streamed = True
                    await context.write(message)
                elif message.HasField("final"):
                    if message.final.finish_reason == pb.FINISH_REASON_CANCELLED:
                        return AttemptOutcome(Kind.FAILED, "it stopped the request (shutting down)")
                    booking.end(self._finish(routed, message.final, replica_id, offset_ms))
                    finished = True
                    await context.write(message)
                    return AttemptOutcome(Kind.DONE)
        except grpc.aio.AioRpcError as err:
            return self._failure(attempt, replica_id, err.code(), err.details() or "", streamed)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if attempt.removed and task is not None and not task.cancelling():
                return AttemptOutcome(Kind.FAILED, "it was removed from the replica set")
            raise
        finally:
            self._attempts[replica_id].discard(attempt)
            self.pool.ended(replica_id, endpoint.target, priority)
            if not finished:
                call.cancel()

    def _failure(self, attempt: _Attempt, replica_id: int, code: grpc.StatusCode, details: str,
                 streamed: bool) -> AttemptOutcome:
        if attempt.removed:
            return AttemptOutcome(Kind.FAILED, "it was removed from the replica set")
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and not streamed:
            return AttemptOutcome(Kind.REFUSED, details)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            # CANCELLED that the router did not ask for: the replica's server went away
            self.pool.mark_unhealthy(replica_id, f"{code.name}: {details}")
            return AttemptOutcome(Kind.FAILED if streamed else Kind.UNREACHABLE,
                           f"{code.name}: {details}")
        return AttemptOutcome(Kind.ERROR, details, code)

    def _finish(self, routed: RoutedRequest, final: pb.Final, replica_id: int,
                offset_ms: float) -> Ending:
        """Rewrite the worker's final message in the router's terms; returns how it ended."""
        e2e_s = self.clock() - routed.arrival_s
        timings = final.timings
        timings.queued_ms += offset_ms
        timings.first_block_ms += offset_ms
        timings.e2e_ms = e2e_s * 1e3
        final.deadline_ms = routed.relative_deadline_ms
        final.deadline_met = final.deadline_met and (
            not math.isfinite(routed.deadline_s) or e2e_s <= routed.deadline_s - routed.arrival_s)
        final.replica = str(replica_id)
        if routed.counted and final.prompt_tokens and final.prompt_tokens != routed.prompt_len:
            self.book.token_mismatch()
        self.on_e2e(routed.slo.name, e2e_s)
        return Ending.MET if final.deadline_met else Ending.LATE
