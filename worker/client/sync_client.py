"""A blocking client of the Generate service (a worker's or, later, the router's)."""

from __future__ import annotations

from collections.abc import Iterator

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
    control_request,
    generate_request,
)


class WorkerClient:
    """`timeout` is the gRPC deadline in seconds (the earlier of it and the SLO deadline wins).
    `tls`: TLS to the server (with a client certificate for mutual TLS); `token`: the bearer
    token each call carries (a router with `cluster.router.tokens`)."""

    def __init__(self, target: str, *, tls: ClientTls | None = None,
                 token: str | None = None) -> None:
        self.target = target
        self.channel = open_channel(target, tls)
        self.stub = pb_grpc.GenerateStub(self.channel)
        self.metadata = auth_metadata(token)

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def stream(
        self, request: pb.GenerateRequest, timeout: float | None = None
    ) -> Iterator[pb.GenerateResponse]:
        """The raw stream (gRPC errors raise grpc.RpcError); cancel it with `.cancel()`."""
        return self.stub.Generate(request, timeout=timeout, metadata=self.metadata)

    def generate(
        self,
        prompt: Prompt,
        max_new_tokens: int = 32,
        *,
        timeout: float | None = None,
        **fields,
    ) -> Generation:
        """Run one request to its final message; raises WorkerError on a gRPC status."""
        reader = StreamReader()
        try:
            for message in self.stream(generate_request(prompt, max_new_tokens, **fields), timeout):
                if (done := reader.take(message)) is not None:
                    return done
        except grpc.RpcError as err:
            raise WorkerError.from_rpc(err) from None
        raise WorkerError.no_final()

    def stats(self, timeout: float | None = 10.0) -> pb.StatsReply:
        return self._unary(self.stub.Stats, pb.StatsRequest(), timeout)

    def control(
        self,
        threshold_range: tuple[float, float] | None = None,
        drain: bool | None = None,
        timeout: float | None = 10.0,
        replica_id: int | None = None,
    ) -> pb.ControlReply:
        request = control_request(threshold_range, drain, replica_id)
        return self._unary(self.stub.Control, request, timeout)

    def health(self, service: str = "", timeout: float | None = 10.0) -> str:
        """ "SERVING" or "NOT_SERVING" (standard grpc.health.v1)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        reply = self._unary(stub.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_ready(self, timeout: float = 30.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def _unary(self, method, request, timeout):
        try:
            return method(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise WorkerError.from_rpc(err) from None
