"""The router's gRPC handlers: the worker's Generate service, in front of the replicas.

`generate` (gRPC and HTTP alike) first takes a place under the call limit (`overload.py`): a call
past it is refused there and then, and counted; then the request is checked, counted, routed and
streamed back (`proxy.py`). A request's clock starts when it reached the server's transport:
the handler's start less the event loop's current lag (`loop_lag.py`), the wait in line that
no handler sees. Every valid request is reported to the controller as an arrival
(`on_arrival`), whether routed, shed or refused at the call limit: the controller plans for the
load offered, not only the load served."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from dilaserve.core.tokenizer import Tokenizer
from dilaserve.policy import Policy
from orchestrator.service.bookkeeping import Ending, RouterBook
from orchestrator.service.channels import Channels
from orchestrator.service.loop_lag import LoopLag
from orchestrator.service.overload import RETRY_HINT, UNKNOWN_CLASS, CallLimit
from orchestrator.service.proxy import Proxy, Sink
from orchestrator.service.replica_pool import ReplicaPool
from orchestrator.service.request import prepare
from proto import dilaserve_pb2 as pb
from proto import dilaserve_pb2_grpc as pb_grpc
from worker.service.validation import InvalidRequest

CONTROL_TIMEOUT_S = 10.0  # a Control call without a gRPC deadline waits this long for the replica


class RouterServicer(pb_grpc.GenerateServicer):
    def __init__(self, proxy: Proxy, pool: ReplicaPool, channels: Channels, book: RouterBook,
                 policy: Callable[[], Policy], tokenizer: Tokenizer | None,
                 stats: Callable[[], pb.StatsReply], on_arrival: Callable,
                 on_control: Callable[[int], None], limit: CallLimit | None = None,
                 lag: LoopLag | None = None) -> None:
        self.proxy = proxy
        self.pool = pool
        self.channels = channels
        self.book = book
        self.policy = policy
        self.tokenizer = tokenizer
        self.stats = stats
        self.on_arrival = on_arrival
        self.on_control = on_control
        self.limit = limit if limit is not None else CallLimit(None)
        self.lag = lag  # None: requests start their clocks at the handler

    async def Generate(self, request: pb.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> None:
        await self.generate(request, context)

    async def generate(self, request: pb.GenerateRequest, context: Sink) -> None:
        """One request from either transport: checked, counted, routed and streamed back."""
        waited = self.lag.seconds if self.lag is not None else 0.0
        arrival = self.proxy.clock() - waited
        if not self.limit.take():
            await self._overloaded(request, context, arrival, waited)
            return
        try:
            await self._serve(request, context, arrival, waited)
        finally:
            self.limit.release()

    async def _overloaded(self, request: pb.GenerateRequest, context: Sink,
                          arrival: float, waited: float) -> None:
        """Refuse a call past the limit, and book it: under its class if the request names one
        the policy has (or none: the default), else as UNKNOWN_CLASS. A valid request is also
        demand the controller must see (refused calls are the load the cluster lacks capacity
        for), so it is reported as an arrival, as `_serve` reports one it routes; checking it
        is the router's prepare (about 20 us for the shipped model's prompts)."""
        try:
            routed = prepare(request, self.policy(), self.tokenizer, self.pool.request_limits(),
                             arrival, context.time_remaining(), waited)
        except InvalidRequest:  # refused all the same (the client sees RESOURCE_EXHAUSTED)
            slo_class = self._class_of(request)
        else:
            slo_class = routed.slo.name
            self.on_arrival(routed.arrival())
        self.book.arrived(slo_class)
        self.book.ended(slo_class, Ending.OVERLOADED)
        self.proxy.on_decision(self.proxy.clock() - arrival - waited, True)
        context.set_trailing_metadata(RETRY_HINT)
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.limit.refusal())

    def _class_of(self, request: pb.GenerateRequest) -> str:
        try:
            return self.policy().slo_class(request.slo_class).name
        except ValueError:
            return UNKNOWN_CLASS

    async def _serve(self, request: pb.GenerateRequest, context: Sink, arrival: float,
                     waited: float) -> None:
        try:
            routed = prepare(request, self.policy(), self.tokenizer, self.pool.request_limits(),
                             arrival, context.time_remaining(), waited)
        except InvalidRequest as err:
            self.book.invalid()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        self.book.arrived(routed.slo.name)
        self.on_arrival(routed.arrival())
        self.pool.note_request(routed.route.prompt_len, routed.route.canvas_len)
        await self.proxy.run(routed, context)

    async def Stats(self, request: pb.StatsRequest,
                    context: grpc.aio.ServicerContext) -> pb.StatsReply:
        return self.stats()

    async def Control(self, request: pb.ControlRequest,
                      context: grpc.aio.ServicerContext) -> pb.ControlReply:
        known = sorted(e.replica_id for e in self.pool.endpoints())
        if not request.HasField("replica_id"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"replica_id: required at the router (replicas: {known})")
        endpoint = self.pool.endpoint(request.replica_id)
        if endpoint is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"replica_id: no replica {request.replica_id} (replicas: {known})")
        remaining = context.time_remaining()
        try:
            reply = await self.channels.stub(endpoint.target).Control(
                request, timeout=CONTROL_TIMEOUT_S if remaining is None else remaining)
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or f"replica {endpoint.replica_id}")
        self.on_control(endpoint.replica_id)
        return reply
