"""The gRPC handlers (grpc.aio): validate, hand over to the serving loop, stream what it sends back.

Each Generate call gets its own sink, an asyncio queue the loop thread fills through
call_soon_threadsafe. A call that ends before its request did (client cancel, gRPC deadline) tells
the loop to cancel, which frees the row at the next step.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from dilaserve.policy import ThresholdRange
from proto import dilaserve_pb2 as pb
from proto import dilaserve_pb2_grpc as pb_grpc
from worker.scheduler.predictor import profiled_rate
from worker.service.convert import STATUS, final_message, partial_message, stats_message
from worker.service.events import Event, FailedResult, FinalResult, PartialResult
from worker.service.loop import ServingLoop
from worker.service.metrics import WorkerMetrics
from worker.service.validation import InvalidRequest, RequestValidator


class AsyncSink:
    """Carries a request's events from the loop thread to its handler's event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def send(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:
            pass  # the event loop has closed: nobody is left to tell


@dataclass
class ControlState:
    """What Control sets; read and written only on the event loop's thread."""

    threshold_range: ThresholdRange
    draining: bool = False


class GenerateServicer(pb_grpc.GenerateServicer):
    def __init__(
        self,
        loop: ServingLoop,
        validator: RequestValidator,
        replica: ControlState,
        model_name: str,
        on_drain: Callable[[bool], None] = lambda draining: None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.loop = loop
        self.metrics = metrics
        self.validator = validator
        self.replica = replica
        self.model_name = model_name
        self.on_drain = on_drain
        self.started = time.monotonic()
        self.address = ""  # host:port once the server listens; final messages name it

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        arrival = time.monotonic()
        if self.replica.draining:
            if self.metrics is not None:
                self.metrics.on_refused("draining")
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "worker is draining: not admitting new requests"
            )
        try:
            spec = self.validator.prepare(
                request, arrival, context.time_remaining(), self.replica.threshold_range
            )
        except InvalidRequest as err:
            if self.metrics is not None:
                self.metrics.on_refused("invalid")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        sink = AsyncSink()
        counted = self.metrics.observing(spec.slo_class, sink) if self.metrics else None
        self.loop.submit(spec, counted or sink)
        ended = False
        try:
            while True:
                event = await sink.queue.get()
                if isinstance(event, PartialResult):
                    yield partial_message(event)
                elif isinstance(event, FinalResult):
                    ended = True
                    yield final_message(event, self.address)
                    return
                elif isinstance(event, FailedResult):
                    ended = True
                    await context.abort(STATUS[event.failure], event.message)
        finally:
            if not ended:
                self.loop.cancel(spec.request_id, counted or sink)
                if counted is not None:
                    counted.client_gone()

    async def Stats(
        self, request: pb.StatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatsReply:
        snapshot = await self._snapshot(context)
        block = self.validator.policy.worker.block_size
        quality = self.validator.quality
        start = self.replica.threshold_range.max
        rate = math.nan
        if quality is not None:  # at the speed the replica has learned of its workload
            rate = min(profiled_rate(quality, start, block) * snapshot.workload_speed, block)
        return stats_message(
            snapshot,
            self.model_name,
            time.monotonic() - self.started,
            self.replica.draining,
            self.replica.threshold_range,
            rate,
            block,
            self.validator.limits,
        )

    async def Control(
        self, request: pb.ControlRequest, context: grpc.aio.ServicerContext
    ) -> pb.ControlReply:
        if request.HasField("threshold_range"):
            wanted = request.threshold_range
            try:
                self.replica.threshold_range = ThresholdRange(wanted.min, wanted.max)
            except ValueError as err:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "threshold_range: " + str(err).removeprefix("threshold range: "),
                )
        if request.HasField("drain") and request.drain != self.replica.draining:
            self.replica.draining = request.drain
            self.on_drain(request.drain)
        snapshot = await self._snapshot(context)
        now = self.replica.threshold_range
        return pb.ControlReply(
            threshold_range=pb.ThresholdRange(min=now.min, max=now.max),
            draining=self.replica.draining,
            in_flight=snapshot.in_flight,
        )

    async def _snapshot(self, context: grpc.aio.ServicerContext):
        try:
            return await asyncio.wrap_future(self.loop.stats_future())
        except RuntimeError as err:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
