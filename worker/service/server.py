"""The worker's gRPC server: the Generate service, standard health and reflection, on one port.

`serve` runs until SIGINT/SIGTERM (the `dilaserve worker` command); `ServerThread` runs the same
server on a background thread (tests, benchmarks, embedding). Either way shutdown is graceful:
health goes NOT_SERVING, admission closes (UNAVAILABLE), requests in flight get `grace_s` to
finish, then the server stops.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dilaserve.policy.security import ReplicaTls
from proto import dilaserve_pb2 as pb
from proto.keepalive import SERVER_OPTIONS
from proto.service import add_generate_service
from worker.service.servicer import GenerateServicer
from worker.service.setup import Worker
from worker.service.tls import server_credentials

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Generate"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class WorkerServer:
    """`tls`: serve over TLS, and take only clients whose certificate the cluster's CA signed
    (a replica with the policy's `cluster.replica_tls`); None: plaintext."""

    def __init__(self, worker: Worker, host: str = "127.0.0.1", port: int = 0,
                 tls: ReplicaTls | None = None) -> None:
        self.worker = worker
        self.host = host
        self.tls = tls
        self.requested_port = port
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()

    async def start(self) -> int:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        servicer = GenerateServicer(
            self.worker.loop,
            self.worker.validator,
            self.worker.replica,
            self.worker.model_name,
            on_drain=self._on_drain,
            metrics=self.worker.metrics,
        )
        add_generate_service(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = f"{self.host}:{self.requested_port}"
        self.port = (server.add_insecure_port(address) if self.tls is None else
                     server.add_secure_port(address, server_credentials(self.tls)))
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        servicer.address = f"{self.host}:{self.port}"
        self.worker.loop.start()
        await server.start()
        await self._set_health(SERVING)
        self._server = server
        return self.port

    def _on_drain(self, draining: bool) -> None:
        asyncio.get_running_loop().create_task(
            self._set_health(NOT_SERVING if draining else SERVING)
        )

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)

    async def stop(self, grace_s: float = 5.0) -> None:
        await self._set_health(NOT_SERVING)
        self.worker.replica.draining = True
        loop = self.worker.loop
        loop.stop(grace_s)
        await asyncio.get_running_loop().run_in_executor(None, loop.join, grace_s + 30.0)
        if self._server is not None:
            await self._server.stop(1.0)


async def serve(
    worker: Worker,
    host: str,
    port: int,
    grace_s: float,
    on_ready: Callable[[int], None] = lambda port: None,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully."""
    server = WorkerServer(worker, host, port)
    on_ready(await server.start())
    stopping = asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        event_loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(grace_s)


class ServerThread:
    """A WorkerServer on its own thread and event loop: `start()` returns the port."""

    def __init__(self, worker: Worker, host: str = "127.0.0.1", port: int = 0,
                 tls: ReplicaTls | None = None) -> None:
        self.server = WorkerServer(worker, host, port, tls)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._grace_s = 0.0
        self._thread = threading.Thread(target=self._main, name="dilaserve-grpc", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def target(self) -> str:
        return f"{self.server.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> int:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("worker server did not start")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self, grace_s: float = 0.0, timeout: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._grace_s = grace_s
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # its event loop has just finished: nothing left to stop
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as err:
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(self._grace_s)
