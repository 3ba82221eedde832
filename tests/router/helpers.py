"""Real workers on loopback behind a real router, for the router's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from orchestrator.service import ReplicaEndpoint, RouterServer
from orchestrator.types import ReplicaConfig, ReplicaState, RouteDecision
from tests.service.helpers import TOKENIZER, SlowEngine, make_worker, policy_for_tests
from tests.waiting import wait_for
from worker.client import WorkerClient
from worker.service.server import ServerThread
from worker.service.setup import Worker

CONFIG = ReplicaConfig("cpu", 1, 8, 0.5, 0.9)  # the test policy's worker settings
ONE_PER_STEP = {"commit_rule": "topk"}  # one token a step: a request's steps are its canvas


class StuckEngine(SlowEngine):
    step_s = 0.6  # a step long enough for a deadline to pass inside it


class FixedOrder:
    """A router that offers requests to replicas in a fixed order (tests of what happens after
    the decision, not of the decision)."""

    def __init__(self, *order: int) -> None:
        self.order = order

    def route(self, request, replicas, now) -> RouteDecision:
        ready = {v.replica_id for v in replicas if v.accepting}
        order = [i for i in self.order if i in ready]
        if not order:
            return RouteDecision(request.request_id, None, "shed: none of the fixed order")
        return RouteDecision(request.request_id, order[0], "fixed", fallbacks=tuple(order[1:]))




def endpoint(replica_id: int, server: ServerThread, state=ReplicaState.ACTIVE,
             config: ReplicaConfig = CONFIG) -> ReplicaEndpoint:
    return ReplicaEndpoint(replica_id, server.target, config, 0, state)


@contextmanager
def workers(*made: Worker) -> Iterator[list[ServerThread]]:
    servers = [ServerThread(w) for w in made]
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            s.stop(grace_s=0.0)


@contextmanager
def routing(servers: Sequence[ServerThread], router=None, policy=None,
            **options) -> Iterator[tuple[RouterServer, WorkerClient]]:
    """A router over these workers (replica i = servers[i]), polled once before it is used."""
    tokenizer = options.pop("tokenizer", TOKENIZER)
    server = RouterServer(policy or policy_for_tests(), tokenizer, router=router,
                          stats_period_s=options.pop("stats_period_s", 0.1), **options)
    server.start()
    client = WorkerClient(server.target)
    try:
        server.set_replicas([endpoint(i, s) for i, s in enumerate(servers)])
        wait_for(lambda: all(r["polled"] for r in server.summary()["replicas"]))
        yield server, client
    finally:
        client.close()
        server.stop(grace_s=0.0)


def kill(server: ServerThread) -> None:
    """End every call on the worker's port at once, as a crashed replica would (no final
    message, no grace); the port stops listening."""
    grpc_server = server.server._server  # noqa: SLF001 - reaching in is the point of the test
    asyncio.run_coroutine_threadsafe(grpc_server.stop(None), server._loop).result(10)


def plain_worker() -> Worker:
    return make_worker()


def slow_worker() -> Worker:
    return make_worker(engine_class=SlowEngine)
