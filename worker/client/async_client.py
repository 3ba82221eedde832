"""An asyncio client of the Generate service (grpc.aio): WorkerClient's calls for load (generate,
stats, health); operators' Control calls go through the blocking WorkerClient."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto import dilaserve_pb2 as pb
from proto import dilaserve_pb2_grpc as pb_grpc
from worker.client.connection import ClientTls, auth_metadata, open_channel
from worker.client.messages import (
    Generation,
    Prompt,
    StreamReader,
    WorkerError,
    generate_request,
)


class AsyncWorkerClient:
    """Create it inside a running event loop; `timeout` is the gRPC deadline in seconds; `tls`
    and `token` as for WorkerClient."""

    def __init__(self, target: str, *, tls: ClientTls | None = None,
                 token: str | None = None) -> None:
        self.target = target
        self.channel = open_channel(target, tls, aio=True)
        self.stub = pb_grpc.GenerateStub(self.channel)
        self.metadata = auth_metadata(token)

    async def __aenter__(self) -> AsyncWorkerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    def stream(
        self, request: pb.GenerateRequest, timeout: float | None = None
    ) -> AsyncIterator[pb.GenerateResponse]:
        """The raw call: iterate it with `async for`; `.cancel()` ends it."""
        return self.stub.Generate(request, timeout=timeout, metadata=self.metadata)

    async def generate(
        self,
        prompt: Prompt,
        max_new_tokens: int = 32,
        *,
        timeout: float | None = None,
        **fields,
    ) -> Generation:
        request = generate_request(prompt, max_new_tokens, **fields)
        return await self.run(request, timeout)

    async def run(self, request: pb.GenerateRequest, timeout: float | None = None) -> Generation:
        """One prepared request to its final message; raises WorkerError on a gRPC status."""
        reader = StreamReader()
        try:
            async for message in self.stream(request, timeout):
                if (done := reader.take(message)) is not None:
                    return done
        except grpc.RpcError as err:
            raise WorkerError.from_rpc(err) from None
        raise WorkerError.no_final()

    async def stats(self, timeout: float | None = 10.0) -> pb.StatsReply:
        return await self._unary(self.stub.Stats, pb.StatsRequest(), timeout)

    async def health(self, service: str = "", timeout: float | None = 10.0) -> str:
        stub = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service=service)
        reply = await self._unary(stub.Check, request, timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.channel.channel_ready(), timeout)

    async def _unary(self, method, request, timeout):
        try:
            return await method(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise WorkerError.from_rpc(err) from None
