"""The cluster's front door: the Generate service on one port, proxying to the replicas.

`RouterServer` runs a grpc.aio server (Generate, standard health and reflection) on its own thread
and event loop, like the worker's `ServerThread`. The controller (any thread) pushes the replica
set, routes and policy and reads the router's load: arrivals, per-replica views, a summary. The
routing decision is the pure `orchestrator.router` (DeadlineAwareRouter by default) over views
built from the router's own in-flight counts and each replica's Stats, polled every
`stats_period_s`. Given an `http_port`, the same loop also serves the OpenAI-compatible HTTP API
(`http_api.py`), through the same servicer.

Security (the policy's `cluster.router.tls`, `.tokens` and `cluster.replica_tls`): both ports
over TLS with the router's certificate, a bearer token on every call but health (`auth.py`),
and mutual TLS on the links to the replicas. Tokens are read once, here, at construction.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dilaserve.core.tokenizer import Tokenizer
from dilaserve.policy import Policy
from dilaserve.policy.security import ReplicaTls, ServerTls, Tokens
from orchestrator.load import Arrival
from orchestrator.router import DeadlineAwareRouter, Router
from orchestrator.service.auth import Access, TokenInterceptor, http_middleware
from orchestrator.service.bookkeeping import RouterBook
from orchestrator.service.channels import Channels
from orchestrator.service.http_api import HttpApi
from orchestrator.service.loop_lag import LoopLag
from orchestrator.service.metrics import RouterMetrics
from orchestrator.service.overload import CallLimit
from orchestrator.service.proxy import Proxy
from orchestrator.service.replica_pool import ReplicaEndpoint, ReplicaPool
from orchestrator.service.servicer import RouterServicer
from orchestrator.service.stats import cluster_stats, summary
from orchestrator.types import ReplicaView, Route
from proto import dilaserve_pb2 as pb
from proto.keepalive import DEFAULT_KEEPALIVE, SERVER_OPTIONS, Keepalive
from proto.service import add_generate_service
from worker.client.connection import ClientTls
from worker.service.tls import server_credentials

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Generate"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MIN_POLL_TIMEOUT_S = 2.0  # a replica mid-step answers Stats after its step


class RouterServer:
    def __init__(self, policy: Policy, tokenizer: Tokenizer | None,
                 router: Router | None = None, host: str = "127.0.0.1", port: int = 0,
                 stats_period_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 metrics_port: int | None = None, keepalive: Keepalive = DEFAULT_KEEPALIVE,
                 http_port: int | None = None, max_calls: int | None = None,
                 tls: ServerTls | None = None, tokens: Tokens | None = None,
                 replica_tls: ReplicaTls | None = None) -> None:
        if stats_period_s <= 0:
            raise ValueError(f"stats_period_s must be > 0, got {stats_period_s}")
        self.host = host
        self.requested_port = port
        self.port = 0
        self.metrics_port = metrics_port
        self.http_port = http_port  # None: no HTTP API; 0: any free port (the bound one once up)
        # Generate calls at once, gRPC and HTTP (None: no limit); past it refused (overload.py)
        self.limit = CallLimit(max_calls)
        self.tls = tls  # None: plaintext
        self.access = Access.from_tokens(tokens) if tokens is not None else None
        self.stats_period_s = stats_period_s
        self.clock = clock
        self._policy = policy
        self._tokenizer = tokenizer
        self.router = router if router is not None else DeadlineAwareRouter()
        self.pool = ReplicaPool(policy.worker.cache_mode, clock)
        self.book = RouterBook(_targets(policy))
        self.channels = Channels(keepalive, ClientTls.for_replicas(replica_tls)
                                 if replica_tls is not None else None)
        self.metrics = RouterMetrics(self.book.snapshot, self.pool.snapshots)
        self.proxy = Proxy(self.pool, self.channels, self.book, self.router, clock,
                           self.metrics.observe_e2e, self.metrics.observe_decision)
        self._arrivals: list[Arrival] = []
        self._arrivals_lock = threading.Lock()
        self._started_at = clock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._grace_s = 0.0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._health: health.aio.HealthServicer | None = None
        self._http: HttpApi | None = None
        self._thread = threading.Thread(target=self._main, name="dilaserve-router", daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The OpenAI-compatible API's base URL ("" without one)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.http_port}/v1" if self._http is not None else ""

    def start(self, timeout: float = 30.0) -> int:
        """Serve on the server's own thread; returns the port once it listens."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("router server did not start")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self, grace_s: float = 5.0) -> None:
        """Health goes NOT_SERVING; calls in flight get grace_s to finish, then are cancelled."""
        loop, stop = self._loop, self._stop_event
        if loop is not None and stop is not None and self._thread.is_alive():
            self._grace_s = grace_s
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # its loop has just finished
        if self._thread.is_alive():
            self._thread.join(grace_s + 30.0)

    # ---- what the controller calls (any thread) ------------------------------------------------

    def set_replicas(self, endpoints: Sequence[ReplicaEndpoint]) -> None:
        """The full replica set. Requests on a replica that left it restart elsewhere."""
        before = {e.replica_id: e.target for e in self.pool.endpoints()}
        gone = self.pool.set_endpoints(endpoints)
        fresh = [e for e in endpoints if before.get(e.replica_id) != e.target]
        self._on_loop(self._replicas_changed, gone, fresh)

    def set_routes(self, routes: Sequence[Route]) -> None:
        set_routes = getattr(self.router, "set_routes", None)
        if set_routes is not None:
            self._on_loop(set_routes, tuple(routes))

    def set_policy(self, policy: Policy) -> None:
        """New requests use it; requests in flight keep the class settings they arrived with."""
        self.book.set_targets(_targets(policy))
        self.pool.cache_mode = policy.worker.cache_mode
        self._policy = policy

    def take_arrivals(self) -> list[Arrival]:
        with self._arrivals_lock:
            arrivals, self._arrivals = self._arrivals, []
        return arrivals

    def replica_views(self) -> list[ReplicaView]:
        return self.pool.views()

    def in_flight(self) -> dict[int, int]:
        return self.pool.in_flight()

    def stats(self) -> pb.StatsReply:
        return cluster_stats(self.book.snapshot(), self.pool.snapshots(), self._uptime())

    def summary(self) -> dict:
        return summary(self.book.snapshot(), self.pool.snapshots(), self._uptime())

    # ---- internals -----------------------------------------------------------------------------

    def _uptime(self) -> float:
        return self.clock() - self._started_at

    def _policy_now(self) -> Policy:
        return self._policy

    def _arrived(self, arrival: Arrival) -> None:
        with self._arrivals_lock:
            self._arrivals.append(arrival)

    def _on_loop(self, function, *args) -> None:
        """Run on the event loop's thread when it runs (else here: nothing is in flight)."""
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(function, *args)
                return
            except RuntimeError:
                pass  # closed meanwhile
        function(*args)

    def _replicas_changed(self, gone: list[ReplicaEndpoint],
                          fresh: list[ReplicaEndpoint]) -> None:
        self.proxy.abandon(e.replica_id for e in gone)
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        still = {e.target for e in self.pool.endpoints()}
        loop.create_task(self.channels.close([e.target for e in gone if e.target not in still]))
        if fresh:
            loop.create_task(self._poll(fresh))
        loop.create_task(self._set_service_health())

    async def _set_service_health(self) -> None:
        """The Generate service is SERVING while some replica accepts requests (the server
        itself, health name "", stays SERVING while it runs): a load balancer in front then
        skips a router that could only turn requests away."""
        if self._health is None:
            return
        await self._health.set(SERVICE_NAME, SERVING if self._accepting() else NOT_SERVING)

    def _accepting(self) -> bool:
        # as the router routes: a replica that is draining, or whose last poll or call failed,
        # does not count
        return any(v.accepting for v in self.pool.views())

    def _model_names(self) -> list[str]:
        """The served model as the replicas name it (their Stats)."""
        return sorted({s.stats.model for s in self.pool.snapshots() if s.stats and s.stats.model})

    def _chat_max_tokens(self) -> int:
        """A chat request without max_tokens asks for the largest canvas a request may have."""
        limits = self.pool.request_limits()
        return limits.max_new_tokens if limits else self._policy.worker.max_new_tokens

    async def _stop_http(self, grace_s: float) -> None:
        """Calls in flight get grace_s to finish, as over gRPC, then are cancelled."""
        if self._http is not None:
            await self._http.stop(grace_s)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        lag = LoopLag(self.proxy.clock)
        lag_task = asyncio.create_task(lag.run())
        self.metrics.loop_lag.set_function(lambda: lag.seconds)
        servicer = RouterServicer(
            self.proxy, self.pool, self.channels, self.book, self._policy_now, self._tokenizer,
            self.stats, self._arrived, self._controlled, self.limit, lag)
        try:
            if self.metrics_port is not None:
                self.metrics_port = self.metrics.serve(self.host, self.metrics_port)
            if self.http_port is not None:
                self._http = HttpApi(servicer.generate, self._model_names, self._accepting,
                                     self._chat_max_tokens, self.metrics.registry,
                                     self.book.invalid)
                self.http_port = await self._http.start(
                    self.host, self.http_port,
                    self.tls.ssl_context() if self.tls is not None else None,
                    [http_middleware(self.access)] if self.access is not None else [])
            server, health_servicer = await self._start_grpc(servicer)
        except BaseException as err:
            lag_task.cancel()
            self.metrics.stop()
            if self._http is not None:
                await self._http.stop()
                self._http = None
            self._error = err
            self._ready.set()
            return
        poller = asyncio.create_task(self._poll_forever())
        self._ready.set()
        await self._stop_event.wait()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, NOT_SERVING)
        await asyncio.gather(server.stop(self._grace_s), self._stop_http(self._grace_s))
        poller.cancel()
        lag_task.cancel()
        await self.channels.close_all()
        self.metrics.stop()

    async def _start_grpc(self, servicer: RouterServicer):
        interceptors = [TokenInterceptor(self.access)] if self.access is not None else []
        # no maximum_concurrent_rpcs: gRPC would refuse past it before any handler, outside the
        # router's books; the servicer keeps the limit itself (overload.py)
        server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
        add_generate_service(servicer, server, on_undecodable=self.book.invalid)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = f"{self.host}:{self.requested_port}"
        self.port = (server.add_insecure_port(address) if self.tls is None else
                     server.add_secure_port(address, server_credentials(self.tls)))
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._health = health_servicer
        await health_servicer.set("", SERVING)
        await self._set_service_health()
        return server, health_servicer

    def _controlled(self, replica_id: int) -> None:
        """After a Control call: poll that replica now, so views show its new state."""
        endpoint = self.pool.endpoint(replica_id)
        if endpoint is not None and self._loop is not None:
            self._loop.create_task(self._poll([endpoint]))

    async def _poll_forever(self) -> None:
        while True:
            await self._poll(self.pool.endpoints())
            await asyncio.sleep(self.stats_period_s)

    async def _poll(self, endpoints: Sequence[ReplicaEndpoint]) -> None:
        await asyncio.gather(*(self._poll_one(e) for e in endpoints))
        await self._set_service_health()

    async def _poll_one(self, endpoint: ReplicaEndpoint) -> None:
        current = self.pool.endpoint(endpoint.replica_id)
        if current is None or current.target != endpoint.target:
            return  # it left the set since the poll was planned
        timeout = max(MIN_POLL_TIMEOUT_S, 4 * self.stats_period_s)
        try:
            stats = await self.channels.stub(endpoint.target).Stats(pb.StatsRequest(),
                                                                    timeout=timeout)
        except grpc.aio.AioRpcError as err:
            self.pool.record_poll(endpoint, None, f"{err.code().name}: {err.details() or ''}")
        else:
            self.pool.record_poll(endpoint, stats)


def _targets(policy: Policy) -> dict[str, float]:
    return {c.name: c.target_attainment for c in policy.classes}
